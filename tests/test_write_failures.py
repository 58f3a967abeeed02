"""I/O errors while writing: ENOSPC and EIO
injected by FaultFS into a WAL append or fsync, a flush, a compaction and a
MANIFEST write.

The contract:
* the call that hit the error raises an lsm.Error naming the failure;
* a WAL or MANIFEST failure is sticky: every later write raises, reads go on;
* nothing acknowledged before is lost: the directory reopened with the plain
  FileSystem (the "space returned") holds every acknowledged write;
* a failed fsync is never followed by an acknowledged write that depends on
  it, and no byte is appended to a WAL or MANIFEST after a failure on it.
"""
import errno
import os
import random

import pytest

import lsm
from lsm.compactor.runner import TEST_FAULTS_ENV
from lsm.testing import model
from lsm.testing.faultfs import FaultFS, fault_spec

OPTIONS = dict(create_if_missing=True, compactors=0, write_buffer_size=64 << 10, manifest_limit=2048)
ENOSPC_TEXT = os.strerror(errno.ENOSPC)


class Run:
    """A database on FaultFS plus a record of what was acknowledged."""

    def __init__(self, tmp_path, **options):
        self.root = str(tmp_path / "db")
        self.fs = FaultFS(self.root)
        self.db = lsm.DB(self.root, fs=self.fs, **{**OPTIONS, **options})
        self.acked = {}  # key -> value or None (deleted), last acknowledged
        self.in_doubt = {}  # key -> [values] of failed writes after the last ack
        self.rng = random.Random(5)
        self.n = 0
        self.history = []  # (key, value or None, acknowledged?) of every write tried, in order
        self.synced_upto = 0  # len(history) when the last sync=True write was acknowledged

    def record(self, muts, ok, sync):
        self.history.extend((k, v, ok) for k, v in muts)
        if ok and sync:
            self.synced_upto = len(self.history)

    def put(self, key=None, size=600, sync=False):
        self.n += 1
        key = key or b"k%05d" % self.rng.randrange(3000)
        value = model.make_value(key, self.n, size, self.rng)
        try:
            self.db.put(key, value, sync=sync)
        except Exception:
            self.in_doubt.setdefault(key, []).append(value)
            self.record([(key, value)], False, sync)
            raise
        self.acked[key] = value
        self.in_doubt.pop(key, None)
        self.record([(key, value)], True, sync)
        return key, value

    def power_cut_check(self, target):
        """A power cut now (unsynced data lost, directory operations since the
        last sync_dir in order): every write acknowledged with sync=True, and
        everything before it, is there -- or a later write to the same key."""
        self.fs.crash_state(target, keep_unsynced=0.0, dir_ops="prefix", rng=random.Random(len(self.history)))
        db = lsm.DB(str(target), compactors=0)
        try:
            got = dict(db.iterator())
        finally:
            db.close()
        allowed = {}
        for i, (key, value, ok) in enumerate(self.history):
            if i < self.synced_upto and ok:
                allowed[key] = [value]
            else:
                allowed.setdefault(key, [None]).append(value)
        for key, values in allowed.items():
            assert got.get(key) in values, f"power cut lost {key!r}, written before the last acknowledged sync"
        for key in got:
            assert key in allowed, f"phantom key {key!r} after a power cut"

    def fill(self, n, sync_every=0):
        for i in range(n):
            self.put(sync=bool(sync_every) and i % sync_every == 0)

    def reopen_and_check(self):
        """Close, reopen the same files with the plain FileSystem, check every
        acknowledged write (no power loss here, so unsynced ones too)."""
        self.db.close()
        db = lsm.DB(self.root, compactors=0)
        try:
            got = dict(db.iterator())
            for key, value in self.acked.items():
                allowed = [value] + self.in_doubt.get(key, [])
                assert got.get(key) in allowed, f"acknowledged write to {key!r} lost"
            for key in got:
                assert key in self.acked or key in self.in_doubt, f"phantom key {key!r}"
            # The database takes writes again.
            db.put(b"after", b"space returned", sync=True)
        finally:
            db.close()
        db = lsm.DB(self.root, compactors=0)
        try:
            assert db.get(b"after") == b"space returned"
        finally:
            db.close()

    def assert_sticky(self):
        with pytest.raises(lsm.Error):
            self.put()
        with pytest.raises(lsm.Error):
            self.db.delete(b"k00001")
        with pytest.raises(lsm.Error):
            with self.db.write_batch() as wb:
                wb.put(b"x", b"y")
        self.assert_reads_work()

    def assert_reads_work(self):
        sample = list(self.acked.items())[:50]
        for key, value in sample:
            assert self.db.get(key) in [value] + self.in_doubt.get(key, [])
        assert sum(1 for _ in self.db.iterator()) >= len([v for v in self.acked.values() if v is not None])


