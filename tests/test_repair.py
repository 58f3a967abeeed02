"""lsm.repair_db (LevelDB corruption_test's repair cases):
rebuild from what is on disk after the MANIFEST/CURRENT are lost, a table
block is damaged, or a WAL is damaged. Repair salvages every intact record
(compared with a model of what was written), never returns a damaged value,
and reports what it dropped."""
import os
import random
import shutil

import pytest

import lsm
from lsm.record import LogReader
from lsm.table import Table
from lsm.testing import model
from file_helpers import flip_byte


def _names(path, what):
    return sorted(n for n in os.listdir(path) if n.endswith(what) or n.startswith(what))


def _contents(path):
    db = lsm.DB(path, compactors=0)
    try:
        return dict(db.iterator())
    finally:
        db.close()


def _build(path, rounds=4, per_round=300, overwrite=True, tail=150):
    """Several tables on several levels plus unflushed writes in the WAL.
    Returns the model: key -> value (None when deleted)."""
    rng = random.Random(6)
    state = {}
    db = lsm.DB(path, create_if_missing=True, compactors=0, write_buffer_size=64 << 10, block_size=1024)
    n = 0
    for r in range(rounds):
        for i in range(per_round):
            n += 1
            key = b"r%05d" % (rng.randrange(1500) if overwrite else n)
            if overwrite and i % 9 == 8:
                db.delete(key)
                state[key] = None
            else:
                state[key] = model.make_value(key, n, rng.choice((20, 200, 600)), rng)
                db.put(key, state[key])
        if r == 1:
            db.compact_range()
    for i in range(tail):  # stays in the WAL
        n += 1
        key = b"r%05d" % (rng.randrange(1500) if overwrite else n)
        state[key] = model.make_value(key, n, 100, rng)
        db.put(key, state[key])
    db.close()
    assert len(_names(path, ".ldb")) >= 3
    assert any(os.path.getsize(os.path.join(path, w)) for w in _names(path, ".log"))
    return {k: v for k, v in state.items() if v is not None}


def _assert_report_shape(report):
    assert isinstance(report, dict)
    for field in ("tables", "tables_dropped", "wals", "dropped"):
        assert field in report, report


@pytest.mark.parametrize("lose", ["manifest-and-current", "current", "manifest"])
def test_repair_after_losing_the_manifest(tmp_path, lose):
    path = str(tmp_path / "db")
    expected = _build(path)
    if lose in ("manifest-and-current", "manifest"):
        for name in _names(path, "MANIFEST-"):
            os.remove(os.path.join(path, name))
    if lose in ("manifest-and-current", "current"):
        os.remove(os.path.join(path, "CURRENT"))
    with pytest.raises(lsm.CorruptionError):
        lsm.DB(path, compactors=0)
    report = lsm.repair_db(path)
    _assert_report_shape(report)
    assert not report["dropped"] and not report["tables_dropped"], report
    assert _contents(path) == expected


def test_writes_after_repair_are_not_hidden_by_old_sequence_numbers(tmp_path):
    path = str(tmp_path / "db")
    expected = _build(path)
    os.remove(os.path.join(path, "CURRENT"))
    lsm.repair_db(path)
    key = sorted(expected)[0]
    db = lsm.DB(path, compactors=0)
    db.put(key, b"newer")
    db.compact_range()
    db.close()
    assert _contents(path)[key] == b"newer"


def _table_blocks(path):
    """[(offset, size, [user keys])] of the data blocks of a table file."""
    f = lsm.fileio.DEFAULT_FS.open_random(path)
    try:
        table = Table.open(f, path=path)
        blocks = []
        for i in range(table.num_blocks):
            ukeys, _, _ = table.block(i)
            blocks.append((table._offsets[i], table._sizes[i], list(ukeys)))
        return blocks
    finally:
        f.close()


