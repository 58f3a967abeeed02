"""The writer's side of the compactor pool. Knows sockets, child processes and
staging directories; never versions, the MANIFEST or file numbers.

``CompactorPool`` runs N compactor processes (lsm.ipc.worker, started by
lsm.ipc.launch, each running jobs with the function named by ``runner``)
and one I/O thread that owns a ROUTER socket bound on an ``ipc://``
endpoint in a private 0700 directory (lsm.ipc.endpoint). The thread hands
queued jobs to idle workers, receives RESULTs and HEARTBEATs, pings every
worker, and watches liveness. A second thread calls
``on_result``, so a slow callback never delays heartbeats or pings.

One attempt of one job
    Each submitted job is tracked with an attempt number (1, 2, ...) and a
    fresh, empty staging directory per attempt,
    ``{db_dir}/lsm-staging/{session}-{job_id}-{attempt}``, created by the pool
    before dispatch. JOB and RESULT carry (session, job_id, attempt).

Accepting a RESULT
    Only when the session is this pool's, (job_id, attempt) is the current
    attempt of a running job, and it comes from the worker that was given that
    attempt. Anything else (duplicate, stale, abandoned attempt, foreign
    session) is counted in ``counters['results_ignored']`` and its staging
    directory removed, except a directory already handed to ``on_result``
    (the writer owns it) or one a live worker is still writing.

Failures
    An attempt fails with the worker's ``ok=False`` result, or with one the
    pool makes (ErrorKind.OTHER) when the worker died (exit, SIGKILL), went
    silent for ``heartbeat_timeout`` seconds, or its heartbeats still do not
    show the attempt it was sent that long after dispatch (it is then
    SIGKILLed and reaped before anything else happens). The attempt's staging
    directory is removed and a dead worker replaced. ``retry``
    (lsm.jobs.RetryPolicy) decides from the result's ``error_kind`` and the
    attempt number: either the job is queued again as attempt + 1 after the
    policy's delay, on whichever worker is idle first, or this failure is
    final (damaged input at once, others after the last attempt). The error
    text is the worker's, unchanged; the attempt number travels beside it.

What ``on_result(job, result)`` receives
    ``job`` is the submitted object. ``result`` is a JobResult with two
    attributes added by the pool: ``result.staging_dir`` (the directory of
    the final attempt; for ``ok=True`` the outputs are there, named by
    ``OutputTable.name``, and the writer owns the directory from then on and
    must remove it after installing; for ``ok=False`` the pool has already
    removed it) and ``result.attempt`` (its number: 1, 2, ...). Called once per job, in the pool's
    callback thread; an exception it raises is logged and ignored.

Closing
    ``close(timeout)`` stops dispatching, waits up to ``timeout`` for running
    attempts (their results are still delivered), sends SHUTDOWN, SIGKILLs
    whatever is left and reaps every child. Jobs not finished are returned
    (never delivered) and their staging directories removed. A finalizer
    (weakref.finalize, so also at interpreter exit) SIGKILLs any child still
    alive if ``close`` was never called. Workers also end themselves when the
    writer dies (see lsm.ipc.worker).
"""
import itertools
import logging
import os
import re
import shutil
import signal
import threading
import time
import weakref
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import psutil
import zmq

from ..jobs import CompactionJob, ErrorKind, FlushJob, JobResult, RetryPolicy
from ..errors import ClosedError, Error
from ..fileio import DEFAULT_FS
from ..filenames import STAGING_DIR_NAME, job_staging_dir
from .codec import decode, encode
from .endpoint import endpoint_of, make_endpoint_dir
from .launch import start_worker
from .messages import Heartbeat, Job, ProtocolError, Ready, Result, Shutdown
from .naming import split_name
from .worker import main as worker_main

STAGING_DIR = STAGING_DIR_NAME  # the sub-directory the engine clears at open

log = logging.getLogger(__name__)

