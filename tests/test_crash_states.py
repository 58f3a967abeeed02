"""Power-cut crash states: what a power cut at any file operation leaves on
disk opens as a prefix of the acknowledged history.

One deterministic workload of 2000 operations (puts, deletes, batches,
~15% sync=True, a compact_range every 450 ops) runs through FaultFS with a
64 KiB write buffer and a 1 KiB MANIFEST limit, so it flushes ~35 times,
compacts, and rotates the MANIFEST. Before every k-th file operation the
test materialises what a power cut at that instant could leave on disk
(taking a crash state is the same as crashing there: the disk is frozen at
that instant) and opens it with the plain FileSystem. Every state must:

* open without error;
* hold exactly the model state after some prefix P of the acknowledged
  operations, with P at or after the last write acknowledged with
  sync=True (nothing synced lost, no holes, no resurrected deletes) and at
  most the operation in flight;
* hold only self-consistent values, and whole batches.

Every 8th state also takes new writes after recovery, is closed and
reopened, and must then hold exactly the recovered state plus those writes,
with no file left over that the database does not use.

`--crash-long` sweeps every file operation with more crash models and seeds.
"""
import os
import random
import shutil
import tempfile

import pytest

import lsm
from lsm import filenames
from lsm.testing import model
from lsm.testing.faultfs import CrashPoint, FaultFS

N_OPS = 2000
DB_OPTIONS = dict(create_if_missing=True, compactors=0, write_buffer_size=64 << 10, manifest_limit=1024)

# (name, keep_unsynced, dir_ops, holes)
MODELS = {
    # LevelDB fault_injection_test: unsynced data gone, directory ops in order.
    "synced-only": (0.0, "prefix", False),
    # Torn tails of unsynced data, directory operations in any subset.
    "torn-tails": (0.5, "subset", False),
    # All data reached the disk, directory operations in any subset.
    "all-data": (1.0, "subset", False),
    # Some unsynced data, metadata in order, none of it after a sync_dir.
    "torn-no-dirops": (0.3, "none", False),
}
DEFAULT_STRIDE = 8  # ~3100 file operations / 8 ~= 390 states per model, 4 models


