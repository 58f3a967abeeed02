"""FaultFS, the crash and fault harness itself: what a crash state keeps, and
that injected faults fire where and when they are asked to."""
import errno
import os
import random

import pytest

import lsm
from lsm.errors import IOError as LsmIOError
from lsm.testing.faultfs import CrashPoint, FaultFS


def _read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def fs(tmp_path):
    return FaultFS(tmp_path / "root")


def test_writes_really_reach_the_real_directory(fs):
    f = fs.create(os.path.join(fs.root, "a"))
    f.append(b"hello")
    f.close()
    assert _read(os.path.join(fs.root, "a")) == b"hello"
    assert fs.read_file(os.path.join(fs.root, "a")) == b"hello"
    r = fs.open_random(os.path.join(fs.root, "a"))
    assert r.read(1, 3) == b"ell" and r.size == 5
    r.close()


def test_crash_state_keeps_synced_bytes_only_by_default(fs, tmp_path):
    path = os.path.join(fs.root, "f")
    f = fs.create(path)
    f.append(b"A" * 100)
    f.sync()
    f.append(b"B" * 100)
    fs.sync_dir(fs.root)
    fs.crash_state(tmp_path / "s0")
    assert _read(tmp_path / "s0" / "f") == b"A" * 100
    fs.crash_state(tmp_path / "s1", keep_unsynced=1.0)
    assert _read(tmp_path / "s1" / "f") == b"A" * 100 + b"B" * 100


def test_unsynced_blocks_can_be_lost_with_zero_holes(fs, tmp_path):
    path = os.path.join(fs.root, "f")
    f = fs.create(path)
    data = bytes(random.Random(1).randbytes(40000))
    f.append(data)
    fs.sync_dir(fs.root)
    seen_hole = seen_torn = False
    for i in range(40):
        target = tmp_path / f"s{i}"
        summary = fs.crash_state(target, keep_unsynced=0.5, rng=random.Random(i))
        got = _read(target / "f")
        assert len(got) <= len(data)
        for start in range(0, len(got), 4096):
            piece = got[start:start + 4096]
            assert piece == data[start:start + len(piece)] or piece == bytes(len(piece))
        seen_hole |= summary["holes"] > 0
        seen_torn |= len(got) % 4096 != 0 and len(got) != len(data)
        # Without holes the kept bytes are always a prefix.
        target = tmp_path / f"p{i}"
        fs.crash_state(target, keep_unsynced=0.5, rng=random.Random(i), holes=False)
        got = _read(target / "f")
        assert got == data[:len(got)]
    assert seen_hole and seen_torn


def test_new_file_vanishes_unless_its_directory_was_synced(fs, tmp_path):
    path = os.path.join(fs.root, "new")
    f = fs.create(path)
    f.append(b"x")
    f.sync()
    fs.crash_state(tmp_path / "a", dir_ops="none")
    assert not os.path.exists(tmp_path / "a" / "new")
    fs.crash_state(tmp_path / "b", dir_ops="all")
    assert _read(tmp_path / "b" / "new") == b"x"
    fs.sync_dir(fs.root)
    fs.crash_state(tmp_path / "c", dir_ops="none")
    assert _read(tmp_path / "c" / "new") == b"x"


def test_unsynced_remove_and_rename_can_be_undone(fs, tmp_path):
    a, b, c = (os.path.join(fs.root, n) for n in "abc")
    for p in (a, b):
        f = fs.create(p)
        f.append(p.encode())
        f.sync()
        f.close()
    fs.sync_dir(fs.root)
    fs.remove(a)
    fs.rename(b, c)
    fs.crash_state(tmp_path / "none", dir_ops="none")
    assert sorted(os.listdir(tmp_path / "none")) == ["a", "b"]
    fs.crash_state(tmp_path / "all", dir_ops="all")
    assert sorted(os.listdir(tmp_path / "all")) == ["c"]
    assert _read(tmp_path / "all" / "c") == b.encode()
    outcomes = set()
    for i in range(30):
        fs.crash_state(tmp_path / f"p{i}", dir_ops="prefix", rng=random.Random(i))
        outcomes.add(tuple(sorted(os.listdir(tmp_path / f"p{i}"))))
    # A prefix never applies the rename without the remove before it.
    assert outcomes == {("a", "b"), ("b",), ("c",)}
    outcomes = set()
    for i in range(60):
        fs.crash_state(tmp_path / f"s{i}", dir_ops="subset", rng=random.Random(i))
        outcomes.add(tuple(sorted(os.listdir(tmp_path / f"s{i}"))))
    assert ("a", "c") in outcomes  # a subset may
    # A rename within one directory is atomic: never both names, never neither.
    assert all(("b" in o) != ("c" in o) for o in outcomes)


