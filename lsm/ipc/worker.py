"""The compactor process's side of the transport: a DEALER socket to the
writer's ROUTER (lsm.ipc.pool). Knows sockets and its own process; what a job
means is the job runner's business. The runner is named by the pool as
"module:qualname" and imported here, in the child (lsm.ipc.naming.resolve), so
nothing in lsm.ipc imports lsm.compactor or lsm.writer. A runner that cannot
be imported fails every job it is sent, saying why.

Started by lsm.ipc.pool (through lsm.ipc.launch) with ``main(...)`` as the
process target. Two threads:

* the main thread owns the socket: it announces READY, sends a HEARTBEAT every
  ``heartbeat_interval`` (pid, the attempt in progress, bytes written to its
  staging directory so far), receives JOB, HEARTBEAT (the writer's ping) and
  SHUTDOWN, and forwards RESULTs; it never runs a job, so heartbeats keep
  flowing while one computes;
* a job thread imports the runner (while the main thread says READY, so the
  runner's imports do not delay the first job), runs one job at a time with
  it and hands the encoded RESULT back over an inproc PAIR socket.

The process exits on its own (``os._exit``, which also ends a job in the
middle) on SHUTDOWN, when its parent changes (``os.getppid()``), when the
writer has not pinged for ``writer_timeout`` seconds (both checked at least
every heartbeat_interval), and, on Linux, through
PR_SET_PDEATHSIG (SIGKILL when the thread that started it ends). SIGINT is
ignored: the writer decides when its compactors stop.

Test hook: ``LSM_TEST_HANG`` in the environment makes the worker hang when it
receives a job: it stops heartbeating and never runs the job (it still exits
when the writer goes away). ``1`` hangs on every job; any other value is a
path, and only the worker that creates that file first (O_EXCL) hangs, once.
"""
import ctypes
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections import deque

import zmq

from ..jobs import ErrorKind, JobResult
from .codec import decode, encode
from .naming import resolve
from .messages import Heartbeat, Job, ProtocolError, Ready, Result, Shutdown

HANG_ENV = "LSM_TEST_HANG"

EXIT_SHUTDOWN = 0
EXIT_CRASHED = 1
EXIT_ORPHANED = 3  # the writer went away (parent changed or pings stopped)

_PR_SET_PDEATHSIG = 1
_RESULTS_ENDPOINT = "inproc://lsm-compactor-results"


