"""A writer process that dies (os._exit, SIGKILL) loses no acknowledged write.

sync=False writes are in the OS once put() returns, so they must survive the
death of the process. A child process writes a deterministic
sequence of operations (puts, deletes, write batches) and prints the index of
each one after it returns. The parent replays the same sequence into a dict
and requires the reopened database to hold exactly the state after the last
acknowledged operation, or after the one that was in flight when the child
died (a batch counts whole or not at all) — nothing in between, nothing lost.
"""
import os
import random
import signal
import subprocess
import sys
import threading
import time

import plyvel
import pytest

import lsm
from test_iterators_compaction import assert_no_obsolete_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY_SPACE = 4000
OPEN = dict(compactors=0, write_buffer_size=64 << 10, max_file_size=1 << 20)

# The child: python child.py DB FIRST_OP MODE ARG
#   MODE exit-after N   -> os._exit(0) right after op N is acknowledged
#   MODE exit-in-job S  -> os._exit(0) from a watcher thread as soon as a
#                          flush/compaction job is seen running (S: seed of a
#                          small random extra delay), or after 20000 ops
#   MODE forever -      -> write until killed
CHILD = r'''
import os, random, sys, threading, time
sys.path.insert(0, sys.argv[5])
import lsm
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crash_ops import op, OPEN

path, first, mode, arg = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
db = lsm.DB(path, create_if_missing=True, **OPEN)
out = sys.stdout
stop_at = int(arg) if mode == "exit-after" else (first + 20000 if mode == "exit-in-job" else None)

if mode == "exit-in-job":
    rng = random.Random(int(arg))
    staging = os.path.join(path, "lsm-staging")
    def watch():
        seen = 0
        while True:
            try:
                busy = any(os.scandir(staging))
            except OSError:
                busy = False
            if busy:
                seen += 1
                if seen >= rng.randrange(1, 4):
                    time.sleep(rng.random() * 0.005)
                    out.write("JOB\n")
                    out.flush()
                    os._exit(0)
                time.sleep(0.02)  # let this job finish; die in a later one
            time.sleep(0.0002)
    threading.Thread(target=watch, daemon=True).start()

i = first
while True:
    kind, payload = op(i)
    if kind == "put":
        db.put(*payload)
    elif kind == "delete":
        db.delete(payload)
    else:
        with db.write_batch() as wb:
            for k, v in payload:
                if v is None:
                    wb.delete(k)
                else:
                    wb.put(k, v)
    out.write("%d\n" % i)
    out.flush()
    if stop_at is not None and i >= stop_at:
        if mode == "exit-after":
            os._exit(0)
        break
    i += 1
db.close()
'''

OPS = r'''
import random
KEY_SPACE = %d
OPEN = %r

def _key(r):
    return b"key%%08d" %% r.randrange(KEY_SPACE)

def _value(i, r):
    head = b"v%%d:" %% i
    return head + bytes([65 + i %% 26]) * r.randrange(10, 300)

def op(i):
    """Operation number i: ("put", (k, v)) | ("delete", k) | ("batch", [(k, v or None)])."""
    r = random.Random(i * 7919 + 17)
    x = r.random()
    if x < 0.75:
        return "put", (_key(r), _value(i, r))
    if x < 0.85:
        return "delete", _key(r)
    return "batch", [(_key(r), None if r.random() < 0.2 else _value(i, r)) for _ in range(r.randrange(1, 40))]
''' % (KEY_SPACE, OPEN)


@pytest.fixture
def child(tmp_path):
    (tmp_path / "crash_ops.py").write_text(OPS)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    sys.path.insert(0, str(tmp_path))
    import importlib
    import crash_ops
    importlib.reload(crash_ops)
    yield script, crash_ops
    sys.path.remove(str(tmp_path))
    sys.modules.pop("crash_ops", None)