def _no_append_after_failure(fs, pattern):
    """Rule 3: after a failed write or fsync on a WAL/MANIFEST, nothing more is
    appended to that file."""
    failed = set()
    for _, op, path, outcome in fs.log:
        if not os.path.basename(path).startswith(pattern.strip("*")) and not path.endswith(pattern.strip("*")):
            continue
        if op in ("write", "sync") and ("error" in outcome):
            failed.add(path)
        elif op in ("write", "sync") and path in failed:
            raise AssertionError(f"{op} on {path} after a failed write/fsync on it ({outcome})")


# ------------------------------------------------------------------ WAL

@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO])
@pytest.mark.parametrize("torn", [None, 1, 7])
def test_wal_append_failure_is_sticky_and_loses_nothing(tmp_path, err, torn):
    run = Run(tmp_path)
    run.fill(200, sync_every=7)
    run.fs.inject("write", "*.log", errno=err, torn=torn)
    with pytest.raises(lsm.IOError) as info:
        run.put()
    assert info.value.errno == err
    run.assert_sticky()
    _no_append_after_failure(run.fs, ".log")
    run.reopen_and_check()


@pytest.mark.parametrize("err", [errno.EIO, errno.ENOSPC])
def test_wal_fsync_failure_is_sticky(tmp_path, err):
    run = Run(tmp_path)
    run.fill(100)
    run.fs.inject("fsync", "*.log", errno=err)
    with pytest.raises(lsm.IOError):
        run.put(sync=True)
    run.assert_sticky()
    _no_append_after_failure(run.fs, ".log")
    run.reopen_and_check()


def test_failed_wal_fsync_at_rotation_is_not_retried_as_success(tmp_path):
    """The fsync of the old WAL when the memtable is switched fails. The write
    that hit it fails; a later write must not retry that fsync, see it
    "succeed" (Linux has dropped the dirty pages) and acknowledge writes on top
    of data that never reached the disk (no acknowledgement after a failed fsync)."""
    run = Run(tmp_path)
    run.fs.inject("fsync", "*.log", errno=errno.EIO)  # only rotation syncs a WAL: no sync=True writes
    failed_at = None
    for i in range(400):
        try:
            run.put()
        except lsm.Error:
            failed_at = i
            break
    assert failed_at is not None, "no WAL rotation within 400 writes"
    sync_log = run.fs.ops_of("sync", "*.log")
    assert sync_log[-1][3].startswith("error")
    failed_wal = sync_log[-1][2]
    acked_after = 0
    for _ in range(20):
        try:
            run.put()
            acked_after += 1
        except lsm.Error:
            pass
    later_syncs = [e for e in run.fs.ops_of("sync") if e[2] == failed_wal and e[3] == "ok"]
    assert acked_after == 0, (f"{acked_after} writes acknowledged after the fsync of {os.path.basename(failed_wal)} "
                              f"failed; that WAL was fsynced again {len(later_syncs)} time(s) and reported success")
    run.reopen_and_check()


# ---------------------------------------------------------------- flush

