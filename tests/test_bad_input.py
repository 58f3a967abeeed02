"""Bad input raises a clear exception and never damages the database.

Every bad call is made against lsm and, where plyvel has the same call, against
plyvel too: the exception class must be the one plyvel raises. After each bad
call the database is closed, reopened (by lsm and by LevelDB) and must hold
exactly what it held before.
"""
import os
import subprocess
import sys

import plyvel
import pytest

import lsm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTENT = {b"key%03d" % i: b"value%03d" % i for i in range(200)}
BAD = [pytest.param("text", id="str"), pytest.param(None, id="None"), pytest.param(7, id="int"),
       pytest.param(bytearray(b"key001"), id="bytearray"), pytest.param(memoryview(b"key001"), id="memoryview"),
       pytest.param(3.5, id="float")]


def _make(path, module=lsm):
    kw = {"compactors": 0} if module is lsm else {}
    db = module.DB(path, create_if_missing=True, write_buffer_size=64 << 10, **kw)
    for k, v in CONTENT.items():
        db.put(k, v)
    return db


def _assert_intact(path, expected=CONTENT):
    db = lsm.DB(path, compactors=0)
    try:
        assert dict(db.iterator()) == expected
    finally:
        db.close()
    pdb = plyvel.DB(path, paranoid_checks=True)
    try:
        assert dict(pdb.iterator(verify_checksums=True)) == expected
    finally:
        pdb.close()


