"""A client's iterator reads the snapshot it started with while compactions
replace the files under it, and a client that dies releases what it pinned:
the replaced files are deleted."""
import os
import signal

import lsm
from serve_helpers import finish, read_until, spawn, wait_for

N = 3000

READER = r"""
import sys
import lsm
client = lsm.connect(sys.argv[1], timeout=30)
it = client.iterator()
first = [next(it) for _ in range(10)]
print("pinned", flush=True)
sys.stdin.readline()
rest = list(it)
it.close()
entries = first + rest
assert len(entries) == %d, len(entries)
assert all(v == b"old" for _, v in entries), {v for _, v in entries}
raw = client.raw_iterator()
raw.seek_to_last()
print("ok", raw.value().decode(), flush=True)
raw.close()
held = client.iterator(reverse=True)
print("holding", next(held)[1].decode(), flush=True)
sys.stdin.readline()
""" % N


def _tables(path):
    return {name for name in os.listdir(path) if name.endswith(".ldb")}


def _live_tables(db):
    lines = db.get_property(b"leveldb.sstables").decode().splitlines()
    return {"%06d.ldb" % int(line.split(":")[0]) for line in lines if not line.startswith("---")}


def _rewrite(db, value):
    with db.write_batch() as wb:
        for i in range(N):
            wb.put(b"key%06d" % i, value)
    db.compact_range()


def test_client_iterator_keeps_its_snapshot_and_its_death_releases_the_files(tmp_path):
    path = str(tmp_path / "db")
    with lsm.DB(path, create_if_missing=True, serve=True, compactors=1) as db:
        _rewrite(db, b"old")
        reader = spawn(READER, path, stdin=True)
        read_until(reader, lambda line: line == "pinned")
        old_tables = _tables(path)
        _rewrite(db, b"new")
        assert old_tables <= _tables(path)  # pinned by the client's iterator
        assert not old_tables & _live_tables(db)  # replaced by the compaction
        reader.stdin.write("go\n")
        reader.stdin.flush()
        assert read_until(reader, lambda line: line.startswith("ok"))[-1] == "ok new"
        assert read_until(reader, lambda line: line.startswith("holding"))[-1] == "holding new"
        wait_for(lambda: not old_tables & _tables(path), what="the first iterator's tables being deleted")
        held_tables = _tables(path)
        _rewrite(db, b"newer")
        assert held_tables <= _tables(path)
        assert not held_tables & _live_tables(db)
        reader.send_signal(signal.SIGKILL)
        reader.wait(10)
        wait_for(lambda: not held_tables & _tables(path), what="the dead client's tables being deleted")
        assert db.get(b"key000000") == b"newer"


SNAPSHOT_CLIENT = r"""
import sys
import lsm
with lsm.connect(sys.argv[1]) as client:
    view = client.prefixed_db(b"p-")
    snap = view.snapshot()
    print("snapshot", flush=True)
    sys.stdin.readline()
    print(snap.get(b"a"), client.get(b"p-a"), list(snap.iterator()), flush=True)
    snap.release()
    try:
        snap.get(b"a")
    except RuntimeError as exc:
        print(type(exc).__name__, flush=True)
"""


def test_client_snapshot_of_a_prefixed_view_sees_what_was_there_when_taken(tmp_path):
    path = str(tmp_path / "db")
    with lsm.DB(path, create_if_missing=True, serve=True, compactors=0) as db:
        db.put(b"p-a", b"1")
        client = spawn(SNAPSHOT_CLIENT, path, stdin=True)
        read_until(client, lambda line: line == "snapshot")
        db.put(b"p-a", b"2")
        db.put(b"p-b", b"3")
        client.stdin.write("go\n")
        client.stdin.flush()
        assert finish(client) == ["b'1' b'2' [(b'a', b'1')]", "ClosedError"]
