"""The job runner as a compactor process imports it (PROCESS_RUNNER): run_job,
with numpy loaded up front. Every job builds its filters with numpy and most
merge with it; a compactor imports this while it announces itself, not inside
its first job, where a writer filling its first memtables would wait for the
import. The writer's own process never imports this module, so what it sets
for the process (the collector, the C allocator) holds for compactors only.

A job allocates containers by the hundred thousand (views and slices of its
blocks' bytes), each of which counts towards the cyclic collector's next
pass, and a pass walks every object the process holds. So what is loaded
now is frozen out of the collector's sight, and a job runs with the
collector paused: its objects are freed by their reference counts, and
whatever cycles it leaves are collected once, when it ends.

A job also allocates buffers of a MiB or more (a WAL, a chunk of blocks, a
cut of output blocks). glibc would map each afresh and unmap it when freed,
so every page of every buffer would fault in, zeroed; it is told to take
them from its heap and to keep what is freed there, up to HEAP_KEPT bytes,
for the next ones: a compactor's memory stays what its largest job needs."""
import ctypes
import gc

import numpy  # noqa: F401 - loaded for the jobs to come

from .runner import run_job as _run_job

__all__ = ["run_job"]

# Buffers below this come from the heap, not mappings of their own.
HEAP_BUFFER_MAX = 64 << 20
# Free bytes at the heap's top kept mapped before glibc returns them.
HEAP_KEPT = 64 << 20
# mallopt's parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_buffers() -> bool:
    """Have glibc's malloc serve buffers up to HEAP_BUFFER_MAX from its heap
    and keep up to HEAP_KEPT freed bytes there; False where there is no
    mallopt (another C library) or it refused."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, HEAP_BUFFER_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, HEAP_KEPT))


keep_freed_buffers()
gc.freeze()


def run_job(*args, **kwargs):
    """runner.run_job, with the cyclic collector paused while it runs."""
    gc.disable()
    try:
        return _run_job(*args, **kwargs)
    finally:
        gc.enable()
        gc.collect()
