"""Job scheduling: which flushes and compactions run now, handing them to the
executor, and what happens to each result (commit, retry or a sticky error).

Knows the shared state, the memtables (frozen ones wait for flushes), the
installer (commits), the obsolete-file keeper (a finished job's version
reference), the picker (policy) and the executor interface. Holds the jobs
that are running. Does no file I/O itself.
"""
import dataclasses
import time

from ..errors import Error
from ..jobs import IN_WRITER, CompactionJob, ErrorKind, FlushJob, RetryPolicy, job_error
from . import picker
from .executors import InlineExecutor, PoolExecutor

class Running:
    """A job the writer has handed out and not yet committed."""

    __slots__ = ("job", "imm", "plan", "version", "siblings", "result", "attempt")

    def __init__(self, job, imm=None, plan=None):
        self.job = job
        self.imm = imm
        self.plan = plan
        self.version = None
        self.siblings = [self]
        self.result = None
        self.attempt = 1  # the number of its next attempt (RetryPolicy counts them)


class Scheduler:
    def __init__(self, state, memtables, installer, obsolete, run_here):
        self._state = state
        self._memtables = memtables
        self._installer = installer
        self._obsolete = obsolete
        self.run_here = run_here  # LocalRunner: runs a job in this process
        self.running = {}  # job id -> Running
        self.executor = InlineExecutor(state, run_here, self.on_result)
        # In the writer only a rejected result runs again: an inline I/O
        # failure surfaces at once, as LevelDB's background error does.
        self.retry = IN_WRITER

    def start_pool(self):
        """Run jobs in compactor processes from now on."""
        self.retry = RetryPolicy()
        self.executor = PoolExecutor.start(self._state, self.on_pool_result, self.retry)

    # ------------------------------------------------------------ starting
    def schedule(self):
        """Lock held: start every job that may run now: flushes of frozen
        memtables, then compactions that touch no file or range a running
        job holds."""
        state = self._state
        if state.bg_error is not None or state.closed or state.closing:
            return
        for imm in self._memtables.imms:
            if imm.flush_job is None:
                options = state.options
                job = FlushJob(state.next_job_id(), imm.wal_number, options.table_options(), paranoid=True,
                               comparator=options.comparator_reference,
                               unsorted_table=options.unsorted_flush_table_options())
                imm.flush_job = job
                self._submit(Running(job, imm=imm))
        executor = self.executor
        while state.bg_error is None:
            compactions = sum(1 for r in self.running.values() if r.imm is None)
            if compactions >= executor.compaction_slots:
                break
            plan = self._pick()
            if plan is None:
                break
            self.start_plan(plan)
        executor.run_queued()

    def _pick(self):
        vs = self._state.versions
        return picker.pick_compaction(vs.current.levels, vs.compact_pointers, self._state.options.max_file_size,
                                      **self._picker_kwargs())

    def _submit(self, running):
        self.running[running.job.job_id] = running
        self.executor.submit(running.job, running.attempt)

    def _picker_kwargs(self):
        busy = set()
        ranges = {}
        for r in self.running.values():
            if r.plan is not None:
                busy.update(f.number for f in r.plan.inputs)
                busy.update(f.number for f in r.plan.next_inputs)
                ranges.setdefault(r.plan.level + 1, []).append(r.plan.output_range)
        options = self._state.options
        return {"busy": frozenset(busy), "busy_ranges": ranges, "level_base": options.level_size_base,
                "move_level0": not options.level0_uncompressed}

    def start_plan(self, plan):
        """Lock held: a trivial move commits at once; any other compaction
        starts as one job per subcompaction, pinning the version it reads."""
        if plan.trivial_move:
            self._installer.commit_trivial_move(plan)
            return
        state = self._state
        options = state.options
        vs = state.versions
        smallest_snapshot = state.smallest_snapshot()
        # Only spans meeting this job's keys matter; keeps the job message small.
        deeper = picker.deeper_ranges(vs.current.levels, plan.level + 1, *plan.output_range)
        bounds = picker.subcompaction_bounds(plan, self.executor.parallelism, options.max_file_size)
        version = vs.ref(vs.current)
        siblings = []
        for lower, upper in bounds:
            job = CompactionJob(
                job_id=state.next_job_id(), level=plan.level, inputs=plan.inputs, next_inputs=plan.next_inputs,
                grandparents=plan.grandparents, smallest_snapshot=smallest_snapshot, deeper_ranges=deeper,
                max_output_file_size=options.max_file_size,
                max_grandparent_overlap=picker.max_grandparent_overlap_bytes(options.max_file_size),
                table=options.table_options(), lower=lower, upper=upper,
                comparator=options.comparator_reference)
            siblings.append(Running(job, plan=plan))
        siblings[0].version = version
        for r in siblings:
            r.siblings = siblings
        for r in siblings:
            self._submit(r)

    # ------------------------------------------------------------- results
    def on_pool_result(self, job, result):
        """Called on the pool's thread for each final result."""
        state = self._state
        with state.cv:
            if state.closed:
                return
            try:
                self.on_result(job, result)
            except BaseException as exc:  # noqa: BLE001 - recorded, surfaced to the next write
                if state.bg_error is None:
                    state.bg_error = exc
            state.cv.notify_all()

    def on_result(self, job, result):
        """Lock held: commit, retry or fail on one job's result."""
        state = self._state
        installer = self._installer
        running = self.running.pop(job.job_id, None)
        if running is None:
            installer.discard_staging(result)
            return
        running.result = result
        if not result.ok:
            self._release_version(running)
            installer.discard_staging(result)
            what = "flush" if running.imm is not None else "compaction"
            attempts = getattr(result, "attempt", running.attempt)
            failed = f"{what} job {job.job_id} failed" + (f" (attempt {attempts})" if attempts > 1 else "")
            state.log(f"{failed}: {result.error}")
            state.bg_error = job_error(result, failed, state.dbname)
            for sibling in running.siblings:
                self.running.pop(sibling.job.job_id, None)
            return
        try:
            installer.validate_outputs(result)
        except Error as exc:
            # A result whose files are missing, truncated or unreadable is
            # rejected: a failed attempt, run again under a new id if the
            # retry policy allows.
            installer.discard_staging(result)
            state.log(f"rejected result of job {job.job_id}: {exc}")
            attempt = getattr(result, "attempt", running.attempt)
            if not self.retry.retries(ErrorKind.REJECTED, attempt):
                state.bg_error = exc
                return
            running.result = None
            running.attempt = attempt + 1
            running.job = dataclasses.replace(job, job_id=state.next_job_id())
            if running.imm is not None:
                running.imm.flush_job = running.job
            self._submit(running)
            return
        if running.imm is not None:
            running.imm.flush_done = running
            installer.commit_ready_flushes(self._picker_kwargs()["busy_ranges"])
        elif all(s.result is not None for s in running.siblings):
            try:
                installer.commit_compaction(running.plan, running.siblings)
            finally:
                self._release_version(running)
        self.schedule()

    def discard(self, result):
        """Lock held: drop a result that will not be committed, with its staged files."""
        self._installer.discard_staging(result)

    def _release_version(self, running):
        released = False
        for r in running.siblings:
            if r.version is not None:
                released = self._obsolete.unref(r.version) or released
                r.version = None
        if released:
            self._obsolete.delete_obsolete_files()  # the job's inputs may now be unreferenced

    # ------------------------------------------------------------- waiting
    def wait_idle(self):
        """Lock held: wait until no job runs and no memtable waits for a flush."""
        state = self._state
        while (self.running or self._memtables.imms) and state.bg_error is None:
            if not self.executor.wait(state.cv, 0.05):
                # Nothing runs in the background: schedule() runs what it can.
                self.schedule()
                if self.running or self._memtables.imms:
                    raise Error("inline job queue did not drain")
                return
        state.check_writable()

    def is_quiet(self) -> bool:
        """Lock held: no job runs or waits, no memtable waits for a flush,
        and no level needs a compaction."""
        return (not self.running and not self._memtables.imms and not self.executor.has_queued()
                and self._pick() is None)

    def wait_for_compactions(self, timeout=None) -> bool:
        """Lock held: schedule and wait until is_quiet(); False if `timeout`
        seconds pass first. Raises the background error if one stops the work."""
        state = self._state
        deadline = None if timeout is None else time.monotonic() + timeout
        while state.bg_error is None:
            self.schedule()
            if self.is_quiet():
                break
            wait = 0.05
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                wait = min(wait, left)
            state.cv.wait(wait)
        state.check_writable()
        return True

    def compact_range(self, begin, end):
        """Lock held, memtable flushed and no job running: compact every
        level's files that overlap [begin, end] into the next level, down to
        the deepest non-empty level."""
        state = self._state
        vs = state.versions
        max_level = 1
        for level in range(1, len(vs.current.levels)):
            if vs.current.levels[level]:
                max_level = level
        for level in range(0, max_level):
            while state.bg_error is None:
                plan = picker.pick_range_compaction(vs.current.levels, level, begin, end, state.options.max_file_size)
                if plan is None:
                    break
                self.wait_idle()
                plan = picker.pick_range_compaction(vs.current.levels, level, begin, end, state.options.max_file_size)
                if plan is None:
                    break
                self.start_plan(plan)
                self.executor.run_queued()
                self.wait_idle()
            state.check_writable()
