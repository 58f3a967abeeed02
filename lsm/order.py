"""User-key order for databases opened with a custom comparator. Pure: no
files, no sockets; imports only the standard library.

The engine compares user keys with Python's own operators (sorted, bisect,
heapq, tuple order), which for bytes is LevelDB's bytewise order. A database
with a custom comparator keeps that code and changes what its keys are: an
*ordered key* is a bytes subclass whose <, <=, > and >= ask the comparator,
and whose slices are ordered keys too (an internal key's user key, ``ikey[:-8]``,
compares by the comparator). Equality and hashing stay bytewise, so dicts and
"same user key" checks treat keys as the bytes they are.

Python lets the subclass decide a comparison with plain bytes from either
side, so one ordered operand is enough. The general path wraps keys where they
enter the engine (user arguments, memtable and table contents, file bounds);
bytewise databases never see this module's types.
"""
import importlib
from functools import lru_cache


def ordered_key_type(compare):
    """The ordered key class for `compare(a, b) -> int` (negative, zero,
    positive), made once per function."""
    return _ordered_key_type(compare)


@lru_cache(maxsize=None)
def _ordered_key_type(compare):
    # compare gets plain bytes: a comparator comparing its arguments with <
    # would otherwise call back into these methods forever.
    def lt(a, b):
        if not isinstance(b, bytes):
            return NotImplemented
        return compare(bytes(a), bytes(b)) < 0

    def le(a, b):
        if not isinstance(b, bytes):
            return NotImplemented
        return compare(bytes(a), bytes(b)) <= 0

    def gt(a, b):
        if not isinstance(b, bytes):
            return NotImplemented
        return compare(bytes(a), bytes(b)) > 0

    def ge(a, b):
        if not isinstance(b, bytes):
            return NotImplemented
        return compare(bytes(a), bytes(b)) >= 0

    def getitem(self, index):
        part = bytes.__getitem__(self, index)
        return cls(part) if type(index) is slice else part

    cls = type("OrderedKey", (bytes,), {
        "__slots__": (), "__lt__": lt, "__le__": le, "__gt__": gt, "__ge__": ge,
        "__getitem__": getitem, "__hash__": bytes.__hash__, "__eq__": bytes.__eq__, "__ne__": bytes.__ne__,
        "__doc__": f"bytes ordered by {getattr(compare, '__qualname__', compare)!r}",
        "__reduce__": lambda self: (bytes, (bytes(self),)),
    })
    return cls


def comparator_reference(compare) -> str | None:
    """"module:qualname" under which another process imports `compare` itself,
    or None when it cannot (a lambda, a closure, a function of __main__ or
    one that its module does not hold under that name)."""
    module = getattr(compare, "__module__", None)
    qualname = getattr(compare, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    reference = f"{module}:{qualname}"
    try:
        found = load_comparator(reference)
    except (ImportError, AttributeError):
        return None
    return reference if found is compare else None


def unreachable_reason(compare) -> str:
    """Why a compactor process could not import `compare` (for the TypeError)."""
    module = getattr(compare, "__module__", None)
    qualname = getattr(compare, "__qualname__", None)
    if not module or not qualname:
        return f"comparator {compare!r} has no module and qualified name to import it by"
    if module == "__main__":
        return f"comparator {qualname!r} is defined in __main__, which compactor processes do not import"
    if "<" in qualname:
        return f"comparator {qualname!r} is a lambda or a nested function, which compactor processes cannot import"
    return f"comparator {module}:{qualname} is not what importing that name gives"


def load_comparator(reference: str):
    """The function a "module:qualname" reference names."""
    module_name, _, qualname = reference.partition(":")
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
