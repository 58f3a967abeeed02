"""A table read under a custom comparator: the reader's block-level calls
with their user keys as ordered keys (lsm.order), so that code sorting,
bisecting and merging them follows the comparator. Pure: wraps an open Table.

Only databases with a custom comparator use it; the Table itself, its
caches included, keeps plain bytes.
"""


class OrderedTable:
    __slots__ = ("_table", "_ordered")

    def __init__(self, table, ordered):
        self._table = table
        self._ordered = ordered

    @property
    def num_blocks(self) -> int:
        return self._table.num_blocks

    def find_block(self, user_key: bytes) -> int:
        return self._table.find_block(self._ordered(user_key))

    def block(self, i: int, fill_cache: bool = True):
        ukeys, tags, values = self._table.block(i, fill_cache)
        return list(map(self._ordered, ukeys)), tags, values

    def block_from(self, i: int, user_key: bytes, fill_cache: bool = True):
        ukeys, tags, values, whole = self._table.block_from(i, self._ordered(user_key), fill_cache)
        return list(map(self._ordered, ukeys)), tags, values, whole

    def scan_blocks(self, start: int, fill_cache: bool):
        ordered = self._ordered
        for ukeys, tags, values in self._table.scan_blocks(start, fill_cache):
            yield list(map(ordered, ukeys)), tags, values

    def separator_user_key(self, i: int) -> bytes:
        return self._ordered(self._table.separator_user_key(i))

    def first_user_key(self, i: int):
        key = self._table.first_user_key(i)
        return None if key is None else self._ordered(key)

    def get(self, user_key: bytes, sequence: int, fill_cache: bool = True, key_hash=None):
        return self._table.get(self._ordered(user_key), sequence, fill_cache, key_hash)

    def approximate_offset_of(self, user_key: bytes) -> int:
        return self._table.approximate_offset_of(self._ordered(user_key))


class OrderedTableCache:
    """A table cache handing out OrderedTables."""

    __slots__ = ("_cache", "_ordered")

    def __init__(self, cache, ordered):
        self._cache = cache
        self._ordered = ordered

    def get(self, number: int) -> OrderedTable:
        return OrderedTable(self._cache.get(number), self._ordered)
