"""Write control: every write, a single put as much as a batch, passes the
same admission check (level-0 slowdown and stop, memtable switch)."""
import os

import lsm
from engine_helpers import database_owing_compactions


def _level0_files(db):
    return db.stats()["levels"][0]["files"]


def _with_level0_files(db, count):
    """Flush overlapping memtables until level 0 holds `count` tables (the
    first flushes of a fresh database are placed deeper)."""
    for _ in range(10):
        if _level0_files(db) >= count:
            return
        for i in range(100):
            db.put(b"k%03d" % i, b"v")
        db._engine.flush()
    raise AssertionError(f"level 0 never reached {count} files: {db.stats()['levels']}")


def test_single_puts_are_delayed_at_the_level0_slowdown_like_batches(tmp_path):
    with lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=1,
                level0_slowdown_writes_trigger=2, level0_stop_writes_trigger=30) as db:
        _with_level0_files(db, 2)
        assert _level0_files(db) < 4  # below the compaction trigger: level 0 stays as it is
        before = db.stats()["delayed_writes"]
        for i in range(30):
            db.put(b"p%03d" % i, b"v")
        after_puts = db.stats()["delayed_writes"]
        for i in range(30):
            with db.write_batch() as wb:
                wb.put(b"b%03d" % i, b"v")
        after_batches = db.stats()["delayed_writes"]
        assert after_puts - before == 30, "single puts skipped the level-0 slowdown"
        assert after_batches - after_puts == 30
        assert all(db.get(b"p%03d" % i) == b"v" for i in range(30))


def test_writes_below_the_slowdown_trigger_are_not_delayed(tmp_path):
    with lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=1,
                level0_slowdown_writes_trigger=20) as db:
        for i in range(200):
            db.put(b"k%03d" % i, b"v")
        assert db.stats()["delayed_writes"] == 0


def test_inline_compaction_never_delays_writes(tmp_path):
    # With compactors=0 nothing runs in the background to catch up.
    with lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=0,
                level0_slowdown_writes_trigger=1, level0_stop_writes_trigger=30) as db:
        _with_level0_files(db, 1)
        for i in range(20):
            db.put(b"p%03d" % i, b"v")
        assert db.stats()["delayed_writes"] == 0


def test_single_puts_stall_while_frozen_memtables_are_at_their_limit_and_lose_nothing(tmp_path):
    # Every job sleeps a second in the compactor (the runner's test hook):
    # the second memtable fills while the first one's flush still runs.
    path = str(tmp_path / "db")
    value = b"x" * 1000
    with lsm.DB(path, create_if_missing=True, compactors=1, write_buffer_size=64 << 10, max_frozen_memtables=1,
                compactor_env={"LSM_TEST_JOB_SLEEP": "1"}) as db:
        for i in range(200):  # three memtables' worth
            db.put(b"s%04d" % i, value)
        with open(os.path.join(path, "LOG")) as log:
            assert "Stalling writes: 1 frozen memtables" in log.read()
        assert db.stats()["stall_seconds"] > 0
        assert all(db.get(b"s%04d" % i) == value for i in range(200))
    with lsm.DB(path) as db:
        assert all(db.get(b"s%04d" % i) == value for i in range(200))


def test_single_puts_stop_at_the_level0_stop_trigger_until_level0_shrinks(tmp_path):
    # Level 0 reaches 4 files, the stop trigger and the compaction trigger
    # alike; every job sleeps a second in the compactor (the runner's test
    # hook), so the put that needs a new memtable meanwhile must wait for
    # that compaction to empty level 0.
    path = str(tmp_path / "db")
    value = b"x" * 1000
    with lsm.DB(path, create_if_missing=True, compactors=1, write_buffer_size=64 << 10,
                level0_slowdown_writes_trigger=4, level0_stop_writes_trigger=4,
                compactor_env={"LSM_TEST_JOB_SLEEP": "1"}) as db:
        _with_level0_files(db, 4)
        for i in range(100):  # more than a memtable: the switch meets level 0 at its stop
            db.put(b"s%04d" % i, value)
        with open(os.path.join(path, "LOG")) as log:
            assert "Stalling writes: 0 frozen memtables, 4 level-0 files" in log.read(), \
                "a single put went past the level-0 stop"
        assert _level0_files(db) < 4
        assert all(db.get(b"s%04d" % i) == value for i in range(100))


def test_wait_for_compactions_returns_once_no_level_needs_one(tmp_path):
    with lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=1, write_buffer_size=64 << 10) as db:
        for i in range(3000):
            db.put(b"k%05d" % i, b"v" * 100)
        assert db.wait_for_compactions() is True
        stats = db.stats()
        assert stats["running_jobs"] == 0
        assert all(level["score"] < 1 for level in stats["levels"])
        assert all(db.get(b"k%05d" % i) == b"v" * 100 for i in range(0, 3000, 97))


def test_wait_for_compactions_times_out_while_a_compactor_is_busy(tmp_path):
    # Every job sleeps in the compactor (the runner's test hook), so the
    # flush this waits for cannot be done within the timeout.
    with lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=1,
                compactor_env={"LSM_TEST_JOB_SLEEP": "3"}) as db:
        db.put(b"k", b"v")
        db._engine.flush(wait=False)
        assert db.wait_for_compactions(timeout=0.2) is False
        assert db.wait_for_compactions() is True
        assert db.stats()["flushes"] == 1 and db.get(b"k") == b"v"


def test_wait_for_compactions_on_a_closed_database_raises(tmp_path):
    db = lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=0)
    db.close()
    try:
        db.wait_for_compactions()
    except lsm.ClosedError:
        pass
    else:
        raise AssertionError("wait_for_compactions on a closed DB returned")


def test_an_inline_open_to_read_does_not_rewrite_a_database_owing_compactions(tmp_path):
    path = str(tmp_path / "db")
    expected = database_owing_compactions(path)
    tables_before = sorted(p for p in os.listdir(path) if p.endswith(".ldb"))
    with lsm.DB(path, compactors=0) as db:
        assert _level0_files(db) == 6
        assert db.stats()["compactions"] == 0
        assert dict(db.iterator()) == expected
        assert all(db.get(k) == v for k, v in expected.items())
        assert _level0_files(db) == 6, "reads ran the compactions owed"
    assert sorted(p for p in os.listdir(path) if p.endswith(".ldb")) == tables_before


def test_an_inline_write_that_needs_room_pays_the_compactions_owed(tmp_path):
    path = str(tmp_path / "db")
    expected = database_owing_compactions(path)
    with lsm.DB(path, compactors=0, write_buffer_size=64 << 10) as db:
        for i in range(1000):
            key = b"n%04d" % i
            db.put(key, b"x" * 200)
            expected[key] = b"x" * 200
        assert _level0_files(db) < 4, "the compactions owed never ran"
        assert dict(db.iterator()) == expected


def test_an_inline_write_at_the_level0_stop_trigger_compacts_instead_of_failing(tmp_path):
    # Level 0 already past the stop trigger at open: nothing in the background
    # will shrink it, so the write that needs room compacts it itself.
    path = str(tmp_path / "db")
    expected = database_owing_compactions(path)
    with lsm.DB(path, compactors=0, write_buffer_size=64 << 10,
                level0_slowdown_writes_trigger=4, level0_stop_writes_trigger=5) as db:
        assert _level0_files(db) == 6
        for i in range(1000):
            key = b"n%04d" % i
            db.put(key, b"x" * 200)
            expected[key] = b"x" * 200
        assert _level0_files(db) < 5
        assert dict(db.iterator()) == expected
