"""Benchmark of the table format layer alone (lsm.table), pure Python.

Builds a table of N entries (16-byte user keys, 100-byte values, bloom filter
10 bits/key) through lsm.fileio into a temporary directory, once with Snappy and
once without compression, then reads it back:
  build   TableBuilder.add for every entry + finish
  scan    Table.iter_entries over the whole table
  blocks  Table.block(i) for every block (the compactor's read path)
  get     Table.get of random present keys (8 MiB shared BlockCache)
  miss    Table.get of random absent keys (answered by the bloom filter)
Each line gives entries per wall-clock second and per CPU second of this
process; on a shared machine the second is the one to compare.

Usage: .venv/bin/python scripts/bench_format.py [--entries 1000000] [--lookups 200000]
       [--profile build|scan|blocks|get]
"""
import argparse
import cProfile
import os
import pstats
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lsm.table.options import TableOptions  # noqa: E402
from lsm.fileio import DEFAULT_FS  # noqa: E402
from lsm.keys import TYPE_VALUE, make_internal_key  # noqa: E402
from lsm.table import BlockCache, Table, TableBuilder  # noqa: E402

RESTART_INTERVAL = int(os.environ.get("LSM_RESTART_INTERVAL", "16"))  # LevelDB's default and lsm's


def make_entries(n):
    rng = random.Random(42)
    # Half random, half repeated: Snappy saves ~45% on these values, like typical data.
    pool = [(lambda r: r + r[:50])(rng.randbytes(50)) for _ in range(1024)]
    keys = [make_internal_key(b"key%013d" % i, i + 1, TYPE_VALUE) for i in range(n)]
    values = [pool[i & 1023] for i in range(n)]
    return keys, values


def build(path, keys, values, compression):
    f = DEFAULT_FS.create(path, exclusive=False)
    options = TableOptions(compression=compression, bloom_bits_per_key=10, block_restart_interval=RESTART_INTERVAL)
    builder = TableBuilder(options, f.append)
    builder.add_many(keys, values)  # what flushes and compactions call
    size = builder.finish()
    f.close()
    return size


def scan(path):
    f = DEFAULT_FS.open_random(path)
    table = Table.open(f, path=path)
    count = 0
    for _ in table.iter_entries():
        count += 1
    f.close()
    return count


def blocks(path):
    f = DEFAULT_FS.open_random(path)
    table = Table.open(f, path=path, block_cache=BlockCache(1 << 20))
    count = 0
    for i in range(table.num_blocks):
        count += len(table.block(i)[0])
    f.close()
    return count


def lookups(path, probes):
    f = DEFAULT_FS.open_random(path)
    table = Table.open(f, path=path, block_cache=BlockCache(8 << 20))
    found = 0
    get = table.get
    for key in probes:
        if get(key, 1 << 40) is not None:
            found += 1
    f.close()
    return found


def timed(label, fn, *args, count, profile=None):
    if profile:
        prof = cProfile.Profile()
        prof.enable()
    start, cpu_start = time.perf_counter(), time.process_time()
    result = fn(*args)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if profile:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    # CPU time too: on a shared machine wall time also measures the neighbours.
    print(f"  {label:7s} {count / elapsed:12,.0f} entries/s wall  {count / cpu:12,.0f} /s CPU  ({elapsed:6.2f} s)")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--profile", choices=["build", "scan", "blocks", "get"])
    parser.add_argument("--compression", choices=["snappy", "none", "both"], default="both")
    args = parser.parse_args()

    keys, values = make_entries(args.entries)
    rng = random.Random(7)
    present = [b"key%013d" % rng.randrange(args.entries) for _ in range(args.lookups)]
    absent = [b"key%013dx" % rng.randrange(args.entries) for _ in range(args.lookups)]
    modes = {"snappy": ["snappy"], "none": [None], "both": ["snappy", None]}[args.compression]
    print(f"python {sys.version.split()[0]}, {args.entries:,} entries, 16-byte keys, 100-byte values, bloom 10")
    with tempfile.TemporaryDirectory() as tmp:
        for compression in modes:
            path = os.path.join(tmp, f"{compression}.ldb")
            print(f"compression={compression}")
            prof = args.profile
            size = timed("build", build, path, keys, values, compression, count=args.entries,
                         profile=prof == "build")
            print(f"          file size {size:,} bytes")
            n = timed("scan", scan, path, count=args.entries, profile=prof == "scan")
            assert n == args.entries, n
            n = timed("blocks", blocks, path, count=args.entries, profile=prof == "blocks")
            assert n == args.entries, n
            n = timed("get", lookups, path, present, count=args.lookups, profile=prof == "get")
            assert n == args.lookups, n
            n = timed("miss", lookups, path, absent, count=args.lookups)
            assert n == 0, n


if __name__ == "__main__":
    main()