@pytest.mark.parametrize("op,err", [("write", errno.ENOSPC), ("fsync", errno.EIO), ("create", errno.ENOSPC)])
def test_flush_failure(tmp_path, op, err):
    run = Run(tmp_path)
    run.fill(20)
    run.fs.inject(op, "out-*.ldb", errno=err)
    with pytest.raises(lsm.Error) as info:
        for _ in range(400):
            run.put()
    assert os.strerror(err) in str(info.value), info.value
    # A failed flush leaves the memtable and its WAL in place: the data is safe,
    # but the engine stops taking writes until reopened.
    run.assert_sticky()
    run.reopen_and_check()


def test_flush_failure_raises_lsm_ioerror(tmp_path):
    """The flush error is a disk error: plyvel code catches lsm.IOError (and
    errno ENOSPC) for a full disk, whatever stage hit it."""
    run = Run(tmp_path)
    run.fill(20)
    run.fs.inject("write", "out-*.ldb", errno=errno.ENOSPC)
    with pytest.raises(lsm.Error) as info:
        for _ in range(400):
            run.put()
    assert isinstance(info.value, lsm.IOError), f"{type(info.value).__name__}: {info.value}"


# ----------------------------------------------------------- compaction

@pytest.mark.parametrize("op,err", [("write", errno.ENOSPC), ("fsync", errno.EIO)])
def test_compaction_failure(tmp_path, op, err):
    run = Run(tmp_path)
    run.fill(300)
    run.db.compact_range()  # flush everything first
    run.fill(150)
    flushes = len(run.fs.ops_of("create", "out-*"))
    # Fail the first table write of the next job that is a compaction.
    run.fs.inject(op, "out-*.ldb", errno=err, nth=1)
    with pytest.raises(lsm.Error) as info:
        run.db.compact_range()
    assert os.strerror(err) in str(info.value)
    assert len(run.fs.ops_of("create", "out-*")) > flushes
    run.assert_reads_work()
    run.reopen_and_check()


# -------------------------------------------------------------- MANIFEST

@pytest.mark.parametrize("op,err,torn", [("write", errno.ENOSPC, None), ("write", errno.ENOSPC, 5),
                                         ("fsync", errno.EIO, None), ("create", errno.ENOSPC, None),
                                         ("rename", errno.EIO, None)])
def test_manifest_failure_is_sticky(tmp_path, op, err, torn):
    run = Run(tmp_path, manifest_limit=400)  # rotates every few edits
    run.fill(50)
    pattern = {"create": "MANIFEST-*", "rename": "*.dbtmp"}.get(op, "MANIFEST-*")
    run.fs.inject(op, pattern, errno=err, torn=torn)
    with pytest.raises(lsm.Error) as info:
        for _ in range(2000):
            run.put()
    assert os.strerror(err) in str(info.value)
    run.assert_sticky()
    _no_append_after_failure(run.fs, "MANIFEST-")
    # No file was deleted on the strength of an edit that may not be committed.
    failure = next(i for i, e in enumerate(run.fs.log) if "error" in e[3])
    removed = [e for e in run.fs.log[failure:] if e[1] == "remove" and e[2].endswith((".ldb", ".log"))]
    assert not removed, removed
    run.reopen_and_check()


# ------------------------------------------------------------------ open

@pytest.mark.parametrize("op,pattern", [("write", "out-*.ldb"), ("write", "MANIFEST-*"), ("create", "*.log"),
                                        ("fsync", "*.dbtmp"), ("sync_dir", "*")])
def test_failure_during_open_fails_cleanly_and_reopen_works(tmp_path, op, pattern):
    run = Run(tmp_path)
    run.fill(60, sync_every=5)
    run.db.close()
    fs = FaultFS(run.root)
    fs.inject(op, pattern, errno=errno.ENOSPC)
    with pytest.raises(lsm.Error):
        lsm.DB(run.root, fs=fs, compactors=0)
    # The failed open released the lock and left the data as it was.
    run.db = lsm.DB(run.root, compactors=0)
    run.reopen_and_check()


# ----------------------------------------------------------- sweep (C3)

