"""Exception types of the public surface. Pure: knows nothing of files or sockets.

The hierarchy mirrors plyvel's (``Error``, ``IOError``, ``CorruptionError``) so
code written for plyvel catches the same things after switching its import.
"""
import builtins


class Error(Exception):
    """Base of every error this package raises on purpose."""


class IOError(Error, builtins.IOError):  # noqa: A001 - plyvel exports the same name
    """The operating system refused an operation (disk full, fsync failed, ...)."""


class CorruptionError(Error):
    """Stored bytes are damaged. Carries the evidence: which file, where, and why."""

    def __init__(self, path, offset, reason):
        self.path = None if path is None else str(path)
        self.offset = offset
        self.reason = reason
        where = self.path or "<bytes>"
        if offset is not None:
            where = f"{where} at offset {offset}"
        super().__init__(f"{where}: {reason}")


class DecodeError(ValueError):
    """A pure codec could not parse its input. Codecs know no file names; the
    layer that read the bytes turns this into a CorruptionError with the path
    and the absolute offset (``offset`` here is relative to the codec's input)."""

    def __init__(self, reason, offset=None):
        self.reason = reason
        self.offset = offset
        super().__init__(reason if offset is None else f"{reason} (at byte {offset})")


class LockError(IOError):
    """Another process (lsm or LevelDB) or this one already holds the database.

    An IOError, as plyvel raises for a held lock, so `except plyvel.IOError`
    code keeps working after switching its import."""


class IteratorInvalidError(Error):
    """A raw iterator was asked for its entry while not positioned on one."""


class ClosedError(RuntimeError):
    """The database, snapshot or iterator was closed by its user. Not damage.

    A RuntimeError, as plyvel raises for operations on a closed database."""
