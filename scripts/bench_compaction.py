"""Throughput of one compactor process: a level-0 -> level-1 compaction and a
flush, run through lsm.compactor.runner.run_job exactly as a compactor would.

    .venv/bin/python scripts/bench_compaction.py --mb 100

Builds, in a temporary directory, 4 overlapping level-0 tables and 2 MiB
level-1 tables (about --mb MB of input in all; a fifth of the level-0 keys
overwrite level-1 keys) of 16-byte keys and 100-byte values, db_bench's
shape, or with --key-dist ycsb and --value-dist lognormal of YCSB-like keys
("user" and a number, 5 to 24 bytes) and values of lognormal length (median
200 bytes, 10 bytes to 4 KiB); --deletes of the level-0 entries and of the
WAL's operations are deletions. Then times
run_job for the compaction of all of them, and for a flush of a WAL of
--flush-mb MB. Prints MB/s of input (table or WAL bytes read) and entries/s.
--ratio sets how compressible values are (1.0: random bytes; 0.5: like
LevelDB's db_bench); --text cuts them from the realistic bench's word-like
text instead, which snappy halves as it does real text, and which costs it
more to compress than a repeated random head. Each job runs --repeat times
and the best run is shown, with its CPU time (wall time on a shared machine
includes other processes).
--profile prints the top of a cProfile of each job.
"""
import argparse
import cProfile
import os
import pstats
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lsm.batch import encode_batch  # noqa: E402
from lsm.bench.data import word_text  # noqa: E402
from lsm.jobs import CompactionJob, FlushJob  # noqa: E402
from lsm.table.options import TableOptions  # noqa: E402
from lsm.compactor.runner import run_job  # noqa: E402
from lsm.fileio import DEFAULT_FS  # noqa: E402
from lsm.filemeta import FileMetaData  # noqa: E402
from lsm.filenames import log_file_name, table_file_name  # noqa: E402
from lsm.keys import TYPE_DELETION, TYPE_VALUE, make_internal_key  # noqa: E402
from lsm.record import LogWriter  # noqa: E402
from lsm.table import TableBuilder  # noqa: E402

KEY_SIZE = 16
VALUE_SIZE = 100
MB = 1 << 20
# Tables as lsm writes them: every entry a restart point.
TABLES = dict(block_restart_interval=1)


def key_maker(dist):
    if dist == "fixed":
        return lambda rng: rng.randbytes(KEY_SIZE)
    return lambda rng: b"user%d" % rng.getrandbits(rng.randint(1, 64))


def value_length(rng, dist):
    if dist == "fixed":
        return VALUE_SIZE
    return min(4096, max(10, int(rng.lognormvariate(5.3, 0.8))))  # median e^5.3 = 200