def _start(script, path, first, mode, arg):
    return subprocess.Popen([sys.executable, str(script), path, str(first), mode, str(arg), ROOT],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _apply(model, op):
    kind, payload = op
    if kind == "put":
        model[payload[0]] = payload[1]
    elif kind == "delete":
        model.pop(payload, None)
    else:
        for k, v in payload:
            if v is None:
                model.pop(k, None)
            else:
                model[k] = v


def _acked(stdout_text):
    lines = stdout_text.split("\n")
    nums = [int(x) for x in lines if x.strip().isdigit()]
    return nums, "JOB" in lines


def _verify(path, ops, model, last_acked, create=False):
    """The database must equal the model after op last_acked or after the op
    in flight (last_acked + 1). Advances `model` to the state found and
    returns the index of the next op to run. `create`: the child may have died
    while creating the database, which must then open as new."""
    db = lsm.DB(path, create_if_missing=create, **OPEN)
    try:
        got = dict(db.iterator())
        for k in list(model)[:200]:
            assert db.get(k) == got.get(k)
    finally:
        db.close()
    assert_no_obsolete_files(path)  # the crash's orphans (staged or renamed outputs, old WALs) are gone
    if got == model:
        return last_acked + 1
    _apply(model, ops.op(last_acked + 1))
    assert got == model, _diff(got, model, last_acked)
    return last_acked + 2


def _diff(got, model, last_acked):
    missing = [k for k in model if k not in got][:5]
    extra = [k for k in got if k not in model][:5]
    wrong = [k for k in model if k in got and got[k] != model[k]][:5]
    return (f"after op {last_acked} (or {last_acked + 1}): missing {missing}, unexpected {extra}, "
            f"wrong values {[(k, got[k][:12], model[k][:12]) for k in wrong]}")


def _run_to_end(proc, timeout=60):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


@pytest.mark.parametrize("n", [0, 37, 1500, 6000])
def test_os_exit_after_n_acknowledged_writes_loses_none(tmp_path, child, n):
    script, ops = child
    path = str(tmp_path / "db")
    out = _run_to_end(_start(script, path, 0, "exit-after", n))
    acked, _ = _acked(out)
    assert acked == list(range(n + 1))
    model = {}
    for i in range(n + 1):
        _apply(model, ops.op(i))
    db = lsm.DB(path, **OPEN)
    try:
        assert dict(db.iterator()) == model
    finally:
        db.close()


def test_leveldb_reads_the_zero_padded_wal_a_dead_writer_left(tmp_path, child):
    """The WAL is written through a mapping reserved a MiB at a time: a
    writer that dies leaves it padded with zeros, which LevelDB (paranoid)
    reads as preallocation, as it reads its own mmap writer's files."""
    script, ops = child
    path = str(tmp_path / "db")
    out = _run_to_end(_start(script, path, 0, "exit-after", 300))
    assert _acked(out)[0] == list(range(301))
    model = {}
    for i in range(301):
        _apply(model, ops.op(i))
    [wal] = [n for n in os.listdir(path) if n.endswith(".log")]
    with open(os.path.join(path, wal), "rb") as f:
        data = f.read()
    assert len(data) == 1 << 20 and data.endswith(bytes(4096))  # reserved, not cut back
    pdb = plyvel.DB(path, paranoid_checks=True)
    try:
        assert dict(pdb.iterator()) == model
    finally:
        pdb.close()


def test_os_exit_during_flush_or_compaction_loses_no_acknowledged_write(tmp_path, child):
    """Three deaths in a row on the same database, each while a job (flush or
    compaction) is writing its output; the database is checked and reused."""
    script, ops = child
    path = str(tmp_path / "db")
    model, first, in_job = {}, 0, 0
    for seed in range(3):
        out = _run_to_end(_start(script, path, first, "exit-in-job", seed))
        acked, died_in_job = _acked(out)
        assert acked and acked[0] == first
        in_job += died_in_job
        for i in range(first, acked[-1] + 1):
            _apply(model, ops.op(i))
        first = _verify(path, ops, model, acked[-1])
    assert in_job >= 2, "the child should have died while a job was running"


def test_sigkill_at_random_moments_loses_no_acknowledged_write(tmp_path, child):
    """Six SIGKILLs at random moments on the same database (mid-write,
    mid-flush, mid-compaction, mid-recovery), each followed by a full check."""
    script, ops = child
    path = str(tmp_path / "db")
    rng = random.Random(5)
    model, first = {}, 0
    kills = 0
    for round_ in range(6):
        proc = _start(script, path, first, "forever", "-")
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout))
        reader.start()
        # The first kill lands early (likely during open/recovery), the rest
        # after a random amount of writing.
        delay = 0.15 if round_ == 0 else rng.uniform(0.4, 2.0)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
        reader.join(timeout=30)
        err = proc.stderr.read()
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL, err
        acked = [int(x) for x in lines if x.strip().isdigit()]
        if not acked:  # killed before the first write returned; that one may have landed
            first = _verify(path, ops, model, first - 1, create=True)
            continue
        assert acked[0] == first and acked == list(range(first, acked[-1] + 1))
        for i in range(first, acked[-1] + 1):
            _apply(model, ops.op(i))
        first = _verify(path, ops, model, acked[-1])
    assert kills == 6
    assert first > 200, "the children should have written something"
    # What survived the kills is also a valid LevelDB database.
    pdb = plyvel.DB(path, paranoid_checks=True)
    try:
        assert dict(pdb.iterator(verify_checksums=True)) == model
    finally:
        pdb.close()
