"""Running flush and compaction jobs: runner (one job, in any process),
columnar, merge and output (its parts), wal_rows (a frozen WAL's rows). Knows jobs
(lsm.jobs), tables and the log; never the writer's state nor the transport.

PROCESS_RUNNER names, as "module:qualname", the function a compactor process
runs each job with; the writer hands this name to lsm.ipc, which imports it
in the child, so lsm.ipc never imports this package."""
PROCESS_RUNNER = "lsm.compactor.process:run_job"
