"""BlockCache: an LRU of blocks shared by all tables of a database. Pure: no
files. Thread-safe (a lock around changes to an OrderedDict; lookups need
none). Table decides what a value is: a decoded block, the raw contents a
point lookup read, or -- once the cache is `pressed` -- the block as stored.
The capacity bounds the charges, which Table makes the memory each value
really takes.
"""
import threading
from collections import OrderedDict

# What CPython spends per decoded entry beyond the block's own bytes: three
# list slots (24), a bytes object's header for the user key and for the value
# (2 x 33) and the tag's int (32), less the 12-16 bytes of header, trailer and
# restart slot the raw block spent on the entry. Measured once by summing
# sys.getsizeof over decoded blocks (the test of block_charge keeps it
# within a fifth of that sum for fixed, variable and tiny entries).
ENTRY_OVERHEAD = 120


def block_charge(raw_size: int, entries: int) -> int:
    """Memory a decoded block of `raw_size` uncompressed bytes takes."""
    return raw_size + entries * ENTRY_OVERHEAD


class BlockCache:
    """LRU keyed by (table number, block offset); evicts by charged bytes."""

    def __init__(self, capacity_bytes: int):
        self.capacity = max(0, int(capacity_bytes))
        self.usage = 0
        self.hits = 0
        self.misses = 0
        # Set at the first eviction, or as soon as the tables being read
        # outgrow the capacity (expect): blocks read from now on are better
        # kept as stored (snappy, ~half the bytes), so twice as many fit.
        self.pressed = False
        self._map = OrderedDict()  # key -> (value, charge)
        self._lock = threading.Lock()

    def get(self, key):
        # No lock: the lookup and the LRU touch are each one C call, atomic
        # under the GIL; a racing eviction only costs the touch. The hit and
        # miss counters may lose a count under races: they are statistics.
        item = self._map.get(key)
        if item is None:
            self.misses += 1
            return None
        try:
            self._map.move_to_end(key)
        except KeyError:
            pass
        self.hits += 1
        return item[0]

    def put(self, key, value, charge: int) -> None:
        if charge > self.capacity:
            return  # would evict everything else and then itself
        with self._lock:
            old = self._map.pop(key, None)
            if old is not None:
                self.usage -= old[1]
            self._map[key] = (value, charge)
            self.usage += charge
            while self.usage > self.capacity:
                _, (_, dropped) = self._map.popitem(last=False)
                self.usage -= dropped
                self.pressed = True

    def expect(self, table_bytes: int) -> None:
        """The tables being read take table_bytes on disk: more than the
        capacity, and the cache is pressed from now on. Blocks cached raw or
        decoded until the first eviction (each twice its stored size or
        more) would only be evicted again, and read again as stored."""
        if table_bytes > self.capacity:
            self.pressed = True

    def erase_table(self, number: int) -> None:
        """Drop every block of table `number` (after the table file is deleted)."""
        with self._lock:
            for key in [k for k in self._map if k[0] == number]:
                self.usage -= self._map.pop(key)[1]

    def clear(self) -> None:
        with self._lock:
            self._map.clear()
            self.usage = 0
            self.pressed = False

    def __len__(self) -> int:
        return len(self._map)