def _outcome(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the class is what we compare
        return type(exc).__name__
    return "ok"


@pytest.fixture
def pair(tmp_path):
    """(lsm db, plyvel db, lsm path) with the same CONTENT."""
    path = str(tmp_path / "l")
    ldb = _make(path)
    pdb = _make(str(tmp_path / "p"), plyvel)
    yield ldb, pdb, path
    ldb.close()
    pdb.close()


# Calls that take a key-like argument; `bad` goes where a key goes.
KEY_CALLS = {
    "put_key": lambda db, bad: db.put(bad, b"v"),
    "get": lambda db, bad: db.get(bad),
    "delete": lambda db, bad: db.delete(bad),
    "batch_put_key": lambda db, bad: db.write_batch().put(bad, b"v"),
    "batch_delete": lambda db, bad: db.write_batch().delete(bad),
    "prefixed_db": lambda db, bad: db.prefixed_db(bad),
    "prefixed_put_key": lambda db, bad: db.prefixed_db(b"key").put(bad, b"v"),
    "prefixed_get": lambda db, bad: db.prefixed_db(b"key").get(bad),
    "prefixed_delete": lambda db, bad: db.prefixed_db(b"key").delete(bad),
    "snapshot_get": lambda db, bad: db.snapshot().get(bad),
    "iterator_seek": lambda db, bad: db.iterator().seek(bad),
    "raw_iterator_seek": lambda db, bad: db.raw_iterator().seek(bad),
    "approximate_size": lambda db, bad: db.approximate_size(bad, b"z"),
    "get_property": lambda db, bad: db.get_property(bad),
}
# None is a legal bound here ("no bound"), so it is left out for these.
BOUND_CALLS = {
    "iterator_start": lambda db, bad: db.iterator(start=bad),
    "iterator_stop": lambda db, bad: db.iterator(stop=bad),
    "iterator_prefix": lambda db, bad: db.iterator(prefix=bad),
    "snapshot_iterator_start": lambda db, bad: db.snapshot().iterator(start=bad),
    "prefixed_iterator_stop": lambda db, bad: db.prefixed_db(b"key").iterator(stop=bad),
    "compact_range_start": lambda db, bad: db.compact_range(start=bad),
}
VALUE_CALLS = {
    "put_value": lambda db, bad: db.put(b"key001", bad),
    "batch_put_value": lambda db, bad: db.write_batch().put(b"key001", bad),
    "prefixed_put_value": lambda db, bad: db.prefixed_db(b"key").put(b"001", bad),
}


@pytest.mark.parametrize("call", sorted(KEY_CALLS))
@pytest.mark.parametrize("bad", BAD)
def test_non_bytes_key_raises_type_error_and_changes_nothing(pair, call, bad):
    ldb, pdb, path = pair
    assert _outcome(lambda: KEY_CALLS[call](pdb, bad)) == "TypeError"  # what plyvel does
    with pytest.raises(TypeError):
        KEY_CALLS[call](ldb, bad)
    assert dict(ldb.iterator()) == CONTENT
    ldb.close()
    _assert_intact(path)


@pytest.mark.parametrize("call", sorted(BOUND_CALLS))
@pytest.mark.parametrize("bad", [b for b in BAD if b.values[0] is not None])
def test_non_bytes_bound_raises_type_error_and_changes_nothing(pair, call, bad):
    ldb, pdb, path = pair
    assert _outcome(lambda: BOUND_CALLS[call](pdb, bad)) == "TypeError"
    with pytest.raises(TypeError):
        BOUND_CALLS[call](ldb, bad)
    ldb.close()
    _assert_intact(path)


@pytest.mark.parametrize("call", sorted(VALUE_CALLS))
@pytest.mark.parametrize("bad", [b for b in BAD if not isinstance(b.values[0], (bytearray, memoryview))])
def test_non_bytes_value_raises_type_error_and_changes_nothing(pair, call, bad):
    ldb, pdb, path = pair
    assert _outcome(lambda: VALUE_CALLS[call](pdb, bad)) == "TypeError"
    with pytest.raises(TypeError):
        VALUE_CALLS[call](ldb, bad)
    ldb.close()
    _assert_intact(path)


@pytest.mark.parametrize("call", sorted(VALUE_CALLS))
@pytest.mark.parametrize("value", [bytearray(b"from a bytearray"), memoryview(b"from a memoryview")],
                         ids=["bytearray", "memoryview"])
def test_bytes_like_value_is_stored_as_plyvel_stores_it(pair, call, value):
    """plyvel takes any buffer as a *value* (keys must be bytes); code moving
    from plyvel that passes bytearray values must keep working."""
    ldb, pdb, path = pair
    VALUE_CALLS[call](pdb, value)
    VALUE_CALLS[call](ldb, value)
    if call.startswith("batch"):
        return  # the batch was never written, in either
    assert pdb.get(b"key001") == bytes(value)
    assert ldb.get(b"key001") == bytes(value)
    assert type(ldb.get(b"key001")) is bytes


def test_bad_key_inside_transaction_batch_writes_nothing(pair):
    ldb, pdb, path = pair
    for db in (ldb, pdb):
        with pytest.raises(TypeError):
            with db.write_batch(transaction=True) as wb:
                wb.put(b"new", b"v")
                wb.delete(b"key000")
                wb.put("bad", b"v")
        assert db.get(b"new") is None and db.get(b"key000") == CONTENT[b"key000"]
    ldb.close()
    _assert_intact(path)


# ------------------------------------------------------- closed objects
CLOSED_CALLS = {
    "put": lambda db: db.put(b"a", b"b"),
    "get": lambda db: db.get(b"key001"),
    "delete": lambda db: db.delete(b"key001"),
    "write_batch": lambda db: db.write_batch(),
    "iterator": lambda db: db.iterator(),
    "raw_iterator": lambda db: db.raw_iterator(),
    "iter": lambda db: list(db),
    "snapshot": lambda db: db.snapshot(),
    "prefixed_put": lambda db: db.prefixed_db(b"key").put(b"x", b"y"),
    "prefixed_get": lambda db: db.prefixed_db(b"key").get(b"001"),
    "prefixed_iterator": lambda db: db.prefixed_db(b"key").iterator(),
    "compact_range": lambda db: db.compact_range(),
    "approximate_size": lambda db: db.approximate_size(b"a", b"z"),
    "approximate_sizes": lambda db: db.approximate_sizes((b"a", b"z")),
    "get_property": lambda db: db.get_property(b"leveldb.stats"),
}


@pytest.mark.parametrize("call", sorted(CLOSED_CALLS))
def test_call_on_closed_database_raises_runtime_error(pair, call):
    ldb, pdb, path = pair
    ldb.close()
    pdb.close()
    assert _outcome(lambda: CLOSED_CALLS[call](pdb)) == "RuntimeError"
    with pytest.raises(RuntimeError):
        CLOSED_CALLS[call](ldb)
    ldb.close()  # closing twice is fine
    assert ldb.closed
    _assert_intact(path)


HELD_CALLS = {
    "batch_put": lambda o: o["wb"].put(b"a", b"b"),
    "batch_delete": lambda o: o["wb"].delete(b"key001"),
    "batch_write": lambda o: o["wb"].write(),
    "iterator_next": lambda o: next(o["it"]),
    "iterator_seek": lambda o: o["it"].seek(b"key"),
    "raw_valid": lambda o: o["raw"].valid(),
    "raw_key": lambda o: o["raw"].key(),
    "raw_seek_to_first": lambda o: o["raw"].seek_to_first(),
    "snapshot_get": lambda o: o["snap"].get(b"key001"),
    "snapshot_iterator": lambda o: o["snap"].iterator(),
    "snapshot_raw_iterator": lambda o: o["snap"].raw_iterator(),
}


def _held(db):
    wb = db.write_batch()
    wb.put(b"pending", b"never written")
    raw = db.raw_iterator()
    raw.seek_to_first()
    return {"wb": wb, "it": db.iterator(), "raw": raw, "snap": db.snapshot()}


@pytest.mark.parametrize("call", sorted(HELD_CALLS))
def test_objects_outliving_their_database_raise_runtime_error(pair, call):
    ldb, pdb, path = pair
    held_l, held_p = _held(ldb), _held(pdb)
    ldb.close()
    pdb.close()
    assert _outcome(lambda: HELD_CALLS[call](held_p)) == "RuntimeError"
    with pytest.raises(RuntimeError):
        HELD_CALLS[call](held_l)
    _assert_intact(path)


@pytest.mark.parametrize("call", ["get", "iterator", "raw_iterator"])
def test_released_snapshot_raises_runtime_error(pair, call):
    ldb, pdb, path = pair
    for db in (pdb, ldb):
        snap = db.snapshot()
        snap.release()
        with pytest.raises(RuntimeError):
            if call == "get":
                snap.get(b"key001")
            else:
                getattr(snap, call)()
        snap.release()  # releasing twice is fine
    with ldb.snapshot() as snap:
        assert snap.get(b"key001") == CONTENT[b"key001"]
    with pytest.raises(RuntimeError):
        snap.get(b"key001")
    ldb.close()
    _assert_intact(path)


# ------------------------------------------------------------- options
@pytest.mark.parametrize("option, value, error", [
    ("write_buffer_size", "x", TypeError),
    ("write_buffer_size", 1.5, TypeError),
    ("block_size", b"4096", TypeError),
    ("max_file_size", [1], TypeError),
    ("compression", 1, TypeError),
    ("compression", "zlib", ValueError),
    ("compression", "", ValueError),
    ("write_buffer_size", -1, ValueError),
    ("max_file_size", -(1 << 20), ValueError),
    ("block_size", -4096, ValueError),
    ("lru_cache_size", -1, ValueError),
    ("block_restart_interval", -16, ValueError),
    ("max_open_files", -1, ValueError),
    ("max_frozen_memtables", -1, ValueError),
    ("level0_slowdown_writes_trigger", "20", TypeError),
    ("level0_stop_writes_trigger", -36, ValueError),
])
def test_bad_option_is_refused_before_anything_is_touched(tmp_path, option, value, error):
    existing = str(tmp_path / "existing")
    _make(existing).close()
    before = {n: os.path.getsize(os.path.join(existing, n)) for n in os.listdir(existing)}
    with pytest.raises(error):
        lsm.DB(existing, compactors=0, **{option: value})
    assert {n: os.path.getsize(os.path.join(existing, n)) for n in os.listdir(existing)} == before
    fresh = str(tmp_path / "fresh")
    with pytest.raises(error):
        lsm.DB(fresh, create_if_missing=True, compactors=0, **{option: value})
    assert not os.path.exists(fresh), "a refused open must not create the database"
    _assert_intact(existing)


def test_unknown_keyword_is_a_type_error(tmp_path):
    with pytest.raises(TypeError):
        lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=0, write_bufer_size=1 << 20)
    with pytest.raises(TypeError):
        plyvel.DB(str(tmp_path / "p"), create_if_missing=True, write_bufer_size=1 << 20)
    assert not os.path.exists(tmp_path / "db")


