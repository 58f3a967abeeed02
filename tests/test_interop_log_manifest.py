"""WAL and MANIFEST interop with real LevelDB (plyvel 1.5.1 / LevelDB 1.22) as the oracle.

LevelDB writes, we decode and compare with what was done; we write, LevelDB opens
with paranoid checks and must see our writes; both read the same damaged WAL and
must keep the same records.
"""
import os
import random
import shutil
import time

import plyvel
import pytest

from lsm.batch import decode_batch, encode_batch
from lsm.fileio import DEFAULT_FS
from lsm.filenames import (FileType, descriptor_file_name, log_file_name, parse_file_name,
                           read_current, set_current_file, table_file_name)
from lsm.keys import TYPE_DELETION, TYPE_VALUE, parse_internal_key, sort_key
from lsm.record import BLOCK_SIZE, LogReader, LogWriter
from lsm.version_edit import VersionEdit

BYTEWISE = b"leveldb.BytewiseComparator"


def workload(seed, n):
    """Batches of (kind, key, value): overwrites, deletions, empty keys/values, values > 32 KiB."""
    rng = random.Random(seed)
    sizes = [0, 1, 10, 100, 1000, 5000, 40_000, 70_000]
    batches = []
    for i in range(n):
        ops = []
        for _ in range(3 if i % 9 == 0 else 1):
            key = b"key%04d" % rng.randrange(120) if i % 31 else b""
            if i % 7 == 3:
                ops.append((TYPE_DELETION, key, b""))
            else:
                ops.append((TYPE_VALUE, key, rng.randbytes(rng.choice(sizes))))
        batches.append(ops)
    return batches


def leveldb_write(db, batches):
    for ops in batches:
        if len(ops) == 1:
            kind, key, value = ops[0]
            db.put(key, value) if kind == TYPE_VALUE else db.delete(key)
        else:
            with db.write_batch() as wb:
                for kind, key, value in ops:
                    wb.put(key, value) if kind == TYPE_VALUE else wb.delete(key)


def numbered(path, ftype):
    found = (parse_file_name(name) for name in os.listdir(path))
    return sorted(number for parsed in found if parsed and parsed[0] is ftype for number in [parsed[1]])


def read_wals(path):
    """Contents of every WAL, opened before LevelDB's background flushes can delete one."""
    while True:
        try:
            files = [open(log_file_name(path, n), "rb") for n in numbered(path, FileType.LOG)]
        except FileNotFoundError:
            continue  # a log went between listing and opening: list again
        with_data = [f.read() for f in files]
        for f in files:
            f.close()
        return with_data


def decoded_ops(wal_bytes):
    """[(seq, kind, key, value)] from one WAL; any damage fails the test."""
    out = []
    for _, payload in LogReader(wal_bytes, strict=True):
        sequence, ops = decode_batch(payload)
        out.extend((sequence + i, kind, key, value) for i, (kind, key, value) in enumerate(ops))
    return out


def flatten(batches):
    return [(seq, *op) for seq, op in enumerate((op for ops in batches for op in ops), start=1)]


def apply(model, ops):
    for kind, key, value in ops:
        if kind == TYPE_VALUE:
            model[key] = value
        else:
            model.pop(key, None)
    return model


def replay_edits(manifest_bytes):
    """Apply every edit like VersionSet::Builder: (scalars, {(level, number): meta}, edits)."""
    edits = [VersionEdit.decode(p) for _, p in LogReader(manifest_bytes, strict=True)]
    scalars, files = {}, {}
    for edit in edits:
        for name in ("comparator", "log_number", "prev_log_number", "next_file_number", "last_sequence"):
            if getattr(edit, name) is not None:
                scalars[name] = getattr(edit, name)
        for level, number in edit.deleted_files:
            files.pop((level, number), None)
        for level, meta in edit.new_files:
            files[(level, meta.number)] = meta
    return scalars, files, edits


# LevelDB writes, we read -----------------------------------------------------------------------

@pytest.mark.parametrize("compression, buffer", [(None, 4 << 20), ("snappy", 64 << 10), (None, 64 << 10)])
def test_leveldb_wal_decodes_to_the_operations_performed(tmp_path, compression, buffer):
    path = str(tmp_path / "db")
    batches = workload(seed=buffer, n=300)
    db = plyvel.DB(path, create_if_missing=True, compression=compression, write_buffer_size=buffer)
    try:
        leveldb_write(db, batches)
        wals = read_wals(path)  # still open: the WAL since the last open is all there
    finally:
        db.close()
    decoded = [op for data in wals for op in decoded_ops(data)]
    expected = flatten(batches)
    assert decoded, "the newest WAL holds at least the last write"
    assert decoded == expected[len(expected) - len(decoded):]
    if buffer == 4 << 20:
        assert decoded == expected  # one WAL since open, never switched
        assert any(len(d) > 2 * BLOCK_SIZE for d in wals)


