"""The compactor pool with real processes, real sockets and real files: results
match run_job run inline; a killed, hung or silenced worker is replaced and
its job finishes elsewhere exactly once; stray results are ignored; nothing
outlives close() or the writer.
"""
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest
import zmq

from lsm.batch import encode_batch
from lsm.compactor import PROCESS_RUNNER
from lsm.jobs import CompactionJob, ErrorKind, FlushJob, JobResult, OutputTable, RetryPolicy
from lsm.table.options import TableOptions
from lsm.compactor.runner import TEST_SLEEP_ENV, run_job
from lsm.ipc.worker import HANG_ENV
from lsm.fileio import DEFAULT_FS
from lsm.filemeta import FileMetaData
from lsm.filenames import log_file_name, table_file_name
from lsm.ipc.codec import encode
from lsm.ipc.messages import Result
from lsm.ipc.pool import STAGING_DIR, CompactorPool
from lsm.keys import TYPE_DELETION, TYPE_VALUE, make_internal_key
from lsm.record import LogWriter
from lsm.table import Table, TableBuilder

OPTS = TableOptions(block_size=512, compression=None, bloom_bits_per_key=10)
FAST = dict(runner=PROCESS_RUNNER, heartbeat_interval=0.1, heartbeat_timeout=1.0,
            retry=RetryPolicy(max_attempts=3, backoff=0.05))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- inputs


def write_wal(db, number, batches):
    w = LogWriter()
    data = b"".join(w.encode(encode_batch(seq, ops)) for seq, ops in batches)
    DEFAULT_FS.write_file(log_file_name(db, number), data)


def write_table(db, number, entries):
    """entries: (ukey, seq, kind, value)."""
    f = DEFAULT_FS.create(table_file_name(db, number))
    b = TableBuilder(OPTS, f.append)
    for ukey, seq, kind, value in sorted(entries, key=lambda e: (e[0], -e[1])):
        b.add(make_internal_key(ukey, seq, kind), value)
    size = b.finish()
    f.sync()
    f.close()
    return FileMetaData(number, size, b.smallest, b.largest)


def make_db(db, seed=7):
    """A few WALs, three overlapping level-0 tables and two level-1 tables."""
    rng = random.Random(seed)
    os.makedirs(db, exist_ok=True)
    seq = 1
    for wal in (1, 2, 3):
        batches = []
        for _ in range(30):
            ops = [(TYPE_VALUE if rng.random() < 0.8 else TYPE_DELETION, b"k%04d" % rng.randrange(500),
                    b"v%d" % rng.randrange(10**6)) for _ in range(rng.randrange(1, 6))]
            ops = [(k, key, v if k == TYPE_VALUE else None) for k, key, v in ops]
            batches.append((seq, ops))
            seq += len(ops)
        write_wal(db, wal, batches)
    level0 = []
    for number in (10, 11, 12):
        keys = rng.sample(range(600), 150)
        entries = [(b"k%04d" % k, seq + i, TYPE_DELETION if rng.random() < 0.1 else TYPE_VALUE,
                    b"x" * rng.randrange(40)) for i, k in enumerate(keys)]
        seq += len(keys)
        level0.append(write_table(db, number, entries))
    level1 = [write_table(db, 20, [(b"k%04d" % k, k + 1, TYPE_VALUE, b"old") for k in range(0, 300)]),
              write_table(db, 21, [(b"k%04d" % k, k + 1, TYPE_VALUE, b"old") for k in range(300, 600)])]
    return level0, level1