def make_values(rng, count, ratio, dist="fixed"):
    """`count` values, compressible to about `ratio`, or cut from the
    realistic bench's word-like text when ratio is None."""
    text = word_text(rng.getrandbits(32)) if ratio is None else None
    pool = []
    for _ in range(min(count, 4096)):
        size = value_length(rng, dist)
        if text is not None:
            at = rng.randrange(len(text) - size)
            pool.append(text[at:at + size])
            continue
        raw = max(1, int(size * ratio))
        head = rng.randbytes(raw)
        pool.append((head * (size // raw + 1))[:size])
    return [pool[i % len(pool)] for i in range(count)]


def entry_bytes(values, key_dist):
    """Mean bytes of an entry in a block: internal key, value, header."""
    key = KEY_SIZE if key_dist == "fixed" else 18
    return key + 8 + sum(map(len, values)) / len(values) + 4


def write_table(db_dir, number, entries, options):
    """entries sorted by (key, -seq): [(key, seq, kind, value)]."""
    path = table_file_name(db_dir, number)
    f = DEFAULT_FS.create(path)
    builder = TableBuilder(options, f.append)
    add = builder.add
    for key, seq, kind, value in entries:
        add(make_internal_key(key, seq, kind), value)
    size = builder.finish()
    f.close()
    return FileMetaData(number, size, builder.smallest, builder.largest)


def build_inputs(db_dir, total_mb, ratio, options, rng, deletes, key_dist, value_dist):
    make_key = key_maker(key_dist)
    values = make_values(rng, 4096, ratio, value_dist)
    per_entry = entry_bytes(values, key_dist)
    n_total = int(total_mb * MB / per_entry)
    n_l1 = int(n_total * 0.6)
    n_l0_each = (n_total - n_l1) // 4
    l1_keys = sorted({make_key(rng) for _ in range(n_l1)})
    seq = 0
    number = 100
    level1 = []
    per_file = int(2 * MB / per_entry)
    for start in range(0, len(l1_keys), per_file):
        group = []
        for key in l1_keys[start:start + per_file]:
            seq += 1
            group.append((key, seq, TYPE_VALUE, values[seq & 4095]))
        level1.append(write_table(db_dir, number, group, options))
        number += 1
    level0 = []
    for _ in range(4):
        keys = set()
        while len(keys) < n_l0_each:
            if rng.random() < 0.2:
                keys.add(l1_keys[rng.randrange(len(l1_keys))])
            else:
                keys.add(make_key(rng))
        group = []
        for key in sorted(keys):
            seq += 1
            kind = TYPE_DELETION if rng.random() < deletes else TYPE_VALUE
            group.append((key, seq, kind, values[seq & 4095] if kind else b""))
        level0.append(write_table(db_dir, number, group, options))
        number += 1
    return level0, level1, seq, 4 * n_l0_each + len(l1_keys)


def build_wal(db_dir, number, wal_mb, ratio, rng, batch_ops, deletes, key_dist, value_dist):
    make_key = key_maker(key_dist)
    values = make_values(rng, 4096, ratio, value_dist)
    writer = LogWriter()
    chunks = []
    size = 0
    seq = 1
    entries = 0
    while size < wal_mb * MB:
        ops = [(TYPE_DELETION, make_key(rng), b"") if rng.random() < deletes
               else (TYPE_VALUE, make_key(rng), values[(seq + i) & 4095]) for i in range(batch_ops)]
        framed = writer.encode(encode_batch(seq, ops))
        chunks.append(framed)
        size += len(framed)
        seq += batch_ops
        entries += batch_ops
    DEFAULT_FS.write_file(log_file_name(db_dir, number), b"".join(chunks))
    return entries


def timed(label, job, db_dir, staging, entries, profile, repeat):
    """Best of `repeat` runs. CPU seconds are shown too: on a busy machine
    wall time also counts other processes' turns on the CPU."""
    best = None
    for _ in range(repeat):
        shutil.rmtree(staging, ignore_errors=True)
        if profile:
            prof = cProfile.Profile()
            prof.enable()
        cpu = time.process_time()
        result = run_job(job, db_dir, staging)
        cpu = time.process_time() - cpu
        if profile:
            prof.disable()
        if not result.ok:
            raise SystemExit(f"{label} failed: {result.error}")
        if best is None or result.seconds < best[0].seconds:
            best = (result, cpu)
    result, cpu = best
    secs = result.seconds
    mb = result.bytes_read / MB
    print(
        f"{label:<11} {mb:6.1f} MB in {secs:5.2f} s (cpu {cpu:5.2f} s) = "
        f"{mb / secs:5.1f} MB/s of input (cpu: {mb / cpu:5.1f}), "
        f"{entries / secs / 1e3:4.0f} K entries/s -> {len(result.outputs)} tables, "
        f"{result.bytes_written / MB:.1f} MB"
    )
    if profile:
        pstats.Stats(prof).sort_stats(os.environ.get("LSM_PROFILE_SORT", "tottime")).print_stats(int(os.environ.get("LSM_PROFILE_LINES", "12")))
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=100, help="compaction input, MB (default 100)")
    ap.add_argument("--flush-mb", type=float, default=32, help="WAL size for the flush, MB")
    ap.add_argument("--batch-ops", type=int, default=100, help="operations per WAL batch")
    ap.add_argument("--ratio", type=float, default=1.0, help="value compressibility (1.0: none)")
    ap.add_argument("--text", action="store_true",
                    help="values cut from word-like text, as the realistic bench's (snappy about halves it)")
    ap.add_argument("--deletes", type=float, default=0.05,
                    help="fraction of level-0 entries and WAL operations that are deletions")
    ap.add_argument("--key-dist", choices=("fixed", "ycsb"), default="fixed",
                    help="16-byte keys, or YCSB's (user and a number, 5-24 bytes)")
    ap.add_argument("--value-dist", choices=("fixed", "lognormal"), default="fixed",
                    help="100-byte values, or lognormal lengths (median 200, 10 B to 4 KiB)")
    ap.add_argument("--no-compression", action="store_true", help="tables without snappy")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per job; the best is shown")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    if args.text:
        args.ratio = None
    options = TableOptions(compression=None if args.no_compression else "snappy", **TABLES)
    work = args.dir or tempfile.mkdtemp(prefix="lsm-bench-compaction-")
    os.makedirs(work, exist_ok=True)
    try:
        t0 = time.perf_counter()
        level0, level1, max_seq, n_entries = build_inputs(work, args.mb, args.ratio, options, rng, args.deletes,
                                                         args.key_dist, args.value_dist)
        wal_entries = build_wal(work, 1, args.flush_mb, args.ratio, rng, args.batch_ops, args.deletes,
                                args.key_dist, args.value_dist)
        print(
            f"inputs: {len(level0)} level-0 + {len(level1)} level-1 tables, "
            f"{sum(m.size for m in level0 + level1) / MB:.1f} MB, {n_entries} entries; "
            f"WAL {args.flush_mb:g} MB ({wal_entries} entries); built in {time.perf_counter() - t0:.1f} s"
        )
        job = CompactionJob(
            job_id=1,
            level=0,
            inputs=level0,
            next_inputs=level1,
            grandparents=[],
            smallest_snapshot=max_seq,
            deeper_ranges=[],
            table=options,
        )
        timed("compaction", job, work, os.path.join(work, "stage-c"), n_entries, args.profile, args.repeat)
        flush = FlushJob(job_id=2, wal_number=1, table=options)
        timed("flush", flush, work, os.path.join(work, "stage-f"), wal_entries, args.profile, args.repeat)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