_SESSION_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_MAX_POLL = 0.1
_DELIVERED_MEMORY = 4096
_SHUTDOWN_GRACE = 1.0
# Workers leave after this long without a ping. Three intervals, but never so
# short that a writer busy in one long C call (a big sort) loses its pool.
_MIN_WRITER_TIMEOUT = 2.0


@dataclass
class RunningJob:
    """A snapshot of one unfinished job (``CompactorPool.running_jobs``)."""

    job: FlushJob | CompactionJob
    attempt: int
    state: str  # 'queued' (waiting for a worker or a back-off) or 'running'
    pid: int | None
    staging_dir: str
    errors: list[str] = field(default_factory=list)  # one per failed earlier attempt


class _Attempt:
    __slots__ = ("job", "attempt", "staging_dir", "state", "worker", "not_before", "errors", "dispatched")

    def __init__(self, job, attempt, staging_dir, not_before):
        self.job = job
        self.attempt = attempt
        self.staging_dir = staging_dir
        self.state = "queued"
        self.worker = None
        self.not_before = not_before
        self.errors = []
        self.dispatched = 0.0


class _Worker:
    __slots__ = ("slot", "identity", "process", "pid", "ps", "started", "ready", "last_seen", "job",
                 "bytes_done", "lost_job")

    def __init__(self, slot, identity, process, now):
        self.slot = slot
        self.identity = identity
        self.process = process
        self.pid = process.pid
        try:
            self.ps = psutil.Process(process.pid)
        except psutil.Error:
            self.ps = None
        self.started = now
        self.ready = False
        self.last_seen = now
        self.job = None  # the _Attempt it runs
        self.bytes_done = 0
        self.lost_job = False  # its heartbeats do not show the job it was sent


class _Slot:
    __slots__ = ("index", "worker", "restarts", "jobs_done", "start_failures", "next_start", "started_once")

    def __init__(self, index):
        self.index = index
        self.worker = None
        self.restarts = 0
        self.jobs_done = 0
        self.start_failures = 0  # consecutive workers that died before READY
        self.next_start = 0.0
        self.started_once = False


class _Reaper:
    """The children of one pool, for the last-resort finalizer. Holds no
    reference to the pool."""

    def __init__(self, ipc_dir):
        self.lock = threading.Lock()
        self.procs = {}
        self.stopped = False
        self.ipc_dir = ipc_dir

    def kill_all(self):
        with self.lock:
            self.stopped = True
            procs = list(self.procs.values())
            self.procs.clear()
        for proc in procs:
            _sigkill(proc.pid)
        for proc in procs:
            try:
                proc.join(5)
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
        shutil.rmtree(self.ipc_dir, ignore_errors=True)


def _compaction_last(attempt) -> bool:
    return not isinstance(attempt.job, FlushJob)


