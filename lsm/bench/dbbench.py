"""LevelDB's db_bench workloads, and ``load`` (sustained ingest timed until
compaction is done). Each takes (adapter, data, progress) and returns
(ops, seconds, bytes, extra), timing only the work itself.

Knows the adapter's calls and the run's Data only.
"""
import threading
import time

from .loops import BATCH, chunks, batches, fill, read, scan


def w_fillseq(a, d, progress):
    return d.num, fill(a, d.keys, d.values, progress), d.num * d.entry_bytes, {}


def w_fillrandom(a, d, progress):
    return d.num, fill(a, d.random_keys, d.values, progress), d.num * d.entry_bytes, {}


def w_overwrite(a, d, progress):
    return w_fillrandom(a, d, progress)


def fillsync_ops(num):
    return min(num, max(100, num // 100))


def w_fillsync(a, d, progress):
    n = fillsync_ops(d.num)
    seconds = fill(a, d.random_keys[:n], d.values[:n], progress, put=a.put_sync)
    return n, seconds, n * d.entry_bytes, {}


def w_fillbatch(a, d, progress):
    return d.num, batches(a.write_batch, d.keys, d.values, progress), d.num * d.entry_bytes, {}


def w_readrandom(a, d, progress):
    seconds, found = read(a, d.read_keys, progress)
    return d.reads, seconds, found * d.entry_bytes, {"found": found}


def w_readmissing(a, d, progress):
    keys = d.missing_keys()
    seconds, found = read(a, keys, progress)
    return d.reads, seconds, d.reads * (d.key_size + 1), {"found": found}


def w_readseq(a, d, progress):
    return (*scan(a, False, progress), {})


def w_readreverse(a, d, progress):
    return (*scan(a, True, progress), {})


def w_seekrandom(a, d, progress):
    seek = a.seek
    found = 0
    start = time.perf_counter()
    for chunk in chunks(d.read_keys):
        for k in chunk:
            if seek(k):
                found += 1
        progress(len(chunk))
    return d.reads, time.perf_counter() - start, found * d.entry_bytes, {"found": found}


def w_deleterandom(a, d, progress):
    delete = a.delete
    start = time.perf_counter()
    for chunk in chunks(d.random_keys):
        for k in chunk:
            delete(k)
        progress(len(chunk))
    return d.num, time.perf_counter() - start, d.num * d.key_size, {}


def w_readwhilewriting(a, d, progress):
    """One thread reads --reads keys in random order (timed, reported);
    another overwrites random keys until the reader is done."""
    stop = threading.Event()
    writes = [0]
    errors = []

    def writer():
        put = a.put
        keys, values, n = d.random_keys, d.values, d.num
        lo = 0
        try:
            while not stop.is_set():
                hi = min(lo + 100, n)
                for k, v in zip(keys[lo:hi], values[lo:hi]):
                    put(k, v)
                writes[0] += hi - lo
                lo = hi % n
        except BaseException as exc:  # noqa: BLE001 - reported by the reader thread
            errors.append(exc)

    thread = threading.Thread(target=writer, name="bench-writer", daemon=True)
    thread.start()
    try:
        seconds, found = read(a, d.read_keys, progress)
    finally:
        stop.set()
        thread.join()
    if errors:
        raise errors[0]
    return d.reads, seconds, found * d.entry_bytes, {
        "found": found, "writes": writes[0], "writes_per_sec": writes[0] / seconds if seconds else None}


def w_load(a, d, progress, path, sampler):
    """Sustained ingest into a fresh database: batches of BATCH entries in
    random key order, timed until every flush and compaction is done and the
    database is closed (LevelDB's close() waits for its compaction)."""
    a.open(path)
    start = time.perf_counter()
    extra = {}
    try:
        batches(a.write_batch, d.random_keys, d.values, progress, BATCH)
        extra["write_seconds"] = round(time.perf_counter() - start, 6)
        a.quiesce()
        extra["quiet_seconds"] = round(time.perf_counter() - start, 6)
        # Before close: the engine's counters, and a last look at the
        # compactors while they still run.
        stats = a.stats()
        pids = a.compactor_pids()
        sampler.sample_now()
    finally:
        a.close()
    seconds = time.perf_counter() - start
    extra.update(load_stats(stats, pids))
    return d.num, seconds, d.num * d.entry_bytes, extra


def load_stats(stats, compactor_pids):
    """The fields of a load result that come from lsm's stats() (None for
    engines that have no such counters)."""
    stats = stats or {}

    def get(field):
        value = stats.get(field)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    read_bytes, secs = get("compaction_bytes_read"), get("compaction_seconds")
    jobs = {c["pid"]: c.get("jobs_done") for c in stats.get("compactors") or []
            if isinstance(c, dict) and c.get("pid")}
    return {
        "write_amplification": get("write_amplification"),
        "stall_seconds": get("stall_seconds"),
        "flushes": get("flushes"),
        "flushes_in_writer": get("flushes_in_writer"),  # run by a stalled writer itself
        "compactions": get("compactions"),
        "compaction_bytes_read": read_bytes,
        "compaction_bytes_written": get("compaction_bytes_written"),
        "compaction_seconds": secs,
        "compaction_mb_per_sec": read_bytes / 1048576.0 / secs if read_bytes is not None and secs else None,
        "engine_user_bytes": get("user_bytes"),
        # Small WAL appends are copies into a mapping, not write() calls.
        "_wal_mapped_bytes": get("wal_mapped_bytes") or 0,
        "_jobs_done": jobs,
        "_compactor_pids": list(compactor_pids or ()),
    }
