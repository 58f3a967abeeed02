"""Write control: the one admission check every write passes, a single put
as much as a batch. Writes are slowed down once level 0 piles up, stopped
while frozen memtables or level-0 files are at their limit (the stalled
writer runs a waiting flush itself rather than sleep), and the memtable is
switched when it is full.

Knows the shared state, the memtables and the scheduler (to start flushes,
and to take one back to run here). No file I/O of its own.
"""
import time

from ..errors import Error
from ..jobs import JobResult

# LevelDB's delay per write once level 0 reaches the slowdown trigger: hands
# the CPU to compaction without stalling any single write for long.
SLOWDOWN_SECONDS = 0.001


class WriteControl:
    def __init__(self, state, memtables, scheduler):
        self._state = state
        self._memtables = memtables
        self._scheduler = scheduler
        self._options = state.options
        # A write may skip make_room (and the write queue) while nothing
        # would delay or refuse it: no background error, the database open,
        # and its memtable below this many bytes. 0 while writes slow down.
        self.unqueued_bytes_limit = 0
        self.refresh()
        state.versions.add_listener(self.refresh)

    def refresh(self):
        """Lock held: publish unqueued_bytes_limit again, after a new version
        (its level 0 may have grown or shrunk) or a new executor."""
        level0 = len(self._state.versions.current.levels[0])
        self.unqueued_bytes_limit = 0 if self._slows_down(level0) else self._options.write_buffer_size

    def _slows_down(self, level0) -> bool:
        # Only compactors in the background can catch up while a write waits.
        return level0 >= self._options.level0_slowdown_writes_trigger and \
            self._scheduler.executor.runs_in_background

    def make_room(self):
        """Lock held, called by the head writer. Slows the write down once
        level 0 piles up, stops it while frozen memtables or level-0 files
        are at their limit, and switches to a new memtable when it is full."""
        state = self._state
        options = self._options
        memtables = self._memtables
        delayed = stalled = paid_debt = False
        while True:
            if state.bg_error is not None:
                raise state.bg_error
            level0 = len(state.versions.current.levels[0])
            if not delayed and self._slows_down(level0):
                delayed = True
                state.stats["delayed_writes"] += 1
                started = time.monotonic()
                state.cv.release()
                try:
                    time.sleep(SLOWDOWN_SECONDS)
                finally:
                    state.cv.acquire()
                state.stats["stall_seconds"] += time.monotonic() - started
                continue
            if memtables.mem.approximate_bytes < options.write_buffer_size:
                return
            if len(memtables.imms) >= options.max_frozen_memtables or level0 >= options.level0_stop_writes_trigger:
                if not self._scheduler.executor.runs_in_background:
                    if not paid_debt:
                        # Compactions an inline open left owing run now, here.
                        paid_debt = True
                        self._scheduler.schedule()
                        continue
                    raise Error("inline engine cannot make room: frozen memtables or level 0 at their limit")
                if not stalled:
                    stalled = True
                    state.log(f"Stalling writes: {len(memtables.imms)} frozen memtables, {level0} level-0 files")
                if not self._flush_while_stalled():
                    self._stall_wait()
                continue
            memtables.switch()
            self._scheduler.schedule()

    def _flush_while_stalled(self) -> bool:
        """Lock held, writes stalled: run the oldest flush no compactor has
        started here, in this thread, instead of sleeping. With every
        compactor busy (on 2 cores, one compactor behind a long compaction)
        the writer's core would otherwise idle while memtables wait. The job
        runs through the same runner as in a compactor (given the memtable's
        rows instead of its WAL) and commits the same way. Returns False when
        there was nothing to take."""
        state = self._state
        scheduler = self._scheduler
        executor = scheduler.executor
        for imm in self._memtables.imms:
            running = scheduler.running.get(imm.flush_job.job_id) if imm.flush_job is not None else None
            if running is None or imm.flush_done is not None:
                continue
            job = running.job
            if not executor.take_queued(job.job_id):  # only a first attempt is taken back
                continue
            started = time.monotonic()
            state.cv.release()
            try:
                # The memtable is at hand: its rows spare decoding the WAL
                # record by record (the numpy path, where it applies, is faster still).
                result = scheduler.run_here(job, imm.flush_rows)
            except Exception as exc:  # noqa: BLE001 - e.g. the staging mkdir: handled as a failed run
                result = JobResult.failure(job.job_id, exc)
            finally:
                state.cv.acquire()
            state.stats["stall_seconds"] += time.monotonic() - started
            if state.closed:
                scheduler.discard(result)
                scheduler.running.pop(job.job_id, None)
            elif not result.ok and scheduler.retry.retries(result.error_kind, running.attempt):
                # The writer's run was one attempt; the next ones go to the
                # compactors, and the pool never hands a later attempt back,
                # or a lasting failure would spin here while compactors are busy.
                scheduler.discard(result)
                running.attempt += 1
                executor.submit(job, running.attempt)
            else:
                state.stats["flushes_in_writer"] += result.ok
                scheduler.on_result(job, result)
            state.cv.notify_all()
            return True
        return False

    def _stall_wait(self):
        state = self._state
        started = time.monotonic()
        state.cv.wait(0.05)
        state.stats["stall_seconds"] += time.monotonic() - started