def _scratch(tmp_path):
    """Crash states are written and opened many times: tmpfs when there is one."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        d = tempfile.mkdtemp(prefix="lsm-crash-", dir="/dev/shm")
    else:
        d = tempfile.mkdtemp(prefix="lsm-crash-", dir=tmp_path)
    return d


def _contents(path, **options):
    db = lsm.DB(path, compactors=0, create_if_missing=True, **options)
    try:
        return list(db.iterator())
    finally:
        db.close()


def _allowed_files(path):
    """After a clean reopen: only live tables, the current WAL and MANIFEST,
    CURRENT, LOCK and LOG files."""
    names = os.listdir(path)
    manifest = open(os.path.join(path, "CURRENT")).read().strip()
    extra = []
    for name in names:
        parsed = filenames.parse_file_name(name)
        if name == "lsm-staging":
            if os.listdir(os.path.join(path, name)):  # the engine's own job area: empty when idle
                extra.append(name)
        elif parsed is None:
            extra.append(name)
        elif parsed[0] == filenames.FileType.DESCRIPTOR and name != manifest:
            extra.append(name)
        elif parsed[0] == filenames.FileType.TEMP:
            extra.append(name)
    logs = [n for n in names if n.endswith(".log")]
    if len(logs) > 1:
        extra.extend(sorted(logs)[:-1])
    return extra


class Sweep:
    """Runs the workload once, checking a crash state before every k-th file op."""

    def __init__(self, tmp_path, models, stride, seed=1, offset=0, reuse_check_every=8):
        self.tmp_path = tmp_path
        self.models = models
        self.stride = stride
        self.offset = offset
        self.seed = seed
        self.reuse_check_every = reuse_check_every
        self.hist = model.History()
        self.in_flight = None
        self.failures = []
        self.counts = {"states": 0, "recoveries": 0, "reopen_checks": 0, "holes": 0, "dir_ops_dropped": 0,
                       "file_ops": 0, "prefix_lag": 0}
        self.scratch = _scratch(tmp_path)

    def hook(self, n, op, path):
        if (n - self.offset) % self.stride:
            return
        for i, (name, (p, dir_ops, holes)) in enumerate(self.models):
            rng = random.Random(self.seed * 1_000_003 + n * 31 + i)
            target = os.path.join(self.scratch, "state")
            summary = self.fs.crash_state(target, keep_unsynced=p, rng=rng, dir_ops=dir_ops, holes=holes)
            self.counts["states"] += 1
            self.counts["holes"] += summary["holes"]
            self.counts["dir_ops_dropped"] += summary["dir_ops_dropped"]
            where = f"[{name}] crash before file op {n} ({op} {os.path.basename(path)})"
            try:
                self.check(target, where, reuse=self.counts["states"] % self.reuse_check_every == 0)
            except Exception as exc:  # noqa: BLE001 - collected, reported together
                self.failures.append(f"{where}: {type(exc).__name__}: {exc}")
            finally:
                shutil.rmtree(target, ignore_errors=True)

    def check(self, target, where, reuse):
        hist = self.hist
        items = _contents(target)
        self.counts["recoveries"] += 1
        bad = [k for k, v in items if not model.check_value(k, v)]
        assert not bad, f"values failing their self-check: {bad[:5]}"
        torn = model.batches_atomic(items)
        assert not torn, f"batches not atomic: {torn[:5]}"
        pending = model.mutations(self.in_flight) if self.in_flight is not None else None
        hi = len(hist) + (1 if pending else 0)
        found = hist.match(items, hist.last_sync, hi, pending)
        if not found:
            raise AssertionError(f"recovered state is no prefix in [{hist.last_sync}, {hi}] of the history: "
                                 + hist.explain(items, hist.last_sync))
        self.counts["prefix_lag"] = max(self.counts["prefix_lag"], hi - max(found))
        if reuse:
            self.counts["reopen_checks"] += 1
            self.reuse(target, dict(items))

    def reuse(self, target, state):
        """New writes after recovery survive a clean reopen (sequence numbers
        did not go back), and the reopened directory holds no leftovers."""
        rng = random.Random(len(state))
        db = lsm.DB(target, compactors=0)
        try:
            for i in range(20):
                key = b"k%05d" % rng.randrange(400)
                if i % 5 == 4:
                    db.delete(key)
                    state.pop(key, None)
                else:
                    value = model.make_value(key, 100000 + i, 50, rng)
                    db.put(key, value)
                    state[key] = value
        finally:
            db.close()
        after = _contents(target)
        assert dict(after) == state, "writes after recovery lost or old data back after a clean reopen"
        extra = _allowed_files(target)
        assert not extra, f"files left over after recovery and a clean reopen: {extra}"

    def run(self):
        root = os.path.join(self.tmp_path, "db")
        self.fs = FaultFS(root)
        self.fs.keep_log = False
        self.fs.on_op = self.hook
        ops = model.workload(seed=self.seed, n_ops=N_OPS)
        db = lsm.DB(root, fs=self.fs, **DB_OPTIONS)
        try:
            for op in ops:
                self.in_flight = op
                muts = model.apply(db, op)
                if muts is not None:
                    self.hist.ack(muts, op[-1])
                self.in_flight = None
            stats = db.stats()
        finally:
            db.close()
        self.counts["file_ops"] = self.fs.op_count
        self.counts["flushes"] = stats["flushes"]
        self.counts["compactions"] = stats["compactions"]
        shutil.rmtree(self.scratch, ignore_errors=True)
        return self


def _report(name, sweep):
    print(f"\ncrash sweep {name}: {sweep.counts}, failures {len(sweep.failures)}")


MODELS_WITH_HOLES = {
    # Pebble's CrashClone: each unsynced 4 KiB block kept or lost on its own.
    # Recovery stops at the first lost block (point-in-time), so these states
    # recover to a prefix too.
    "holes": (0.5, "prefix", True),
}


@pytest.mark.parametrize("name", sorted(MODELS) + sorted(MODELS_WITH_HOLES))
def test_every_crash_state_recovers_to_a_prefix(tmp_path, request, name):
    long = request.config.getoption("--crash-long")
    stride = 1 if long else DEFAULT_STRIDE
    seeds = (1, 2, 3) if long else (1,)
    for seed in seeds:
        sweep = Sweep(tmp_path / f"s{seed}", [(name, {**MODELS, **MODELS_WITH_HOLES}[name])], stride, seed=seed,
                      offset=seed % stride).run()
        _report(f"{name} seed {seed}", sweep)
        assert sweep.counts["flushes"] >= 20 and sweep.counts["compactions"] >= 3, sweep.counts
        assert sweep.counts["states"] >= 0.95 * sweep.counts["file_ops"] / stride, sweep.counts
        assert not sweep.failures, f"{len(sweep.failures)} bad crash states, e.g.:\n" + "\n".join(
            sweep.failures[:10])


def test_workload_rotates_the_manifest_and_compacts(tmp_path):
    """The sweep above covers what it claims: several MANIFEST rotations,
    WAL rotations, flushes and compactions happen inside it; and the
    operation log keeps the ordering rules (C4)."""
    root = os.path.join(tmp_path, "db")
    fs = FaultFS(root)
    db = lsm.DB(root, fs=fs, **DB_OPTIONS)
    hist = model.History()
    for op in model.workload(seed=1, n_ops=N_OPS):
        muts = model.apply(db, op)
        if muts is not None:
            hist.ack(muts, op[-1])
    stats = db.stats()
    db.close()
    created = [os.path.basename(e[2]) for e in fs.ops_of("create")]
    manifests = [n for n in created if n.startswith("MANIFEST-")]
    wals = [n for n in created if n.endswith(".log")]
    assert len(manifests) >= 4, manifests
    assert len(wals) >= 20, wals
    assert stats["flushes"] >= 20 and stats["compactions"] >= 3, stats
    _check_protocol(fs, root)
    assert dict(_contents(root)) == hist.state


def _check_protocol(fs, root):
    """C4: ordering rules read straight off the operation log (they hold on
    any filesystem, so they catch what ext4's ordered metadata would hide).
    * a new WAL's directory entry is synced before the WAL is written;
    * a table renamed into the directory is made durable (sync_dir) before the
      next MANIFEST write can name it;
    * after CURRENT is renamed, the directory is synced before any WAL,
      table or MANIFEST is removed (leveldb#195);
    * a WAL is synced before the next WAL is created (leveldb#193)."""
    root = os.path.abspath(root)
    log = [e for e in fs.log if e[3] != "dead"]
    dir_synced_at = -1
    pending_wal = {}  # created WAL -> index of its create
    unsynced_tables = set()
    current_renamed = False
    last_wal = None
    for i, (_, op, path, outcome) in enumerate(log):
        name = os.path.basename(path)
        if op == "sync_dir" and path == root:
            dir_synced_at = i
            pending_wal.clear()
            unsynced_tables.clear()
            current_renamed = False
        elif op == "create" and name.endswith(".log"):
            assert last_wal is None or last_wal[1], f"{name} created before {last_wal[0]} was synced"
            pending_wal[path] = i
            last_wal = [name, False]
        elif op == "write" and path in pending_wal:
            raise AssertionError(f"{name} written before its directory entry was synced")
        elif op == "sync" and last_wal is not None and name == last_wal[0]:
            last_wal[1] = True
        elif op == "rename":
            dst = os.path.basename(outcome.split(":", 1)[1])
            if dst.endswith(".ldb"):
                unsynced_tables.add(dst)
            if dst == "CURRENT":
                current_renamed = True
        elif op == "write" and name.startswith("MANIFEST-"):
            assert not unsynced_tables, f"{name} written while {sorted(unsynced_tables)} are not durable"
        elif op == "remove" and name.endswith((".log", ".ldb")) or (op == "remove" and name.startswith("MANIFEST-")):
            assert not current_renamed, f"{name} removed before the rename of CURRENT was made durable"


# --------------------------------------------------------------- real crashes

def _run_until_crash(root, k, seed=1):
    """Run the workload through a FaultFS that dies at its k-th file op.
    Returns (fs, history, op in flight or None, crashed?)."""
    fs = FaultFS(root)
    fs.keep_log = False
    fs.crash_at(k)
    hist = model.History()
    in_flight = None
    db = None
    try:
        db = lsm.DB(root, fs=fs, **DB_OPTIONS)
        for op in model.workload(seed=seed, n_ops=N_OPS // 4):
            in_flight = op
            muts = model.apply(db, op)
            if muts is not None:
                hist.ack(muts, op[-1])
            in_flight = None
    except CrashPoint:
        return fs, hist, in_flight, True
    finally:
        fs.detach()  # the power is off: closing (to release the lock) must not touch the modelled disk
        if db is not None:
            db.close()
    return fs, hist, None, False


def _assert_prefix(hist, items, in_flight):
    pending = model.mutations(in_flight) if in_flight is not None else None
    hi = len(hist) + (1 if pending else 0)
    assert all(model.check_value(k, v) for k, v in items)
    assert hist.match(items, hist.last_sync, hi, pending), hist.explain(items, hist.last_sync)


def test_crash_point_propagates_and_state_recovers(tmp_path):
    """The CrashPoint raised inside the engine reaches the caller (no except
    clause swallows the power cut), and nothing runs on a dead disk."""
    rng = random.Random(7)
    crashes = 0
    for i in range(25):
        k = rng.randrange(1, 800)
        root = os.path.join(tmp_path, f"db{i}")
        fs, hist, in_flight, crashed = _run_until_crash(root, k)
        assert crashed, f"workload ended before file op {k}"
        assert fs.dead
        crashes += 1
        for j, (p, dir_ops) in enumerate(((0.0, "prefix"), (1.0, "subset"))):
            target = os.path.join(tmp_path, f"state{i}-{j}")
            fs.crash_state(target, keep_unsynced=p, rng=random.Random(i), dir_ops=dir_ops, holes=False)
            _assert_prefix(hist, _contents(target), in_flight)
    print(f"\nreal CrashPoint crashes: {crashes}")


def test_crash_during_recovery_is_idempotent(tmp_path):
    """C2: a power cut during recovery, at each of its file operations, then a
    second recovery: the result equals a single uninterrupted recovery."""
    root = os.path.join(tmp_path, "db")
    fs, hist, in_flight, crashed = _run_until_crash(root, 700)
    assert crashed
    nested = 0
    for j, (p, dir_ops) in enumerate(((0.0, "prefix"), (0.5, "subset"), (1.0, "all"))):
        base = os.path.join(tmp_path, f"base{j}")
        fs.crash_state(base, keep_unsynced=p, rng=random.Random(j), dir_ops=dir_ops, holes=False)
        once = os.path.join(tmp_path, f"once{j}")
        shutil.copytree(base, once)
        expected = _contents(once)
        _assert_prefix(hist, expected, in_flight)
        # How many file operations does one recovery take?
        probe = os.path.join(tmp_path, f"probe{j}")
        shutil.copytree(base, probe)
        pfs = FaultFS(probe)
        lsm.DB(probe, fs=pfs, compactors=0).close()
        for k in range(1, pfs.op_count + 1):
            work = os.path.join(tmp_path, f"work{j}-{k}")
            shutil.copytree(base, work)
            nfs = FaultFS(work)
            nfs.crash_at(k)
            with pytest.raises(CrashPoint):
                lsm.DB(work, fs=nfs, compactors=0).close()
            nfs.detach()
            for m, (p2, dir_ops2) in enumerate(((0.0, "prefix"), (1.0, "subset"))):
                again = os.path.join(tmp_path, f"again{j}-{k}-{m}")
                nfs.crash_state(again, keep_unsynced=p2, rng=random.Random(k * 7 + m), dir_ops=dir_ops2,
                                holes=False)
                assert _contents(again) == expected, f"crash at op {k} of recovery changed the outcome"
                nested += 1
                shutil.rmtree(again)
            shutil.rmtree(work)
    print(f"\nnested crashes during recovery: {nested}")
    assert nested >= 30


def test_crash_while_creating_the_database(tmp_path):
    """A power cut at any file operation of lsm.DB(create_if_missing=True) on
    an empty directory: the next open must work (nothing was acknowledged, so
    an empty database is the only right answer)."""
    probe = os.path.join(tmp_path, "probe")
    pfs = FaultFS(probe)
    lsm.DB(probe, fs=pfs, **DB_OPTIONS).close()
    failures = []
    states = 0
    for k in range(1, pfs.op_count + 1):
        root = os.path.join(tmp_path, f"db{k}")
        fs = FaultFS(root)
        fs.crash_at(k)
        with pytest.raises(CrashPoint):
            lsm.DB(root, fs=fs, **DB_OPTIONS).close()
        fs.detach()
        for name, (p, dir_ops, holes) in sorted(MODELS.items()):
            for r in range(3):
                target = os.path.join(tmp_path, f"state{k}-{name}-{r}")
                fs.crash_state(target, keep_unsynced=p, rng=random.Random(k * 100 + r), dir_ops=dir_ops,
                               holes=holes)
                states += 1
                try:
                    assert _contents(target) == []
                except Exception as exc:  # noqa: BLE001
                    failures.append(f"crash at op {k} [{name}], {sorted(os.listdir(target))}: {exc}")
    print(f"\ncrash states during creation: {states}")
    assert not failures, "\n".join(failures[:10])


def test_zero_filled_hole_in_unsynced_wal_tail_does_not_make_a_hole_in_history(tmp_path):
    """One synced write, then ~60 KiB of unsynced writes (two WAL blocks).
    The power cut keeps every unsynced block but one 4 KiB block early in the
    unsynced region, which reads back as zeros (a legal crash state when
    writeback persists pages out of order). Recovery must stop at the hole:
    the writes after it were acknowledged after the ones lost in it."""
    root = os.path.join(tmp_path, "db")
    fs = FaultFS(root)
    db = lsm.DB(root, fs=fs, **DB_OPTIONS)
    hist = model.History()
    rng = random.Random(3)
    db.put(b"synced", model.make_value(b"synced", 0, 10, rng), sync=True)
    hist.ack([(b"synced", db.get(b"synced"))], True)
    for i in range(1, 60):
        key = b"k%05d" % i
        value = model.make_value(key, i, 1000, rng)
        db.put(key, value)
        hist.ack([(key, value)])
    wal = [e[2] for e in fs.ops_of("create", "*.log")][-1]
    synced_len = max(len(fs.read_file(wal)) - 60 * 1000, 0)  # roughly where unsynced data starts
    db.close()
    target = os.path.join(tmp_path, "state")
    fs.crash_state(target, keep_unsynced=1.0, dir_ops="all")
    path = os.path.join(target, os.path.basename(wal))
    data = bytearray(open(path, "rb").read())
    hole = (synced_len // 4096 + 2) * 4096
    assert hole + 4096 < 32768 < len(data)
    data[hole:hole + 4096] = bytes(4096)
    with open(path, "wb") as f:
        f.write(data)
    items = _contents(target)
    present = sorted(int(k[1:]) for k, _ in items if k.startswith(b"k"))
    assert hist.match(items, hist.last_sync, len(hist)), f"recovered k-numbers {present}"
