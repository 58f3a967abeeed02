"""Obsolete files: deleting the WALs, MANIFESTs and tables nothing needs any
more, and the version references whose end makes them so, the ones the
garbage collector queues included.

Knows the shared state (versions, pinned sequences), the table cache (a
deleted table is evicted) and, through a callable, which WALs the memtables
still use. Files are removed through the FileSystem seam.
"""
import os
from collections import deque

from .. import filenames


class ObsoleteFiles:
    def __init__(self, state, table_cache, wals_in_use):
        self._state = state
        self._table_cache = table_cache
        self._wals_in_use = wals_in_use  # () -> set of WAL numbers that memtables read
        self._released = deque()  # (version or None, sequence): see release_soon

    def delete_obsolete_files(self):
        """Lock held: remove every file that no live version, memtable or
        MANIFEST needs (after doing the queued releases)."""
        self._apply_released()
        state = self._state
        if state.bg_error is not None:
            return  # we may not know whether the last edit was committed
        vs = state.versions
        live = vs.live_table_numbers()
        wal_keep = self._wals_in_use()
        fs, dbname = state.fs, state.dbname
        for name in fs.listdir(dbname):
            parsed = filenames.parse_file_name(name)
            if parsed is None:
                continue
            kind, number = parsed
            if kind == filenames.FileType.LOG:
                keep = filenames.wal_is_live(number, vs.log_number, vs.prev_log_number) or number in wal_keep
            elif kind == filenames.FileType.DESCRIPTOR:
                keep = number >= vs.manifest_number
            elif kind == filenames.FileType.TABLE:
                keep = number in live
            elif kind == filenames.FileType.TEMP:
                keep = False
            else:
                keep = True
            if not keep:
                if kind == filenames.FileType.TABLE:
                    self._table_cache.evict(number)
                fs.remove(os.path.join(dbname, name))

    def release_version(self, version):
        """Lock held: drop a reference to version; an old version nothing
        references any more may have held the last claim on some files."""
        if not self._state.closed and self.unref(version):
            self.delete_obsolete_files()

    def unref(self, version) -> bool:
        """Lock held: drop a reference to version; whether it was the last
        one to an old version."""
        versions = self._state.versions
        versions.unref(version)
        return version.refs <= 0 and version is not versions.current

    def release_soon(self, version, sequence):
        """Release a view's version and sequence (a snapshot's: version
        None) that the garbage collector found unclosed. The collector runs
        in whatever thread allocates, maybe one inside the writer's lock,
        where waiting for the lock would never end: the release is queued,
        and done here if the lock is free, else by the next holder that
        deletes obsolete files or makes a view or snapshot."""
        self._released.append((version, sequence))
        lock = self._state.lock
        if lock.acquire(False):
            try:
                self.do_released()
            finally:
                lock.release()

    def do_released(self):
        """Lock held: the queued releases, and the deletion of the files
        they leave unreferenced."""
        if self._released and self._apply_released():
            self.delete_obsolete_files()

    def _apply_released(self) -> bool:
        """Lock held: do the queued releases; whether one dropped the last
        reference to an old version."""
        state = self._state
        freed = False
        while self._released:
            version, sequence = self._released.popleft()
            state.forget_sequence(sequence)
            if version is not None and not state.closed:
                freed = self.unref(version) or freed
        return freed
