"""The timed loops workloads are made of: puts, write batches, gets and
scans over lists prepared beforehand, so that only the engine's calls are
timed. Each returns its seconds (and what it found) and reports progress
every CHUNK operations.

Knows the adapter's calls (engines.py) only.
"""
import time

BATCH = 1000          # entries per write batch (fillbatch, load)
CHUNK = 2000          # ops between progress-bar updates


def chunks(seq, size=CHUNK):
    for lo in range(0, len(seq), size):
        yield seq[lo:lo + size]


def fill(adapter, keys, values, progress, put=None):
    put = put or adapter.put
    start = time.perf_counter()
    for lo in range(0, len(keys), CHUNK):
        for k, v in zip(keys[lo:lo + CHUNK], values[lo:lo + CHUNK]):
            put(k, v)
        progress(min(CHUNK, len(keys) - lo))
    return time.perf_counter() - start


def batches(write, keys, values, progress, size=BATCH):
    """``write(keys, values)`` for each run of ``size`` entries."""
    start = time.perf_counter()
    for lo in range(0, len(keys), size):
        write(keys[lo:lo + size], values[lo:lo + size])
        progress(min(size, len(keys) - lo))
    return time.perf_counter() - start


def read(adapter, keys, progress):
    get = adapter.get
    found = 0
    start = time.perf_counter()
    for chunk in chunks(keys):
        for k in chunk:
            if get(k) is not None:
                found += 1
        progress(len(chunk))
    return time.perf_counter() - start, found


def scan(adapter, reverse, progress):
    """A full scan: (entries, seconds, bytes read)."""
    n = 0
    nbytes = 0
    start = time.perf_counter()
    it = adapter.scan(reverse)
    for k, v in it:
        n += 1
        nbytes += len(k) + len(v)
        if n % CHUNK == 0:
            progress(CHUNK)
    seconds = time.perf_counter() - start
    progress(n % CHUNK)
    return n, seconds, nbytes