@pytest.mark.parametrize("compression", [None, "snappy"])
def test_leveldb_manifest_after_reopen_lists_existing_tables(tmp_path, compression):
    path = str(tmp_path / "db")
    batches = workload(seed=7, n=300)
    db = plyvel.DB(path, create_if_missing=True, compression=compression, write_buffer_size=64 << 10)
    leveldb_write(db, batches)
    # While running, the MANIFEST grows by one edit per flush and compaction.
    # LevelDB compacts in a background thread, which a loaded machine may
    # delay past the last write: wait (liveness only) for its edits.
    deadline = time.monotonic() + 120
    while True:
        _, _, running_edits = replay_edits(DEFAULT_FS.read_file(os.path.join(path, read_current(DEFAULT_FS, path))))
        compacted = (any(e.deleted_files for e in running_edits)
                     and any(level >= 1 for e in running_edits for level, _ in e.new_files))
        if compacted or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    db.close()
    plyvel.DB(path).close()  # reopen: recovery writes a fresh MANIFEST (snapshot + edit)

    name = read_current(DEFAULT_FS, path)
    scalars, files, edits = replay_edits(DEFAULT_FS.read_file(os.path.join(path, name)))
    assert edits[0].comparator == BYTEWISE
    assert scalars["comparator"] == BYTEWISE
    assert len(files) >= 2
    for (level, number), meta in files.items():
        assert 0 <= level < 7
        assert os.path.getsize(table_file_name(path, number)) == meta.size
        assert sort_key(meta.smallest) <= sort_key(meta.largest)
        assert {parse_internal_key(meta.smallest)[2], parse_internal_key(meta.largest)[2]} <= {0, 1}
    # Every listed table is on disk. One more may be: LevelDB's close() stops a
    # compaction the reopen started and leaves its output for the next open
    # to delete -- always numbered after the reopen's new WAL.
    on_disk = set(numbered(path, FileType.TABLE))
    listed = {number for _, number in files}
    assert listed <= on_disk
    assert all(n > scalars["log_number"] for n in on_disk - listed), (on_disk - listed, scalars["log_number"])
    assert os.path.exists(log_file_name(path, scalars["log_number"]))
    assert scalars["prev_log_number"] == 0
    # That stopped compaction's output took its number after the MANIFEST
    # last recorded next_file_number: it is the one file allowed past it.
    orphans = on_disk - listed
    in_use = [parsed[1] for parsed in map(parse_file_name, os.listdir(path)) if parsed and parsed[1] not in orphans]
    assert scalars["next_file_number"] > max(in_use)
    assert scalars["last_sequence"] == len(flatten(batches))
    # Compactions ran while writing: some edits deleted files, some added to level >= 1.
    assert any(e.deleted_files for e in running_edits)
    assert any(level >= 1 for e in running_edits for level, _ in e.new_files)
    assert all(e.next_file_number is not None and e.last_sequence is not None for e in running_edits[1:])


def test_our_encoders_reproduce_leveldb_wal_bytes(tmp_path):
    path = str(tmp_path / "db")
    batches = workload(seed=3, n=120)
    db = plyvel.DB(path, create_if_missing=True)
    try:
        leveldb_write(db, batches)
        (theirs,) = read_wals(path)
    finally:
        db.close()
    writer, seq, ours = LogWriter(), 1, []
    for ops in batches:
        ours.append(writer.encode(encode_batch(seq, ops)))
        seq += len(ops)
    assert b"".join(ours) == theirs


def test_our_encoders_reproduce_fresh_leveldb_manifest(tmp_path):
    path = str(tmp_path / "db")
    plyvel.DB(path, create_if_missing=True).close()
    writer = LogWriter()
    ours = writer.encode(VersionEdit(comparator=BYTEWISE).encode()) + writer.encode(
        VersionEdit(log_number=3, prev_log_number=0, next_file_number=4, last_sequence=0).encode())
    assert read_current(DEFAULT_FS, path) == "MANIFEST-000002"
    assert DEFAULT_FS.read_file(descriptor_file_name(path, 2)) == ours


