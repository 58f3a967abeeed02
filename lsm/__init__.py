"""lsm: a LevelDB-compatible key-value store with multi-process compaction."""
from .errors import ClosedError, CorruptionError, Error, IOError, LockError

__all__ = ["Error", "IOError", "CorruptionError", "LockError", "ClosedError"]
