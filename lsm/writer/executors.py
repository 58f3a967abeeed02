"""Where jobs run: the executor interface the scheduler hands jobs to, with
two implementations, and the runner that runs one job in this process.

- ``InlineExecutor`` (``compactors=0``) queues jobs and runs them in the
  writer's own thread, lock held, when the scheduler calls ``run_queued``.
- ``PoolExecutor`` passes them to a pool of compactor processes, whose
  results arrive on the pool's thread.

Both answer the same questions, so the scheduler, the write control and the
close path never ask which one they have. Knows the job contract, the
runner and (for the pool) lsm.ipc; nothing of versions or memtables.
"""
from collections import deque

from .. import filenames
from ..compactor.runner import run_job


class LocalRunner:
    """Runs a job here and now (recovery, the inline executor, a stalled
    writer), in a staging directory of its own under this open's session."""

    def __init__(self, state, block_cache):
        self._state = state
        self._block_cache = block_cache

    def staging_dir(self, job_id):
        return filenames.job_staging_dir(self._state.dbname, self._state.session, job_id)

    def __call__(self, job, rows=None):
        state = self._state
        staging = self.staging_dir(job.job_id)
        state.fs.mkdir(staging)
        result = run_job(job, state.dbname, staging, state.fs, self._block_cache, rows,
                         compare=state.options.comparator)
        result.staging_dir = staging
        return result


class InlineExecutor:
    """Jobs run one after another in the writer's thread."""

    runs_in_background = False  # a write never waits for a job: the writer runs them
    compaction_slots = 1
    parallelism = 1

    def __init__(self, state, run, deliver):
        self._state = state
        self._run = run  # job -> JobResult
        self._deliver = deliver  # (job, result), lock held
        self._queue = deque()
        self._draining = False

    def submit(self, job, attempt=1):
        self._queue.append(job)  # attempts here are counted by the scheduler

    def has_queued(self) -> bool:
        return bool(self._queue)

    def run_queued(self):
        """Lock held: run the queued jobs. A loop, not recursion: each
        commit may schedule the next job, which this loop then takes."""
        if self._draining:
            return
        self._draining = True
        try:
            while self._queue and self._state.bg_error is None:
                job = self._queue.popleft()
                self._deliver(job, self._run(job))
        finally:
            self._draining = False
            self._queue.clear()

    def take_queued(self, job_id) -> bool:
        return False  # nothing waits here for a stalled writer to take

    def wait(self, cv, timeout) -> bool:
        """Whether waiting on cv can bring a result: never, here."""
        return False

    def runs_on_this_thread(self) -> bool:
        return False

    def stats(self) -> list:
        return []

    def detach(self):
        return None


class PoolExecutor:
    """Jobs run in a pool of compactor processes (lsm.ipc.pool)."""

    runs_in_background = True

    def __init__(self, pool, size):
        self._pool = pool
        self.parallelism = size
        # One compaction more than there are compactors waits in the pool's
        # queue: a compactor that finishes starts it at once instead of idling
        # through the commit of its result and the next pick.
        self.compaction_slots = size + 1

    @classmethod
    def start(cls, state, on_result, retry):
        from ..compactor import PROCESS_RUNNER
        from ..ipc.pool import CompactorPool
        options = state.options
        pool = CompactorPool(state.dbname, options.compactors, on_result=on_result, fs=state.fs,
                             runner=PROCESS_RUNNER, retry=retry,
                             heartbeat_timeout=options.compactor_heartbeat_timeout,
                             worker_env=options.compactor_env)
        return cls(pool, options.compactors)

    def submit(self, job, attempt=1):
        """attempt > 1: the job failed before (in the writer) and the pool
        continues its count."""
        self._pool.submit(job, attempt)

    def has_queued(self) -> bool:
        return False  # the pool's queue is counted among the running jobs

    def run_queued(self):
        pass

    def take_queued(self, job_id) -> bool:
        """Take a job back that no compactor has started; whether it was."""
        return self._pool is not None and self._pool.take_queued(job_id)

    def wait(self, cv, timeout) -> bool:
        cv.wait(timeout)
        return True

    def runs_on_this_thread(self) -> bool:
        return self._pool is not None and self._pool.runs_on_this_thread()

    def stats(self) -> list:
        return self._pool.stats() if self._pool is not None else []

    def detach(self):
        """Lock held, at close: the pool, for the caller to close outside the lock."""
        pool, self._pool = self._pool, None
        return pool