# We write, LevelDB reads -----------------------------------------------------------------------

def write_db(path, batches, split=None):
    """A DB of our making: MANIFEST-000001 (snapshot, then log=2 prev=0 next=3 seq=0),
    000002.log with the batches (appended in two sessions at `split`), CURRENT."""
    os.makedirs(path)
    writer = LogWriter()
    manifest = writer.encode(VersionEdit(comparator=BYTEWISE).encode()) + writer.encode(
        VersionEdit(log_number=2, prev_log_number=0, next_file_number=3, last_sequence=0).encode())
    DEFAULT_FS.write_file(descriptor_file_name(path, 1), manifest)
    split = len(batches) if split is None else split
    seq = 1
    for chunk in (batches[:split], batches[split:]):
        name = log_file_name(path, 2)
        wal = DEFAULT_FS.open_append(name) if os.path.exists(name) else DEFAULT_FS.create(name)
        writer = LogWriter(wal.size)
        for ops in chunk:
            wal.append(writer.encode(encode_batch(seq, ops)))
            seq += len(ops)
        wal.sync()
        wal.close()
    set_current_file(DEFAULT_FS, path, 1)


def test_leveldb_opens_our_wal_and_manifest_with_paranoid_checks(tmp_path):
    path = str(tmp_path / "db")
    batches = workload(seed=11, n=150)
    write_db(path, batches, split=77)
    assert os.path.getsize(log_file_name(path, 2)) > 3 * BLOCK_SIZE
    db = plyvel.DB(path, paranoid_checks=True)
    try:
        assert dict(db.iterator()) == apply({}, (op for ops in batches for op in ops))
    finally:
        db.close()
    # LevelDB recovered our log into a table and moved on to its own files.
    scalars, files, _ = replay_edits(DEFAULT_FS.read_file(os.path.join(path, read_current(DEFAULT_FS, path))))
    assert scalars["last_sequence"] == len(flatten(batches))
    assert files


def test_leveldb_opens_our_empty_database(tmp_path):
    path = str(tmp_path / "db")
    write_db(path, [])
    db = plyvel.DB(path, paranoid_checks=True)
    try:
        assert list(db.iterator()) == []
    finally:
        db.close()


# Both read the same damaged WAL ----------------------------------------------------------------

def leveldb_view(path, damaged_wal, paranoid=False):
    """What LevelDB recovers from `path` with its WAL replaced by `damaged_wal`."""
    copy = path + "-copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(path, copy)
    with open(log_file_name(copy, 2), "wb") as f:
        f.write(damaged_wal)
    db = plyvel.DB(copy, paranoid_checks=paranoid)
    try:
        return dict(db.iterator())
    finally:
        db.close()


def our_view(damaged_wal):
    model = {}
    for _, payload in LogReader(damaged_wal, report=lambda *a: None):
        apply(model, decode_batch(payload)[1])
    return model


def test_torn_wal_tail_loses_the_same_records_as_leveldb(tmp_path):
    path = str(tmp_path / "db")
    batches = workload(seed=5, n=60)
    write_db(path, batches)
    wal = DEFAULT_FS.read_file(log_file_name(path, 2))
    last = [o for o, _ in LogReader(wal)][-3:]
    whole = our_view(wal)
    for cut in [last[0] + 3, last[1] + 20, last[2] + 7, len(wal) - 1, BLOCK_SIZE + 5]:
        torn = wal[:cut]
        view = our_view(torn)
        assert view != whole, cut
        assert view == leveldb_view(path, torn, paranoid=True), cut


def test_bad_crc_mid_wal_drops_the_same_records_as_leveldb(tmp_path):
    path = str(tmp_path / "db")
    batches = workload(seed=9, n=80)
    write_db(path, batches)
    wal = DEFAULT_FS.read_file(log_file_name(path, 2))
    offsets = [o for o, _ in LogReader(wal)]
    for victim in (offsets[len(offsets) // 3], offsets[len(offsets) // 2] + 9):
        damaged = bytearray(wal)
        damaged[victim + 8] ^= 0x20
        damaged = bytes(damaged)
        reports = []
        list(LogReader(damaged, report=lambda *a: reports.append(a)))
        assert reports and reports[0][2] == "checksum mismatch"
        view = our_view(damaged)
        assert view != our_view(wal)
        assert view == leveldb_view(path, damaged)
        with pytest.raises(plyvel.CorruptionError):
            leveldb_view(path, damaged, paranoid=True)