@pytest.mark.parametrize("name", [None, 5, ["db"]])
def test_bad_name_is_a_type_error(name):
    assert _outcome(lambda: plyvel.DB(name, create_if_missing=True)) == "TypeError"
    with pytest.raises(TypeError):
        lsm.DB(name, create_if_missing=True, compactors=0)


# ------------------------------------------------ opening the wrong thing
def test_missing_database_without_create_if_missing_is_an_error(tmp_path):
    path = str(tmp_path / "missing")
    with pytest.raises(plyvel.Error):
        plyvel.DB(path)
    path = str(tmp_path / "missing2")
    with pytest.raises(lsm.Error) as info:
        lsm.DB(path, compactors=0)
    assert "does not exist" in str(info.value)
    # an empty directory is just as missing
    os.mkdir(tmp_path / "empty")
    with pytest.raises(lsm.Error):
        lsm.DB(str(tmp_path / "empty"), compactors=0)
    db = lsm.DB(path, create_if_missing=True, compactors=0)
    db.put(b"a", b"b")
    db.close()
    _assert_intact(path, {b"a": b"b"})


def test_error_if_exists_on_existing_database_is_an_error_and_changes_nothing(tmp_path):
    path = str(tmp_path / "db")
    _make(path).close()
    with pytest.raises(lsm.Error) as info:
        lsm.DB(path, create_if_missing=True, error_if_exists=True, compactors=0)
    assert "exists" in str(info.value)
    with pytest.raises(plyvel.Error):
        plyvel.DB(path, error_if_exists=True)
    _assert_intact(path)
    # and a fresh one with error_if_exists is fine
    db = lsm.DB(str(tmp_path / "new"), create_if_missing=True, error_if_exists=True, compactors=0)
    db.close()