def make_jobs(db):
    level0, level1 = make_db(db)
    jobs = [FlushJob(job_id=i, wal_number=i, table=OPTS) for i in (1, 2, 3)]
    common = dict(level=0, inputs=level0, next_inputs=level1, grandparents=[], deeper_ranges=[], table=OPTS)
    jobs.append(CompactionJob(job_id=4, smallest_snapshot=10**6, **common))
    jobs.append(CompactionJob(job_id=5, smallest_snapshot=900, max_output_file_size=2000, **common))
    jobs.append(CompactionJob(job_id=6, smallest_snapshot=10**6, lower=b"k0200", upper=b"k0400", **common))
    jobs.append(CompactionJob(job_id=7, level=1, inputs=level1[:1], next_inputs=[], grandparents=[],
                              smallest_snapshot=10**6, deeper_ranges=[(b"k0100", b"k0150")], table=OPTS))
    return jobs


def entries_of(staging, result):
    out = []
    for o in result.outputs:
        f = DEFAULT_FS.open_random(os.path.join(staging, o.name))
        try:
            out.append(list(Table.open(f, path=o.name).iter_entries()))
        finally:
            f.close()
    return out


# ---------------------------------------------------------------- harness


class Collector:
    """on_result that records every call and lets a test wait for them."""

    def __init__(self):
        self.calls = []
        self.cv = threading.Condition()

    def __call__(self, job, result):
        with self.cv:
            self.calls.append((job, result))
            self.cv.notify_all()

    def wait(self, n, timeout=20.0):
        deadline = time.monotonic() + timeout
        with self.cv:
            while len(self.calls) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"only {len(self.calls)} of {n} results after {timeout}s"
                self.cv.wait(left)
        return list(self.calls)

    def by_job(self):
        return {job.job_id: result for job, result in self.calls}


