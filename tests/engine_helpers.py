"""Shared by the engine tests: a plyvel-semantics model of iterator ranges."""
from lsm.cursor import bytes_increment


def model_range(items, reverse=False, start=None, stop=None, include_start=True, include_stop=False,
                prefix=None, include_key=True, include_value=True):
    """What plyvel's iterator yields over a sorted list of (key, value)."""
    if prefix is not None:
        start, stop, include_start, include_stop = prefix, bytes_increment(prefix), True, False
    out = []
    for k, v in items:
        if start is not None and (k < start or (k == start and not include_start)):
            continue
        if stop is not None and (k > stop or (k == stop and not include_stop)):
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