def test_second_open_in_same_process_is_refused_and_first_keeps_working(tmp_path):
    path = str(tmp_path / "db")
    db = _make(path)
    try:
        for _ in range(2):
            with pytest.raises(lsm.LockError) as info:
                lsm.DB(path, compactors=0)
            assert "LOCK" in str(info.value)
        # The refused open must not have dropped the first one's lock (POSIX
        # locks vanish when any descriptor of the file is closed).
        _try_open_elsewhere(path, "plyvel", expect="IOError")
        _try_open_elsewhere(path, "lsm", expect="LockError")
        db.put(b"after", b"refusal")
        assert db.get(b"key001") == CONTENT[b"key001"]
    finally:
        db.close()
    _assert_intact(path, {**CONTENT, b"after": b"refusal"})


OPENER = r'''
import sys
sys.path.insert(0, sys.argv[3])
import plyvel, lsm
module = plyvel if sys.argv[2] == "plyvel" else lsm
kw = {} if module is plyvel else {"compactors": 0}
try:
    db = module.DB(sys.argv[1], **kw)
except Exception as exc:
    print(type(exc).__name__, exc)
    sys.exit(0)
print("opened")
sys.stdout.flush()
if len(sys.argv) > 4:  # hold it until told to go
    sys.stdin.readline()
db.close()
'''


def _try_open_elsewhere(path, module, expect):
    out = subprocess.run([sys.executable, "-c", OPENER, path, module, ROOT], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(" ")[0].strip() == expect, out.stdout
    return out.stdout


@pytest.mark.parametrize("holder", ["lsm", "plyvel"])
def test_open_while_another_process_holds_the_database_is_refused(tmp_path, holder):
    path = str(tmp_path / "db")
    _make(path).close()
    proc = subprocess.Popen([sys.executable, "-c", OPENER, path, holder, ROOT, "hold"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "opened", proc.stderr.read()
        with pytest.raises(lsm.LockError) as info:
            lsm.DB(path, compactors=0)
        assert "another process" in str(info.value)
        with pytest.raises(plyvel.IOError):
            plyvel.DB(path)
        _try_open_elsewhere(path, "lsm", expect="LockError")
    finally:
        proc.stdin.write("go\n")
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr.read()
    _assert_intact(path)


def test_leveldb_in_the_same_process_cannot_open_a_database_lsm_holds(tmp_path):
    """Damage seen: POSIX record locks (lockf) belong to the process, so
    plyvel in the same process opens a database lsm has open (two writers:
    LevelDB's open deletes lsm's live WAL and MANIFEST), and when plyvel
    closes its descriptor of LOCK the kernel drops lsm's lock as well, so
    any other process may then open it too. Open-file-description locks
    (F_OFD_SETLK) conflict with LevelDB's lock even within one process and
    are not dropped by other descriptors being closed."""
    path = str(tmp_path / "db")
    db = _make(path)
    try:
        refused = False
        try:
            plyvel.DB(path).close()
        except plyvel.IOError:
            refused = True
        _try_open_elsewhere(path, "plyvel", expect="IOError")
        assert refused, "plyvel opened, in this process, a database lsm holds"
    finally:
        db.close()


def test_level0_stop_trigger_is_clipped_to_at_least_the_slowdown_trigger(tmp_path):
    with lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=0,
                level0_slowdown_writes_trigger=30, level0_stop_writes_trigger=10) as db:
        assert db.options.level0_stop_writes_trigger == 30