def wait_for(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def children():
    return [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def pool_factory():
    made = []

    def make(db, size=2, **kw):
        collector = Collector()
        params = dict(FAST)
        params.update(kw)
        pool = CompactorPool(str(db), size, on_result=collector, **params)
        made.append(pool)
        return pool, collector

    yield make
    for pool in made:
        pool.close(timeout=0)
    assert children() == []


def all_ready(pool):
    return wait_for(lambda: (rows := pool.stats()) and all(r["ready"] and r["alive"] for r in rows) and rows,
                    what="every worker to be ready")


def running_pid(pool, job_id):
    def find():
        for row in pool.stats():
            if row["job"] == job_id and row["alive"]:
                return row["pid"]
        return None
    return wait_for(find, what=f"job {job_id} to be running")


# ---------------------------------------------------------------- tests


def test_pool_results_match_inline_run_job(tmp_path, pool_factory):
    db = str(tmp_path / "db")
    jobs = make_jobs(db)
    pool, got = pool_factory(db)
    for job in jobs:
        pool.submit(job)
    got.wait(len(jobs))
    results = got.by_job()
    assert sorted(results) == [j.job_id for j in jobs]
    for job in jobs:
        result = results[job.job_id]
        assert result.ok, result.error
        assert result.attempt == 1
        assert result.staging_dir == os.path.join(db, STAGING_DIR, f"{pool.session}-{job.job_id}-1")
        inline_dir = str(tmp_path / f"inline-{job.job_id}")
        inline = run_job(job, db, inline_dir)
        assert inline.ok, inline.error
        assert entries_of(result.staging_dir, result) == entries_of(inline_dir, inline)
        assert result.outputs == inline.outputs
        assert (result.max_sequence, result.bytes_read, result.bytes_written) == \
            (inline.max_sequence, inline.bytes_read, inline.bytes_written)
    assert len(results[5].outputs) > 1  # the small output limit split the compaction
    stats = pool.stats()
    assert len(stats) == 2 and all(r["alive"] and r["rss_bytes"] > 0 for r in stats)
    assert sum(r["jobs_done"] for r in stats) == len(jobs)
    assert pool.running_jobs() == []
    assert pool.close() == []
    assert children() == []


def test_sigkilled_worker_is_replaced_and_its_job_finishes_elsewhere(tmp_path, pool_factory):
    db = str(tmp_path / "db")
    job = make_jobs(db)[3]
    pool, got = pool_factory(db, worker_env={TEST_SLEEP_ENV: "0.8"})
    pool.submit(job)
    victim = running_pid(pool, job.job_id)
    before = {r["pid"] for r in pool.stats()}
    os.kill(victim, signal.SIGKILL)
    (done_job, result), = got.wait(1)
    assert done_job is job and result.ok, result.error
    assert result.attempt == 2
    assert not os.path.exists(os.path.join(db, STAGING_DIR, f"{pool.session}-{job.job_id}-1"))
    after = pool.stats()
    pids = {r["pid"] for r in after}
    assert victim not in pids and len(pids - before) == 1
    assert sum(r["restarts"] for r in after) == 1
    time.sleep(0.3)
    assert len(got.calls) == 1


def test_heartbeats_flow_while_a_long_job_runs(tmp_path, pool_factory):
    db = str(tmp_path / "db")
    job = make_jobs(db)[0]
    pool, got = pool_factory(db, size=1, worker_env={TEST_SLEEP_ENV: "1.6"})  # > heartbeat_timeout
    pool.submit(job)
    (_, result), = got.wait(1)
    assert result.ok and result.attempt == 1, result.error
    assert pool.counters["workers_lost"] == 0 and pool.stats()[0]["restarts"] == 0


def test_queued_job_taken_back_is_never_run_or_delivered(tmp_path, pool_factory):
    db = str(tmp_path / "db")
    first, second = make_jobs(db)[:2]
    pool, got = pool_factory(db, size=1, worker_env={TEST_SLEEP_ENV: "0.8"})
    pool.submit(first)
    running_pid(pool, first.job_id)
    pool.submit(second)
    assert not pool.take_queued(first.job_id), "a running job was taken back"
    assert pool.take_queued(second.job_id)
    assert not pool.take_queued(second.job_id)
    (done_job, result), = got.wait(1)
    assert done_job is first and result.ok, result.error
    time.sleep(1.2)  # long enough for the worker to have run a second job
    assert len(got.calls) == 1
    assert [r.job.job_id for r in pool.running_jobs()] == []
    assert not os.path.exists(os.path.join(db, STAGING_DIR, f"{pool.session}-{second.job_id}-1"))


def test_hung_worker_is_killed_and_its_job_finishes_elsewhere(tmp_path, pool_factory):
    db = str(tmp_path / "db")
    job = make_jobs(db)[0]
    token = str(tmp_path / "hang-once")  # the first worker to claim it hangs, silently
    pool, got = pool_factory(db, worker_env={HANG_ENV: token})
    hung_pids = {r["pid"] for r in all_ready(pool)}
    pool.submit(job)
    (_, result), = got.wait(1)
    assert result.ok and result.attempt == 2, result.error
    assert os.path.exists(token)
    assert pool.counters["workers_lost"] == 1
    replaced = hung_pids - {r["pid"] for r in pool.stats()}
    assert len(replaced) == 1 and not psutil.pid_exists(replaced.pop())


def test_stopped_worker_is_killed_and_its_job_finishes_elsewhere(tmp_path, pool_factory):
    db = str(tmp_path / "db")
    job = make_jobs(db)[4]
    pool, got = pool_factory(db, worker_env={TEST_SLEEP_ENV: "0.5"})
    pool.submit(job)
    victim = running_pid(pool, job.job_id)
    os.kill(victim, signal.SIGSTOP)  # no thread of it runs: heartbeats stop
    (_, result), = got.wait(1)
    assert result.ok and result.attempt == 2, result.error
    assert not psutil.pid_exists(victim)


def test_corrupt_input_fails_at_once_without_retry(tmp_path, pool_factory):
    db = str(tmp_path / "db")
    job = make_jobs(db)[3]
    path = table_file_name(db, job.inputs[0].number)
    data = bytearray(DEFAULT_FS.read_file(path))
    data[100] ^= 0xFF  # inside the first data block: its CRC no longer matches
    DEFAULT_FS.write_file(path, bytes(data))
    pool, got = pool_factory(db)
    pool.submit(job)
    (_, result), = got.wait(1)
    assert not result.ok and result.error_kind is ErrorKind.CORRUPTION and result.attempt == 1
    assert pool.counters["retries"] == 0
    assert not os.path.exists(result.staging_dir)


def test_transient_failure_is_retried_then_surfaces(tmp_path, pool_factory):
    db = str(tmp_path / "db")
    os.makedirs(db)
    job = FlushJob(job_id=1, wal_number=99)  # no such WAL: an I/O error, not corruption
    pool, got = pool_factory(db)  # FAST: three attempts
    pool.submit(job)
    (_, result), = got.wait(1)
    assert not result.ok and result.error_kind is ErrorKind.IO
    assert result.attempt == 3 and result.error.startswith("IOError: "), result.error
    assert pool.counters["retries"] == 2
    assert os.listdir(os.path.join(db, STAGING_DIR)) == []


def test_a_job_whose_first_attempt_ran_elsewhere_keeps_its_count_and_is_never_handed_back(tmp_path, pool_factory):
    """The writer ran attempt 1 itself and it failed: the pool continues at
    attempt 2 under the same policy, and take_queued (the writer taking a
    queued flush back) refuses it, so a lasting failure cannot bounce."""
    db = str(tmp_path / "db")
    os.makedirs(db)
    job = FlushJob(job_id=1, wal_number=99)  # no such WAL: fails on every attempt
    pool, got = pool_factory(db, retry=RetryPolicy(max_attempts=3, backoff=0.3))
    pool.submit(job, attempt=2)
    assert not pool.take_queued(job.job_id)
    (_, result), = got.wait(1)
    assert not result.ok and result.error_kind is ErrorKind.IO and result.attempt == 3
    assert pool.counters["retries"] == 1


def test_a_runner_that_cannot_be_imported_fails_each_job_saying_so(tmp_path, pool_factory):
    db = str(tmp_path / "db")
    job = make_jobs(db)[0]
    pool, got = pool_factory(db, size=1, runner="lsm.no_such_module:run_job")
    pool.submit(job)
    (_, result), = got.wait(1)
    assert not result.ok and result.error_kind is ErrorKind.OTHER and result.attempt == 3
    assert "cannot import the job runner 'lsm.no_such_module:run_job'" in result.error
    with pytest.raises(ValueError, match="module:qualname"):
        pool_factory(db, runner="lsm.compactor.process.run_job")


def test_duplicate_stale_and_forged_results_are_ignored(tmp_path, pool_factory):
    db = str(tmp_path / "db")
    jobs = make_jobs(db)
    pool, got = pool_factory(db, worker_env={TEST_SLEEP_ENV: "0.6"})
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(pool.endpoint)

    def send(session, job_id, attempt, ok=True):
        fake = JobResult(job_id=job_id, ok=ok, outputs=[OutputTable("000001.ldb", 1, b"a" * 8, b"b" * 8)])
        sock.send_multipart(encode(Result(session, job_id, attempt, 4242, fake)))

    def ignored(n):
        wait_for(lambda: pool.counters["results_ignored"] >= n, what=f"{n} ignored results")

    try:
        # An old session's leftovers: ignored, and its staging directory removed.
        old = os.path.join(db, STAGING_DIR, "0ldsession-7-1")
        os.makedirs(old)
        send("0ldsession", 7, 1)
        ignored(1)
        assert not os.path.exists(old)

        # While job 1 runs (attempt 1): a forged result for it from another
        # process, and one for an attempt that was never made.
        pool.submit(jobs[0])
        running_pid(pool, 1)
        send(pool.session, 1, 1)
        send(pool.session, 1, 2)
        ignored(3)
        (job, first), = got.wait(1)
        assert first.ok and first.attempt == 1 and len(first.outputs) == 1

        # The same result again, after delivery: ignored, and the staging
        # directory (the writer's now) is left alone.
        send(pool.session, 1, 1)
        send(pool.session, 1, 1, ok=False)
        ignored(5)
        assert os.path.isdir(first.staging_dir)
        assert entries_of(first.staging_dir, first)
        assert len(got.calls) == 1
    finally:
        sock.close(0)
        ctx.term()
    assert pool.counters["results_accepted"] == 1


def test_close_waits_for_running_jobs_then_kills(tmp_path, pool_factory):
    db = str(tmp_path / "db")
    jobs = make_jobs(db)
    pool, got = pool_factory(db, size=1, worker_env={TEST_SLEEP_ENV: "0.5"})
    pool.submit(jobs[0])
    pool.submit(jobs[1])  # queued behind it: never starts
    running_pid(pool, 1)
    assert pool.close(timeout=5) == [jobs[1]]
    assert [j.job_id for j, _ in got.calls] == [1]
    assert children() == []
    with pytest.raises(Exception, match="closed"):
        pool.submit(jobs[2])


def test_close_timeout_kills_running_job_and_removes_its_staging(tmp_path, pool_factory):
    db = str(tmp_path / "db")
    jobs = make_jobs(db)
    pool, got = pool_factory(db, worker_env={TEST_SLEEP_ENV: "30"})
    pool.submit(jobs[0])
    running_pid(pool, 1)
    started = time.monotonic()
    assert pool.close(timeout=0.2) == [jobs[0]]
    assert time.monotonic() - started < 5
    assert got.calls == []
    assert children() == []
    assert os.listdir(os.path.join(db, STAGING_DIR)) == []


WRITER = textwrap.dedent("""
    import sys, time
    from lsm.jobs import FlushJob
    from lsm.ipc.pool import CompactorPool
    pool = CompactorPool(sys.argv[1], 2, on_result=lambda j, r: None, runner="lsm.compactor.process:run_job",
                         heartbeat_interval=0.1,
                         heartbeat_timeout=1.0, writer_timeout=1.0, worker_env={"LSM_TEST_JOB_SLEEP": "30"})
    pool.submit(FlushJob(job_id=1, wal_number=1))
    while not all(r["ready"] for r in pool.stats()) or not any(r["job"] for r in pool.stats()):
        time.sleep(0.02)
    print(" ".join(str(r["pid"]) for r in pool.stats()), flush=True)
    if sys.argv[2] == "raise":
        sys.stdin.readline()
        raise RuntimeError("the writer failed and never closed its pool")
    time.sleep(60)
""")


def start_writer(db, mode="sleep"):
    os.makedirs(db, exist_ok=True)
    write_wal(db, 1, [(1, [(TYPE_VALUE, b"a", b"1")])])
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, db, mode], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    line = proc.stdout.readline()
    pids = [int(p) for p in line.split()]
    assert len(pids) == 2, line
    return proc, pids


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_workers_exit_when_the_writer_is_killed(tmp_path):
    proc, pids = start_writer(str(tmp_path / "db"))
    try:
        assert not any(gone(p) for p in pids)
        proc.kill()
        proc.wait()
        wait_for(lambda: all(gone(p) for p in pids), timeout=5, what="orphaned workers to exit")
    finally:
        proc.kill()
        for p in pids:
            if not gone(p):
                os.kill(p, signal.SIGKILL)


def test_workers_end_with_a_writer_that_raises_without_closing(tmp_path):
    proc, pids = start_writer(str(tmp_path / "db"), mode="raise")
    try:
        _, err = proc.communicate(b"go\n", timeout=20)
        assert b"never closed its pool" in err
        assert all(gone(p) for p in pids)  # no wait: gone by the time the writer has exited
    finally:
        proc.kill()
        for p in pids:
            if not gone(p):
                os.kill(p, signal.SIGKILL)


def test_workers_exit_when_the_writer_stops_pinging(tmp_path):
    # The writer is alive and still their parent (no PDEATHSIG, same ppid),
    # but frozen: the workers leave after missing its pings.
    proc, pids = start_writer(str(tmp_path / "db"))
    try:
        proc.send_signal(signal.SIGSTOP)
        wait_for(lambda: all(gone(p) for p in pids), timeout=5, what="workers of a frozen writer to exit")
    finally:
        proc.kill()
        proc.wait()
        for p in pids:
            if not gone(p):
                os.kill(p, signal.SIGKILL)


def test_submit_rejects_bad_and_duplicate_jobs(tmp_path, pool_factory):
    db = str(tmp_path / "db")
    os.makedirs(db)
    pool, _ = pool_factory(db, size=1, worker_env={TEST_SLEEP_ENV: "5"})
    with pytest.raises(TypeError):
        pool.submit("not a job")
    pool.submit(FlushJob(job_id=5, wal_number=99))
    with pytest.raises(ValueError, match="already"):
        pool.submit(FlushJob(job_id=5, wal_number=98))
    assert [r.job.job_id for r in pool.running_jobs()] == [5]


@pytest.mark.parametrize("writer_setting, compactor_setting", [(None, "1"), ("3", "3")])
def test_a_compactor_process_starts_no_blas_thread_pool_unless_the_writer_asks_for_one(
        tmp_path, monkeypatch, writer_setting, compactor_setting):
    """numpy's OpenBLAS would start a thread per core in every compactor,
    which does no BLAS work; a setting in the writer's environment stands."""
    from job_helpers import report_environment_and_exit

    from lsm.ipc.launch import start_worker

    if writer_setting is None:
        monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", writer_setting)
    out = tmp_path / "environment.txt"
    proc = start_worker(report_environment_and_exit, (str(out), "OPENBLAS_NUM_THREADS", 5), "lsm-test-launch")
    proc.join(30)
    assert proc.exitcode == 5
    assert out.read_text() == compactor_setting


def test_a_compactor_process_starts_without_the_writer_or_multiprocess_modules(tmp_path):
    """Start-up time delays the first flush: a compactor loads neither the
    writer's modules nor multiprocess's bootstrap (dill), yet gets its
    target, its arguments and the parent's sys.path and working directory."""
    from job_helpers import report_modules_and_exit

    from lsm.ipc.launch import start_worker

    out = tmp_path / "modules.txt"
    proc = start_worker(report_modules_and_exit, (str(out), 7), "lsm-test-launch")
    proc.join(30)
    assert proc.exitcode == 7
    modules = set(out.read_text().split("\n"))
    assert "job_helpers" in modules and "lsm" in modules
    assert not modules & {"lsm.db", "lsm.writer.engine", "multiprocess", "dill"}, sorted(modules)
    # The worker's own imports stay clear of the writer too.
    code = ("import sys, lsm.ipc.worker, lsm.compactor.process; "
            "print(sorted(m for m in sys.modules if m in ('lsm.db', 'lsm.writer.engine')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result


def _voluntary_switches(pid: int) -> int:
    """How many times the thread `pid` (a process's main thread) went to sleep."""
    with open(f"/proc/{pid}/task/{pid}/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches in /proc")


def test_an_idle_compactor_wakes_only_for_heartbeats_and_pings(tmp_path, pool_factory):
    """An idle pool costs its compactors only their heartbeats: the socket
    thread sleeps until the next one is due or a message comes, not on a
    short timer (which woke it ten times a second)."""
    pool, _ = pool_factory(tmp_path / "db", size=1, heartbeat_interval=1.0, heartbeat_timeout=5.0)
    pid = wait_for(lambda: [r["pid"] for r in pool.stats() if r["ready"]], what="a ready compactor")[0]
    before = _voluntary_switches(pid)
    time.sleep(3)
    woke = _voluntary_switches(pid) - before
    # About three heartbeats and three pings; a 0.1 s timer alone would be 30.
    assert woke < 18, woke
