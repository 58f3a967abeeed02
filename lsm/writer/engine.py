"""The writer core: WAL, memtables, versions, MANIFEST, jobs and file deletion.

Owns every piece of metadata of one open database (design §2). Jobs (flushes
and compactions) run through an executor: inline in this process or, later,
in compactor processes; the commit of a result is the same either way.
"""
import contextlib
import dataclasses
import itertools
import os
import struct
import threading
import time
import weakref
from collections import deque

from crc32c import crc32c as _crc32c
from sortedcontainers import SortedList

from .. import batch as batch_codec
from .. import filenames
from ..compactor import PROCESS_RUNNER
from ..compactor.runner import run_job
from ..jobs import IN_WRITER, CompactionJob, ErrorKind, FlushJob, JobResult, RetryPolicy, job_error
from ..errors import ClosedError, CorruptionError, DecodeError, Error, LockError
from ..errors import IOError as LsmIOError
from ..filemeta import FileMetaData
from ..heap import release_free_memory
from ..infolog import InfoLog
from ..fileio import DEFAULT_FS
from ..keys import TYPE_DELETION
from ..record import BLOCK_SIZE as LOG_BLOCK_SIZE
from ..record import LogWriter, unframe
from ..table import Table
from ..table.cache import BlockCache
from ..version_edit import VersionEdit
from . import picker
from .iterator import MemSource, MergedView, TableRunSource
from .memtable import MemTable
from .table_cache import TableCache
from .version_set import VersionSet

_ONE_OP_HEADER = struct.Struct("<QI")
_LOG_HEADER = struct.Struct("<IHB")
_FULL_TYPE_CRC = _crc32c(b"\x01")
_MASK_DELTA = 0xA282EAD8
_LENGTHS = batch_codec.LENGTHS
_PUT_HEADERS = batch_codec.PUT_HEADERS

STAGING_DIR = "lsm-staging"  # our own sub-directory; LevelDB ignores directories
MAX_GROUP_BYTES = 1 << 20


class _Writer:
    __slots__ = ("records", "count", "sync", "done", "error")

    def __init__(self, records, count, sync):
        self.records = records
        self.count = count
        self.sync = sync
        self.done = False
        self.error = None


class _Running:
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


