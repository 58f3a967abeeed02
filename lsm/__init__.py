"""lsm: a LevelDB-compatible key-value store with multi-process compaction.

Switching from plyvel is a one-line change: ``import lsm as plyvel``.
"""
from .cursor import IteratorInvalidError
from .db import DB, PrefixedDB, Snapshot, WriteBatch
from .errors import ClosedError, CorruptionError, Error, IOError, LockError
from .admin import destroy_db, repair_db

__all__ = ["DB", "PrefixedDB", "Snapshot", "WriteBatch", "Error", "IOError", "CorruptionError", "LockError",
           "ClosedError", "IteratorInvalidError", "destroy_db", "repair_db"]