def set_parent_death_signal(sig=signal.SIGKILL) -> bool:
    """Linux: have the kernel send `sig` to this process when the thread that
    created it ends. False where prctl is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


# A compactor's CPU priority below the writer's (nice 0 + this). Where cores
# are fewer than busy processes, the writer's writes go first -- it is the
# one a caller waits for -- and compaction takes the rest; while the writer
# is stalled or idle the compactors get the cores anyway. RocksDB lowers its
# background pool's priority the same way (LowerThreadPoolCPUPriority).
NICE_INCREMENT = 5


def _lower_priority():
    try:
        os.nice(NICE_INCREMENT)
    except OSError:
        pass  # not permitted here: run at the writer's priority


def main(endpoint, identity, parent_pid, session, heartbeat_interval, writer_timeout, env, runner):
    """Process entry point; never returns. `runner` names the job runner as
    "module:qualname": ``runner(job, db_dir, staging_dir) -> JobResult``."""
    set_parent_death_signal()
    if os.getppid() != parent_pid:  # the writer died before prctl took effect
        os._exit(EXIT_ORPHANED)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _lower_priority()
    if env:
        os.environ.update(env)
    try:
        code = _Worker(endpoint, identity, parent_pid, session, heartbeat_interval, writer_timeout, runner).run()
    except BaseException:  # noqa: BLE001 - report, then exit with a code the pool sees
        traceback.print_exc()
        code = EXIT_CRASHED
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _should_hang() -> bool:
    value = os.environ.get(HANG_ENV)
    if not value:
        return False
    if value == "1":
        return True
    try:
        os.close(os.open(value, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:
        return False
    return True


def _bytes_in(directory) -> int:
    total = 0
    try:
        with os.scandir(directory) as it:
            for entry in it:
                try:
                    total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    pass
    except OSError:
        pass
    return total


def _waiting(sock):
    """The messages waiting on `sock`, read without blocking."""
    while True:
        try:
            yield sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return


def _unresolved(name, exc):
    def fail(job, db_dir, staging_dir):
        raise RuntimeError(f"cannot import the job runner {name!r}: {type(exc).__name__}: {exc}")
    return fail


class _Worker:
    def __init__(self, endpoint, identity, parent_pid, session, heartbeat_interval, writer_timeout, runner):
        self.endpoint = endpoint
        self.runner = runner
        self.identity = identity
        self.parent_pid = parent_pid
        self.session = session
        self.interval = heartbeat_interval
        self.writer_timeout = writer_timeout
        self.pid = os.getpid()
        self.pending = deque()  # Job messages handed to the job thread, oldest first
        self.hanging = False

    def run(self) -> int:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, self.identity)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        results = ctx.socket(zmq.PAIR)
        results.bind(_RESULTS_ENDPOINT)
        jobs = queue.SimpleQueue()
        threading.Thread(target=self._job_loop, args=(ctx, jobs), name="lsm-compactor-job", daemon=True).start()

        send = sock.send_multipart
        send(encode(Ready(pid=self.pid)))
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(results, zmq.POLLIN)
        last_ping = time.monotonic()
        next_beat = last_ping + self.interval
        while True:
            # Asleep until the next heartbeat unless a message comes: an idle
            # compactor wakes for its heartbeats and the writer's pings only.
            wait = max(0.0, next_beat - time.monotonic())
            events = dict(poller.poll(int(wait * 1000) + 1))
            if sock in events:
                for frames in _waiting(sock):
                    last_ping = time.monotonic()  # any message proves the writer alive
                    try:
                        msg = decode(frames)
                    except ProtocolError as exc:
                        print(f"lsm compactor {self.pid}: dropped a bad message: {exc}", file=sys.stderr)
                        continue
                    if isinstance(msg, Shutdown):
                        return EXIT_SHUTDOWN
                    if isinstance(msg, Job):
                        self._accept(msg, jobs)
            if results in events:
                for frames in _waiting(results):
                    if self.pending:
                        self.pending.popleft()
                    send(frames)
            now = time.monotonic()
            if os.getppid() != self.parent_pid or now - last_ping > self.writer_timeout:
                return EXIT_ORPHANED
            if now >= next_beat:
                next_beat = now + self.interval
                if not self.hanging:
                    send(encode(self._heartbeat()))

    def _accept(self, msg, jobs):
        if self.hanging:
            return
        if msg.session != self.session:
            print(f"lsm compactor {self.pid}: ignored job {msg.job_id} of session {msg.session!r}",
                  file=sys.stderr)
            return
        if _should_hang():
            self.hanging = True
            return
        self.pending.append(msg)
        jobs.put(msg)

    def _heartbeat(self):
        if not self.pending:
            return Heartbeat(pid=self.pid, session=self.session)
        job = self.pending[0]
        return Heartbeat(pid=self.pid, session=job.session, job_id=job.job_id, attempt=job.attempt,
                         bytes_done=_bytes_in(job.staging_dir))

    def _job_loop(self, ctx, jobs):
        out = ctx.socket(zmq.PAIR)
        out.connect(_RESULTS_ENDPOINT)
        try:
            run_job = resolve(self.runner)
        except Exception as exc:  # noqa: BLE001 - each job's result says why it cannot run
            run_job = _unresolved(self.runner, exc)
        while True:
            msg = jobs.get()
            try:
                result = run_job(msg.job, msg.db_dir, msg.staging_dir)
            except BaseException as exc:  # noqa: BLE001 - a runner should not raise; report it if it does
                result = JobResult.failure(msg.job_id, exc)
            reply = Result(session=msg.session, job_id=msg.job_id, attempt=msg.attempt, pid=self.pid,
                           result=result)
            try:
                frames = encode(reply)
            except ValueError as exc:
                reply.result = JobResult(job_id=msg.job_id, ok=False, error_kind=ErrorKind.OTHER,
                                         error=f"unencodable result: {exc}")
                frames = encode(reply)
            out.send_multipart(frames)
