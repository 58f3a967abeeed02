"""The LOCK file: while one process holds a
database, a second open -- lsm in another process, plyvel in another process,
lsm again in this one -- fails at once with a clear error; the lock goes away
on close and when the holder dies (SIGKILL), compactor children or not."""
import os
import signal
import subprocess
import sys
import time

import plyvel
import pytest

import lsm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# python -c HOLDER ROOT PATH KIND COMPACTORS: open, print "ready", wait for stdin to close.
HOLDER = r'''
import sys
sys.path.insert(0, sys.argv[1])
path, kind, compactors = sys.argv[2], sys.argv[3], int(sys.argv[4])
if kind == "lsm":
    import lsm
    db = lsm.DB(path, create_if_missing=True, compactors=compactors)
else:
    import plyvel
    db = plyvel.DB(path, create_if_missing=True)
db.put(b"holder", kind.encode())
print("ready", flush=True)
sys.stdin.read()
db.close()
print("closed", flush=True)
'''

# python -c OPENER ROOT PATH KIND: try to open; print the outcome, exit 0 (opened) or 3 (refused).
OPENER = r'''
import sys, time
sys.path.insert(0, sys.argv[1])
path, kind = sys.argv[2], sys.argv[3]
t = time.monotonic()
try:
    if kind == "lsm":
        import lsm
        db = lsm.DB(path, compactors=0)
    else:
        import plyvel
        db = plyvel.DB(path)
except Exception as exc:
    print("refused %.3f %s: %s" % (time.monotonic() - t, type(exc).__name__, exc), flush=True)
    sys.exit(3)
print("opened %r" % db.get(b"holder"), flush=True)
db.close()
'''


def _hold(path, kind="lsm", compactors=0):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, ROOT, path, kind, str(compactors)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read()
    return proc


def _release(proc):
    proc.stdin.close()
    assert proc.stdout.readline().strip() == "closed"
    proc.wait(30)


def _try_open(path, kind):
    r = subprocess.run([sys.executable, "-c", OPENER, ROOT, path, kind], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode in (0, 3), r.stderr
    return r.returncode == 0, r.stdout.strip()


@pytest.mark.parametrize("holder", ["lsm", "plyvel"])
@pytest.mark.parametrize("opener", ["lsm", "plyvel"])
def test_second_process_is_refused_while_the_first_holds_the_database(tmp_path, holder, opener):
    path = str(tmp_path / "db")
    proc = _hold(path, holder)
    try:
        opened, out = _try_open(path, opener)
        assert not opened, f"{opener} opened a database {holder} holds: {out}"
        seconds = float(out.split()[1])
        assert seconds < 1.0, f"the refusal took {seconds}s: it must not wait for the lock"
        if opener == "lsm":
            assert "LockError" in out and "LOCK" in out and "another process" in out, out
        else:
            assert "lock" in out.lower(), out
    finally:
        _release(proc)
    # Closed: the lock is gone.
    opened, out = _try_open(path, opener)
    assert opened and holder in out, out


def test_second_open_in_the_same_process_is_refused(tmp_path):
    path = str(tmp_path / "db")
    db = lsm.DB(path, create_if_missing=True, compactors=0)
    try:
        with pytest.raises(lsm.LockError) as info:
            lsm.DB(path, compactors=0)
        assert "LOCK" in str(info.value)
        # The refused open changed nothing: the first handle still works.
        db.put(b"a", b"1")
        assert db.get(b"a") == b"1"
    finally:
        db.close()
    db = lsm.DB(path, compactors=0)
    assert db.get(b"a") == b"1"
    db.close()


def test_refused_open_of_another_path_spelling_is_refused_too(tmp_path):
    path = str(tmp_path / "db")
    db = lsm.DB(path, create_if_missing=True, compactors=0)
    try:
        with pytest.raises(lsm.LockError):
            lsm.DB(str(tmp_path / "." / "db" / ".." / "db"), compactors=0)
        os.symlink(path, str(tmp_path / "link"))
        with pytest.raises(lsm.LockError):
            lsm.DB(str(tmp_path / "link"), compactors=0)
    finally:
        db.close()


@pytest.mark.parametrize("compactors", [0, 2])
def test_lock_goes_away_when_the_holder_is_killed(tmp_path, compactors):
    path = str(tmp_path / "db")
    proc = _hold(path, "lsm", compactors)
    opened, out = _try_open(path, "lsm")
    assert not opened, out
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    # At once, even if compactor children of the dead writer are still alive:
    # they must not hold the LOCK (they are spawned, not forked with its fd).
    opened, out = _try_open(path, "lsm")
    assert opened and "lsm" in out, out
    opened, out = _try_open(path, "plyvel")
    assert opened, out


def test_lock_goes_away_when_open_fails(tmp_path):
    """A failed open (here: damaged CURRENT) releases the lock it took."""
    path = str(tmp_path / "db")
    lsm.DB(path, create_if_missing=True, compactors=0).close()
    with open(os.path.join(path, "CURRENT"), "wb") as f:
        f.write(b"garbage")
    for _ in range(2):
        with pytest.raises(lsm.CorruptionError):
            lsm.DB(path, compactors=0)
    opened, out = _try_open(path, "plyvel")
    assert not opened and "lock" not in out.lower(), out


def test_plyvel_in_the_same_process_is_refused(tmp_path):
    """Classic POSIX record locks never conflict within one process; the LOCK
    is an open-file-description lock, which conflicts with LevelDB's even here."""
    path = str(tmp_path / "db")
    db = lsm.DB(path, create_if_missing=True, compactors=0)
    try:
        with pytest.raises(plyvel.IOError):
            plyvel.DB(path).close()
    finally:
        db.close()


def test_refusal_is_quick_under_contention(tmp_path):
    """Several openers racing a holder: each is refused quickly, none blocks."""
    path = str(tmp_path / "db")
    proc = _hold(path, "lsm")
    try:
        procs = [subprocess.Popen([sys.executable, "-c", OPENER, ROOT, path, "lsm"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        started = time.monotonic()
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 3, out + err
        assert time.monotonic() - started < 30
    finally:
        _release(proc)
