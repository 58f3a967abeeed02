"""The bench's command line: its options, its presets, and their checks.

Knows argparse, the workload and engine names and the data distributions'
syntax; runs nothing.
"""
import argparse

from .data import (LOGNORMAL_KEY_MAX, LOGNORMAL_KEY_MIN, LOGNORMAL_VALUE_MAX, LOGNORMAL_VALUE_MIN, SEED,
                   TEXT_POOL_BYTES, parse_size_dist)
from .engines import ENGINES
from .loaders import parse_loader_counts
from .workloads import DEFAULT_WORKLOADS, WORKLOADS

PROG = "python -m lsm bench"
# The reads of the realistic preset, as loaded and again after compact_range.
REALISTIC_READS = ("ycsb-c", "absentget", "scan50", "fullscan")
PRESETS = {
    # LevelDB's db_bench: 16-byte keys, 100-byte values, its workloads.
    "dbbench": {"num": 1_000_000, "key_dist": "fixed", "value_dist": "fixed",
                "workloads": ",".join(DEFAULT_WORKLOADS), "no_compact": False},
    # Real data: YCSB keys, lognormal values of word-like text, a churn with
    # deletions, then reads as loaded, compact_range, and the reads again.
    "realistic": {"num": 300_000, "reads": 50_000, "key_dist": "ycsb",
                  "value_dist": f"lognormal:200:1.0:{LOGNORMAL_VALUE_MIN}:{LOGNORMAL_VALUE_MAX}",
                  "workloads": ",".join(("load", "churn", *REALISTIC_READS, "compact_range", *REALISTIC_READS)),
                  "no_compact": True},
}


class UsageError(Exception):
    """Bad command-line input: the command prints it and exits 2."""


def add_arguments(parser):
    parser.add_argument("--preset", choices=tuple(PRESETS), default="dbbench",
                        help="defaults for the options below: 'dbbench' (LevelDB's db_bench: 1M keys of "
                             "16 bytes, values of 100, its workloads) or 'realistic' (300k YCSB keys, lognormal "
                             "text values, load, churn, YCSB C, absentget, scan50 and fullscan as loaded, then "
                             "compact_range and the same reads again; --reads 50000); options given override "
                             "them (default: dbbench)")
    parser.add_argument("--num", type=int, default=None, help="number of keys loaded (default: the preset's)")
    parser.add_argument("--key-size", type=int, default=16,
                        help="key size in bytes of --key-dist fixed (default 16)")
    parser.add_argument("--value-size", type=int, default=100,
                        help="value size in bytes of --value-dist fixed (default 100)")
    parser.add_argument("--key-dist", default=None,
                        help="key lengths: 'fixed' (zero-padded numbers of --key-size bytes), 'fixed:N', 'ycsb' "
                             "('user' + a 64-bit FNV hash of the record number in decimal, 5 to 23 bytes), or "
                             "'lognormal:MEDIAN:SIGMA[:MIN:MAX]' (8 hash bytes then word-like text; "
                             f"MIN/MAX default {LOGNORMAL_KEY_MIN}/{LOGNORMAL_KEY_MAX}) (default: the preset's)")
    parser.add_argument("--value-dist", default=None,
                        help="value lengths: 'fixed' (--value-size bytes, half random, half repeated), 'fixed:N', "
                             "or 'lognormal:MEDIAN:SIGMA[:MIN:MAX]' (lengths exp(normal(ln MEDIAN, SIGMA))), "
                             f"rounded and clipped to [MIN, MAX], default [{LOGNORMAL_VALUE_MIN}, "
                             f"{LOGNORMAL_VALUE_MAX}]; cut from word-like text that snappy about halves) "
                             "(default: the preset's)")
    parser.add_argument("--reads", type=int, default=None,
                        help="operations of readrandom, readmissing, seekrandom, readwhilewriting, the YCSB "
                             "workloads, absentget and scan50 (default: the preset's, else --num)")
    parser.add_argument("--workloads", default=None,
                        help="comma-separated workloads, run in this order; a workload may appear twice "
                             f"(choose from {', '.join(WORKLOADS)}; default: the preset's)")
    parser.add_argument("--loaders", default="1,2,4",
                        help="loader process counts of the loaders workload, comma-separated (default 1,2,4)")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="comma-separated engines among lsm,plyvel,rocksdict (default: all three)")
    parser.add_argument("--compactors", default=None,
                        help="lsm compactor processes: a number, or 'inline' (= 0: jobs run in the "
                             "writer process); a comma-separated list (e.g. inline,1,2) runs lsm once "
                             "per item, as columns lsm[inline], lsm[1], lsm[2] of the same run; "
                             "default: lsm's own default")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each workload this many times per engine, the engines taking turns, "
                             "and summarise each engine by its median run (default 1)")
    parser.add_argument("--no-compact", action="store_true", default=None,
                        help="read workloads use the database as the last write left it, instead of "
                             "compacting it first (untimed, every engine); the realistic preset's default")
    parser.add_argument("--dir", default=None,
                        help="where to create the databases (default: a temporary directory, removed at the end)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per (engine, workload) on stdout instead of text")
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="also draw each workload's throughput for every engine into this PNG (matplotlib)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars and no per-workload lines")
    parser.add_argument("--seed", type=int, default=SEED, help=argparse.SUPPRESS)
    return parser


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="LevelDB's db_bench workloads, YCSB's and real-data ones, on lsm, LevelDB (plyvel) "
                               "and RocksDB (rocksdict) with the same keys and values, and the speed ratios.",
        epilog="Exit codes: 0 ok; 1 a workload failed; 2 usage error.")
    return add_arguments(parser)


