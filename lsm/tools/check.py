"""Offline check of a database: CURRENT, the MANIFEST, every block of every
live table (its checksums, key order, first and last keys and size against
the MANIFEST) and every live WAL, without opening the database.

Reads only, through the FileSystem seam; returns findings (file, offset,
reason) and counts, and prints nothing. The LOCK is held while it reads, so
nothing changes underneath; on a read-only file system it reads without it.
"""
import os
from dataclasses import dataclass, field
from operator import lt, neg

from .. import filenames
from ..batch import decode_batch
from ..errors import CorruptionError, DecodeError, Error, LockError
from ..fileio import DEFAULT_FS
from ..keys import COMPARATOR_NAME, TRAILER_SIZE, sort_key
from ..manifest import replay_manifest
from ..record import LogReader
from ..table.reader import Table
from .describe import internal_key_text, wal_batch_damage


@dataclass(frozen=True)
class Finding:
    """One damaged place: the file, the offset in it (None: unknown), why."""

    path: str
    offset: int | None
    reason: str

    def __str__(self):
        where = "offset unknown" if self.offset is None else f"offset {self.offset}"
        return " ".join(f"{self.path}: {where}: {self.reason}".split("\n"))  # always one line

    @classmethod
    def of(cls, exc: CorruptionError, path):
        """The finding a CorruptionError (or DecodeError) carries; `path` when it names none."""
        return cls(getattr(exc, "path", None) or str(path), exc.offset, exc.reason)


@dataclass
class CheckCounts:
    """What a check read: its size, for a clean database's one-line summary."""

    manifest_records: int = 0
    tables: int = 0
    blocks: int = 0
    entries: int = 0
    table_bytes: int = 0
    wals: int = 0
    wal_records: int = 0


@dataclass
class CheckReport:
    path: str
    findings: list = field(default_factory=list)  # [Finding], in the order found
    counts: CheckCounts = field(default_factory=CheckCounts)

    @property
    def ok(self) -> bool:
        return not self.findings


