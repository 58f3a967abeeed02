"""Giving freed memory back to the operating system. Knows glibc; nothing
else of lsm.

A flush frees what its memtable held (an index of ~40 MB once read, the
batches of a write made while a snapshot was live) and what a writer-side
flush allocated; glibc keeps the holes rather than returning them. Since
memtables read their batches back from the WAL, the effect is small
(docs/measurements.md), but a trim after each commit returns it.
"""
import ctypes


def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


_trim = _malloc_trim()


def release_free_memory() -> None:
    """Return the heap's free pages to the OS (well under a millisecond)."""
    if _trim is not None:
        _trim(0)