SWEEP_KINDS = [("write", None), ("write", 1), ("write", 4096), ("sync", None), ("sync_dir", None),
               ("create", None), ("rename", None), ("remove", None), ("mkdir", None)]


_PROBE = {}


@pytest.mark.parametrize("kind,torn", SWEEP_KINDS)
def test_error_injection_sweep(tmp_path, kind, torn):
    """Each kind of operation fails at several points of a workload with
    flushes, compactions and MANIFEST rotations. Whatever fails: only lsm
    errors come out, nothing acknowledged is lost (neither at a reopen nor
    after a power cut right after the workload, for sync=True writes), a
    failed WAL/MANIFEST gets no more bytes, and the directory reopens."""
    rng = random.Random(hash((kind, torn)) & 0xFFFF)
    if "fs" not in _PROBE:  # how many calls of each kind does the workload make?
        _PROBE["fs"] = _sweep_workload(tmp_path / "probe", None).fs
    total = len(_PROBE["fs"].ops_of(kind))
    assert total > 0, kind
    points = 0
    nths = sorted({1, total} | {rng.randint(1, total) for _ in range(10)})
    for i, nth in enumerate(nths):
        err = (errno.ENOSPC, errno.EIO)[i % 2]
        run = _sweep_workload(tmp_path / f"{nth}-{err}", (kind, nth, err, torn))
        _no_append_after_failure(run.fs, ".log")
        _no_append_after_failure(run.fs, "MANIFEST-")
        run.power_cut_check(tmp_path / f"{nth}-{err}-cut")
        run.reopen_and_check()
        points += 1
    print(f"\nerror injection points for {kind} (torn={torn}): {points} of {total} calls")
    assert points >= 5


def _sweep_workload(path, fault):
    path.mkdir()
    run = Run(path, manifest_limit=1024)
    if fault is not None:
        kind, nth, err, torn = fault
        run.fs.inject(kind, "*", nth=nth, errno=err, torn=torn)
    ops = model.workload(seed=4, n_ops=450, compact_every=130)  # ends with 60 ops after the last compaction
    errors = 0
    for i, op in enumerate(ops):
        try:
            if op[0] == "put":
                run.put(op[1], size=len(op[2]), sync=op[3])
            elif op[0] == "compact":
                run.db.compact_range()
            else:
                muts = model.mutations(op)
                try:
                    model.apply(run.db, op)
                except Exception:
                    for k, v in muts:
                        run.in_doubt.setdefault(k, []).append(v)
                    run.record(muts, False, op[2])
                    raise
                for k, v in muts:
                    run.acked[k] = v
                    run.in_doubt.pop(k, None)
                run.record(muts, True, op[2])
        except lsm.Error:
            errors += 1
        # Any other exception type propagates and fails the test.
    if fault is None:
        assert errors == 0
    return run


# ------------------------------------------------- compactor processes

@pytest.mark.parametrize("op,err", [("write", errno.ENOSPC), ("fsync", errno.EIO)])
def test_disk_error_in_the_compactors_raises_lsm_ioerror_and_loses_nothing(tmp_path, op, err):
    """Every table a compactor process writes fails (compactors=1, the fault
    set up inside the compactor through its environment), so each attempt
    of the first flush fails until the retries are used up. The write that
    reports it raises lsm.IOError with the errno, as plyvel code expects of
    a full disk; later writes fail, reads go on, and reopened (the "space
    returned") the database holds every acknowledged write."""
    faults = fault_spec(dict(op=op, pattern="out-*.ldb", errno=err, times=None))
    run = Run(tmp_path, compactors=1, compactor_env={TEST_FAULTS_ENV: faults})
    with pytest.raises(lsm.Error) as info:
        for _ in range(5000):
            run.put()
    assert isinstance(info.value, lsm.IOError), f"{type(info.value).__name__}: {info.value}"
    assert info.value.errno == err
    assert os.strerror(err) in str(info.value)
    assert "attempt 3" in str(info.value), info.value  # the pool's retries were used up first
    run.assert_sticky()
    run.reopen_and_check()
