"""The writer: the engine of the process that holds a database (its LOCK,
WAL, memtables and MANIFEST), split by concern; engine.Engine is the facade
lsm.db talks to. Knows the file formats, the job contract (lsm.jobs), the
job runner and, through its executor, the compactor pool (lsm.ipc)."""