def test_rename_into_another_directory_needs_that_directory_synced(fs, tmp_path):
    sub = os.path.join(fs.root, "stage")
    fs.mkdir(sub)
    fs.sync_dir(fs.root)
    f = fs.create(os.path.join(sub, "out"))
    f.append(b"table")
    f.sync()
    f.close()
    fs.sync_dir(sub)
    fs.rename(os.path.join(sub, "out"), os.path.join(fs.root, "000005.ldb"))
    fs.crash_state(tmp_path / "a", dir_ops="none")
    assert os.listdir(tmp_path / "a" / "stage") == ["out"]
    assert "000005.ldb" not in os.listdir(tmp_path / "a")
    fs.sync_dir(fs.root)
    fs.crash_state(tmp_path / "b", dir_ops="none")
    assert _read(tmp_path / "b" / "000005.ldb") == b"table"


def test_rmtree_and_truncating_create_are_modelled(fs, tmp_path):
    sub = os.path.join(fs.root, "d")
    fs.mkdir(sub)
    f = fs.create(os.path.join(sub, "x"))
    f.append(b"1")
    f.sync()
    f.close()
    fs.sync_dir(sub)
    fs.sync_dir(fs.root)
    fs.rmtree(sub)
    assert not os.path.exists(sub)
    fs.crash_state(tmp_path / "a", dir_ops="none")
    assert _read(tmp_path / "a" / "d" / "x") == b"1"
    fs.crash_state(tmp_path / "b", dir_ops="all")
    assert not os.path.exists(tmp_path / "b" / "d")
    # O_TRUNC re-create: the old synced contents stay until the next sync.
    p = os.path.join(fs.root, "t")
    fs.write_file(p, b"old", sync=True)
    fs.sync_dir(fs.root)
    f = fs.create(p, exclusive=False)
    f.append(b"new!")
    fs.crash_state(tmp_path / "c")
    assert _read(tmp_path / "c" / "t") == b"old"
    f.sync()
    fs.crash_state(tmp_path / "d")
    assert _read(tmp_path / "d" / "t") == b"new!"


def test_existing_contents_count_as_durable(tmp_path):
    root = tmp_path / "pre"
    root.mkdir()
    (root / "a").write_bytes(b"abc")
    (root / "sub").mkdir()
    (root / "sub" / "b").write_bytes(b"b")
    fs = FaultFS(root)
    fs.crash_state(tmp_path / "s")
    assert _read(tmp_path / "s" / "a") == b"abc"
    assert _read(tmp_path / "s" / "sub" / "b") == b"b"


@pytest.mark.parametrize("op,call", [
    ("create", lambda fs, p: fs.create(p)),
    ("open", lambda fs, p: fs.open_random(p)),
    ("rename", lambda fs, p: fs.rename(p, p + ".2")),
    ("remove", lambda fs, p: fs.remove(p)),
    ("read", lambda fs, p: fs.read_file(p)),
])
def test_injected_error_by_operation(fs, op, call):
    path = os.path.join(fs.root, "x")
    if op != "create":
        fs.write_file(path, b"data")
    fs.inject(op, "x", errno=errno.EIO)
    with pytest.raises(lsm.IOError) as info:
        call(fs, path)
    assert info.value.errno == errno.EIO
    assert "injected" in str(info.value)
    # Once only, by default: the next call goes through.
    call(fs, path)


def test_nth_call_and_pattern(fs):
    rule = fs.inject("write", "*.log", nth=3)
    log = fs.create(os.path.join(fs.root, "000001.log"))
    other = fs.create(os.path.join(fs.root, "000002.ldb"))
    log.append(b"1")
    other.append(b"x")
    log.append(b"2")
    with pytest.raises(LsmIOError) as info:
        log.append(b"3")
    assert info.value.errno == errno.ENOSPC
    log.append(b"4")
    assert rule.fired == 1 and rule.calls == 4
    assert fs.read_file(log.path) == b"124"
    assert [e[3] for e in fs.ops_of("write", "*.log")] == ["ok:1", "ok:1", "error:ENOSPC", "ok:1"]