def check_database(path, fs=DEFAULT_FS) -> CheckReport:
    """Verify the database at `path`. Damage is a Finding in the report, never
    an exception; a missing directory raises Error and a LOCK held by another
    process LockError."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise Error(f"{path}: no such database directory")
    try:
        handle = fs.lock(filenames.lock_file_name(path))
    except LockError:
        raise  # another process has it open: its files may change while read
    except OSError:
        handle = None  # no LOCK can be made (a read-only file system): check anyway
    report = CheckReport(path)
    try:
        _Check(path, fs, report).run()
    finally:
        if handle is not None:
            fs.unlock(handle)
    return report


class _Check:
    def __init__(self, db, fs, report):
        self.db = db
        self.fs = fs
        self.findings = report.findings
        self.counts = report.counts

    def found(self, path, offset, reason):
        self.findings.append(Finding(str(path), offset, reason))

    def run(self):
        db, fs = self.db, self.fs
        try:
            manifest = os.path.join(db, filenames.read_current(fs, db))
        except CorruptionError as exc:
            self.findings.append(Finding.of(exc, filenames.current_file_name(db)))
            return
        except OSError as exc:
            self.found(filenames.current_file_name(db), None, f"cannot read: {exc}")
            return
        state = self._replay(manifest)
        if state is None:
            return
        for level, files in enumerate(state.levels):
            ordered = sorted(files.values(), key=lambda f: sort_key(f.smallest))
            for meta in ordered:
                self._check_table(level, meta)
            if level > 0:
                for a, b in zip(ordered, ordered[1:]):
                    if sort_key(a.largest) >= sort_key(b.smallest):
                        self.found(manifest, None, f"level {level} files {a.number} and {b.number} overlap")
        log_number = state.log_number or 0
        prev_log_number = state.prev_log_number or 0
        for name in sorted(fs.listdir(db)):
            parsed = filenames.parse_file_name(name)
            if parsed and parsed[0] == filenames.FileType.LOG and filenames.wal_is_live(
                    parsed[1], log_number, prev_log_number):
                self._check_wal(os.path.join(db, name))

    def _replay(self, path):
        """The MANIFEST's state as recovery reads it, or None if it is unusable."""
        try:
            data = self.fs.read_file(path)
        except OSError as exc:
            self.found(path, None, f"cannot read: {exc}")
            return None
        try:
            state = replay_manifest(data, path)
        except CorruptionError as exc:
            self.findings.append(Finding.of(exc, path))
            return None
        self.counts.manifest_records = state.records
        if not state.records:
            self.found(path, 0, "MANIFEST holds no records")
            return None
        if state.comparator is None:
            self.found(path, None, "MANIFEST names no comparator")
        elif state.comparator != COMPARATOR_NAME:
            self.found(path, state.comparator_offset,
                       f"comparator {state.comparator!r} is not {COMPARATOR_NAME.decode()}")
        missing = state.missing_entry()
        if missing is not None:
            self.found(path, *missing)
        return state

    def _check_table(self, level, meta):
        fs = self.fs
        path = filenames.table_file_name(self.db, meta.number)
        if not fs.exists(path):
            sst = filenames.sst_table_file_name(self.db, meta.number)
            if not fs.exists(sst):
                self.found(path, None, f"missing: the MANIFEST lists it at level {level}")
                return
            path = sst
        size = fs.file_size(path)
        if size != meta.size:
            self.found(path, None, f"size {size} but the MANIFEST records {meta.size}")
            return
        self.counts.tables += 1
        self.counts.table_bytes += size
        try:
            file = fs.open_random(path)
        except OSError as exc:
            self.found(path, None, f"cannot open: {exc}")
            return
        try:
            try:
                table = Table.open(file, path=path, number=meta.number)
            except CorruptionError as exc:
                self.findings.append(Finding.of(exc, path))
                return
            self._check_blocks(table, meta)
        finally:
            file.close()

    def _check_blocks(self, table, meta):
        path = table.path
        first = last = None  # (internal key, block offset) of the first/last readable entry
        first_damaged = last_damaged = False  # was a block before/after it unreadable?
        previous = None  # sort key of the last entry of the previous readable block
        for i in range(table.num_blocks):
            block_offset = table.block_offset(i)
            try:
                ukeys, tags, _ = table.block(i)
            except (CorruptionError, DecodeError) as exc:
                self.found(getattr(exc, "path", None) or path,
                           block_offset if exc.offset is None else exc.offset, exc.reason)
                previous = None
                if first is None:
                    first_damaged = True
                last_damaged = True
                continue
            self.counts.blocks += 1
            self.counts.entries += len(ukeys)
            if not ukeys:
                continue
            order = list(zip(ukeys, map(neg, tags)))  # sort keys, made in C: a table has many entries
            if not all(map(lt, order, order[1:])) or (previous is not None and previous >= order[0]):
                self.found(path, block_offset, "data block: keys out of order")
            previous = order[-1]
            if first is None:
                first = (ukeys[0] + tags[0].to_bytes(TRAILER_SIZE, "little"), block_offset)
            last = (ukeys[-1] + tags[-1].to_bytes(TRAILER_SIZE, "little"), block_offset)
            last_damaged = False
        # A damaged first or last block was reported already; its neighbour's
        # keys are not expected to match the MANIFEST's bounds.
        if first is not None and not first_damaged and first[0] != meta.smallest:
            self.found(path, first[1], f"first key {internal_key_text(first[0])} but the MANIFEST records "
                                       f"smallest {internal_key_text(meta.smallest)}")
        if last is not None and not last_damaged and last[0] != meta.largest:
            self.found(path, last[1], f"last key {internal_key_text(last[0])} but the MANIFEST records "
                                      f"largest {internal_key_text(meta.largest)}")

    def _check_wal(self, path):
        try:
            data = self.fs.read_file(path)
        except OSError as exc:
            self.found(path, None, f"cannot read: {exc}")
            return
        self.counts.wals += 1
        try:
            for offset, payload in LogReader(data, strict=True):
                self.counts.wal_records += 1
                try:
                    decode_batch(payload)
                except DecodeError as exc:
                    self.found(path, offset, wal_batch_damage(exc))
        except DecodeError as exc:
            self.found(path, exc.offset, exc.reason)

