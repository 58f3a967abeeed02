"""The engine on a real compactor pool: killed, hung and lying compactors
cost a retry, never data."""
import os
import random
import re
import signal
import threading
import time

import psutil

import lsm
from lsm.jobs import FlushJob, JobResult
from lsm.compactor.runner import run_job
from lsm.writer.scheduler import Running
from table_helpers import block_shapes


def _live_tables(db):
    text = db.get_property(b"leveldb.sstables").decode()
    return {int(n) for n in re.findall(r"^ (\d+):", text, re.M)}


def _assert_only_live_files(path):
    with lsm.DB(path, compactors=0) as db:
        live = _live_tables(db)
    tables = {int(n.split(".")[0]) for n in os.listdir(path) if n.endswith((".ldb", ".sst"))}
    assert tables == live
    assert len([n for n in os.listdir(path) if n.startswith("MANIFEST-")]) == 1
    staging = os.path.join(path, "lsm-staging")
    assert not os.path.isdir(staging) or not os.listdir(staging), "orphan staging outputs left behind"


def test_compactor_killed_mid_load_is_replaced_and_loses_nothing(tmp_path):
    path = str(tmp_path / "db")
    n = 500_000
    keys = [b"%016d" % i for i in random.Random(7).sample(range(10**12), n)]
    value = b"v" * 100
    killed = []
    with lsm.DB(path, create_if_missing=True, compactors=2, write_buffer_size=1 << 20) as db:
        def killer():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not killed:
                for w in db.stats()["compactors"]:
                    if w["job"] is not None and w["pid"]:
                        os.kill(w["pid"], signal.SIGKILL)
                        killed.append(w["pid"])
                        return
                time.sleep(0.01)

        thread = threading.Thread(target=killer)
        for i in range(0, n, 1000):
            if i == n // 5:
                thread.start()
            with db.write_batch() as wb:
                for k in keys[i:i + 1000]:
                    wb.put(k, value)
        thread.join()
        db._engine.wait_for_compactions()
        assert killed, "no compactor was caught running a job"
        workers = db.stats()["compactors"]
        assert all(w["alive"] for w in workers)
        assert killed[0] not in {w["pid"] for w in workers}
        assert sum(w["restarts"] for w in workers) >= 1
        assert sum(1 for _ in db.iterator(include_value=False)) == n
        assert all(db.get(k) == value for k in keys[::50])
    assert not psutil.Process().children(), "a compactor outlived close()"
    _assert_only_live_files(path)


def test_hung_compactor_is_replaced_and_its_job_completes_elsewhere(tmp_path):
    path = str(tmp_path / "db")
    flag = str(tmp_path / "hang-once")
    with lsm.DB(path, create_if_missing=True, compactors=2, write_buffer_size=64 << 10,
                compactor_heartbeat_timeout=1.5, compactor_env={"LSM_TEST_HANG": flag}) as db:
        for i in range(3000):
            db.put(b"k%06d" % i, b"x" * 100)
        db._engine.flush()
        db._engine.wait_for_compactions()
        assert os.path.exists(flag), "no compactor took the hang hook"
        assert sum(w["restarts"] for w in db.stats()["compactors"]) >= 1
        assert all(db.get(b"k%06d" % i) == b"x" * 100 for i in range(3000))
    with lsm.DB(path) as db:
        assert sum(1 for _ in db) == 3000


def test_results_for_unknown_or_finished_jobs_are_ignored(tmp_path):
    path = str(tmp_path / "db")
    with lsm.DB(path, create_if_missing=True, compactors=0) as db:
        db.put(b"a", b"1")
        engine = db._engine
        stale = str(tmp_path / "db" / "lsm-staging" / "old-session-1-1")
        os.makedirs(stale)
        forged = JobResult(job_id=999, ok=True)
        forged.staging_dir = stale
        engine.scheduler.on_pool_result(FlushJob(999, 12345), forged)
        assert not os.path.exists(stale), "a stale result's staging directory was kept"
        assert engine.bg_error is None
        db.put(b"b", b"2")
        assert db.get(b"a") == b"1" and db.get(b"b") == b"2"


