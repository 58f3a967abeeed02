"""Test aids that ship with lsm: faultfs (a FileSystem that injects I/O
errors and simulates power cuts) and model (the oracle crash tests compare a
recovered database with). Imported by tests, and by the job runner only when
a test asks for faults through its environment; nothing else in lsm."""
