"""The engine's single I/O seam: every open, write, fsync, rename, remove and
lock goes through a FileSystem object. The default one talks to the operating
system; lsm.testing substitutes one that injects faults and simulates power cuts.

Writes are unbuffered (os.write of the whole buffer; for the WAL, pwrite of a
batch or a copy into a shared mapping): when append() returns, the bytes are
in the OS, so they survive a crash of this process.

Knows the operating system and lsm.errors only; nothing of formats or the
engine.
"""
import ctypes
import errno
import fcntl
import mmap
import os
import shutil
import struct
import threading

from .errors import Error
from .errors import IOError as LsmIOError
from .errors import LockError


def _io_error(action, path, exc):
    err = LsmIOError(f"{action} {path}: {exc.strerror or exc}")
    err.errno = exc.errno
    return err


class WritableFile:
    """An append-only file. append() hands every byte to the OS before returning."""

    __slots__ = ("path", "_fd", "size")

    def __init__(self, path, fd, size=0):
        self.path = path
        self._fd = fd
        self.size = size

    def append(self, data) -> None:
        total = len(data)
        written = 0
        try:
            # One write() nearly always takes it all: the view is made only
            # for a short write (a WAL append per put runs through here).
            written = os.write(self._fd, data)
            if written < total:
                view = memoryview(data)
                while written < total:
                    written += os.write(self._fd, view[written:])
        except OSError as exc:
            self.size += written
            raise _io_error("write", self.path, exc) from exc
        self.size += total

    def append_parts(self, parts) -> None:
        """append(b"".join(parts)); files that can write the parts as they
        are (MappedWritableFile) skip the join."""
        self.append(b"".join(parts))

    def sync(self) -> None:
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise _io_error("fsync", self.path, exc) from exc

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd is None


def _sync_file_range():
    """libc's sync_file_range (Linux), or None."""
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return call


_SYNC_FILE_RANGE = _sync_file_range()
# Buffers one pwritev() takes (a batch of many MB is framed into more).
_IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024
_SYNC_FILE_RANGE_WRITE = 2  # start writeback of the range's dirty pages; wait for nothing


