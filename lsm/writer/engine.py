"""The writer engine: the one object lsm.db talks to. A facade that builds the
writer's parts, opens and closes the database, and routes each call to the
part that does it:

- state: the lock, the sticky error, counters, the info LOG (lsm.writer.state);
- memtables: WALs, memtables, lock-free reads, pinned views (memtables);
- commit: group commit and single puts (commit), after the write
  control's admission check (write_control);
- scheduler: which jobs run, on which executor, and their results
  (scheduler, executors), committed by the installer (install);
- obsolete files and the releases the garbage collector queues (obsolete);
- recovery at open (recovery).

Knows every part and how they connect; decides nothing they decide.
"""
import os
import time

from .. import filenames
from ..errors import CorruptionError
from ..errors import IOError as LsmIOError
from ..fileio import DEFAULT_FS
from ..infolog import InfoLog
from ..order import ordered_key_type
from ..table.cache import BlockCache
from . import recovery
from .commit import Committer
from .executors import LocalRunner
from .install import Installer
from .memtables import Memtables
from .obsolete import ObsoleteFiles
from .scheduler import Scheduler
from .state import EngineState
from .table_cache import TableCache
from .version_set import VersionSet
from .write_control import WriteControl


class Engine:
    def __init__(self, dbname, options, fs=DEFAULT_FS):
        dbname = os.fspath(dbname)
        self.dbname = dbname
        self.options = options
        self.fs = fs
        ordered = None if options.comparator is None else ordered_key_type(options.comparator)
        self.block_cache = BlockCache(options.lru_cache_size)
        self.table_cache = TableCache(dbname, fs, options.max_open_files - 10, self.block_cache, ordered)
        self.versions = VersionSet(dbname, fs, options.manifest_limit, options.comparator_name, ordered)
        self.state = state = EngineState(dbname, options, fs, self.versions)
        self.stats = state.stats
        self.level_stats = state.level_stats
        self.obsolete = ObsoleteFiles(state, self.table_cache, lambda: self.memtables.wal_numbers())
        self.memtables = Memtables(state, self.table_cache, self.obsolete)
        self.installer = Installer(state, self.memtables, self.obsolete)
        self.scheduler = Scheduler(state, self.memtables, self.installer, self.obsolete,
                                   LocalRunner(state, self.block_cache))
        self.write_control = WriteControl(state, self.memtables, self.scheduler)
        self.committer = Committer(state, self.memtables, self.write_control)
        # The hot calls go straight to their part, with no call in between.
        self.write_one = self.committer.write_one
        self.write = self.committer.write
        self.get = self.memtables.get if ordered is None else _ordered_get(self.memtables.get, ordered)
        self.new_snapshot = self.memtables.new_snapshot
        self.release_snapshot = self.memtables.release_snapshot
        self.new_view = self.memtables.new_view
        self.release_view = self.memtables.release_view
        self.pinned_version = self.memtables.pinned_version
        self.approximate_offset = self.memtables.approximate_offset
        self.memory_usage = self.memtables.memory_usage
        self.wal_mapped_bytes = self.memtables.wal_mapped_bytes
        self.release_soon = self.obsolete.release_soon
        self._lock_handle = None
        self._open()

    # ------------------------------------------------------------ lifecycle
    def _open(self):
        state, fs = self.state, self.fs
        recovery.create_directory(state)
        self._lock_handle = fs.lock(filenames.lock_file_name(self.dbname))
        try:
            options = self.options
            state.info_log = InfoLog.open(fs, self.dbname)
            state.log(f"Opening {self.dbname} (compactors={options.compactors}, "
                      f"write_buffer_size={options.write_buffer_size}, paranoid_checks={options.paranoid_checks})")
            recovery.recover(state, self.memtables, self.installer, self.obsolete, self.scheduler.run_here)
            # Only a pool starts the compactions the database owes now. Inline,
            # they wait for the first write that needs room (a pool that
            # closed behind its writes leaves some): an open to read, as every
            # command-line tool's is, returns at once instead of rewriting
            # the database first.
            if options.compactors > 0:
                self.scheduler.start_pool()
                self.write_control.refresh()
                state.log(f"Started a pool of {options.compactors} compactor processes")
                self.scheduler.schedule()
        except BaseException:
            self._release_resources()
            raise

    def _release_resources(self):
        state = self.state
        if state.info_log is not None:
            state.log("Closed")
            state.info_log.close()
            state.info_log = None
        self.memtables.close()
        self.versions.close()
        self.table_cache.close()
        if self._lock_handle is not None:
            self.fs.unlock(self._lock_handle)
            self._lock_handle = None

    def close(self, timeout=30.0):
        """Stop handing out jobs, wait up to `timeout` for running ones (their
        results still commit), then end every compactor. Outputs of jobs
        abandoned here are orphans in the staging area, removed at next open."""
        state, scheduler = self.state, self.scheduler
        with state.cv:
            if state.closed:
                return
            state.closing = True
            deadline = time.monotonic() + timeout
            while scheduler.running and state.bg_error is None:
                left = deadline - time.monotonic()
                if left <= 0 or not scheduler.executor.wait(state.cv, min(left, 0.05)):
                    break
            state.closed = True
            if not scheduler.running:
                self.obsolete.delete_obsolete_files()
            pool = scheduler.executor.detach()
        try:
            if pool is not None:
                pool.close()
        finally:
            with state.cv:
                self._release_resources()

    def can_close_on_this_thread(self) -> bool:
        """Whether close() may run here. Not on one of the pool's threads,
        whose results close() waits for, nor while the lock is taken: the
        garbage collector may be running inside it on this very thread."""
        if self.scheduler.executor.runs_on_this_thread():
            return False
        lock = self.state.lock
        if not lock.acquire(False):
            return False
        lock.release()
        return True

    @property
    def closed(self):
        return self.state.closed

    @property
    def bg_error(self):
        return self.state.bg_error

    @property
    def snapshots(self):
        return self.state.snapshots

    @property
    def imms(self):
        return self.memtables.imms

    def log(self, message):
        self.state.log(message)

    # ---------------------------------------------------- background work
    def _freeze_memtable(self):
        """Lock held: once no write is in flight, freeze a non-empty memtable
        so that a flush takes it."""
        self.committer.wait_for_writers()
        if self.memtables.mem.entries:
            self.memtables.switch()

    def flush(self, wait=True):
        """Freeze the memtable and flush it (and any frozen ones) to tables."""
        state = self.state
        with state.cv:
            state.check_open()
            self._freeze_memtable()
            self.scheduler.schedule()
            while wait and self.memtables.imms and state.bg_error is None:
                state.cv.wait(0.05)
            state.check_writable()

    def wait_for_compactions(self, timeout=None) -> bool:
        """Block until no flush or compaction runs or waits and no level
        needs one; False if `timeout` seconds pass first."""
        with self.state.cv:
            self.state.check_open()
            return self.scheduler.wait_for_compactions(timeout)

    def compact_range(self, begin, end):
        state, scheduler = self.state, self.scheduler
        ordered = self.versions.ordered
        if ordered is not None:
            begin = None if begin is None else ordered(begin)
            end = None if end is None else ordered(end)
        with state.cv:
            state.check_open()
            state.check_writable()
            self._freeze_memtable()
            scheduler.schedule()
            scheduler.wait_idle()
            scheduler.compact_range(begin, end)
            scheduler.schedule()
        with self.memtables.pinned_version() as version:
            self._open_tables_in_range(version, begin, end)

    def _open_tables_in_range(self, version, begin, end):
        """Open the range's tables in the table cache (as many as it holds),
        as LevelDB's compaction leaves each output it checks: the first reads
        after a compact_range find them open. Outside the lock: loading a
        table's index and filter means reads and decoding. Only a head start: a table that
        does not open is left for the read that needs it to report."""
        capacity = self.table_cache.capacity
        for level in range(len(version.levels)):
            for f in version.levels[level]:
                if capacity <= 0 or self.state.closed:
                    return
                if (begin is None or f.largest[:-8] >= begin) and (end is None or f.smallest[:-8] <= end):
                    try:
                        self.table_cache.get(f.number)
                    except (CorruptionError, LsmIOError):
                        return
                    capacity -= 1

    def compactor_stats(self):
        return self.scheduler.executor.stats()

    def running_job_count(self) -> int:
        return len(self.scheduler.running)


def _ordered_get(get, ordered):
    """Memtables.get taking its key as an ordered key (lsm.order): a custom
    comparator's database; the bytewise one calls Memtables.get directly."""
    def ordered_get(key, sequence=None, fill_cache=True):
        return get(ordered(key), sequence, fill_cache)
    return ordered_get
