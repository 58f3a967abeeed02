"""Reading a MANIFEST: its records as VersionEdits, and their replay into the
state they describe (live files per level, log and file numbers, sequence,
compact pointers). Pure: takes the file's bytes and the path to name in
errors; no files, no Version objects. Recovery and the offline check both
read a MANIFEST through here, so they agree on what is damage.

Every edit is synced before anything relies on it, so a crash can tear only
the last record: a torn record with a complete valid record after it, or a
length no writer could have written, is damage (LogReader's verify_tail).
"""
from dataclasses import dataclass, field

from .errors import CorruptionError, DecodeError
from .record import LogReader
from .version_edit import NUM_LEVELS, VersionEdit

# Entries a replayed MANIFEST must have set, with LevelDB's names for them.
REQUIRED_ENTRIES = (("next_file_number", "meta-nextfile"), ("log_number", "meta-lognumber"),
                    ("last_sequence", "last-sequence-number"))


class ManifestRecords:
    """Iterate ``(offset, VersionEdit)`` over a MANIFEST's records. Damage in
    the framing or an undecodable edit raises CorruptionError(path, offset of
    the record, reason). After iteration, ``end_offset`` is where the readable
    records end: the start of a dropped torn tail, else the data's length."""

    def __init__(self, data, path):
        self.path = path
        self._length = len(data)
        self._reader = LogReader(data, strict=True, verify_tail=True)
        self.end_offset = None

    def __iter__(self):
        path = self.path
        try:
            for offset, payload in self._reader:
                try:
                    edit = VersionEdit.decode(payload)
                except DecodeError as exc:
                    raise CorruptionError(path, offset, f"bad VersionEdit in the record there: {exc.reason} "
                                                        f"(byte {exc.offset} of the edit)") from None
                yield offset, edit
        except DecodeError as exc:
            raise CorruptionError(path, exc.offset, exc.reason) from None
        tail = self._reader.tail_offset
        self.end_offset = self._length if tail is None else tail


@dataclass
class ManifestState:
    """What a MANIFEST's edits add up to. A counter no edit set is None."""

    levels: list = field(default_factory=lambda: [{} for _ in range(NUM_LEVELS)])  # {number: FileMetaData}
    compact_pointers: list = field(default_factory=lambda: [None] * NUM_LEVELS)
    comparator: bytes | None = None
    comparator_offset: int | None = None  # the record that named it (the last one that did)
    log_number: int | None = None
    prev_log_number: int | None = None
    next_file_number: int | None = None
    last_sequence: int | None = None
    records: int = 0
    end_offset: int = 0  # where the readable records end (ManifestRecords.end_offset)

    def apply(self, offset, edit) -> None:
        """Fold one edit in, as LevelDB's VersionSet::Builder does: its
        deletions first, then its new files."""
        self.records += 1
        if edit.comparator is not None:
            self.comparator = edit.comparator
            self.comparator_offset = offset
        for level, key in edit.compact_pointers:
            self.compact_pointers[level] = key
        for name in ("log_number", "prev_log_number", "next_file_number", "last_sequence"):
            value = getattr(edit, name)
            if value is not None:
                setattr(self, name, value)
        for level, number in edit.deleted_files:
            self.levels[level].pop(number, None)
        for level, meta in edit.new_files:
            self.levels[level][meta.number] = meta

    def live_files(self):
        """(level, FileMetaData) of every live table."""
        for level, files in enumerate(self.levels):
            for meta in files.values():
                yield level, meta

    def missing_entry(self):
        """(offset, reason) for the first required entry no edit set, or None.
        The offset is where the entry would have been: the torn tail that may
        have held it, else the end of the MANIFEST."""
        for name, what in REQUIRED_ENTRIES:
            if getattr(self, name) is None:
                return self.end_offset, f"no {what} entry in descriptor"
        return None


def replay_manifest(data, path) -> ManifestState:
    """Replay every edit of a MANIFEST's bytes. Damage raises CorruptionError
    naming `path` and the damaged record's offset; nothing is validated
    beyond the records themselves (see ManifestState.missing_entry)."""
    state = ManifestState()
    records = ManifestRecords(data, path)
    for offset, edit in records:
        state.apply(offset, edit)
    state.end_offset = records.end_offset
    return state