def resolve(args):
    """Fill the options not given from the preset, parse the lists and the
    distributions into ``args`` and check them; UsageError if bad."""
    preset = PRESETS[args.preset]
    for name in ("num", "reads", "key_dist", "value_dist", "workloads", "no_compact"):
        if getattr(args, name, None) is None:
            setattr(args, name, preset.get(name))
    if args.num < 1:
        raise UsageError("--num: must be at least 1")
    if args.value_size < 0:
        raise UsageError("--value-size: must not be negative")
    if args.reads is not None and args.reads < 1:
        raise UsageError("--reads: must be at least 1")
    if args.repeat < 1:
        raise UsageError("--repeat: must be at least 1")
    try:
        args.key_distribution = parse_size_dist(args.key_dist, what="key-dist", fixed_size=args.key_size,
                                                allow_ycsb=True, low=LOGNORMAL_KEY_MIN, high=LOGNORMAL_KEY_MAX)
        args.value_distribution = parse_size_dist(args.value_dist, what="value-dist", fixed_size=args.value_size,
                                                  allow_ycsb=False, low=LOGNORMAL_VALUE_MIN,
                                                  high=LOGNORMAL_VALUE_MAX)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    keys = args.key_distribution
    if keys.kind == "fixed" and keys.size < len(str(args.num - 1)):
        raise UsageError(f"--key-size {keys.size} is too small for {args.num} zero-padded keys "
                         f"(needs {len(str(args.num - 1))})")
    if keys.kind == "lognormal" and keys.low < LOGNORMAL_KEY_MIN:
        raise UsageError(f"--key-dist: MIN {keys.low} is below {LOGNORMAL_KEY_MIN}, the hash bytes that keep "
                         f"keys distinct")
    for option, dist in (("key-dist", keys), ("value-dist", args.value_distribution)):
        if dist.kind == "lognormal" and dist.high > TEXT_POOL_BYTES // 2:
            raise UsageError(f"--{option}: MAX {dist.high} is above {TEXT_POOL_BYTES // 2}")
    args.workload_list = parse_list(args.workloads, tuple(WORKLOADS), "workloads")
    args.engine_list = list(dict.fromkeys(parse_list(args.engines, ENGINES, "engines")))
    args.compactor_list = parse_compactors(args.compactors)
    try:
        args.loader_counts = parse_loader_counts(args.loaders)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.plot is not None and not args.plot.lower().endswith(".png"):
        raise UsageError(f"--plot: {args.plot!r} must name a .png file")
    return args


def parse_list(text, allowed, what):
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UsageError(f"--{what}: empty list")
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise UsageError(f"--{what}: unknown {what[:-1]} {unknown[0]!r} (choose from {', '.join(allowed)})")
    return items


def parse_compactors(text):
    """--compactors as a list of lsm configurations, one engine column each:
    [None] (lsm's default) when not given, else compactor counts (0 = inline)."""
    if text is None:
        return [None]
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise UsageError("--compactors: empty list")
    values = []
    for item in items:
        if not item:
            raise UsageError(f"--compactors: empty item in {text!r}")
        if item.lower() == "inline":
            value = 0
        else:
            try:
                value = int(item)
            except ValueError:
                raise UsageError(f"--compactors: bad item {item!r}: expected a number or 'inline'") from None
            if value < 0:
                raise UsageError(f"--compactors: bad item {item!r}: must not be negative")
        if value in values:
            raise UsageError(f"--compactors: item {item!r} repeats an earlier one ('inline' is 0)")
        values.append(value)
    return values
