"""The memtables and the read state they publish: the active memtable and its
WAL, the frozen memtables waiting for their flush, the switch from one WAL
to the next, lock-free gets, and the views, snapshots and versions that
readers pin.

Knows the shared state, the table cache, and the obsolete-file keeper (a
reader's release may free files). Opens and closes WALs through the
FileSystem seam; frames nothing itself (lsm.record does).
"""
import contextlib
import weakref
from bisect import bisect_left

from .. import filenames
from ..errors import CorruptionError, DecodeError, Error
from ..keys import TAG_FOR_SEEK_MASK
from ..record import BLOCK_SIZE as LOG_BLOCK_SIZE
from ..record import LogWriter, unframe
from ..table.keyfilter import key_hash
from ..table.ordered import OrderedTableCache
from .iterator import MemSource, MergedView, OrderedMergedView, TableRunSource
from .memtable import MemTable


class Memtables:
    def __init__(self, state, table_cache, obsolete):
        self._state = state
        self._table_cache = table_cache
        self._open_table = table_cache.get  # looked up once: every get takes them
        self._key_filters = table_cache.key_filters
        self._obsolete = obsolete
        self.mem = None
        self.imms = []  # frozen memtables, oldest first
        self.wal = None
        self.log_writer = None

    # ------------------------------------------------------------ WALs
    def new_wal(self):
        """Lock held: start a new WAL and an empty memtable over it."""
        state = self._state
        number = state.versions.new_file_number()
        wal = state.fs.create_log(filenames.log_file_name(state.dbname, number))
        # The new WAL's directory entry must be durable before a sync write to
        # it is acknowledged.
        state.fs.sync_dir(state.dbname)
        self.wal = wal
        self.log_writer = LogWriter()
        self.mem = _wal_backed_memtable(state.fs, wal.path, number, state.versions.ordered)

    def _close_wal(self, wal):
        self._state.stats["wal_mapped_bytes"] += getattr(wal, "mapped_bytes", 0)
        wal.close()

    def close(self):
        if self.wal is not None:
            self._close_wal(self.wal)
            self.wal = None

    def switch(self):
        """Lock held, no writer in flight: freeze the memtable and start the
        next one on a new WAL."""
        old_wal = self.wal
        # Older WALs are synced before a newer one can hold acknowledged sync
        # writes, so a crash never keeps a newer WAL and loses an older one's tail.
        try:
            old_wal.sync()
            self._close_wal(old_wal)
            self.imms.append(self.mem)
            self.new_wal()
        except BaseException as exc:
            # Sticky: a retried fsync may "succeed" once the kernel has dropped
            # the pages that failed, and a half-done switch leaves no WAL.
            self._state.bg_error = exc
            raise

    def wal_numbers(self) -> set:
        """The WALs whose memtables are not yet flushed."""
        keep = {m.wal_number for m in self.imms}
        if self.mem is not None:
            keep.add(self.mem.wal_number)
        return keep

    def wal_mapped_bytes(self) -> int:
        """Bytes copied into the mappings of every WAL this engine wrote, the
        current one included: written to the OS with no write() call, so
        /proc's write counts miss them."""
        return self._state.stats["wal_mapped_bytes"] + getattr(self.wal, "mapped_bytes", 0)

    def memory_usage(self) -> int:
        return self.mem.approximate_bytes + sum(m.approximate_bytes for m in self.imms)

    # ----------------------------------------------------------- reads
    def get(self, key, sequence=None, fill_cache=True):
        """(kind, value) of the newest visible entry, or None. Blocks read
        from disk are cached unless fill_cache is false.

        Takes no lock and pins no version: a commit on another thread may
        install a new version and delete tables the one read here names. A
        read that fails then is read again from the start (at a fresh
        sequence, unless a snapshot's: compactions may since have dropped
        versions only the old sequence saw); one that fails while the
        version stayed is real damage."""
        versions = self._state.versions
        while True:
            at = versions.last_sequence if sequence is None else sequence
            mem = self.mem
            # A memtable counts an entry before its sequence is published:
            # one still empty holds nothing `at` may see.
            if mem.entries:
                r = mem.get(key, at)
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
            # The tables are walked as Version.numbers_for_get names them,
            # written out here: building its list and calling it were a
            # sixth of a get that finds nothing.
            hashed = key_hash(key)  # once, for every table's filter
            probes = self._key_filters
            try:
                for numbers, count, largest_keys, smallest_ukeys, largest_ukeys in current._searched:
                    i = bisect_left(largest_ukeys, key)
                    if i < count and largest_ukeys[i] == key:
                        i = bisect_left(largest_keys, (key, -((at << 8) | TAG_FOR_SEEK_MASK)))
                    if i < count and smallest_ukeys[i] <= key:
                        number = numbers[i]
                        probe = probes.get(number)
                        if probe is None:
                            r = self._open_table(number).get(key, at, fill_cache, hashed)
                        elif probe(hashed):
                            r = self._open_table(number).get_past_filter(key, at, fill_cache)
                        else:
                            continue
                        if r is not None:
                            return r
                return None
            except Error:
                if versions.current is current:
                    raise

    def new_snapshot(self):
        state = self._state
        with state.cv:
            self._obsolete.do_released()
            seq = state.versions.last_sequence
            state.snapshots.add(seq)
            return seq

    def release_snapshot(self, seq):
        with self._state.cv:
            self._state.forget_sequence(seq)

    def new_view(self, sequence=None, fill_cache=None):
        """A MergedView of the database at `sequence`, pinning its version.
        Returns (view, version, sequence); release with release_view.
        fill_cache: True caches every block read, False none, None (the
        default) all but those of a long scan (see TableRunSource)."""
        state = self._state
        with state.cv:
            self._obsolete.do_released()
            versions = state.versions
            if sequence is None:
                sequence = versions.last_sequence
            state.snapshots.add(sequence)
            version = versions.ref(versions.current)
            # A memtable empty now holds nothing the view may see: its later
            # entries are newer than `sequence`.
            sources = [src for src in (MemSource(m, sequence) for m in (self.mem, *reversed(self.imms)))
                       if not src.empty]
        cache = self._table_cache
        ordered = state.versions.ordered
        if ordered is not None:
            cache = OrderedTableCache(cache, ordered)
        sources += [TableRunSource([f], cache, sequence, fill_cache) for f in reversed(version.levels[0])]
        sources += [TableRunSource(files, cache, sequence, fill_cache, version.user_bounds(level))
                    for level, files in enumerate(version.levels) if level and files]
        view = MergedView(sources) if ordered is None else OrderedMergedView(sources, ordered)
        return view, version, sequence

    def release_view(self, version, sequence):
        with self._state.cv:
            self._state.forget_sequence(sequence)
            self._obsolete.release_version(version)

    @contextlib.contextmanager
    def pinned_version(self):
        """The current version, whose files stay on disk until the block
        ends (a commit on another thread may replace it meanwhile)."""
        state = self._state
        with state.cv:
            version = state.versions.ref(state.versions.current)
        try:
            yield version
        finally:
            with state.cv:
                self._obsolete.release_version(version)

    def approximate_offset(self, version, key) -> int:
        """Bytes of the version's tables before `key`, as LevelDB estimates them."""
        ordered = self._state.versions.ordered
        if ordered is not None:
            key = ordered(key)
        result = 0
        for level, files in enumerate(version.levels):
            for f in files:
                if f.largest[:-8] <= key:
                    result += f.size
                elif f.smallest[:-8] > key:
                    if level > 0:
                        break
                else:
                    result += self._table_cache.get(f.number).approximate_offset_of(key)
        return result


def _wal_backed_memtable(fs, path, number, ordered=None):
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

    mem = MemTable(number, load, ordered)
    weakref.finalize(mem, reader.close)
    return mem