def _sigkill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class CompactorPool:
    """N compactor processes fed from one I/O thread; see the module docstring.

    db_dir              the database directory (jobs read it; staging lives in it)
    size                number of worker processes
    on_result(job, r)   called once per job, in the pool's callback thread
    runner              "module:qualname" of the function a worker runs each job
                        with, ``runner(job, db_dir, staging_dir) -> JobResult``
                        (imported in the worker process only)
    heartbeat_interval  seconds between heartbeats (worker -> writer) and pings
                        (writer -> worker)
    heartbeat_timeout   a ready worker silent this long is SIGKILLed and replaced
    retry               RetryPolicy: which failed attempts are tried again,
                        how often and after how long
    fs                  FileSystem for staging directories (lsm.fileio)
    session             this pool's session id (default: 16 random hex digits)
    worker_env          extra environment variables for the workers (test hooks:
                        LSM_TEST_JOB_SLEEP, LSM_TEST_FAULTS, LSM_TEST_HANG)
    start_timeout       a worker not READY this long after starting is replaced
    writer_timeout      a worker pinged by nobody this long exits (default:
                        3 * heartbeat_interval, at least 2 s)
    """

    def __init__(self, db_dir, size, *, on_result, runner, heartbeat_interval=0.5, heartbeat_timeout=5.0,
                 retry=RetryPolicy(), fs=None, session=None, worker_env=None, start_timeout=30.0,
                 writer_timeout=None):
        if size < 1:
            raise ValueError(f"a compactor pool needs at least one worker, not {size}")
        if heartbeat_interval <= 0 or heartbeat_timeout <= 2 * heartbeat_interval:
            raise ValueError(f"heartbeat_timeout ({heartbeat_timeout}) must exceed twice "
                             f"heartbeat_interval ({heartbeat_interval})")
        split_name(runner)  # a bad name fails here, not in every worker
        session = os.urandom(8).hex() if session is None else session
        if not _SESSION_RE.match(session):
            raise ValueError(f"session id {session!r}: use 1-64 letters, digits or '_'")
        self.db_dir = os.fspath(db_dir)
        self.size = size
        self.session = session
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.writer_timeout = (writer_timeout if writer_timeout is not None
                               else max(3 * heartbeat_interval, _MIN_WRITER_TIMEOUT))
        self.retry = retry
        self.start_timeout = start_timeout
        self.fs = fs if fs is not None else DEFAULT_FS
        self.worker_env = dict(worker_env or {})
        self.runner = runner
        self.counters = Counter()
        self._on_result = on_result

        self._lock = threading.RLock()
        self._slots = [_Slot(i) for i in range(size)]
        self._by_identity = {}
        self._attempts = {}  # job_id -> _Attempt, in submission order
        self._inbox = []  # _Attempts submitted, not yet seen by the pool thread
        self._delivered = OrderedDict()  # (job_id, attempt) handed to on_result with ok=True
        self._abandoned = []
        self._closing = False
        self._close_deadline = 0.0
        self._failure = None
        self._identities = itertools.count(1)
        self._results = []  # (job, result) waiting for the callback thread
        self._results_cv = threading.Condition(threading.Lock())
        self._results_done = False
        self._wake_lock = threading.Lock()
        self._wake_r = self._wake_w = None

        self._ipc_dir = make_endpoint_dir()
        self._reaper = _Reaper(self._ipc_dir)
        self._finalizer = weakref.finalize(self, self._reaper.kill_all)
        self.endpoint = endpoint_of(self._ipc_dir)
        self._ctx = zmq.Context()
        try:
            self._router = self._ctx.socket(zmq.ROUTER)
            self._router.setsockopt(zmq.LINGER, 0)
            self._router.bind(self.endpoint)
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
        except BaseException:
            self._ctx.destroy(0)
            self._finalizer()
            raise
        self._thread = threading.Thread(target=self._run, name="lsm-compactor-pool", daemon=True)
        self._callbacks = threading.Thread(target=self._callback_loop, name="lsm-compactor-results",
                                           daemon=True)
        self._callbacks.start()
        self._thread.start()

    # ------------------------------------------------------------ public API

    def submit(self, job, attempt=1) -> None:
        """Queue a FlushJob or CompactionJob; thread-safe, never blocks.
        `attempt` > 1 continues a job whose earlier attempts ran elsewhere
        (the writer's own) and failed: it starts after the retry policy's
        delay, and the policy counts those attempts."""
        if not isinstance(job, (FlushJob, CompactionJob)):
            raise TypeError(f"not a job: {type(job).__name__}")
        if type(attempt) is not int or attempt < 1:
            raise ValueError(f"attempt must be a positive integer, not {attempt!r}")
        with self._lock:
            if self._closing:
                raise ClosedError("the compactor pool is closed")
            if self._failure is not None:
                raise Error(f"the compactor pool failed: {self._failure!r}")
            if job.job_id in self._attempts or any(a.job.job_id == job.job_id for a in self._inbox):
                raise ValueError(f"job {job.job_id} is already in the pool")
            not_before = time.monotonic() + self.retry.delay(attempt - 1) if attempt > 1 else 0.0
            self._inbox.append(_Attempt(job, attempt, self._staging_path(job.job_id, attempt), not_before))
        self._wake()

    def take_queued(self, job_id) -> bool:
        """Withdraw a job nobody has tried (its first attempt, never
        dispatched), so the caller can run it itself. True if withdrawn;
        the pool then forgets it and delivers no result for it."""
        with self._lock:
            for i, a in enumerate(self._inbox):
                if a.job.job_id == job_id:
                    if a.attempt != 1:
                        return False
                    del self._inbox[i]
                    return True
            a = self._attempts.get(job_id)
            if a is not None and a.state == "queued" and a.attempt == 1:
                del self._attempts[job_id]  # its staging directory is made at dispatch: none yet
                return True
        return False

    def running_jobs(self) -> list[RunningJob]:
        """Unfinished jobs, in submission order."""
        with self._lock:
            out = [RunningJob(a.job, a.attempt, a.state, a.worker.pid if a.worker else None, a.staging_dir,
                              list(a.errors)) for a in [*self._attempts.values(), *self._inbox]]
        return out

    def stats(self) -> list[dict]:
        """One dict per worker slot: slot, pid, alive, ready, cpu_percent,
        rss_bytes, jobs_done, restarts, job (job id or None), attempt,
        bytes_done."""
        with self._lock:
            rows = []
            for slot in self._slots:
                w = slot.worker
                rows.append((w.ps if w else None, {
                    "slot": slot.index,
                    "pid": w.pid if w else None,
                    "alive": False,
                    "ready": bool(w and w.ready),
                    "cpu_percent": 0.0,
                    "rss_bytes": 0,
                    "jobs_done": slot.jobs_done,
                    "restarts": slot.restarts,
                    "job": w.job.job.job_id if w and w.job else None,
                    "attempt": w.job.attempt if w and w.job else None,
                    "bytes_done": w.bytes_done if w and w.job else 0,
                }))
        for ps, row in rows:
            if ps is None:
                continue
            try:
                with ps.oneshot():
                    row["alive"] = ps.is_running() and ps.status() != psutil.STATUS_ZOMBIE
                    row["cpu_percent"] = ps.cpu_percent(None)
                    row["rss_bytes"] = ps.memory_info().rss
            except psutil.Error:
                row["alive"] = False
        return [row for _, row in rows]

    def close(self, timeout=10.0) -> list:
        """Stop, as the module docstring says; returns the jobs left
        unfinished (never passed to on_result). Idempotent."""
        with self._lock:
            if not self._closing:
                self._closing = True
                self._close_deadline = time.monotonic() + max(0.0, timeout)
        self._wake()
        me = threading.current_thread()
        if me is not self._thread:
            self._thread.join(max(0.0, timeout) + _SHUTDOWN_GRACE + 10)
            if self._thread.is_alive():
                log.error("compactor pool thread did not stop; killing its workers")
                self._reaper.kill_all()
        if me is not self._callbacks and me is not self._thread:
            self._callbacks.join(30)
        self._finalizer()
        with self._lock:
            return [a.job for a in self._abandoned]

    @property
    def closed(self) -> bool:
        return self._closing

    def runs_on_this_thread(self) -> bool:
        """Whether the caller is one of the pool's own threads (whose work
        a close from here could not wait for)."""
        me = threading.current_thread()
        return me is self._thread or me is self._callbacks

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ pool thread

    def _wake(self):
        with self._wake_lock:  # never write to a closed (and maybe reused) descriptor
            if self._wake_w is None:
                return
            try:
                os.write(self._wake_w, b"\0")
            except BlockingIOError:
                pass  # the pipe is full: a wake-up is pending anyway

    def _staging_path(self, job_id, attempt, session=None):
        return job_staging_dir(self.db_dir, session or self.session, job_id, attempt)

    def _run(self):
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        next_ping = time.monotonic() + self.heartbeat_interval
        try:
            while True:
                now = time.monotonic()
                wait = min(_MAX_POLL, max(0.0, next_ping - now))
                with self._lock:
                    backoffs = [a.not_before for a in self._attempts.values() if a.state == "queued"]
                if backoffs:
                    wait = min(wait, max(0.0, min(backoffs) - now))
                events = dict(poller.poll(int(wait * 1000) + 1))
                if self._wake_r in events:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                deliveries = []
                with self._lock:
                    now = time.monotonic()
                    if self._router in events:
                        self._receive(now, deliveries)
                    self._take_inbox()
                    self._check_workers(now, deliveries)
                    if not self._closing:
                        self._start_workers(now)
                        self._dispatch(now, deliveries)
                    if now >= next_ping:
                        next_ping = now + self.heartbeat_interval
                        self._ping()
                    done = self._closing and self._close_ready(now)
                self._post(deliveries)
                if done:
                    break
        except BaseException as exc:  # noqa: BLE001 - the pool is broken: fail every job, end children
            log.exception("compactor pool thread failed")
            with self._lock:
                self._failure = exc
        finally:
            try:
                self._end_workers()
                if self._failure is not None:  # nobody else will finish these jobs: say so
                    with self._lock:
                        lost, self._abandoned = self._abandoned, []
                    self._post([(a.job, JobResult(job_id=a.job.job_id, ok=False, error_kind=ErrorKind.OTHER,
                                                  error=f"compactor pool failed: {self._failure!r}"))
                                for a in lost])
            finally:
                self._release()

    def _take_inbox(self):
        for a in self._inbox:
            self._attempts[a.job.job_id] = a
        self._inbox.clear()

    # --- messages

    def _receive(self, now, deliveries):
        while True:
            try:
                frames = self._router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            identity, payload = frames[0], frames[1:]
            w = self._by_identity.get(identity)
            try:
                msg = decode(payload)
            except ProtocolError as exc:
                self.counters["bad_messages"] += 1
                log.warning("compactor pool: dropped a bad message from %r: %s", identity, exc)
                continue
            if w is not None:
                w.last_seen = now
            if isinstance(msg, Heartbeat):
                self.counters["heartbeats"] += 1
                if w is not None:
                    w.bytes_done = msg.bytes_done
                    a = w.job
                    if (a is not None and (msg.job_id, msg.attempt) != (a.job.job_id, a.attempt)
                            and now - a.dispatched > self.heartbeat_timeout):
                        w.lost_job = True  # replaced by _check_workers, like a hung worker
            elif isinstance(msg, Result):
                self._on_result_message(w, msg, now, deliveries)
            elif isinstance(msg, Ready):
                if w is not None:
                    w.ready = True
                    self._slots[w.slot].start_failures = 0
            else:
                self.counters["bad_messages"] += 1

    def _on_result_message(self, w, msg, now, deliveries):
        a = self._attempts.get(msg.job_id)
        current = (msg.session == self.session and a is not None and a.state == "running"
                   and a.attempt == msg.attempt)
        if current and w is not None and a.worker is w:
            w.job = None
            w.bytes_done = 0
            self._slots[w.slot].jobs_done += 1
            self.counters["results_accepted"] += 1
            result = msg.result
            if result.job_id != msg.job_id:
                result = JobResult(job_id=msg.job_id, ok=False, error_kind=ErrorKind.OTHER,
                                   error=f"compactor pid {w.pid} answered job {msg.job_id} with a result "
                                         f"for job {result.job_id}")
            if result.ok:
                self._finish(a, result, deliveries)
            else:
                self._failed_attempt(a, result, now, deliveries)
            return
        log.info("compactor pool: ignored result of job %s attempt %s (session %r) from pid %s",
                 msg.job_id, msg.attempt, msg.session, msg.pid)
        owned = current or (msg.session == self.session and (msg.job_id, msg.attempt) in self._delivered)
        if not owned and _SESSION_RE.match(msg.session):  # else a live worker / the writer uses it
            self.fs.rmtree(self._staging_path(msg.job_id, msg.attempt, msg.session))
        # Counted last: whoever watches the counter may rely on the clean-up being done.
        self.counters["results_ignored"] += 1

    # --- job life cycle

    def _failed_attempt(self, a, result, now, deliveries):
        """Attempt `a` failed with `result` (its worker is done with, or dead
        and reaped from, its staging directory)."""
        self.fs.rmtree(a.staging_dir)
        a.errors.append(result.error)
        if not self.retry.retries(result.error_kind, a.attempt):
            self._finish(a, result, deliveries)
        elif self._closing:
            del self._attempts[a.job.job_id]
            self._abandoned.append(a)
        else:
            self.counters["retries"] += 1
            a.worker = None
            a.state = "queued"
            a.not_before = now + self.retry.delay(a.attempt)
            a.attempt += 1
            a.staging_dir = self._staging_path(a.job.job_id, a.attempt)

    def _finish(self, a, result, deliveries):
        del self._attempts[a.job.job_id]
        if a.worker is not None and a.worker.job is a:
            a.worker.job = None
        result.staging_dir = a.staging_dir
        result.attempt = a.attempt
        if result.ok:
            self._delivered[(a.job.job_id, a.attempt)] = True
            while len(self._delivered) > _DELIVERED_MEMORY:
                self._delivered.popitem(last=False)
        else:
            self.fs.rmtree(a.staging_dir)
        deliveries.append((a.job, result))

    def _dispatch(self, now, deliveries):
        idle = [s.worker for s in self._slots if s.worker and s.worker.ready and s.worker.job is None]
        if not idle:
            return
        # Flushes first: a writer may be waiting for room in memory.
        for a in sorted(self._attempts.values(), key=_compaction_last):
            if not idle:
                return
            if a.state != "queued" or a.not_before > now:
                continue
            try:
                frames = encode(Job(self.session, a.job.job_id, a.attempt, self.db_dir, a.staging_dir, a.job))
            except ValueError as exc:  # a malformed job fails the same way on every attempt
                self._finish(a, JobResult(job_id=a.job.job_id, ok=False, error_kind=ErrorKind.OTHER,
                                          error=f"cannot send job: {exc}"), deliveries)
                continue
            try:
                self.fs.rmtree(a.staging_dir)
                self.fs.mkdir(a.staging_dir)
            except Exception as exc:  # noqa: BLE001 - e.g. disk full: a failed attempt like any other
                failed = JobResult.failure(a.job.job_id, exc, context=f"cannot create {a.staging_dir}: ")
                self._failed_attempt(a, failed, now, deliveries)
                continue
            w = idle.pop(0)
            self._router.send_multipart([w.identity] + frames)
            a.state = "running"
            a.dispatched = now
            a.worker = w
            w.job = a
            w.bytes_done = 0

    def _ping(self):
        frames = encode(Heartbeat(pid=os.getpid(), session=self.session))
        for slot in self._slots:
            w = slot.worker
            if w is not None and w.ready:
                self._router.send_multipart([w.identity] + frames)

    # --- workers

    def _start_workers(self, now):
        for slot in self._slots:
            if slot.worker is None and now >= slot.next_start:
                self._start(slot, now)

    def _start(self, slot, now):
        identity = f"w{slot.index}.{next(self._identities)}".encode()
        args = (self.endpoint, identity, os.getpid(), self.session, self.heartbeat_interval,
                self.writer_timeout, self.worker_env, self.runner)
        with self._reaper.lock:
            if self._reaper.stopped:
                return
            try:
                proc = start_worker(worker_main, args, f"lsm-compactor-{slot.index}")
            except Exception:  # noqa: BLE001 - e.g. EAGAIN: try again later
                log.exception("compactor pool: cannot start a worker")
                slot.start_failures += 1
                slot.next_start = now + min(5.0, 0.05 * 2 ** slot.start_failures)
                return
            self._reaper.procs[proc.pid] = proc
        if slot.started_once:
            slot.restarts += 1
        slot.started_once = True
        slot.worker = _Worker(slot.index, identity, proc, now)
        self._by_identity[identity] = slot.worker
        self.counters["workers_started"] += 1

    def _check_workers(self, now, deliveries):
        for slot in self._slots:
            w = slot.worker
            if w is None:
                continue
            code = w.process.exitcode
            if code is not None:
                reason = f"died (signal {-code})" if code < 0 else f"exited with code {code}"
            elif not w.ready and now - w.started > self.start_timeout:
                reason = f"sent no READY within {self.start_timeout:g}s"
            elif w.ready and now - w.last_seen > self.heartbeat_timeout:
                reason = f"sent no heartbeat for {now - w.last_seen:.1f}s"
            elif w.lost_job and w.job is not None:
                reason = f"does not report the job it was sent {self.heartbeat_timeout:g}s ago"
            else:
                continue
            log.warning("compactor pool: worker pid %s %s; replacing it", w.pid, reason)
            self.counters["workers_lost"] += 1
            self._retire(slot, reason, now, deliveries)

    def _retire(self, slot, reason, now, deliveries):
        """SIGKILL and reap the slot's worker, then fail its attempt."""
        w = slot.worker
        slot.worker = None
        self._by_identity.pop(w.identity, None)
        self._reap(w.process)
        if not w.ready:
            slot.start_failures += 1
            slot.next_start = now + min(5.0, 0.05 * 2 ** slot.start_failures)
        a, w.job = w.job, None
        if a is not None:
            lost = JobResult(job_id=a.job.job_id, ok=False, error_kind=ErrorKind.OTHER,
                             error=f"compactor pid {w.pid} {reason} during attempt {a.attempt}")
            self._failed_attempt(a, lost, now, deliveries)

    def _reap(self, proc):
        _sigkill(proc.pid)
        proc.join(5)
        if proc.exitcode is None:
            log.error("compactor pid %s survived SIGKILL for 5s", proc.pid)
            return  # left in the reaper for the last-resort kill
        with self._reaper.lock:
            self._reaper.procs.pop(proc.pid, None)
        try:
            proc.close()
        except ValueError:
            pass

    # --- closing

    def _close_ready(self, now):
        running = [a for a in self._attempts.values() if a.state == "running"]
        return not running or now >= self._close_deadline

    def _end_workers(self):
        """End every worker: SHUTDOWN, a short grace for the ready ones,
        SIGKILL, reap. Then move unfinished jobs to the abandoned list and
        remove their staging directories (nobody writes there any more)."""
        try:
            with self._lock:
                self._closing = True
                workers = [s.worker for s in self._slots if s.worker is not None]
                frames = encode(Shutdown("pool closing"))
                for w in workers:
                    if w.ready:
                        try:
                            self._router.send_multipart([w.identity] + frames)
                        except zmq.ZMQError:
                            pass
            deadline = time.monotonic() + _SHUTDOWN_GRACE
            while time.monotonic() < deadline and any(w.ready and w.process.exitcode is None for w in workers):
                time.sleep(0.01)
        finally:
            with self._lock:
                for slot in self._slots:
                    if slot.worker is not None:
                        w, slot.worker = slot.worker, None
                        self._reap(w.process)
                self._by_identity.clear()
                self._take_inbox()
                for a in self._attempts.values():
                    self.fs.rmtree(a.staging_dir)
                    self._abandoned.append(a)
                self._attempts.clear()

    def _release(self):
        try:
            self._reaper.kill_all()
            self._router.close(0)
            self._ctx.term()
            with self._wake_lock:
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_r = self._wake_w = None
        finally:
            with self._results_cv:
                self._results_done = True
                self._results_cv.notify_all()

    # ------------------------------------------------------------ callbacks

    def _post(self, deliveries):
        if deliveries:
            with self._results_cv:
                self._results.extend(deliveries)
                self._results_cv.notify_all()

    def _callback_loop(self):
        while True:
            with self._results_cv:
                while not self._results and not self._results_done:
                    self._results_cv.wait()
                if not self._results:
                    return
                batch, self._results = self._results, []
            for job, result in batch:
                try:
                    self._on_result(job, result)
                except Exception:  # noqa: BLE001 - the writer's bug must not stop the pool
                    log.exception("compactor pool: on_result raised for job %s", job.job_id)
