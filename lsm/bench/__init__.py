"""``python -m lsm bench``: LevelDB's db_bench workloads, YCSB's core
workloads and real-data ones (a churn with deletions, gets of absent keys,
short and full scans, compact_range) on lsm, LevelDB (plyvel) and RocksDB
(rocksdict), with the same keys and values, and the speed ratios in one table.

Imported only by the bench command: nothing else in lsm imports this
package, and it imports nothing of lsm's command line. The modules:
distributions (YCSB's generators), data (keys and values), engines
(adapters), loops, dbbench and realistic (workloads), workloads (the
registry), sampler (RSS and I/O), isolate (a child process per workload),
harness (the run), report (text), plot (the chart), options (the command
line).
"""
import sys

from .dbbench import fillsync_ops
from .data import Data, SizeDist, parse_size_dist
from .engines import (ENGINES, LsmAdapter, PlyvelAdapter, RocksdictAdapter, leveldb_compaction_due, leveldb_levels,
                      lsm_label)
from .harness import Bench
from .options import PRESETS, PROG, UsageError, add_arguments, build_parser, parse_compactors
from .report import medians
from .workloads import DEFAULT_WORKLOADS, WORKLOADS

__all__ = ["Bench", "UsageError", "add_arguments", "main", "run", "Data", "SizeDist", "parse_size_dist",
           "ENGINES", "WORKLOADS", "DEFAULT_WORKLOADS", "PRESETS", "LsmAdapter", "PlyvelAdapter",
           "RocksdictAdapter", "fillsync_ops", "leveldb_levels", "leveldb_compaction_due", "lsm_label",
           "parse_compactors", "medians"]


def run(args):
    """Run a parsed ``bench`` command line; returns the exit code."""
    return Bench(args).run()


def main(argv=None) -> int:
    """The bench's own command line (``python -m lsm bench ...``, also
    scripts/bench.py): parses ``argv`` (default: sys.argv[1:]) and runs.
    Bad usage exits 2 with the parser's message; a failure prints one line
    and returns 1."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        bench = Bench(args)
    except UsageError as exc:
        parser.error(str(exc))  # exits 2
    try:
        return bench.run()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        print(f"{PROG}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
