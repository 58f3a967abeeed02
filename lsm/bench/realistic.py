"""Workloads of real applications rather than db_bench's: a churn of
overwrites, inserts and deletions; YCSB's core workloads A to F; gets of
absent keys; short and full scans; and the time to compact the whole
database.

Each workload is two halves. Its plan (made once per run of the workload,
before any engine runs it) draws every key, value and operation from the
run's Data, so every engine does exactly the same operations. Its executor
takes (adapter, data, plan, progress) and returns (ops, seconds, bytes,
extra), timing only the engine's calls.

Knows the adapter's calls, the run's Data and the distributions only.
"""
import os
import time
from dataclasses import dataclass

import numpy as np

from .distributions import scrambled_zipfian, skewed_latest
from .loops import CHUNK, read, scan

CHURN_BATCH = 100
CHURN_MIX = {"overwrite": 0.7, "insert": 0.1, "delete": 0.2}
SCAN_LENGTH = 50

READ, UPDATE, INSERT, SCAN, READ_MODIFY_WRITE = range(5)
OP_NAMES = {READ: "reads", UPDATE: "updates", INSERT: "inserts", SCAN: "scans",
            READ_MODIFY_WRITE: "read_modify_writes"}
# YCSB's core workloads: the operation mix, and where requests go.
YCSB = {
    "ycsb-a": ({READ: 0.5, UPDATE: 0.5}, "zipfian"),
    "ycsb-b": ({READ: 0.95, UPDATE: 0.05}, "zipfian"),
    "ycsb-c": ({READ: 1.0}, "zipfian"),
    "ycsb-d": ({READ: 0.95, INSERT: 0.05}, "latest"),
    "ycsb-e": ({SCAN: 0.95, INSERT: 0.05}, "zipfian"),
    "ycsb-f": ({READ: 0.5, READ_MODIFY_WRITE: 0.5}, "zipfian"),
}


@dataclass
class Ops:
    """A planned stream of operations: kinds[i] on keys[i], writing
    values[i] (None: a deletion, or nothing to write)."""
    kinds: list
    keys: list
    values: list

    def counts(self):
        kinds, counts = np.unique(np.asarray(self.kinds, dtype=np.int8), return_counts=True)
        return {OP_NAMES[k]: int(n) for k, n in zip(kinds.tolist(), counts.tolist())}


def _fresh_values(data, count):
    """Values for ``count`` writes: drawn anew, not those the keys hold."""
    return data.values_for(data.np_rng.integers(0, 1 << 62, count))


def _mix(data, count, proportions):
    kinds = list(proportions)
    return data.np_rng.choice(np.array(kinds, dtype=np.int8), size=count, p=list(proportions.values()))


# ------------------------------------------------------------------ churn
def plan_churn(data):
    """--num operations, in batches of CHURN_BATCH: CHURN_MIX's overwrites
    and deletions of existing records (uniformly chosen) and inserts of new
    ones."""
    count = data.num
    rng = data.np_rng
    kinds = rng.choice(np.array([UPDATE, INSERT, -1], dtype=np.int8), size=count, p=list(CHURN_MIX.values()))
    existing = data.next_id
    ids = rng.integers(0, existing, count)
    inserts = kinds == INSERT
    ids[inserts] = data.take_new_ids(int(inserts.sum()))
    values = _fresh_values(data, count)
    for i in np.flatnonzero(kinds == -1).tolist():
        values[i] = None
    return Ops(kinds.tolist(), data.key_of(ids.tolist()), values)


def w_churn(a, d, plan, progress):
    write_ops = a.write_ops
    keys, values = plan.keys, plan.values
    start = time.perf_counter()
    for lo in range(0, len(keys), CHURN_BATCH):
        write_ops(keys[lo:lo + CHURN_BATCH], values[lo:lo + CHURN_BATCH])
        progress(min(CHURN_BATCH, len(keys) - lo))
    seconds = time.perf_counter() - start
    written = sum(len(k) + (len(v) if v is not None else 0) for k, v in zip(keys, values))
    deletes = sum(v is None for v in values)
    return len(keys), seconds, written, {"deletes": deletes, "inserts": plan.kinds.count(INSERT)}


