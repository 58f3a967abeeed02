"""Shared by the engine tests: a plyvel-semantics model of iterator ranges."""
from functools import cmp_to_key

from lsm.cursor import bytes_increment


def model_range(items, reverse=False, start=None, stop=None, include_start=True, include_stop=False,
                prefix=None, include_key=True, include_value=True, compare=None):
    """What plyvel's iterator yields over a sorted list of (key, value);
    compare: the database's custom comparator (the items sorted by it)."""
    if prefix is not None:
        start, stop, include_start, include_stop = prefix, bytes_increment(prefix), True, False
    order = (lambda k: k) if compare is None else cmp_to_key(compare)
    start_key = None if start is None else order(start)
    stop_key = None if stop is None else order(stop)
    out = []
    for k, v in items:
        key = order(k)
        if start is not None and (key < start_key or (k == start and not include_start)):
            continue
        if stop is not None and (key > stop_key or (k == stop and not include_stop)):
            continue
        out.append((k, v))
    if reverse:
        out.reverse()
        # plyvel quirk (kept by lsm for compatibility): when the last key in
        # range equals an inclusive start, reverse iteration yields nothing.
        if start is not None and out and out[0][0] == start:
            out = []
    if include_key and include_value:
        return out
    if include_key:
        return [k for k, _ in out]
    if include_value:
        return [v for _, v in out]
    return [None for _ in out]