class Engine:
    def __init__(self, dbname, options, fs=DEFAULT_FS):
        self.dbname = os.fspath(dbname)
        self.options = options
        self.fs = fs
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._writers = deque()
        self.bg_error = None
        self.snapshots = SortedList()
        self.mem = None
        self.imms = []  # frozen memtables, oldest first
        self._wal = None
        self._log_writer = None
        self._lock_handle = None
        self._job_ids = itertools.count(1)
        self._session = os.urandom(8).hex()
        self.stats = {"flushes": 0, "compactions": 0, "bytes_read": 0, "bytes_written": 0,
                      "compaction_seconds": 0.0, "stall_seconds": 0.0, "user_bytes": 0,
                      "wal_mapped_bytes": 0,
                      "flushes_in_writer": 0}
        self.level_stats = [[0.0, 0, 0] for _ in range(7)]  # seconds, read, written per output level
        self.closed = False
        self._closing = False
        self._pool = None
        self._pool_size = 1
        self._retry = IN_WRITER if options.compactors == 0 else RetryPolicy()
        self._running = {}
        self._inline_queue = deque()
        self._draining = False
        self._released = deque()  # (version or None, sequence): see release_soon
        self._info_log = None
        self.block_cache = BlockCache(options.lru_cache_size)
        self.table_cache = TableCache(self.dbname, fs, options.max_open_files - 10, self.block_cache)
        self.versions = VersionSet(self.dbname, fs, options.manifest_limit)
        self._open()

    # ------------------------------------------------------------------ open
    def _open(self):
        fs, dbname, options = self.fs, self.dbname, self.options
        if not fs.exists(dbname):
            if not options.create_if_missing:
                raise Error(f"Invalid argument: {dbname}/CURRENT: does not exist (create_if_missing is false)")
            fs.mkdir(dbname)
        self._lock_handle = fs.lock(filenames.lock_file_name(dbname))
        try:
            self._info_log = InfoLog.open(fs, dbname)
            self.log(f"Opening {dbname} (compactors={options.compactors}, "
                     f"write_buffer_size={options.write_buffer_size}, paranoid_checks={options.paranoid_checks})")
            self._recover()
        except BaseException:
            self._release_resources()
            raise

    def _recover(self):
        fs, dbname, options = self.fs, self.dbname, self.options
        current = filenames.current_file_name(dbname)
        names = fs.listdir(dbname)
        if not fs.exists(current):
            stray = [n for n in names if (p := filenames.parse_file_name(n)) and p[0] in
                     (filenames.FileType.TABLE, filenames.FileType.DESCRIPTOR)]
            if stray == ["MANIFEST-000001"] and not any(n.endswith(filenames.LOG_SUFFIX) for n in names):
                # A creation cut short before CURRENT was written: no write can
                # have been acknowledged (there is no WAL), so create again.
                stray = []
            if stray:
                raise CorruptionError(current, None,
                                      f"CURRENT is missing but the directory holds {len(stray)} table/MANIFEST "
                                      f"file(s), e.g. {sorted(stray)[0]}; refusing to create a new database "
                                      "over them (run repair_db)")
            if not options.create_if_missing:
                raise Error(f"Invalid argument: {dbname}/CURRENT: does not exist (create_if_missing is false)")
            self.versions.create_new_db()
        elif options.error_if_exists:
            raise Error(f"Invalid argument: {dbname}: exists (error_if_exists is true)")

        vs = self.versions
        vs.recover()
        fs.rmtree(os.path.join(dbname, STAGING_DIR))

        names = fs.listdir(dbname)
        present_tables = set()
        wals = []
        for name in names:
            parsed = filenames.parse_file_name(name)
            if parsed is None:
                continue
            kind, number = parsed
            vs.mark_file_number_used(number)  # never reuse a number found on disk
            if kind == filenames.FileType.TABLE:
                present_tables.add(number)
            elif kind == filenames.FileType.LOG and (number >= vs.log_number or number == vs.prev_log_number):
                wals.append(number)
        missing = sorted(vs.current.live_numbers() - present_tables)
        if missing:
            raise CorruptionError(dbname, None, f"{len(missing)} missing files; e.g. "
                                  f"{filenames.table_file_name(dbname, missing[0])}")

        edit = VersionEdit()
        max_sequence = vs.last_sequence
        for wal_number in sorted(wals):
            job = FlushJob(self._next_job_id(), wal_number, options.table_options(),
                           paranoid=options.paranoid_checks)
            result = self._execute(job)
            self.log(f"Recovering log #{wal_number}: max sequence {result.max_sequence}, "
                     f"{sum(o.size for o in result.outputs)} bytes of tables"
                     + ("" if result.ok else f", failed: {result.error}"))
            if not result.ok:
                path = filenames.log_file_name(dbname, wal_number)
                raise job_error(result, f"recovery of {path} failed", path)
            max_sequence = max(max_sequence, result.max_sequence)
            self._validate_outputs(result)
            for meta in self._install_outputs(result):
                edit.new_files.append((0, meta))  # recovery flushes always go to level 0
            if result.error:
                # Point-in-time recovery: the WAL was damaged (or lost a block
                # in a power cut); replaying a later one would leave a hole.
                later = [n for n in sorted(wals) if n > wal_number]
                self.log(f"Log #{wal_number} {result.error}; not replaying {len(later)} later log(s)")
                break
        vs.last_sequence = max_sequence
        self._new_wal()
        edit.log_number = self.mem.wal_number
        edit.prev_log_number = 0
        edit.last_sequence = max_sequence
        vs.log_and_apply(edit)
        self._delete_obsolete_files()
        if options.compactors > 0:
            from ..ipc.pool import CompactorPool
            self._pool_size = options.compactors
            self._pool = CompactorPool(dbname, options.compactors, on_result=self._pool_result, fs=fs,
                                       runner=PROCESS_RUNNER, retry=self._retry,
                                       heartbeat_timeout=options.compactor_heartbeat_timeout,
                                       worker_env=options.compactor_env)
            self.log(f"Started a pool of {options.compactors} compactor processes")
        self._schedule()

    def _release_resources(self):
        if self._info_log is not None:
            self.log("Closed")
            self._info_log.close()
            self._info_log = None
        if self._wal is not None:
            self._close_wal(self._wal)
            self._wal = None
        self.versions.close()
        self.table_cache.close()
        if self._lock_handle is not None:
            self.fs.unlock(self._lock_handle)
            self._lock_handle = None

    def close(self, timeout=30.0):
        """Stop handing out jobs, wait up to `timeout` for running ones (their
        results still commit), then end every compactor. Outputs of jobs
        abandoned here are orphans in the staging area, removed at next open."""
        with self._cv:
            if self.closed:
                return
            self._closing = True
            deadline = time.monotonic() + timeout
            while self._running and self._pool is not None and self.bg_error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(min(left, 0.05))
            self.closed = True
            if not self._running:
                self._delete_obsolete_files()
            pool, self._pool = self._pool, None
        try:
            if pool is not None:
                pool.close()
        finally:
            with self._cv:
                self._release_resources()

    def can_close_on_this_thread(self) -> bool:
        """Whether close() may run here. Not on one of the pool's threads,
        whose results close() waits for, nor while the lock is taken: the
        garbage collector may be running inside it on this very thread."""
        if self._pool is not None and self._pool.runs_on_this_thread():
            return False
        if not self._lock.acquire(False):
            return False
        self._lock.release()
        return True

    def log(self, message):
        if self._info_log is not None:
            try:
                self._info_log.log(message)
            except Error:
                pass

    # ------------------------------------------------------------ write path
    def write_one(self, kind, key, value, sync=False):
        """One put or delete. When no other writer is queued, it is framed and
        written right here without the group-commit queue; otherwise it joins
        the queue like any batch."""
        lock = self._lock
        if not lock.acquire(False):
            return self._write_one_queued(kind, key, value, sync)
        try:
            mem = self.mem
            if (self._writers or self.bg_error is not None or self.closed or self.snapshots
                    or mem.approximate_bytes >= self.options.write_buffer_size):
                fast = False
            else:
                fast = True
                vs = self.versions
                sequence = vs.last_sequence + 1
                klen = len(key)
                if kind:
                    vlen = len(value)
                    if klen < 128 and vlen < 128:
                        record = _PUT_HEADERS[klen] + key + _LENGTHS[vlen] + value
                    else:
                        record = batch_codec.encode_put(key, value)
                else:
                    record = batch_codec.encode_delete(key)
                payload = _ONE_OP_HEADER.pack(sequence, 1) + record
                n = len(payload)
                writer = self._log_writer
                offset = writer.block_offset
                if offset + 7 + n <= 32768:
                    writer.block_offset = offset + 7 + n
                    c = _crc32c(payload, _FULL_TYPE_CRC)
                    framed = _LOG_HEADER.pack((((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF, n, 1) + payload
                else:
                    framed = writer.encode(payload)
                try:
                    self._wal.append(framed)
                    if sync:
                        self._wal.sync()
                except BaseException as exc:
                    self.bg_error = exc
                    raise
                mem.add_one((sequence << 8) | kind, key, value)
                vs.last_sequence = sequence
                self.stats["user_bytes"] += n - 12
        finally:
            lock.release()
        if not fast:
            self._write_one_queued(kind, key, value, sync)

    def _write_one_queued(self, kind, key, value, sync):
        record = batch_codec.encode_put(key, value) if kind else batch_codec.encode_delete(key)
        self.write(record, 1, sync)

    def write(self, records: bytes, count: int, sync=False):
        """Apply `count` operations atomically, given as their encoded
        WriteBatch records (without the header). Returns once the WAL record
        is in the OS (and on disk when sync)."""
        w = _Writer(records, count, sync)
        cv = self._cv
        with cv:
            if self.closed:
                raise ClosedError("Database is closed")
            self._writers.append(w)
            while not w.done and w is not self._writers[0]:
                cv.wait()
            if w.done:
                if w.error is not None:
                    raise w.error
                return
            try:
                self._make_room_for_write()
            except BaseException as exc:
                self._writers.popleft()
                cv.notify_all()
                raise exc
            group = self._build_group(w)
            sequence = self.versions.last_sequence + 1
            if len(group) == 1:
                body = records
            else:
                count = sum(g.count for g in group)
                body = b"".join([g.records for g in group])
            head = batch_codec.encode_header(sequence, count)
            # The record as buffers: a batch's bytes go to the WAL as they are.
            framed = self._log_writer.frame(head, body)
            framed_len = sum(map(len, framed))
            do_sync = any(g.sync for g in group)
            wal = self._wal
            at = wal.size
            # Let other writers queue behind us while the OS does the I/O:
            # they will form the next group (group commit).
            cv.release()
            error = None
            try:
                wal.append_parts(framed)
                if do_sync:
                    wal.sync()
            except BaseException as exc:  # noqa: BLE001 - recorded as the sticky error
                error = exc
            cv.acquire()
            if error is not None:
                # The WAL may now end in a torn record: nothing more may be
                # appended to it, so the error is sticky until reopen.
                self.bg_error = error
            else:
                # Memtable insert and sequence bump under the lock, together:
                # a snapshot taken in between would see neither the batch nor
                # the versions it replaces.
                if self.snapshots:
                    self.mem.add_payload(head + body, list(self.snapshots))
                else:
                    # Read back from the WAL when needed: the bytes go now.
                    self.mem.add_logged((at, framed_len), count, len(head) + len(body))
                self.versions.last_sequence = sequence + count - 1
                self.stats["user_bytes"] += len(body)
            for g in group:
                self._writers.popleft()
                if g is not w:
                    g.done = True
                    g.error = error
            cv.notify_all()
            if error is not None:
                raise error

    def _build_group(self, head):
        group = [head]
        if len(self._writers) == 1:
            return group
        size = len(head.records)
        limit = MAX_GROUP_BYTES if size > (128 << 10) else size + (128 << 10)
        for w in itertools.islice(self._writers, 1, None):
            if w.sync and not head.sync:
                break  # a sync write must not ride in a non-sync group
            size += len(w.records)
            if size > limit:
                break
            group.append(w)
        return group

    def _make_room_for_write(self):
        """Called by the head writer with the lock held. Slows writes down once
        level 0 piles up, stops them while frozen memtables or level-0 files
        are at their limit, and switches to a new memtable when it is full."""
        delayed = stalled = False
        opts = self.options
        while True:
            if self.bg_error is not None:
                raise self.bg_error
            level0 = len(self.versions.current.levels[0])
            if not delayed and level0 >= opts.level0_slowdown_writes_trigger and self._pool is not None:
                # LevelDB's 1 ms delay: hands the CPU to compaction without
                # stalling any single write for long.
                delayed = True
                started = time.monotonic()
                self._cv.release()
                try:
                    time.sleep(0.001)
                finally:
                    self._cv.acquire()
                self.stats["stall_seconds"] += time.monotonic() - started
                continue
            if self.mem.approximate_bytes < opts.write_buffer_size:
                return
            if len(self.imms) >= opts.max_frozen_memtables or level0 >= opts.level0_stop_writes_trigger:
                if self._pool is None:
                    raise Error("inline engine cannot make room: frozen memtables or level 0 at their limit")
                if not stalled:
                    stalled = True
                    self.log(f"Stalling writes: {len(self.imms)} frozen memtables, {level0} level-0 files")
                if not self._flush_while_stalled():
                    self._stall_wait()
                continue
            self._switch_memtable()
            self._schedule()

    def _flush_while_stalled(self):
        """Lock held, writes stalled: run the oldest flush no compactor has
        started here, in this thread, instead of sleeping. With every
        compactor busy (on 2 cores, one compactor behind a long compaction)
        the writer's core would otherwise idle while memtables wait. The job
        runs through the same runner as in a compactor (given the memtable's
        rows instead of its WAL) and commits the same way. Returns False when
        there was nothing to take."""
        pool = self._pool
        for imm in self.imms:
            running = self._running.get(imm.flush_job.job_id) if imm.flush_job is not None else None
            if running is None or imm.flush_done is not None:
                continue
            job = running.job
            if not pool.take_queued(job.job_id):  # only a first attempt is taken back
                continue
            started = time.monotonic()
            self._cv.release()
            try:
                # The memtable is at hand: its rows spare decoding the WAL
                # record by record (the numpy path, where it applies, is faster still).
                result = self._execute(job, imm.flush_rows)
            except Exception as exc:  # noqa: BLE001 - e.g. the staging mkdir: handled as a failed run
                result = JobResult.failure(job.job_id, exc)
            finally:
                self._cv.acquire()
            self.stats["stall_seconds"] += time.monotonic() - started
            if self.closed:
                self._discard_staging(result)
                self._running.pop(job.job_id, None)
            elif not result.ok and self._retry.retries(result.error_kind, running.attempt):
                # The writer's run was one attempt; the next ones go to the
                # compactors, and the pool never hands a later attempt back,
                # or a lasting failure would spin here while compactors are busy.
                self._discard_staging(result)
                running.attempt += 1
                pool.submit(job, running.attempt)
            else:
                self.stats["flushes_in_writer"] += result.ok
                self._on_result_locked(job, result)
            self._cv.notify_all()
            return True
        return False

    def _stall_wait(self):
        started = time.monotonic()
        self._cv.wait(0.05)
        self.stats["stall_seconds"] += time.monotonic() - started

    def _new_wal(self):
        number = self.versions.new_file_number()
        wal = self.fs.create_log(filenames.log_file_name(self.dbname, number))
        # The new WAL's directory entry must be durable before a sync write to
        # it is acknowledged.
        self.fs.sync_dir(self.dbname)
        self._wal = wal
        self._log_writer = LogWriter()
        self.mem = _wal_backed_memtable(self.fs, wal.path, number)

    def _close_wal(self, wal):
        self.stats["wal_mapped_bytes"] += getattr(wal, "mapped_bytes", 0)
        wal.close()

    def wal_mapped_bytes(self) -> int:
        """Bytes copied into the mappings of every WAL this engine wrote, the
        current one included: written to the OS with no write() call, so
        /proc's write counts miss them."""
        return self.stats["wal_mapped_bytes"] + getattr(self._wal, "mapped_bytes", 0)

    def _switch_memtable(self):
        old_wal = self._wal
        # Older WALs are synced before a newer one can hold acknowledged sync
        # writes, so a crash never keeps a newer WAL and loses an older one.
        try:
            old_wal.sync()
            self._close_wal(old_wal)
            self.imms.append(self.mem)
            self._new_wal()
        except BaseException as exc:
            # Sticky: a retried fsync may "succeed" once the kernel has dropped
            # the pages that failed, and a half-done switch leaves no WAL.
            self.bg_error = exc
            raise

    def _wait_for_writers(self):
        """Lock held: wait until no writer is queued or has WAL I/O in flight,
        so the WAL may be switched under nobody's feet."""
        while self._writers:
            self._cv.wait(0.05)

    def flush(self, wait=True):
        """Freeze the memtable and flush it (and any frozen ones) to tables."""
        with self._cv:
            self._check_open()
            self._wait_for_writers()
            if self.mem.entries:
                self._switch_memtable()
            self._schedule()
            while wait and self.imms and self.bg_error is None:
                self._cv.wait(0.05)
            self._check_writable()

    def wait_for_compactions(self):
        """Block until no job runs and no compaction is needed (quiescence)."""
        with self._cv:
            self._check_open()
            while self.bg_error is None:
                self._schedule()
                if not self._running and not self.imms and not self._inline_queue:
                    plan = picker.pick_compaction(self.versions.current.levels, self.versions.compact_pointers,
                                                  self.options.max_file_size, **self._picker_kwargs())
                    if plan is None:
                        break
                self._cv.wait(0.05)
            self._check_writable()

    def _check_open(self):
        if self.closed:
            raise ClosedError("Database is closed")

    def _check_writable(self):
        if self.bg_error is not None:
            raise self.bg_error

    # ------------------------------------------------------------------ jobs
    def _next_job_id(self):
        return next(self._job_ids)

    def _staging_dir(self, job_id):
        return os.path.join(self.dbname, STAGING_DIR, f"{self._session}-{job_id}")

    def _execute(self, job, rows=None):
        """Run a job here, now (recovery, inline mode, a stalled writer)."""
        staging = self._staging_dir(job.job_id)
        self.fs.mkdir(staging)
        result = run_job(job, self.dbname, staging, self.fs, self.block_cache, rows)
        result.staging_dir = staging
        return result

    def _submit(self, running):
        self._running[running.job.job_id] = running
        if self._pool is None:
            self._inline_queue.append(running.job)
        else:
            self._pool.submit(running.job, running.attempt)

    def _drain_inline(self):
        """Inline mode: run queued jobs one after another in this thread. A
        loop, not recursion: each commit may schedule the next job."""
        if self._draining:
            return
        self._draining = True
        try:
            while self._inline_queue and self.bg_error is None:
                job = self._inline_queue.popleft()
                self._on_result_locked(job, self._execute(job))
        finally:
            self._draining = False
            self._inline_queue.clear()

    def _pool_result(self, job, result):
        """Called on the pool's thread for each final result."""
        with self._cv:
            if self.closed:
                return
            try:
                self._on_result_locked(job, result)
            except BaseException as exc:  # noqa: BLE001 - recorded, surfaced to the next write
                if self.bg_error is None:
                    self.bg_error = exc
            self._cv.notify_all()

    def _on_result_locked(self, job, result):
        running = self._running.pop(job.job_id, None)
        if running is None:
            self._discard_staging(result)
            return
        running.result = result
        if not result.ok:
            self._release_running_version(running)
            self._discard_staging(result)
            what = "flush" if running.imm is not None else "compaction"
            attempts = getattr(result, "attempt", running.attempt)
            failed = f"{what} job {job.job_id} failed" + (f" (attempt {attempts})" if attempts > 1 else "")
            # A disk error (ENOSPC, EIO) stays an lsm.IOError, as plyvel raises.
            err = job_error(result, failed, self.dbname)
            self.log(f"{failed}: {result.error}")
            self.bg_error = err
            for sibling in running.siblings:
                self._running.pop(sibling.job.job_id, None)
            return
        try:
            self._validate_outputs(result)
        except Error as exc:
            # A result whose files are missing, truncated or unreadable is
            # rejected: a failed attempt, run again under a new id if the
            # retry policy allows.
            self._discard_staging(result)
            self.log(f"rejected result of job {job.job_id}: {exc}")
            attempt = getattr(result, "attempt", running.attempt)
            if not self._retry.retries(ErrorKind.REJECTED, attempt):
                self.bg_error = exc
                return
            running.result = None
            running.attempt = attempt + 1
            running.job = dataclasses.replace(job, job_id=self._next_job_id())
            if running.imm is not None:
                running.imm.flush_job = running.job
            self._submit(running)
            return
        if running.imm is not None:
            running.imm.flush_done = running
            self._commit_ready_flushes()
        elif all(s.result is not None for s in running.siblings):
            try:
                self._commit_compaction(running)
            finally:
                self._release_running_version(running)
        self._schedule()

    def _release_running_version(self, running):
        released = False
        for r in running.siblings:
            if r.version is not None:
                released = self._unref(r.version) or released
                r.version = None
        if released:
            self._delete_obsolete_files()  # the job's inputs may now be unreferenced

    def _validate_outputs(self, result):
        """Every output present with the stated size and a readable footer and index."""
        for out in result.outputs:
            src = os.path.join(result.staging_dir, out.name)
            try:
                size = self.fs.file_size(src)
            except Error as exc:
                raise CorruptionError(src, None, "result names an output that is missing") from exc
            if size != out.size:
                raise CorruptionError(src, None, f"result says {out.size} bytes, file has {size}")
            f = self.fs.open_random(src)
            try:
                Table.open(f, path=src)
            finally:
                f.close()

    def _discard_staging(self, result):
        staging = getattr(result, "staging_dir", None)
        if staging:
            self.fs.rmtree(staging)

    def _install_outputs(self, result):
        """Rename a validated result's staged tables to fresh file numbers;
        returns their metadata."""
        staging = result.staging_dir
        metas = []
        try:
            for out in result.outputs:
                src = os.path.join(staging, out.name)
                number = self.versions.new_file_number()
                self.fs.rename(src, filenames.table_file_name(self.dbname, number))
                metas.append(FileMetaData(number, out.size, out.smallest, out.largest))
            if metas:
                self.fs.sync_dir(self.dbname)
        except BaseException:
            for meta in metas:
                self.fs.remove(filenames.table_file_name(self.dbname, meta.number))
            raise
        finally:
            self.fs.rmtree(staging)
        return metas

    # --- scheduling
    def _schedule(self):
        """Start every job that may run now: flushes of frozen memtables, then
        compactions that touch no file or range a running job holds."""
        if self.bg_error is not None or self.closed or self._closing:
            return
        for imm in self.imms:
            if imm.flush_job is None:
                job = FlushJob(self._next_job_id(), imm.wal_number, self.options.table_options(), paranoid=True)
                imm.flush_job = job
                self._submit(_Running(job, imm=imm))
        # One compaction more than there are compactors waits in the pool's
        # queue: a compactor that finishes starts it at once instead of idling
        # through the commit of its result and the next pick.
        capacity = self._pool_size + 1 if self._pool is not None else 1
        while self.bg_error is None:
            compactions = sum(1 for r in self._running.values() if r.imm is None)
            if compactions >= capacity:
                break
            vs = self.versions
            plan = picker.pick_compaction(vs.current.levels, vs.compact_pointers, self.options.max_file_size,
                                          **self._picker_kwargs())
            if plan is None:
                break
            self._start_plan(plan)
        if self._pool is None:
            self._drain_inline()

    def _picker_kwargs(self):
        busy = set()
        ranges = {}
        for r in self._running.values():
            if r.plan is not None:
                busy.update(f.number for f in r.plan.inputs)
                busy.update(f.number for f in r.plan.next_inputs)
                ranges.setdefault(r.plan.level + 1, []).append(r.plan.output_range)
        return {"busy": frozenset(busy), "busy_ranges": ranges, "level_base": self.options.level_size_base}

    def _start_plan(self, plan):
        vs = self.versions
        if plan.trivial_move:
            edit = VersionEdit()
            if plan.compact_pointer is not None:
                edit.compact_pointers.append((plan.level, plan.compact_pointer))
            f = plan.inputs[0]
            edit.deleted_files.add((plan.level, f.number))
            edit.new_files.append((plan.level + 1, FileMetaData(f.number, f.size, f.smallest, f.largest)))
            self._log_and_apply(edit)
            self.log(f"Moved #{f.number} to level-{plan.level + 1} {f.size} bytes")
            return
        smallest_snapshot = self._smallest_snapshot()
        # Only spans meeting this job's keys matter; keeps the job message small.
        deeper = picker.deeper_ranges(vs.current.levels, plan.level + 1, *plan.output_range)
        bounds = self._subcompaction_bounds(plan)
        version = vs.ref(vs.current)
        siblings = []
        for lower, upper in bounds:
            job = CompactionJob(
                job_id=self._next_job_id(), level=plan.level, inputs=plan.inputs, next_inputs=plan.next_inputs,
                grandparents=plan.grandparents, smallest_snapshot=smallest_snapshot, deeper_ranges=deeper,
                max_output_file_size=self.options.max_file_size,
                max_grandparent_overlap=10 * self.options.max_file_size, table=self.options.table_options(),
                lower=lower, upper=upper)
            siblings.append(_Running(job, plan=plan))
        siblings[0].version = version
        for r in siblings:
            r.siblings = siblings
        for r in siblings:
            self._submit(r)

    def _subcompaction_bounds(self, plan):
        """Split a large level-0 compaction by key range so compactors work on
        it in parallel; the pieces commit as one edit. Split points are file
        boundaries of the inputs, chosen to balance bytes."""
        pieces = min(self._pool_size, 8)
        total = sum(f.size for f in plan.inputs) + sum(f.size for f in plan.next_inputs)
        if plan.level != 0 or pieces < 2 or total < 4 * self.options.max_file_size:
            return [(None, None)]
        points = sorted({f.smallest[:-8] for f in plan.next_inputs} | {f.smallest[:-8] for f in plan.inputs})
        points = points[1:]
        if not points:
            return [(None, None)]
        step = len(points) / pieces
        cuts = sorted({points[int(i * step)] for i in range(1, pieces) if int(i * step) < len(points)})
        bounds = []
        lower = None
        for cut in cuts:
            bounds.append((lower, cut))
            lower = cut
        bounds.append((lower, None))
        return bounds

    def _log_and_apply(self, edit):
        try:
            return self.versions.log_and_apply(edit)
        except BaseException as exc:
            # The MANIFEST may now end in a torn record: sticky until reopen.
            self.bg_error = exc
            raise

    # --- commits
    def _commit_ready_flushes(self):
        """Commit finished flushes oldest first: a newer level-0 table must get
        a larger file number than the older ones it may shadow."""
        committed = False
        while self.imms and self.imms[0].flush_done is not None:
            imm = self.imms[0]
            self._commit_flush(imm, imm.flush_done)
            committed = True
        if committed:
            imm = None  # the last flushed memtable goes now, and with it its index
            release_free_memory()

    def _commit_flush(self, imm, running):
        vs = self.versions
        result = running.result
        edit = VersionEdit()
        metas = self._install_outputs(result)
        level = 0
        busy_ranges = self._picker_kwargs()["busy_ranges"]
        for meta in metas:
            level = picker.pick_level_for_memtable_output(
                vs.current.levels, meta.smallest[:-8], meta.largest[:-8], 10 * self.options.max_file_size,
                busy_ranges=busy_ranges)
            edit.new_files.append((level, meta))
        remaining = self.imms[1:]
        edit.log_number = remaining[0].wal_number if remaining else self.mem.wal_number
        edit.prev_log_number = 0
        self._log_and_apply(edit)
        self.imms.pop(0)
        # imm and its run point at each other: unlinked, the memtable (its
        # index, its WAL reader) is freed now rather than at the next full
        # collection.
        imm.flush_done = running.imm = None
        written = sum(m.size for m in metas)
        self.stats["flushes"] += 1
        self.stats["bytes_written"] += written
        self.level_stats[level][0] += result.seconds
        self.level_stats[level][2] += written
        self.log(f"Flushed table #{metas[0].number if metas else '-'}: {written} bytes, to level {level}, "
                 f"{result.seconds:.3f}s (WAL #{imm.wal_number})")
        self._delete_obsolete_files()

    def _commit_compaction(self, running):
        plan = running.plan
        siblings = running.siblings
        edit = VersionEdit()
        if plan.compact_pointer is not None:
            edit.compact_pointers.append((plan.level, plan.compact_pointer))
        for f in plan.inputs:
            edit.deleted_files.add((plan.level, f.number))
        for f in plan.next_inputs:
            edit.deleted_files.add((plan.level + 1, f.number))
        metas = []
        try:
            for r in siblings:
                metas.extend(self._install_outputs(r.result))
        except BaseException:
            for meta in metas:
                self.fs.remove(filenames.table_file_name(self.dbname, meta.number))
            raise
        for meta in metas:
            edit.new_files.append((plan.level + 1, meta))
        self._log_and_apply(edit)
        # The compactors' running time (the longest piece), as for flushes:
        # the wall clock since submission would count the wait of a compaction
        # queued behind another.
        seconds = max(r.result.seconds for r in siblings)
        read = sum(f.size for f in plan.inputs) + sum(f.size for f in plan.next_inputs)
        written = sum(m.size for m in metas)
        self.stats["compactions"] += 1
        self.stats["bytes_read"] += read
        self.stats["bytes_written"] += written
        self.stats["compaction_seconds"] += seconds
        st = self.level_stats[plan.level + 1]
        st[0] += seconds
        st[1] += read
        st[2] += written
        self.log(f"Compacted {len(plan.inputs)}@{plan.level} + {len(plan.next_inputs)}@{plan.level + 1} files "
                 f"=> {written} bytes in {len(metas)} files, {read} bytes read, {seconds:.3f}s"
                 f"{f', {len(siblings)} subcompactions' if len(siblings) > 1 else ''}")
        self._delete_obsolete_files()

    def _smallest_snapshot(self):
        return self.snapshots[0] if self.snapshots else self.versions.last_sequence

    def compact_range(self, begin, end):
        with self._cv:
            self._check_open()
            self._check_writable()
            self._wait_for_writers()
            if self.mem.entries:
                self._switch_memtable()
            self._schedule()
            self._wait_idle()
            vs = self.versions
            max_level = 1
            for level in range(1, 7):
                if vs.current.levels[level]:
                    max_level = level
            for level in range(0, max_level):
                while self.bg_error is None:
                    plan = picker.pick_range_compaction(vs.current.levels, level, begin, end,
                                                        self.options.max_file_size)
                    if plan is None:
                        break
                    self._wait_idle()
                    plan = picker.pick_range_compaction(vs.current.levels, level, begin, end,
                                                        self.options.max_file_size)
                    if plan is None:
                        break
                    self._start_plan(plan)
                    if self._pool is None:
                        self._drain_inline()
                    self._wait_idle()
                self._check_writable()
            self._schedule()
        with self.pinned_version() as version:
            self._open_tables_in_range(version, begin, end)

    def _open_tables_in_range(self, version, begin, end):
        """Open the range's tables in the table cache (as many as it holds),
        as LevelDB's compaction leaves each output it checks: the first reads
        after a compact_range find them open. Outside the lock: a table's
        index and filter take ~1 ms to load. Only a head start: a table that
        does not open is left for the read that needs it to report."""
        capacity = self.table_cache.capacity
        for level in range(len(version.levels)):
            for f in version.levels[level]:
                if capacity <= 0 or self.closed:
                    return
                if (begin is None or f.largest[:-8] >= begin) and (end is None or f.smallest[:-8] <= end):
                    try:
                        self.table_cache.get(f.number)
                    except (CorruptionError, LsmIOError):
                        return
                    capacity -= 1

    def _wait_idle(self):
        """Wait (lock held) until no job runs and no memtable waits for a flush."""
        while (self._running or self.imms) and self.bg_error is None:
            if self._pool is None:
                self._schedule()
                if self._running or self.imms:
                    raise Error("inline job queue did not drain")
                return
            self._cv.wait(0.05)
        self._check_writable()

    # -------------------------------------------------------- file deletion
    def _delete_obsolete_files(self):
        self._apply_released()
        if self.bg_error is not None:
            return  # we may not know whether the last edit was committed
        vs = self.versions
        live = vs.live_table_numbers()
        wal_keep = {m.wal_number for m in self.imms}
        if self.mem is not None:
            wal_keep.add(self.mem.wal_number)
        for name in self.fs.listdir(self.dbname):
            parsed = filenames.parse_file_name(name)
            if parsed is None:
                continue
            kind, number = parsed
            if kind == filenames.FileType.LOG:
                keep = number >= vs.log_number or number == vs.prev_log_number or number in wal_keep
            elif kind == filenames.FileType.DESCRIPTOR:
                keep = number >= vs.manifest_number
            elif kind == filenames.FileType.TABLE:
                keep = number in live
            elif kind == filenames.FileType.TEMP:
                keep = False
            else:
                keep = True
            if not keep:
                if kind == filenames.FileType.TABLE:
                    self.table_cache.evict(number)
                self.fs.remove(os.path.join(self.dbname, name))

    def _release_version(self, version):
        """Lock held: drop a reference to version; an old version nothing
        references any more may have held the last claim on some files."""
        if not self.closed and self._unref(version):
            self._delete_obsolete_files()

    def _unref(self, version) -> bool:
        """Lock held: drop a reference to version; whether it was the last
        one to an old version."""
        self.versions.unref(version)
        return version.refs <= 0 and version is not self.versions.current

    def _forget_sequence(self, sequence):
        """Lock held: one claim of a snapshot or view on `sequence` ends."""
        try:
            self.snapshots.remove(sequence)
        except ValueError:
            pass

    def release_soon(self, version, sequence):
        """Release a view's version and sequence (a snapshot's: version
        None) that the garbage collector found unclosed. The collector runs
        in whatever thread allocates, maybe one inside this engine's lock,
        where waiting for the lock would never end: the release is queued,
        and done here if the lock is free, else by the next holder that
        deletes obsolete files or makes a view or snapshot."""
        self._released.append((version, sequence))
        if self._lock.acquire(False):
            try:
                self._do_released()
            finally:
                self._lock.release()

    def _do_released(self):
        """Lock held: the queued releases, and the deletion of the files
        they leave unreferenced."""
        if self._released and self._apply_released():
            self._delete_obsolete_files()

    def _apply_released(self) -> bool:
        """Lock held: do the queued releases; whether one dropped the last
        reference to an old version."""
        freed = False
        while self._released:
            version, sequence = self._released.popleft()
            self._forget_sequence(sequence)
            if version is not None and not self.closed:
                freed = self._unref(version) or freed
        return freed

    # ------------------------------------------------------------------ reads
    def get(self, key, sequence=None, fill_cache=True):
        """(kind, value) of the newest visible entry, or None. Blocks read
        from disk are cached unless fill_cache is false.

        Takes no lock and pins no version: a commit on another thread may
        install a new version and delete tables the one read here names. A
        read that fails then is read again from the start (at a fresh
        sequence, unless a snapshot's: compactions may since have dropped
        versions only the old sequence saw); one that fails while the
        version stayed is real damage."""
        versions = self.versions
        while True:
            at = versions.last_sequence if sequence is None else sequence
            r = self.mem.get(key, at)
            if r is not None:
                return r
            imms = self.imms
            if imms:
                for imm in reversed(imms):
                    r = imm.get(key, at)
                    if r is not None:
                        return r
            # Read after the frozen memtables: a flush installs its table
            # before it drops the memtable, so neither is missed.
            current = versions.current
            table = self.table_cache.get
            try:
                for f in current.files_for_get(key, at):
                    r = table(f.number).get(key, at, fill_cache)
                    if r is not None:
                        return r
                return None
            except Error:
                if versions.current is current:
                    raise

    def new_snapshot(self):
        with self._cv:
            self._do_released()
            seq = self.versions.last_sequence
            self.snapshots.add(seq)
            return seq

    def release_snapshot(self, seq):
        with self._cv:
            self._forget_sequence(seq)

    def new_view(self, sequence=None, fill_cache=None):
        """A MergedView of the database at `sequence`, pinning its version.
        Returns (view, version, sequence); release with release_view.
        fill_cache: True caches every block read, False none, None (the
        default) all but those of a long scan (see TableRunSource)."""
        with self._cv:
            self._do_released()
            if sequence is None:
                sequence = self.versions.last_sequence
            self.snapshots.add(sequence)
            version = self.versions.ref(self.versions.current)
            sources = [MemSource(self.mem, sequence)]
            sources += [MemSource(m, sequence) for m in reversed(self.imms)]
        cache = self.table_cache
        sources += [TableRunSource([f], cache, sequence, fill_cache) for f in reversed(version.levels[0])]
        sources += [TableRunSource(files, cache, sequence, fill_cache, version.user_bounds(level))
                    for level, files in enumerate(version.levels) if level and files]
        return MergedView(sources), version, sequence

    def release_view(self, version, sequence):
        with self._cv:
            self._forget_sequence(sequence)
            self._release_version(version)

    # ------------------------------------------------------------ properties
    @contextlib.contextmanager
    def pinned_version(self):
        """The current version, whose files stay on disk until the block
        ends (a commit on another thread may replace it meanwhile)."""
        with self._cv:
            version = self.versions.ref(self.versions.current)
        try:
            yield version
        finally:
            with self._cv:
                self._release_version(version)

    def approximate_offset(self, version, key):
        result = 0
        for level, files in enumerate(version.levels):
            for f in files:
                if f.largest[:-8] <= key:
                    result += f.size
                elif f.smallest[:-8] > key:
                    if level > 0:
                        break
                else:
                    result += self.table_cache.get(f.number).approximate_offset_of(key)
        return result

    def compactor_stats(self):
        return self._pool.stats() if self._pool is not None else []

    def memory_usage(self):
        return self.mem.approximate_bytes + sum(m.approximate_bytes for m in self.imms)


def _wal_backed_memtable(fs, path, number):
    """A memtable whose pending batches are read back from its WAL at `path`
    (MemTable.add_logged spans: file offset and length of the framed
    record). The file stays open for it, and so readable after the WAL is
    deleted, until the memtable is collected."""
    reader = fs.open_random(path)

    def load(span):
        offset, length = span
        try:
            # The WAL was written from offset 0: its blocks start at multiples of LOG_BLOCK_SIZE.
            return unframe(reader.read(offset, length), offset % LOG_BLOCK_SIZE)
        except DecodeError as exc:
            raise CorruptionError(path, offset + (exc.offset or 0), f"WAL record read back: {exc.reason}") from None

    mem = MemTable(number, load)
    weakref.finalize(mem, reader.close)
    return mem


def op_records(ops):
    """Encoded WriteBatch records for ops."""
    put, delete = batch_codec.encode_put, batch_codec.encode_delete
    return [delete(k) if kind == TYPE_DELETION else put(k, v) for kind, k, v in ops]


__all__ = ["Engine", "LockError", "op_records"]
