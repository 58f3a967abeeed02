"""The command line's tools as library code: each returns data (findings,
records, dicts) and prints nothing; lsm.cli parses arguments, calls them and
prints what they return.

- check: verify every checksum of a database without opening it;
- dump: one table, WAL or MANIFEST as records;
- stats: levels, counters and the flush and compaction history of a database;
- load: bulk load JSON Lines or TSV in write batches;
- repair_report: lsm.repair_db and its report as text;
- database: opening a database for a tool, refusing a path that holds none.

Nothing here imports lsm.cli or the benchmark.
"""