class MappedWritableFile(WritableFile):
    """A WritableFile for a log of many small appends (the WAL). A small
    append copies into a shared mapping of the file, so when it returns the
    bytes are in the OS's page cache -- a crash of this process cannot lose
    them -- without a write() call each (a system call is a third of a put). An
    append of PWRITE_BYTES or more (a write batch) is one pwritev() instead:
    each new page a mapping touches is a page fault, so a large batch costs
    several times more copied in than written.
    Both reach the same page cache, so readers see one file either way.

    The file is reserved MAP_BYTES at a time with posix_fallocate, so a full
    disk is an IOError at that point, never a SIGBUS on a later copy. Past
    the data it reads as zeros until close() cuts it back; after a crash the
    zeros stay, and log readers take them for preallocation, as LevelDB's
    readers take what its own mmap writer left. sync() is fdatasync, which
    writes the mapping's dirty pages like any others of the file.

    Every WRITEBACK_BYTES appended, writeback of them is started and not
    waited for (sync_file_range, RocksDB's wal_bytes_per_sync): the writer
    syncs a WAL it switches away from, and that fdatasync holds the writes up
    while it writes a whole WAL's pages; now it finds most of them written
    already. Figures: docs/measurements.md."""

    __slots__ = ("_map", "_base", "_end", "mapped_bytes", "_writeback_from")

    MAP_BYTES = 1 << 20
    PWRITE_BYTES = 4096
    WRITEBACK_BYTES = 1 << 20

    def __init__(self, path, fd):
        super().__init__(path, fd, 0)
        self._map = None  # maps file bytes [_base, _end) once a small append needs it
        self._base = 0
        self._end = 0  # the file is reserved up to here
        self.mapped_bytes = 0  # appended by copies, which no write() count sees
        self._writeback_from = 0  # where the bytes not yet sent to writeback begin

    def append(self, data) -> None:
        size = self.size
        end = size + len(data)
        if end == size:
            return  # nothing to copy, and maybe no window to copy it into yet
        if end - size >= self.PWRITE_BYTES:
            self._write_parts((data,), end)
            return
        if end > self._end:
            self._reserve(end)
        if self._map is None:
            self._map_reserved()
        self._map[size - self._base:end - self._base] = data
        self.size = end
        self.mapped_bytes += end - size
        if end - self._writeback_from >= self.WRITEBACK_BYTES:
            self._start_writeback(end)

    def append_parts(self, parts) -> None:
        end = self.size + sum(map(len, parts))
        if end - self.size < self.PWRITE_BYTES:
            self.append(b"".join(parts))
        else:
            self._write_parts(parts, end)

    def _write_parts(self, parts, end) -> None:
        """Write parts (end - size bytes in all) at size: pwritev, resumed
        after a short write; size counts what reached the file."""
        if end > self._end:
            self._reserve(end)
        parts = list(parts)
        offset = self.size
        written = 0
        i = 0  # the first part not wholly written
        try:
            while i < len(parts):
                n = os.pwritev(self._fd, parts[i:i + _IOV_MAX], offset + written)
                written += n
                while i < len(parts) and n >= len(parts[i]):
                    n -= len(parts[i])
                    i += 1
                if n:  # a short write, stopped inside part i: resume there
                    parts[i] = memoryview(parts[i])[n:]
        except OSError as exc:
            raise _io_error("write", self.path, exc) from exc
        finally:
            # What did reach the file is in it, as WritableFile counts a short write.
            self.size = offset + written
        if end - self._writeback_from >= self.WRITEBACK_BYTES:
            self._start_writeback(end)

    def _start_writeback(self, end: int) -> None:
        if _SYNC_FILE_RANGE is not None:
            # Errors surface at the next fdatasync, which waits for this I/O.
            _SYNC_FILE_RANGE(self._fd, self._writeback_from, end - self._writeback_from, _SYNC_FILE_RANGE_WRITE)
        self._writeback_from = end

    def _reserve(self, needed: int) -> None:
        """Reserve the file from the window holding self.size to past needed."""
        granularity = mmap.ALLOCATIONGRANULARITY
        base = self.size - self.size % granularity
        end = base + max(self.MAP_BYTES, -(-(needed - base) // granularity) * granularity)
        try:
            os.posix_fallocate(self._fd, base, end - base)
        except OSError as exc:
            raise _io_error("write", self.path, exc) from exc
        if self._map is not None:
            self._map.close()
            self._map = None
        self._base, self._end = base, end

    def _map_reserved(self) -> None:
        try:
            self._map = mmap.mmap(self._fd, self._end - self._base, offset=self._base)
        except OSError as exc:
            raise _io_error("write", self.path, exc) from exc

    def close(self) -> None:
        if self._fd is None:
            return
        if self._map is not None:
            self._map.close()
            self._map = None
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, self.size)  # the reserved zeros go
        except OSError as exc:
            raise _io_error("truncate", self.path, exc) from exc
        finally:
            os.close(fd)


def _read_after_close(path):
    return Error(f"{path}: read after close")


class RandomAccessFile:
    """Positional reads of an immutable file. Closed by close(), or when the
    last reference goes: a file shared between threads (a table in the
    table cache) is left to the latter, since a descriptor closed under
    another thread's read may already be another file's."""

    __slots__ = ("path", "_fd", "size")
    # Whether a read is a copy out of a mapping (MappedFile): about as cheap
    # as a block cache hit, so the cache may leave such reads to the file.
    mapped = False

    def __init__(self, path, fd, size):
        self.path = path
        self._fd = fd
        self.size = size

    def read(self, offset: int, length: int) -> bytes:
        try:
            return os.pread(self._fd, length, offset)
        except OSError as exc:
            raise _io_error("read", self.path, exc) from exc
        except TypeError:
            if self._fd is None:
                raise _read_after_close(self.path) from None
            raise

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __del__(self):
        try:
            self.close()
        except OSError:
            pass


class MappedFile(RandomAccessFile):
    """Positional reads of an immutable file through a read-only mapping: a
    read is a copy out of the page cache with no system call, which a get
    that misses the block cache pays once. The descriptor is closed once
    mapped. Like LevelDB's, it assumes the file is not truncated while
    mapped (a read past a truncation is a SIGBUS); lsm never truncates a
    table. Closing it under another thread's read is safe: the copy and
    the unmapping both hold the interpreter lock, so the read either
    finishes or fails with a read-after-close error."""

    __slots__ = ("_map",)
    mapped = True

    def __init__(self, path, fd, size):
        super().__init__(path, None, size)
        try:
            self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise Error(f"{self.path}: read of {length} bytes at offset {offset}")
        try:
            return self._map[offset:offset + length]
        except ValueError:
            raise _read_after_close(self.path) from None

    def close(self) -> None:
        mapping = getattr(self, "_map", None)   # unset if the mapping failed
        if mapping is not None:
            mapping.close()


# struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid (+ padding).
_FLOCK = struct.Struct("hhqqi4x")
_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", None)


def _lock_whole_file(fd):
    """A write lock over the whole file that LevelDB's fcntl(F_SETLK) lock
    conflicts with. An open-file-description lock also conflicts within this
    process, so plyvel in the same process cannot open a database lsm holds
    (a classic POSIX lock is per process and would let it in)."""
    if _OFD_SETLK is not None:
        fcntl.fcntl(fd, _OFD_SETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
    else:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock_whole_file(fd):
    if _OFD_SETLK is not None:
        fcntl.fcntl(fd, _OFD_SETLK, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, 0, 0, 0))
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)