def test_result_with_truncated_output_is_rejected_and_the_job_rerun(tmp_path):
    path = str(tmp_path / "db")
    with lsm.DB(path, create_if_missing=True, compactors=0) as db:
        for i in range(500):
            db.put(b"k%04d" % i, b"v%d" % i)
        engine = db._engine
        with engine.state.cv:
            engine.memtables.switch()
            imm = engine.imms[0]
            job = FlushJob(engine.state.next_job_id(), imm.wal_number, engine.options.table_options())
            imm.flush_job = job
            engine.scheduler.running[job.job_id] = Running(job, imm=imm)
        staging = engine.scheduler.run_here.staging_dir(job.job_id)
        result = run_job(job, path, staging)
        result.staging_dir = staging
        out = os.path.join(staging, result.outputs[0].name)
        with open(out, "r+b") as f:
            f.truncate(result.outputs[0].size - 10)
        engine.scheduler.on_pool_result(job, result)
        assert engine.bg_error is None
        assert not os.path.exists(staging)
        engine.flush()
        assert all(db.get(b"k%04d" % i) == b"v%d" % i for i in range(500))
    with lsm.DB(path) as db:
        assert sum(1 for _ in db) == 500
    _assert_only_live_files(path)


def test_stalled_writer_flushes_itself_while_the_compactor_is_busy(tmp_path):
    # Every compactor job first sleeps 1 s: the frozen memtables pile up and
    # the writer must take their flushes instead of waiting.
    path = str(tmp_path / "db")
    value = b"v" * 100
    with lsm.DB(path, create_if_missing=True, compactors=1, write_buffer_size=64 << 10,
                compactor_env={"LSM_TEST_JOB_SLEEP": "1"}) as db:
        for i in range(0, 20_000, 100):
            with db.write_batch() as wb:
                for j in range(i, i + 100):
                    wb.put(b"k%08d" % j, value)
        stats = db.stats()
        assert stats["flushes_in_writer"] >= 1, stats
        assert stats["background_error"] is None
        db._engine.wait_for_compactions()
        assert all(db.get(b"k%08d" % j) == value for j in range(0, 20_000, 7))
    assert not psutil.Process().children(), "a compactor outlived close()"
    _assert_only_live_files(path)
    with lsm.DB(path) as db:
        assert sum(1 for _ in db) == 20_000


def test_flush_failing_in_the_stalled_writer_goes_back_to_the_pool_once(tmp_path):
    # The writer's own disk writes into the staging area always fail (the
    # compactor's, in another process, do not): each flush the stalled
    # writer takes fails once and must go back to the pool for good, or the
    # writer would take it again and again while the compactor is busy.
    from lsm.testing.faultfs import FaultFS
    path = str(tmp_path / "db")
    fs = FaultFS(path)
    fault = fs.inject("create", "lsm-staging/*", times=None)
    value = b"v" * 100
    done = []

    def load(db):
        for i in range(0, 10_000, 100):
            with db.write_batch() as wb:
                for j in range(i, i + 100):
                    wb.put(b"k%08d" % j, value)
        done.append(True)

    with lsm.DB(path, create_if_missing=True, fs=fs, compactors=1, write_buffer_size=64 << 10,
                compactor_env={"LSM_TEST_JOB_SLEEP": "0.2"}) as db:
        writer = threading.Thread(target=load, args=(db,), daemon=True)
        writer.start()
        writer.join(300)  # liveness only: the load takes seconds
        assert done, "writes hung"
        db._engine.wait_for_compactions()
        stats = db.stats()
        assert 1 <= fault.fired <= stats["flushes"], "a flush was retried in the writer"
        assert stats["flushes_in_writer"] == 0 and stats["background_error"] is None
        assert all(db.get(b"k%08d" % j) == value for j in range(0, 10_000, 7))
    assert not psutil.Process().children(), "a compactor outlived close()"


def test_prefix_compression_choice_reaches_the_compactors_tables(tmp_path):
    # Keys and values of one length: uniform blocks unless prefix
    # compression is asked for, and the same contents either way.
    items = {b"key%013d" % i: b"%0100d" % (i * 7) for i in range(20_000)}
    for prefix_compression in (False, True):
        path = str(tmp_path / str(prefix_compression))
        with lsm.DB(path, create_if_missing=True, compactors=1, compression=None,
                    prefix_compression=prefix_compression, write_buffer_size=256 << 10) as db:
            with db.write_batch() as wb:
                for k, v in items.items():
                    wb.put(k, v)
            db.compact_range()
            assert list(db) == sorted(items.items())
        uniform, other = block_shapes(path)
        assert (uniform, other) == ((0, other) if prefix_compression else (uniform, 0)), (uniform, other)
        assert uniform + other > 500
