"""Damaged files: every byte of a
small table, WAL and MANIFEST flipped in turn, and each truncated at every
length.

* Table: every read returns the right value or raises CorruptionError naming
  the file and an offset: never a wrong value, a phantom key, or a miss of a
  key that is there.
* WAL: after reopen the database holds the writes of a prefix of the log
  (the damaged record and what follows it in its block are dropped), never a
  damaged value; with paranoid_checks a damaged record that is not the torn
  tail refuses the open. Truncation at any length is a torn tail: a prefix,
  no error even when paranoid.
* MANIFEST: opening works with identical contents, or raises
  CorruptionError, and never deletes a table on the strength of damage.
* CURRENT missing or naming a missing MANIFEST is corruption; no table is
  deleted for it.
* ``python -m lsm check PATH`` reports the damage.
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile

import pytest

import lsm
from lsm.testing import model
from file_helpers import flip_byte

N_KEYS = 40


@pytest.fixture
def scratch(tmp_path):
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else str(tmp_path)
    d = tempfile.mkdtemp(prefix="lsm-corrupt-", dir=base)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _names(path, suffix):
    return sorted(n for n in os.listdir(path) if n.endswith(suffix) or n.startswith(suffix))


def _truncate(path, length):
    with open(path, "r+b") as f:
        f.truncate(length)


def _fresh(base, work):
    if os.path.exists(work):
        shutil.rmtree(work)
    shutil.copytree(base, work)
    return work


def _assert_names_place(exc, name, offset=True):
    text = str(exc)
    assert name in text, f"CorruptionError does not name {name}: {text}"
    if offset:
        assert exc.offset is not None or "offset" in text, f"CorruptionError gives no offset: {text}"


# ------------------------------------------------------------------ tables

def _table_db(path, compression):
    rng = random.Random(2)
    expected = {}
    db = lsm.DB(path, create_if_missing=True, compactors=0, block_size=1024, compression=compression)
    for i in range(N_KEYS):
        key = b"key%04d" % (i * 2)
        expected[key] = model.make_value(key, i, 40, rng)
        db.put(key, expected[key])
    db.compact_range()
    db.close()
    tables = _names(path, ".ldb")
    assert len(tables) == 1 and not os.path.getsize(os.path.join(path, _names(path, ".log")[0]))
    return expected, tables[0]


def _check_table_reads(path, expected, table):
    """Open, get every key and some absent ones, scan both ways. Returns the
    number of reads that raised CorruptionError."""
    corrupt = 0
    keys = sorted(expected)
    try:
        db = lsm.DB(path, compactors=0)
    except lsm.CorruptionError as exc:
        _assert_names_place(exc, table)
        return 1
    try:
        for key in keys:
            try:
                got = db.get(key)
            except lsm.CorruptionError as exc:
                _assert_names_place(exc, table)
                corrupt += 1
                continue
            assert got is not None, f"false miss: {key!r} is in the table"
            assert got == expected[key], f"wrong value for {key!r}: {got[:30]!r}"
        for i in range(20):
            key = b"key%04d" % (i * 6 + 1) if i < 15 else b"zz%d" % i
            try:
                got = db.get(key)
            except lsm.CorruptionError as exc:
                _assert_names_place(exc, table)
                corrupt += 1
                continue
            assert got is None, f"phantom key {key!r}"
        for reverse in (False, True):
            want = sorted(expected.items(), reverse=reverse)
            seen = []
            try:
                for item in db.iterator(reverse=reverse):
                    seen.append(item)
            except lsm.CorruptionError as exc:
                _assert_names_place(exc, table)
                corrupt += 1
                assert seen == want[:len(seen)], "scan yielded a wrong or phantom entry before the damage"
                continue
            assert seen == want, "scan silently skipped or invented entries"
    finally:
        db.close()
    return corrupt


@pytest.mark.parametrize("compression", [None, "snappy"])
def test_flip_every_byte_of_a_table(scratch, compression):
    base = os.path.join(scratch, "base")
    expected, table = _table_db(base, compression)
    size = os.path.getsize(os.path.join(base, table))
    assert size > 2 * 1024  # several data blocks, filter, index, footer
    work = os.path.join(scratch, "work")
    _fresh(base, work)
    rng = random.Random(size)
    detected = flipped = 0
    # Uncompressed: every byte, plus a random mask on every 8th. Snappy: every
    # other byte (its blocks sit behind the same checksums).
    step = 1 if compression is None else 2
    for offset in range(0, size, step):
        for mask in (0x80, rng.randrange(1, 256)) if offset % 8 == 0 and step == 1 else (0x80,):
            flip_byte(os.path.join(work, table), offset, mask)
            detected += bool(_check_table_reads(work, expected, table))
            flipped += 1
            flip_byte(os.path.join(work, table), offset, mask)  # undo
    print(f"\ntable ({compression}): {size} bytes, {flipped} flips, {detected} detected as corruption")
    # Only bytes no reader looks at (footer padding, unused handle bits) may go unnoticed.
    assert detected >= flipped - 64


@pytest.mark.parametrize("compression", [None, "snappy"])
def test_truncate_a_table_at_every_length(scratch, compression):
    base = os.path.join(scratch, "base")
    expected, table = _table_db(base, compression)
    size = os.path.getsize(os.path.join(base, table))
    # Every length over the index, meta blocks and footer; every 3rd before.
    for length in sorted(set(range(0, size, 3)) | set(range(max(0, size - 400), size))):
        work = _fresh(base, os.path.join(scratch, "work"))
        _truncate(os.path.join(work, table), length)
        assert _check_table_reads(work, expected, table), f"truncation to {length} bytes went unnoticed"


# --------------------------------------------------------------------- WAL

def _wal_db(path, n=20):
    """A database whose only data is n records in its WAL. Returns the writes."""
    rng = random.Random(3)
    writes = []
    db = lsm.DB(path, create_if_missing=True, compactors=0)
    for i in range(n):
        key = b"w%03d" % (i % 15)  # some overwrites
        if i % 7 == 6:
            db.delete(key)
            writes.append((key, None))
        else:
            value = model.make_value(key, i, rng.choice((5, 40, 150)), rng)
            db.put(key, value)
            writes.append((key, value))
    db.close()
    wals = [w for w in _names(path, ".log") if os.path.getsize(os.path.join(path, w))]
    assert len(wals) == 1 and not _names(path, ".ldb")
    return writes, wals[0]


def _prefix_states(writes):
    states = [{}]
    for key, value in writes:
        s = dict(states[-1])
        if value is None:
            s.pop(key, None)
        else:
            s[key] = value
        states.append(s)
    return states


def _record_bounds(path):
    """(start, end) of each WAL record (one physical record each here)."""
    from lsm.record import LogReader
    data = open(path, "rb").read()
    starts = [offset for offset, _ in LogReader(data)]
    return list(zip(starts, starts[1:] + [len(data)]))


def _open_contents(path, **options):
    db = lsm.DB(path, compactors=0, **options)
    try:
        return dict(db.iterator())
    finally:
        db.close()


def test_flip_every_byte_of_a_wal(scratch):
    base = os.path.join(scratch, "base")
    writes, wal = _wal_db(base)
    states = _prefix_states(writes)
    bounds = _record_bounds(os.path.join(base, wal))
    assert len(bounds) == len(writes)
    size = os.path.getsize(os.path.join(base, wal))
    refused = torn_looking = 0
    for offset in range(size):
        record = next(i for i, (a, b) in enumerate(bounds) if a <= offset < b)
        # Tolerant (default): a prefix of the writes, ending before the damage.
        work = _fresh(base, os.path.join(scratch, "work"))
        flip_byte(os.path.join(work, wal), offset)
        got = _open_contents(work)
        matches = [p for p, s in enumerate(states) if s == got]
        assert matches, f"flip at {offset} (record {record}): recovered state is no prefix of the writes"
        assert min(matches) <= record, f"flip at {offset}: the damaged record {record} was applied"
        # Paranoid: refuses, unless the damage is indistinguishable from a torn tail.
        work = _fresh(base, os.path.join(scratch, "work"))
        flip_byte(os.path.join(work, wal), offset)
        try:
            got = _open_contents(work, paranoid_checks=True)
        except lsm.CorruptionError as exc:
            _assert_names_place(exc, wal)
            refused += 1
            continue
        # A record whose length field now reaches past the end of the file looks
        # exactly like the torn tail a crash leaves (LevelDB reads it the same
        # way): the rest of the log is dropped, even when paranoid. Anything
        # else that is accepted must be damage in the last record.
        in_length_field = offset - bounds[record][0] in (4, 5)
        assert record == len(writes) - 1 or in_length_field, \
            f"paranoid open accepted a damaged record {record} mid-log (flip at {offset})"
        assert got == states[record], "paranoid open of a torn-looking tail is not the prefix before it"
        torn_looking += 1
    print(f"\nWAL: {size} bytes flipped one at a time; paranoid refused {refused}, "
          f"{torn_looking} read as a torn tail")
    assert refused >= bounds[-1][0] - 2 * len(bounds)  # every flip before the last record but length fields


def test_paranoid_refuses_a_damaged_wal_record_in_the_middle(scratch):
    path = os.path.join(scratch, "db")
    writes, wal = _wal_db(path)
    a, b = _record_bounds(os.path.join(path, wal))[len(writes) // 2]
    flip_byte(os.path.join(path, wal), (a + b) // 2)
    with pytest.raises(lsm.CorruptionError) as info:
        _open_contents(path, paranoid_checks=True)
    _assert_names_place(info.value, wal)
    # Not paranoid: the writes before the damage.
    assert _open_contents(path) == _prefix_states(writes)[len(writes) // 2]


@pytest.mark.parametrize("paranoid", [False, True])
def test_truncate_a_wal_at_every_length(scratch, paranoid):
    base = os.path.join(scratch, "base")
    writes, wal = _wal_db(base)
    states = _prefix_states(writes)
    bounds = _record_bounds(os.path.join(base, wal))
    size = os.path.getsize(os.path.join(base, wal))
    for length in range(size + 1):
        work = _fresh(base, os.path.join(scratch, "work"))
        _truncate(os.path.join(work, wal), length)
        complete = sum(1 for a, b in bounds if b <= length)
        assert _open_contents(work, paranoid_checks=paranoid) == states[complete], f"WAL cut at {length}"


def test_wal_spanning_blocks_torn_at_a_stride(scratch):
    """A WAL of several 32 KiB blocks with records fragmented across them, cut
    every 331 bytes: always the longest prefix of complete records."""
    base = os.path.join(scratch, "base")
    rng = random.Random(9)
    writes = []
    db = lsm.DB(base, create_if_missing=True, compactors=0, write_buffer_size=1 << 20)
    for i in range(40):
        key = b"b%03d" % i
        value = model.make_value(key, i, rng.choice((100, 3000, 40000)), rng)
        db.put(key, value)
        writes.append((key, value))
    db.close()
    wal = [w for w in _names(base, ".log") if os.path.getsize(os.path.join(base, w))][0]
    bounds = _record_bounds(os.path.join(base, wal))
    size = os.path.getsize(os.path.join(base, wal))
    assert size > 3 * 32768 and len(bounds) == 40
    states = _prefix_states(writes)
    for length in list(range(0, size, 331)) + [size]:
        work = _fresh(base, os.path.join(scratch, "work"))
        _truncate(os.path.join(work, wal), length)
        complete = sum(1 for a, b in bounds if b <= length)
        assert _open_contents(work, paranoid_checks=True) == states[complete], f"cut at {length}"


# ---------------------------------------------------------------- MANIFEST

def _manifest_db(path):
    """Several tables over several levels, described by a MANIFEST of a few edits."""
    rng = random.Random(4)
    db = lsm.DB(path, create_if_missing=True, compactors=0, write_buffer_size=64 << 10, manifest_limit=1 << 20)
    for round_ in range(4):
        for i in range(40):
            key = b"m%03d" % rng.randrange(120)
            db.put(key, model.make_value(key, round_ * 100 + i, 30, rng))
        if round_ == 2:
            db.compact_range()
        else:
            db.compact_range(start=b"m000", stop=b"m030")
    db.close()
    manifests = _names(path, "MANIFEST-")
    assert len(manifests) == 1
    copy = path + "-expected"
    shutil.copytree(path, copy)
    expected = _open_contents(copy)
    shutil.rmtree(copy)
    return expected, manifests[0], set(_names(path, ".ldb"))


def _manifest_records(path):
    from lsm.record import LogReader
    data = open(path, "rb").read()
    starts = [offset for offset, _ in LogReader(data)]
    return list(zip(starts, starts[1:] + [len(data)]))


def test_flip_every_byte_of_a_manifest(scratch):
    """Every flip is refused with CorruptionError naming the MANIFEST, or
    (bytes no reader looks at) opens with identical contents. Length fields
    are left to the test below."""
    base = os.path.join(scratch, "base")
    expected, manifest, tables = _manifest_db(base)
    size = os.path.getsize(os.path.join(base, manifest))
    records = _manifest_records(os.path.join(base, manifest))
    assert len(records) >= 5
    length_fields = {a + i for a, _ in records for i in (4, 5)}
    refused = 0
    for offset in range(size):
        if offset in length_fields:
            continue
        work = _fresh(base, os.path.join(scratch, "work"))
        flip_byte(os.path.join(work, manifest), offset)
        try:
            got = _open_contents(work)
        except lsm.CorruptionError as exc:
            _assert_names_place(exc, manifest, offset=False)
            assert tables <= set(_names(work, ".ldb")), "a table was deleted because the MANIFEST is damaged"
            refused += 1
            continue
        assert got == expected, f"flip at {offset} of {manifest}: opened with different contents"
    print(f"\nMANIFEST: {size - len(length_fields)} bytes flipped, {refused} refused with CorruptionError")


def test_manifest_length_field_flip_is_not_read_as_a_torn_tail(scratch):
    """A record whose length field is flipped to reach past the end of the
    file looks like a torn tail to LevelDB's reader, which would drop every
    later edit, open rolled back and delete the tables of the dropped edits as
    obsolete. The MANIFEST is synced after every edit, so only its last record
    can be torn, and a torn record never has a complete valid record after its
    header nor a checksum that verifies over a shorter length: every flip of a
    length byte (the last record's too) is refused, naming the MANIFEST and
    the damaged record's offset, and no file is deleted."""
    base = os.path.join(scratch, "base")
    expected, manifest, tables = _manifest_db(base)
    records = _manifest_records(os.path.join(base, manifest))
    before = _data_files(base)
    bad = []
    for a, _ in records:
        for field_byte, mask in ((5, 0x80), (5, 0x01), (4, 0x80), (4, 0x01), (4, 0x40)):
            work = _fresh(base, os.path.join(scratch, "work"))
            flip_byte(os.path.join(work, manifest), a + field_byte, mask)
            try:
                got = _open_contents(work)
            except lsm.CorruptionError as exc:
                if exc.path != os.path.join(work, manifest) or exc.offset != a:
                    bad.append(f"record at {a}, byte {field_byte} ^ {mask:#x}: {exc} (offset {exc.offset})")
                if _data_files(work) != before:
                    bad.append(f"record at {a}, byte {field_byte} ^ {mask:#x}: files changed by a refused open")
                continue
            lost = sorted(tables - set(_names(work, ".ldb")))
            bad.append(f"record at {a}, byte {field_byte} ^ {mask:#x}: opened "
                       f"({len(expected) - len(got)} keys gone, tables deleted: {lost})")
    assert not bad, "\n".join(bad)


def test_manifest_corruption_names_the_file_and_the_damaged_record(scratch):
    """CorruptionError from MANIFEST replay carries the MANIFEST's path and the
    offset of the damaged record: a payload flip, an undecodable edit with a
    valid checksum, and a MANIFEST that lacks a required entry (the offset is
    then the torn tail that may have held it, or the end of the file)."""
    from lsm.record import LogWriter
    from lsm.version_edit import VersionEdit
    base = os.path.join(scratch, "base")
    _manifest_db(base)
    manifest = _names(base, "MANIFEST-")[0]
    records = _manifest_records(os.path.join(base, manifest))
    data = open(os.path.join(base, manifest), "rb").read()

    def refused(content):
        work = _fresh(base, os.path.join(scratch, "work"))
        with open(os.path.join(work, manifest), "wb") as f:
            f.write(content)
        with pytest.raises(lsm.CorruptionError) as info:
            lsm.DB(work, compactors=0)
        assert info.value.path == os.path.join(work, manifest)
        return info.value

    # A payload byte of the third record.
    a, b = records[2]
    damaged = bytearray(data)
    damaged[(a + b) // 2] ^= 0x10
    exc = refused(bytes(damaged))
    assert (exc.offset, exc.reason) == (a, "checksum mismatch")
    # A valid record whose payload is no VersionEdit, appended after the rest.
    exc = refused(data + LogWriter(len(data)).encode(b"\xff\x00garbage"))
    assert exc.offset == len(data) and "bad VersionEdit" in exc.reason
    # Only the first edit, cut in the middle: no next-file entry anywhere.
    first = LogWriter().encode(VersionEdit(comparator=b"leveldb.BytewiseComparator").encode())
    exc = refused(first + data[:20])
    assert (exc.offset, exc.reason) == (len(first), "no meta-nextfile entry in descriptor")
    exc = refused(first)
    assert exc.offset == len(first) and "meta-nextfile" in exc.reason


def test_truncate_a_manifest_at_every_length(scratch):
    """A MANIFEST cut short (only a crash-torn last record can be, as every
    edit is synced before anything relies on it) is refused, or opens to an
    earlier consistent state: no garbage, no phantom value."""
    base = os.path.join(scratch, "base")
    expected, manifest, tables = _manifest_db(base)
    size = os.path.getsize(os.path.join(base, manifest))
    outcomes = {"refused": 0, "same": 0, "older": 0}
    for length in range(size):
        work = _fresh(base, os.path.join(scratch, "work"))
        _truncate(os.path.join(work, manifest), length)
        try:
            got = _open_contents(work)
        except lsm.CorruptionError:
            assert tables <= set(_names(work, ".ldb"))
            outcomes["refused"] += 1
            continue
        for key, value in got.items():
            assert model.check_value(key, value), f"cut at {length}: garbage value for {key!r}"
        if got == expected:
            outcomes["same"] += 1
        else:
            outcomes["older"] += 1
    print(f"\nMANIFEST cut at every length: {outcomes}")


# ----------------------------------------------------------------- CURRENT

def _data_files(path, names=None):
    """Tables, WALs, MANIFESTs and CURRENT (not LOCK, the info LOG or our staging area)."""
    from lsm import filenames
    names = os.listdir(path) if names is None else names
    keep = (filenames.FileType.TABLE, filenames.FileType.LOG, filenames.FileType.DESCRIPTOR,
            filenames.FileType.CURRENT)
    return sorted(n for n in names if (p := filenames.parse_file_name(n)) and p[0] in keep)


@pytest.mark.parametrize("damage", ["missing", "missing-manifest", "empty", "no-newline", "garbage"])
def test_damaged_current_is_corruption_and_deletes_nothing(scratch, damage):
    path = os.path.join(scratch, "db")
    expected, manifest, tables = _manifest_db(path)
    current = os.path.join(path, "CURRENT")
    if damage == "missing":
        os.remove(current)
    elif damage == "missing-manifest":
        os.remove(os.path.join(path, manifest))
    elif damage == "empty":
        open(current, "wb").close()
    elif damage == "no-newline":
        with open(current, "wb") as f:
            f.write(manifest.encode())
    else:
        with open(current, "wb") as f:
            f.write(b"MANIFEST-9\xff9\n")
    before = sorted(os.listdir(path))
    for options in ({}, {"create_if_missing": True}, {"paranoid_checks": True}):
        with pytest.raises(lsm.CorruptionError) as info:
            lsm.DB(path, compactors=0, **options)
        assert "CURRENT" in str(info.value)
        assert tables <= set(_names(path, ".ldb")), "tables deleted because CURRENT is damaged"
        assert _data_files(path) == _data_files(path, before), "files changed by a refused open"
    # repair_db brings it back.
    lsm.repair_db(path)
    assert _open_contents(path) == expected


# ---------------------------------------------------------- `lsm check`

def _lsm_check(path):
    return subprocess.run([sys.executable, "-m", "lsm", "check", path], capture_output=True, text=True,
                          timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_lsm_check_reports_damage(scratch):
    path = os.path.join(scratch, "db")
    expected, table = _table_db(path, None)
    ok = _lsm_check(path)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    flip_byte(os.path.join(path, table), 1500)
    damaged = _lsm_check(path)
    out = damaged.stdout + damaged.stderr
    assert damaged.returncode == 1, out
    assert table in out and "offset" in out, out
    # WAL damage in the middle, too.
    path2 = os.path.join(scratch, "db2")
    writes, wal = _wal_db(path2)
    a, b = _record_bounds(os.path.join(path2, wal))[5]
    flip_byte(os.path.join(path2, wal), a + 9)
    damaged = _lsm_check(path2)
    out = damaged.stdout + damaged.stderr
    assert damaged.returncode == 1 and wal in out and "offset" in out, out


def test_compaction_never_rewrites_a_damaged_block_into_a_good_table(scratch):
    """F10: a flipped byte in a level-0 table's data block; the compaction
    that reads it fails with CorruptionError and installs nothing (LevelDB
    without paranoid_checks would drop the block and carry on). The damaged
    table stays, so nothing is lost silently and repair_db can still work on it."""
    path = os.path.join(scratch, "db")
    rng = random.Random(12)
    expected, written = {}, {}
    db = lsm.DB(path, create_if_missing=True, compactors=0, block_size=1024, write_buffer_size=64 << 10)
    for round_ in range(2):  # two overlapping tables: the compaction must read both
        for i in range(150):
            key = b"c%04d" % i
            expected[key] = model.make_value(key, round_ * 1000 + i, 300, rng)
            written.setdefault(key, []).append(expected[key])
            db.put(key, expected[key])
        db.close()
        lsm.DB(path, compactors=0).close()  # the WAL becomes a table
        db = lsm.DB(path, compactors=0, block_size=1024, write_buffer_size=64 << 10)
    db.close()
    tables = _names(path, ".ldb")
    assert len(tables) == 2
    victim = tables[-1]  # the newer one: its values are the expected ones
    flip_byte(os.path.join(path, victim), 700)
    db = lsm.DB(path, compactors=0)
    try:
        with pytest.raises(lsm.CorruptionError):
            db.compact_range()
        with pytest.raises(lsm.Error):  # the failure is sticky: no more writes
            db.put(b"after", b"x")
    finally:
        db.close()
    assert victim in _names(path, ".ldb"), "the damaged input was deleted"
    # Reads of everything outside the damaged block still work after reopen.
    db = lsm.DB(path, compactors=0)
    try:
        errors = 0
        for key, value in expected.items():
            try:
                assert db.get(key) == value
            except lsm.CorruptionError as exc:
                _assert_names_place(exc, victim)
                errors += 1
        assert 0 < errors < 40
    finally:
        db.close()
    # Repair: the newest intact record of every key; for the keys of the
    # damaged block that is the older one.
    report = lsm.repair_db(path)
    got = _open_contents(path)
    assert set(got) == set(expected), report
    older = [k for k, v in got.items() if v != expected[k]]
    assert all(got[k] in written[k] for k in older) and 0 < len(older) == errors, report


def test_a_batch_damaged_in_the_open_wal_before_its_first_read_is_corruption_naming_the_wal(tmp_path):
    """Pending batches are read back from the WAL when a read needs them: a
    byte changed there since the write is found by its checksum and
    reported with the file and offset, not served."""
    path = str(tmp_path / "db")
    db = lsm.DB(path, create_if_missing=True, compactors=0)
    try:
        for n in range(3):
            with db.write_batch() as wb:
                for i in range(100):
                    wb.put(b"k%03d-%03d" % (n, i), b"v" * 50)
        (wal,) = [name for name in os.listdir(path) if name.endswith(".log")]
        wal_path = os.path.join(path, wal)
        with open(wal_path, "r+b") as f:
            f.seek(5000)
            byte = f.read(1)
            f.seek(5000)
            f.write(bytes([byte[0] ^ 0x20]))
        with pytest.raises(lsm.CorruptionError) as info:
            db.get(b"k000-000")
        assert wal in str(info.value) and "WAL record read back" in str(info.value)
    finally:
        db.close()
