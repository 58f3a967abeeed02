"""The version set: the current Version, the MANIFEST that records how it came
to be, and the counters (file numbers, sequence, log numbers) persisted with it.
Owned by the writer alone. All I/O goes through the FileSystem seam.

Commit order for every edit, so a crash at any point leaves a MANIFEST
that names only complete files: outputs are already synced
and renamed in; the edit is appended to the MANIFEST and synced; only then is
the new version installed and anything deleted on its strength.
"""
import os

from .. import filenames
from ..errors import CorruptionError, Error
from ..keys import COMPARATOR_NAME
from ..manifest import replay_manifest
from ..record import LogWriter
from ..version_edit import VersionEdit
from .version import NUM_LEVELS, Version, VersionBuilder, empty_version

DEFAULT_MANIFEST_LIMIT = 64 << 20  # LevelDB never rotates while open; we do past this size


class VersionSet:
    def __init__(self, dbname, fs, manifest_limit=DEFAULT_MANIFEST_LIMIT, comparator_name=COMPARATOR_NAME,
                 ordered=None):
        self.dbname = dbname
        self.comparator_name = comparator_name
        self.ordered = ordered  # a custom comparator's key type (lsm.order), or None
        self.fs = fs
        self.manifest_limit = manifest_limit
        self.next_file_number = 2
        self.manifest_number = 0
        self.last_sequence = 0
        self.log_number = 0
        self.prev_log_number = 0
        self.compact_pointers = [None] * NUM_LEVELS
        self.current = empty_version()
        self._live = []  # versions other than current that are still referenced
        self._manifest = None  # WritableFile
        self._manifest_writer = None
        self._version_counter = 0
        self._listeners = []

    # -- numbers ---------------------------------------------------------
    def new_file_number(self) -> int:
        n = self.next_file_number
        self.next_file_number += 1
        return n

    def mark_file_number_used(self, number: int) -> None:
        if self.next_file_number <= number:
            self.next_file_number = number + 1

    # -- refcounts -------------------------------------------------------
    def ref(self, version: Version) -> Version:
        version.refs += 1
        return version

    def unref(self, version: Version) -> None:
        version.refs -= 1
        if version.refs <= 0 and version is not self.current:
            try:
                self._live.remove(version)
            except ValueError:
                pass

    def live_table_numbers(self) -> set:
        live = self.current.live_numbers()
        for v in self._live:
            live |= v.live_numbers()
        return live

    def _install(self, version: Version) -> None:
        old = self.current
        self.current = version
        if old.refs > 0:
            self._live.append(old)
        for listener in self._listeners:
            listener()

    def add_listener(self, listener) -> None:
        """Call listener() after each new current version is installed."""
        self._listeners.append(listener)

    # -- creating and recovering ----------------------------------------
    def create_new_db(self) -> None:
        """LevelDB's NewDB: MANIFEST-000001 with comparator, log 0, next 2, seq 0."""
        edit = VersionEdit(comparator=self.comparator_name, log_number=0, next_file_number=2, last_sequence=0)
        path = filenames.descriptor_file_name(self.dbname, 1)
        f = self.fs.create(path, exclusive=False)
        try:
            f.append(LogWriter().encode(edit.encode()))
            f.sync()
            # The MANIFEST's directory entry must be durable before CURRENT
            # can name it (as in _start_manifest).
            self.fs.sync_dir(self.dbname)
        finally:
            f.close()
        filenames.set_current_file(self.fs, self.dbname, 1)

    def recover(self):
        """Replay the MANIFEST named by CURRENT (lsm.manifest: any damage in it
        other than a torn tail is CorruptionError with the damaged record's
        offset; guessing would risk deleting live tables). Nothing is deleted
        before this returns."""
        manifest_name = filenames.read_current(self.fs, self.dbname)
        path = os.path.join(self.dbname, manifest_name)
        state = replay_manifest(self.fs.read_file(path), path)
        if state.comparator is not None and state.comparator != self.comparator_name:
            raise Error(
                f"Invalid argument: {state.comparator.decode(errors='replace')} does not match "
                f"existing comparator {self.comparator_name.decode(errors='replace')}"
            )
        missing = state.missing_entry()
        if missing is not None:
            raise CorruptionError(path, *missing)
        builder = VersionBuilder(empty_version(), self.ordered)
        builder.apply(VersionEdit(new_files=list(state.live_files())))
        self.current = builder.build(self._next_version_number())
        self.compact_pointers = [self._ordered_key(key) for key in state.compact_pointers]
        self.log_number = state.log_number
        if state.prev_log_number is not None:
            self.prev_log_number = state.prev_log_number
        self.next_file_number = state.next_file_number
        self.last_sequence = state.last_sequence
        self.manifest_number = filenames.parse_file_name(manifest_name)[1]
        self.mark_file_number_used(self.manifest_number)
        self.mark_file_number_used(self.log_number)
        self.mark_file_number_used(self.prev_log_number)
        return path

    # -- committing ------------------------------------------------------
    def log_and_apply(self, edit: VersionEdit) -> Version:
        """Persist `edit` (synced) and install the version it produces.

        Raises on I/O failure; the caller makes that sticky (the MANIFEST may
        now end in a torn record, so nothing more may be appended to it)."""
        if edit.log_number is None:
            edit.log_number = self.log_number
        if edit.prev_log_number is None:
            edit.prev_log_number = self.prev_log_number
        edit.next_file_number = self.next_file_number
        edit.last_sequence = self.last_sequence if edit.last_sequence is None else edit.last_sequence

        builder = VersionBuilder(self.current, self.ordered)
        builder.apply(edit)
        version = builder.build(self._next_version_number())
        for level, key in edit.compact_pointers:
            self.compact_pointers[level] = self._ordered_key(key)

        if self._manifest is None or self._manifest.size >= self.manifest_limit:
            self._start_manifest(version, edit)
        else:
            self._manifest.append(self._manifest_writer.encode(edit.encode()))
            self._manifest.sync()

        self.log_number = edit.log_number
        self.prev_log_number = edit.prev_log_number
        self.last_sequence = max(self.last_sequence, edit.last_sequence)
        self._install(version)
        return version

    def _start_manifest(self, version: Version, edit: VersionEdit) -> None:
        """A new MANIFEST: a full snapshot record, then the edit, synced, then
        CURRENT switched (temp file, fsync, rename, directory fsync)."""
        number = self.new_file_number()
        edit.next_file_number = self.next_file_number
        path = filenames.descriptor_file_name(self.dbname, number)
        writer = LogWriter()
        snapshot = VersionEdit(comparator=self.comparator_name)
        for level, key in enumerate(self.compact_pointers):
            if key is not None:
                snapshot.compact_pointers.append((level, key))
        # The snapshot describes the version *before* the edit, as LevelDB's
        # WriteSnapshot does; the edit follows as the second record.
        for level, files in enumerate(self.current.levels):
            for f in files:
                snapshot.new_files.append((level, f))
        f = self.fs.create(path, exclusive=False)
        try:
            f.append(writer.encode(snapshot.encode()) + writer.encode(edit.encode()))
            f.sync()
            self.fs.sync_dir(self.dbname)
            filenames.set_current_file(self.fs, self.dbname, number)
        except BaseException:
            f.close()
            try:
                self.fs.remove(path)
            except Error:
                pass
            raise
        if self._manifest is not None:
            self._manifest.close()
        self._manifest = f
        self._manifest_writer = writer
        self.manifest_number = number

    def _ordered_key(self, key):
        return key if key is None or self.ordered is None else self.ordered(key)

    def close(self) -> None:
        if self._manifest is not None:
            self._manifest.close()
            self._manifest = None

    def _next_version_number(self) -> int:
        self._version_counter += 1
        return self._version_counter