def test_repair_salvages_a_table_with_a_damaged_block(tmp_path):
    path = str(tmp_path / "db")
    expected = _build(path, overwrite=False)  # every key written once: each record is its key's only one
    tables = _names(path, ".ldb")
    victim = max(tables, key=lambda n: os.path.getsize(os.path.join(path, n)))
    blocks = _table_blocks(os.path.join(path, victim))
    assert len(blocks) >= 3
    offset, size, lost_keys = blocks[len(blocks) // 2]
    flip_byte(os.path.join(path, victim), offset + size // 2)
    report = lsm.repair_db(path)
    _assert_report_shape(report)
    got = _contents(path)
    # Every intact record is back with its value; the damaged block's keys are gone, not garbage.
    want = {k: v for k, v in expected.items() if k not in set(lost_keys)}
    assert got == want
    dropped = " ".join(str(d) for d in report["dropped"] + report["tables_dropped"])
    assert victim in dropped, report
    assert report["tables_rebuilt"] == 1, report


def test_repair_with_overwrites_keeps_the_newest_intact_record(tmp_path):
    """Keys are overwritten across tables: a key whose newest record is
    intact comes back with exactly that value; one whose newest record was
    in the damaged block comes back with an older value it had, or not at all
    -- never with garbage."""
    path = str(tmp_path / "db")
    rng = random.Random(1)
    history = {}  # key -> every value written, in order
    db = lsm.DB(path, create_if_missing=True, compactors=0, write_buffer_size=64 << 10, block_size=1024)
    for n in range(1500):
        key = b"o%04d" % rng.randrange(400)
        value = model.make_value(key, n, 150, rng)
        db.put(key, value)
        history.setdefault(key, []).append(value)
    db.close()
    tables = _names(path, ".ldb")
    newest_table = max(tables)  # flushed last: holds the newest records of its keys
    blocks = _table_blocks(os.path.join(path, newest_table))
    offset, size, lost_keys = blocks[0]
    flip_byte(os.path.join(path, newest_table), offset + 3)
    lsm.repair_db(path)
    got = _contents(path)
    lost = set(lost_keys)
    for key, values in history.items():
        if key in lost:
            assert got.get(key) in values + [None], f"{key!r}: a value never written"
        else:
            assert got.get(key) == values[-1], f"{key!r}: intact newest record not salvaged"
    assert set(got) <= set(history)


def _wal_records(path):
    data = open(path, "rb").read()
    starts = [offset for offset, _ in LogReader(data)]
    return list(zip(starts, starts[1:] + [len(data)]))


def test_repair_salvages_a_damaged_wal_and_never_returns_a_damaged_value(tmp_path):
    """A byte of one record's value is flipped. Repair verifies WAL checksums
    (LevelDB's RepairDB does not: leveldb#251): the damaged record is dropped,
    the records in the other 32 KiB blocks are salvaged, and the report says
    a WAL lost data."""
    path = str(tmp_path / "db")
    rng = random.Random(8)
    writes = []
    db = lsm.DB(path, create_if_missing=True, compactors=0, write_buffer_size=1 << 20)
    for n in range(120):
        key = b"w%04d" % n
        value = model.make_value(key, n, 1200, rng)
        db.put(key, value)
        writes.append((key, value))
    db.close()
    wal = [w for w in _names(path, ".log") if os.path.getsize(os.path.join(path, w))][0]
    records = _wal_records(os.path.join(path, wal))
    assert len(records) == 120 and records[-1][1] > 4 * 32768
    victim = 40
    a, b = records[victim]
    flip_byte(os.path.join(path, wal), (a + b) // 2)
    report = lsm.repair_db(path)
    got = _contents(path)
    for key, value in got.items():
        assert model.check_value(key, value), f"repair returned a damaged value for {key!r}"
    damaged_block = a // 32768
    for i, (key, value) in enumerate(writes):
        ra, rb = records[i]
        if i == victim:
            assert key not in got
        elif ra // 32768 != damaged_block and (rb - 1) // 32768 != damaged_block:
            assert got.get(key) == value, f"intact record {i} in another block was not salvaged"
        elif i < victim:
            assert got.get(key) == value, f"intact record {i} before the damage was not salvaged"
    dropped = " ".join(str(d) for d in report["dropped"])
    assert wal in dropped, f"repair does not report the damaged WAL: {report}"


def test_repair_drops_an_unreadable_table_and_keeps_the_rest(tmp_path):
    path = str(tmp_path / "db")
    expected = _build(path, overwrite=False)
    tables = _names(path, ".ldb")
    victim = tables[0]
    lost_keys = {k for _, _, keys in _table_blocks(os.path.join(path, victim)) for k in keys}
    with open(os.path.join(path, victim), "r+b") as f:
        f.truncate(os.path.getsize(os.path.join(path, victim)) - 10)  # footer gone
    report = lsm.repair_db(path)
    assert any(victim in str(d) for d in report["tables_dropped"]), report
    assert _contents(path) == {k: v for k, v in expected.items() if k not in lost_keys}
    assert os.path.join(path, "lost", victim) in report["lost"], report


FOOTER_SIZE = 48


@pytest.mark.parametrize("where", ["index", "footer-handle", "footer-magic"])
def test_repair_moves_an_unreadable_table_to_lost_and_keeps_its_siblings(tmp_path, where):
    """LevelDB's RepairDB archives a table it cannot read into <db>/lost/
    instead of deleting it: the bytes stay for a person (or a better tool) to
    look at, out of the database's way. Its readable siblings are kept whole,
    and the report says where the file went. A file an earlier repair put
    into lost/ under the same name is not overwritten."""
    path = str(tmp_path / "db")
    expected = _build(path, overwrite=False)
    tables = _names(path, ".ldb")
    victim = tables[len(tables) // 2]
    victim_path = os.path.join(path, victim)
    lost_keys = {k for _, _, keys in _table_blocks(victim_path) for k in keys}
    size = os.path.getsize(victim_path)
    offset = {"index": size - FOOTER_SIZE - 5 - 3,  # inside the index block, before its trailer
              "footer-handle": size - FOOTER_SIZE + 1,  # the metaindex handle
              "footer-magic": size - 1}[where]
    flip_byte(victim_path, offset)
    with pytest.raises(lsm.CorruptionError):
        Table.open(lsm.fileio.DEFAULT_FS.open_random(victim_path), path=victim_path)
    damaged_bytes = open(victim_path, "rb").read()
    os.mkdir(os.path.join(path, "lost"))
    with open(os.path.join(path, "lost", victim), "wb") as f:
        f.write(b"left by an earlier repair")
    siblings = {n: open(os.path.join(path, n), "rb").read() for n in tables if n != victim}

    report = lsm.repair_db(path)

    (entry,) = [d for d in report["tables_dropped"] if victim in d["file"]]
    moved = entry["moved_to"]
    assert os.path.dirname(moved) == os.path.join(path, "lost") and os.path.basename(moved).startswith(victim)
    assert report["lost"] == [moved], report
    assert open(moved, "rb").read() == damaged_bytes, "the unreadable table was not kept byte for byte"
    assert open(os.path.join(path, "lost", victim), "rb").read() == b"left by an earlier repair"
    assert victim not in os.listdir(path)
    # The siblings (and the table made from the WAL) are kept whole: every
    # key of theirs is back, with its value.
    assert report["tables"] == len(siblings) + report["wals"] and report["tables_rebuilt"] == 0, report
    assert not report["dropped"], report
    assert _contents(path) == {k: v for k, v in expected.items() if k not in lost_keys}
    # The database works on with lost/ in it, and opening it leaves lost/ alone.
    db = lsm.DB(path, compactors=0)
    db.put(b"after", b"repair")
    db.compact_range()
    db.close()
    assert _contents(path)[b"after"] == b"repair"
    assert sorted(os.listdir(os.path.join(path, "lost"))) == sorted([victim, os.path.basename(moved)])


def test_repair_moves_the_damaged_original_of_a_rebuilt_table_to_lost(tmp_path):
    """A table with one damaged data block is rebuilt from its intact blocks
    under a new number; the damaged original goes to lost/ (LevelDB's
    RepairTable archives its source too)."""
    path = str(tmp_path / "db")
    _build(path, overwrite=False)
    tables = _names(path, ".ldb")
    victim = max(tables, key=lambda n: os.path.getsize(os.path.join(path, n)))
    blocks = _table_blocks(os.path.join(path, victim))
    offset, size, _ = blocks[len(blocks) // 2]
    flip_byte(os.path.join(path, victim), offset + size // 2)
    damaged_bytes = open(os.path.join(path, victim), "rb").read()
    report = lsm.repair_db(path)
    assert report["tables_rebuilt"] == 1 and report["lost"] == [os.path.join(path, "lost", victim)], report
    assert open(os.path.join(path, "lost", victim), "rb").read() == damaged_bytes


def test_destroy_db_leaves_lost_as_leveldb_does(tmp_path):
    """LevelDB's DestroyDB removes every file of the database it knows by
    name and then the directory, which fails quietly while lost/ is in it:
    lost/ and what repair put there stay. lsm.destroy_db does the same, and a
    new database can be made at the same path."""
    path = str(tmp_path / "db")
    _build(path, overwrite=False, rounds=2)
    victim = _names(path, ".ldb")[0]
    with open(os.path.join(path, victim), "r+b") as f:
        f.truncate(10)
    report = lsm.repair_db(path)
    assert report["lost"] == [os.path.join(path, "lost", victim)], report
    lsm.destroy_db(path)
    assert os.listdir(path) == ["lost"]
    assert os.listdir(os.path.join(path, "lost")) == [victim]
    db = lsm.DB(path, create_if_missing=True, compactors=0)
    assert list(db.iterator()) == []
    db.close()
    lsm.destroy_db(path)
    assert os.listdir(path) == ["lost"]
    # Without lost/, the directory goes too.
    other = str(tmp_path / "plain")
    _build(other, overwrite=False, rounds=2)
    lsm.destroy_db(other)
    assert not os.path.exists(other)


def test_destroy_db_with_lost_matches_plyvel(tmp_path):
    plyvel = pytest.importorskip("plyvel")
    left = {}
    for name, destroy in (("lsm", lsm.destroy_db), ("plyvel", plyvel.destroy_db)):
        path = str(tmp_path / name)
        db = lsm.DB(path, create_if_missing=True, compactors=0)
        for i in range(100):
            db.put(b"k%03d" % i, b"v" * 50)
        db.compact_range()
        db.close()
        os.mkdir(os.path.join(path, "lost"))
        with open(os.path.join(path, "lost", "000099.ldb"), "wb") as f:
            f.write(b"archived")
        destroy(path)
        left[name] = sorted((os.path.relpath(os.path.join(d, f), path))
                            for d, _, files in os.walk(path) for f in files) if os.path.exists(path) else None
    assert left["lsm"] == left["plyvel"] == ["lost/000099.ldb"]


def test_repair_of_a_healthy_database_changes_nothing(tmp_path):
    path = str(tmp_path / "db")
    expected = _build(path)
    shutil.copytree(path, str(tmp_path / "copy"))
    report = lsm.repair_db(path)
    assert not report["dropped"] and not report["tables_dropped"], report
    assert _contents(path) == expected == _contents(str(tmp_path / "copy"))
