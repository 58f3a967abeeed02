"""What every part of the writer shares: the database's name, options and
file system, its VersionSet, the one lock (and its condition) that guards
all of the writer's metadata, the sticky background error, the open and
closing flags, the sequences that snapshots and views pin, the counters and
the info LOG.

Knows no part of the writer; every part knows it. No I/O of its own but the
info LOG's lines.
"""
import itertools
import os
import threading

from sortedcontainers import SortedList

from ..errors import ClosedError, Error
from ..version_edit import NUM_LEVELS


class EngineState:
    def __init__(self, dbname, options, fs, versions):
        self.dbname = dbname
        self.options = options
        self.fs = fs
        self.versions = versions
        self.lock = threading.Lock()
        self.cv = threading.Condition(self.lock)
        # The first error that may have left a file torn (WAL, MANIFEST) or a
        # commit half known: every later write raises it, until reopen.
        self.bg_error = None
        self.closed = False
        self.closing = False  # close() has begun: no new jobs
        self.snapshots = SortedList()  # sequences pinned by snapshots and views, one entry per claim
        self.session = os.urandom(8).hex()  # tells this open's staging directories from older ones
        self.info_log = None
        self.stats = {"flushes": 0, "compactions": 0, "bytes_read": 0, "bytes_written": 0,
                      "compaction_seconds": 0.0, "stall_seconds": 0.0, "user_bytes": 0,
                      "wal_mapped_bytes": 0, "flushes_in_writer": 0, "delayed_writes": 0}
        self.level_stats = [[0.0, 0, 0] for _ in range(NUM_LEVELS)]  # seconds, read, written per output level
        self._job_ids = itertools.count(1)

    def next_job_id(self) -> int:
        return next(self._job_ids)

    def log(self, message):
        """One info LOG line; never raises (a full disk must not stop the database)."""
        if self.info_log is not None:
            try:
                self.info_log.log(message)
            except Error:
                pass

    def check_open(self):
        if self.closed:
            raise ClosedError("Database is closed")

    def check_writable(self):
        if self.bg_error is not None:
            raise self.bg_error

    def smallest_snapshot(self) -> int:
        """Lock held: the oldest sequence a reader may still ask for."""
        return self.snapshots[0] if self.snapshots else self.versions.last_sequence

    def forget_sequence(self, sequence):
        """Lock held: one claim of a snapshot or view on `sequence` ends."""
        try:
            self.snapshots.remove(sequence)
        except ValueError:
            pass