_held_locks_guard = threading.Lock()
_held_locks = {}  # realpath -> fd; POSIX locks are per process, so we keep our own table


class FileSystem:
    """Operating-system file access. Subclassed by lsm.testing.faultfs."""

    def create(self, path, exclusive=True) -> WritableFile:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        flags |= os.O_EXCL if exclusive else os.O_TRUNC
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise _io_error("create", path, exc) from exc
        return WritableFile(path, fd, 0)

    def create_log(self, path) -> WritableFile:
        """A new file for a log of many small appends: a MappedWritableFile."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _io_error("create", path, exc) from exc
        return MappedWritableFile(path, fd)

    def open_append(self, path) -> WritableFile:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            size = os.fstat(fd).st_size
        except OSError as exc:
            raise _io_error("open", path, exc) from exc
        return WritableFile(path, fd, size)

    def open_random(self, path) -> RandomAccessFile:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            size = os.fstat(fd).st_size
        except OSError as exc:
            raise _io_error("open", path, exc) from exc
        return RandomAccessFile(path, fd, size)

    def open_mapped(self, path) -> RandomAccessFile:
        """open_random's reads through a mapping (MappedFile), for files read
        at random many times: the tables of an open database. An empty file
        cannot be mapped and is read with pread."""
        file = self.open_random(path)
        if file.size == 0:
            return file
        fd, file._fd = file._fd, None
        try:
            return MappedFile(path, fd, file.size)
        except OSError as exc:
            raise _io_error("map", path, exc) from exc

    def read_file(self, path) -> bytes:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise _io_error("read", path, exc) from exc

    def write_file(self, path, data, sync=True) -> None:
        """Create (or replace) path with data; fsync it when asked."""
        f = self.create(path, exclusive=False)
        try:
            f.append(data)
            if sync:
                f.sync()
        finally:
            f.close()

    def exists(self, path) -> bool:
        return os.path.exists(path)

    def file_size(self, path) -> int:
        try:
            return os.stat(path).st_size
        except OSError as exc:
            raise _io_error("stat", path, exc) from exc

    def listdir(self, path):
        try:
            return os.listdir(path)
        except OSError as exc:
            raise _io_error("list", path, exc) from exc

    def mkdir(self, path, mode=0o755) -> None:
        try:
            os.makedirs(path, mode=mode, exist_ok=True)
        except OSError as exc:
            raise _io_error("mkdir", path, exc) from exc

    def rename(self, src, dst) -> None:
        try:
            os.rename(src, dst)
        except OSError as exc:
            raise _io_error("rename", src, exc) from exc

    def remove(self, path) -> None:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _io_error("remove", path, exc) from exc

    def rmtree(self, path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def sync_dir(self, path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise _io_error("open directory", path, exc) from exc
        try:
            os.fsync(fd)
        except OSError as exc:
            raise _io_error("fsync directory", path, exc) from exc
        finally:
            os.close(fd)

    # LOCK: the same POSIX record lock LevelDB takes (fcntl F_SETLK), so lsm
    # and plyvel exclude each other; plus an in-process table, because POSIX
    # locks do not exclude a second open by the same process.
    def lock(self, path):
        key = os.path.realpath(path)
        with _held_locks_guard:
            if key in _held_locks:
                raise LockError(f"lock {path}: already held by this process")
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise _io_error("open lock file", path, exc) from exc
            try:
                _lock_whole_file(fd)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise LockError(
                        f"lock {path}: held by another process (is the database open elsewhere?)"
                    ) from exc
                raise _io_error("lock", path, exc) from exc
            _held_locks[key] = fd
            return key

    def unlock(self, handle) -> None:
        with _held_locks_guard:
            fd = _held_locks.pop(handle, None)
        if fd is not None:
            try:
                _unlock_whole_file(fd)
            finally:
                os.close(fd)


DEFAULT_FS = FileSystem()
