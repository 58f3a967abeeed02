"""lsm: a LevelDB-compatible key-value store with multi-process compaction.

Switching from plyvel is a one-line change: ``import lsm as plyvel``.

The public names are loaded on first use (PEP 562): a compactor process
imports ``lsm.compactor`` and ``lsm.ipc`` only, and would otherwise spend
part of its start-up, before it can take the first flush, importing the
writer's modules through this package (figures: docs/measurements.md).
"""
import importlib

# The one place the version is written; pyproject.toml reads it from here.
__version__ = "0.1.0"
# The LevelDB release whose file formats and behaviour lsm follows, in the
# shape of plyvel's __leveldb_version__ ("major.minor").
__leveldb_version__ = "1.22"

_PUBLIC = {
    "DB": ".db",
    "PrefixedDB": ".db",
    "Snapshot": ".db",
    "WriteBatch": ".db",
    "Error": ".errors",
    "IOError": ".errors",
    "CorruptionError": ".errors",
    "LockError": ".errors",
    "ClosedError": ".errors",
    "IteratorInvalidError": ".errors",
    "destroy_db": ".admin",
    "repair_db": ".admin",
    "connect": ".client",
}

__all__ = list(_PUBLIC)


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'lsm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