def test_torn_write_writes_a_prefix_then_fails(fs, tmp_path):
    f = fs.create(os.path.join(fs.root, "w"))
    fs.inject("append", "w", torn=5)
    with pytest.raises(LsmIOError):
        f.append(b"0123456789")
    assert fs.read_file(f.path) == b"01234"
    assert f.size == 5
    fs.inject("append", "w", torn=0.5)
    with pytest.raises(LsmIOError):
        f.append(b"abcdefgh")
    assert fs.read_file(f.path) == b"01234abcd"
    fs.sync_dir(fs.root)
    fs.crash_state(tmp_path / "s", keep_unsynced=1.0)
    assert _read(tmp_path / "s" / "w") == b"01234abcd"


def test_failed_fsync_keeps_data_unsynced_even_after_a_later_good_fsync(fs, tmp_path):
    """Linux marks pages clean after an fsync error: a later fsync "succeeds"
    without writing them. The model keeps those bytes in doubt."""
    f = fs.create(os.path.join(fs.root, "w"))
    fs.sync_dir(fs.root)
    f.append(b"A" * 10)
    fs.inject("fsync", "w", errno=errno.EIO)
    with pytest.raises(LsmIOError):
        f.sync()
    f.append(b"B" * 10)
    f.sync()
    fs.crash_state(tmp_path / "s", keep_unsynced=0.0)
    assert _read(tmp_path / "s" / "w") == bytes(10) + b"B" * 10
    assert [e[3] for e in fs.ops_of("sync", "w")] == ["error:EIO", "ok"]


def test_repeating_fault(fs):
    fs.inject("create", "*", nth=2, times=None)
    fs.create(os.path.join(fs.root, "a"))
    for name in "bcd":
        with pytest.raises(LsmIOError):
            fs.create(os.path.join(fs.root, name))
    fs.clear_faults()
    fs.create(os.path.join(fs.root, "e"))


def test_crash_at_kth_operation_and_after(fs):
    fs.crash_at(3)
    f = fs.create(os.path.join(fs.root, "a"))  # 1
    f.append(b"x")  # 2
    with pytest.raises(CrashPoint):
        f.sync()  # 3
    assert fs.dead
    with pytest.raises(CrashPoint):
        f.append(b"y")
    with pytest.raises(CrashPoint):
        fs.remove(f.path)
    assert not isinstance(CrashPoint(), Exception)  # `except Exception` cannot swallow it
    assert fs.op_count == 3
    fs.revive()
    f.append(b"z")


def test_on_op_hook_sees_every_mutating_operation(fs):
    seen = []
    fs.on_op = lambda n, op, path: seen.append((n, op, os.path.basename(path)))
    f = fs.create(os.path.join(fs.root, "a"))
    f.append(b"x")
    f.sync()
    fs.sync_dir(fs.root)
    fs.read_file(f.path)  # reads are not counted
    fs.rename(f.path, os.path.join(fs.root, "b"))
    fs.remove(os.path.join(fs.root, "b"))
    assert seen == [(1, "create", "a"), (2, "write", "a"), (3, "sync", "a"), (4, "sync_dir", "root"),
                    (5, "rename", "a"), (6, "remove", "b")]


def test_database_round_trip_through_faultfs(tmp_path):
    root = tmp_path / "db"
    fs = FaultFS(root)
    db = lsm.DB(str(root), fs=fs, create_if_missing=True, compactors=0)
    db.put(b"durable", b"1", sync=True)
    db.put(b"volatile", b"2")
    db.close()
    fs.crash_state(tmp_path / "cut")
    db = lsm.DB(str(tmp_path / "cut"), compactors=0)
    assert db.get(b"durable") == b"1"
    assert db.get(b"volatile") is None
    db.close()
    fs.crash_state(tmp_path / "kept", keep_unsynced=1.0, dir_ops="all")
    db = lsm.DB(str(tmp_path / "kept"), compactors=0)
    assert db.get(b"volatile") == b"2"
    db.close()


def test_detach_stops_modelling(fs, tmp_path):
    fs.crash_at(1)
    with pytest.raises(CrashPoint):
        fs.create(os.path.join(fs.root, "a"))
    fs.detach()
    f = fs.create(os.path.join(fs.root, "b"))  # goes through, unrecorded
    f.append(b"x")
    f.sync()
    fs.sync_dir(fs.root)
    assert os.path.exists(os.path.join(fs.root, "b"))
    fs.crash_state(tmp_path / "s", keep_unsynced=1.0, dir_ops="all")
    assert os.listdir(tmp_path / "s") == []
