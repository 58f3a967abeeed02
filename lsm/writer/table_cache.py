"""Open tables by file number, at most `capacity` at once (LRU). Knows file
names and the Table reader; reads through the FileSystem seam.

A table leaving the cache is dropped, not closed: another thread may be
reading it right then, and a descriptor closed under that read could
already be reused by a file opened meanwhile (LevelDB's cache holds a
reference per reader for the same reason). Its file closes when the last
reader lets go of it; a deleted table's disk space is freed then."""
import threading
from collections import OrderedDict

from .. import filenames
from ..errors import CorruptionError
from ..errors import IOError as LsmIOError
from ..table.reader import Table


class TableCache:
    def __init__(self, dbname, fs, capacity, block_cache, ordered=None):
        self.dbname = dbname
        self.ordered = ordered  # a custom comparator's key type (lsm.order), or None
        self.fs = fs
        self.capacity = max(1, capacity)
        self.block_cache = block_cache
        self._tables = OrderedDict()
        # number -> key_filter_probe of each open table that has lsm's filter:
        # a get asks it before taking the table, so a table that cannot hold
        # the key costs a dict lookup and a probe, not a cache touch and a
        # call (level 0's files are each probed by every get).
        self.key_filters = {}
        self._lock = threading.Lock()

    def get(self, number: int) -> Table:
        # Hits take no lock: the dict lookup and the LRU touch are each one
        # C call, atomic under the GIL; a racing eviction only costs the touch.
        table = self._tables.get(number)
        if table is not None:
            try:
                self._tables.move_to_end(number)
            except KeyError:
                pass
            return table
        table = self._open(number)
        with self._lock:
            existing = self._tables.get(number)
            if existing is not None:
                table.file.close()
                return existing
            self._tables[number] = table
            probe = table.key_filter_probe
            if probe is not None:
                self.key_filters[number] = probe
            while len(self._tables) > self.capacity:
                self.key_filters.pop(self._tables.popitem(last=False)[0], None)
            # Tables read more than the block cache holds: it keeps blocks as
            # stored from the start (BlockCache.expect). Summed at each open,
            # which costs far more than the sum.
            self.block_cache.expect(sum(t.file.size for t in self._tables.values()))
        return table

    def _open(self, number: int) -> Table:
        path = filenames.table_file_name(self.dbname, number)
        try:
            file = self.fs.open_mapped(path)
        except LsmIOError:
            legacy = filenames.sst_table_file_name(self.dbname, number)
            if not self.fs.exists(legacy):
                raise CorruptionError(path, None, "table file is missing") from None
            path = legacy
            file = self.fs.open_mapped(path)
        try:
            # The index is decoded when a read needs it: many gets never do.
            table = Table.open(file, path=path, number=number, block_cache=self.block_cache, ordered=self.ordered,
                               lazy_index=True)
        except BaseException:
            file.close()
            raise
        table.file = file
        return table

    def evict(self, number: int) -> None:
        with self._lock:
            self._tables.pop(number, None)
            self.key_filters.pop(number, None)

    def close(self) -> None:
        with self._lock:
            self._tables.clear()
            self.key_filters.clear()