# ------------------------------------------------------------------- YCSB
def plan_ycsb(name):
    proportions, request = YCSB[name]

    def plan(data):
        count = data.reads
        kinds = _mix(data, count, proportions)
        inserts = kinds == INSERT
        ids = np.empty(count, dtype=np.int64)
        first_new = data.next_id
        ids[inserts] = data.take_new_ids(int(inserts.sum()))
        others = ~inserts
        if request == "latest":
            # The newest record at each operation: inserts so far included.
            newest = first_new - 1 + np.cumsum(inserts)
            ids[others] = skewed_latest(data.np_rng, int(others.sum()), newest[others])
        else:
            # Each request is among the records that exist at that point.
            records = first_new + np.cumsum(inserts) - inserts
            ids[others] = scrambled_zipfian(data.np_rng, int(others.sum()), records[others])
        writes = np.isin(kinds, (UPDATE, INSERT, READ_MODIFY_WRITE))
        values = [None] * count
        for i, v in zip(np.flatnonzero(writes).tolist(), _fresh_values(data, int(writes.sum()))):
            values[i] = v
        return Ops(kinds.tolist(), data.key_of(ids.tolist()), values)

    return plan


def w_ycsb(a, d, plan, progress):
    """Runs a planned mix; a read-only one is the plain get loop."""
    counts = plan.counts()
    if set(counts) == {"reads"}:
        seconds, found = read(a, plan.keys, progress)
        return len(plan.keys), seconds, found * d.entry_bytes, {"found": found, **counts}
    get, put, scan_from = a.get, a.put, a.scan_from
    found = scanned = 0
    kinds, keys, values = plan.kinds, plan.keys, plan.values
    start = time.perf_counter()
    for lo in range(0, len(keys), CHUNK):
        hi = lo + CHUNK
        for kind, key, value in zip(kinds[lo:hi], keys[lo:hi], values[lo:hi]):
            if kind == READ:
                if get(key) is not None:
                    found += 1
            elif kind == SCAN:
                scanned += scan_from(key, SCAN_LENGTH)
            elif kind == READ_MODIFY_WRITE:
                if get(key) is not None:
                    found += 1
                put(key, value)
            else:
                put(key, value)
        progress(min(CHUNK, len(keys) - lo))
    seconds = time.perf_counter() - start
    extra = dict(counts)
    if "reads" in counts or "read_modify_writes" in counts:
        extra["found"] = found
    if "scans" in counts:
        extra["scanned"] = scanned
    return len(keys), seconds, (found + scanned) * d.entry_bytes, extra


# ----------------------------------------------------------- reads alone
def plan_absentget(data):
    return Ops([READ] * data.reads, data.absent_keys(data.reads), [None] * data.reads)


def w_absentget(a, d, plan, progress):
    seconds, found = read(a, plan.keys, progress)
    return len(plan.keys), seconds, len(plan.keys) * d.key_size, {"found": found}


def plan_scan50(data):
    """--reads scans of SCAN_LENGTH entries from uniformly chosen records."""
    ids = data.np_rng.integers(0, data.next_id, data.reads)
    return Ops([SCAN] * data.reads, data.key_of(ids.tolist()), [None] * data.reads)


def w_scan50(a, d, plan, progress):
    scan_from = a.scan_from
    scanned = 0
    keys = plan.keys
    start = time.perf_counter()
    for lo in range(0, len(keys), CHUNK):
        for key in keys[lo:lo + CHUNK]:
            scanned += scan_from(key, SCAN_LENGTH)
        progress(min(CHUNK, len(keys) - lo))
    seconds = time.perf_counter() - start
    return len(keys), seconds, scanned * d.entry_bytes, {"scanned": scanned}


def w_fullscan(a, d, plan, progress):
    return (*scan(a, False, progress), {})


# ------------------------------------------------------------ compaction
def w_compact_range(a, d, plan, progress):
    """One compaction of the whole key range, timed until the engine has no
    compaction left to do; bytes: the database's files before it."""
    before = directory_bytes(a.path)
    start = time.perf_counter()
    a.compact()
    a.quiesce()
    seconds = time.perf_counter() - start
    progress(1)
    return 1, seconds, before, {"db_bytes_before": before, "db_bytes_after": directory_bytes(a.path)}


def directory_bytes(path):
    total = 0
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False):
            total += entry.stat().st_size
    return total
