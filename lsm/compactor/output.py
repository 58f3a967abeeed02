"""Output tables of one job: where to cut, and writing them into the staging
directory. Knows the staging directory only; never the database directory.

Rows come in sorted ``(user_key, -tag, value)`` (see merge.py), or as the
arrays of uniform.UniformRows, which go to the builder as whole blocks
(add_uniform); one job may send both, uniform rows first. A new table is
started before a new user key when the current one has reached
max_file_size, or when it already overlaps more than max_grandparent_overlap
bytes of grandparent (level + 2) files -- LevelDB's ShouldStopBefore: a table
that overlaps many grandparents makes its own next compaction expensive.
Unlike LevelDB, a cut never falls between two versions of one user key, so an
output table never shares a user key with its neighbour.
"""
import os
import struct
from bisect import bisect_left, bisect_right
from itertools import accumulate, repeat
from operator import add, itemgetter, neg

from ..keys import sort_key
from ..table import TableBuilder
from ..jobs import OutputTable
from .uniform import KeysAtStarts

_pack_tag = struct.Struct("<Q").pack
# Sorts after every row of its user key: rows are (ukey, -tag, value), -tag <= 0.
_AFTER_EVERY_TAG = 1
# Rows handed to the builder between two checks of the size limit.
SLICE_ROWS = 256
# Bytes an entry adds besides its user key and value: tag and header.
_ENTRY_OVERHEAD = 11
_value_of_row = itemgetter(2)


def output_name(index: int) -> str:
    return f"out-{index:06d}.ldb"


class _Grandparents:
    """Grandparent bytes overlapped by the current output, as ShouldStopBefore
    counts them: each grandparent passed after the first key adds its size."""

    __slots__ = ("_keys", "_sizes", "_i", "_seen", "_overlap", "_limit", "next_ukey")

    def __init__(self, grandparents, limit):
        gps = sorted(grandparents, key=lambda f: sort_key(f.largest))
        self._keys = [sort_key(f.largest) for f in gps]
        self._sizes = [f.size for f in gps]
        self._i = 0
        self._seen = False
        self._overlap = 0
        self._limit = limit
        # User keys below this cannot pass a grandparent: the caller's fast path.
        self.next_ukey = self._keys[0][0] if self._keys else None

    def should_stop_before(self, ukey, nt) -> bool:
        """LevelDB's ShouldStopBefore: whether the output must end before the
        key (ukey, nt), asked in increasing key order."""
        return bool(self.cut_starts([(ukey, nt)]))

    @property
    def started(self) -> bool:
        """should_stop_before was asked about the job's first key."""
        return self._seen

    def cut_starts(self, keys) -> list:
        """The indices into `keys` (sort keys, ascending, after every key
        asked before) where the output must end: a grandparent passed after
        the job's first key adds its size, and once the sum passes the limit
        a cut falls before the key that passed it and the sum starts again."""
        gp_keys, sizes, limit = self._keys, self._sizes, self._limit
        cuts = []
        i = self._i
        if not self._seen and len(keys):
            # Grandparents wholly before the job's first key never count.
            i = bisect_left(gp_keys, keys[0], i)
            self._seen = True
        while i < len(gp_keys):
            # The first key past grandparent i is where should_stop_before
            # passes it, with every later grandparent that key also passes.
            at = bisect_right(keys, gp_keys[i])
            if at == len(keys):
                break
            passed_to = bisect_left(gp_keys, keys[at], i)
            self._overlap += sum(sizes[i:passed_to])
            i = passed_to
            if self._overlap > limit:
                cuts.append(at)
                self._overlap = 0
        self._i = i
        self.next_ukey = gp_keys[i][0] if i < len(gp_keys) else None
        return cuts


class OutputSet:
    """The tables one job writes, named out-000001.ldb, out-000002.ldb, ...

    Each table is fsynced when finished; the caller syncs the directory once
    all are written. abandon() removes everything this set created."""

    def __init__(
        self,
        fs,
        staging_dir,
        table_options,
        max_file_size=None,
        grandparents=(),
        max_grandparent_overlap=None,
    ):
        self._fs = fs
        self._dir = staging_dir
        self._options = table_options
        self._max_size = max_file_size if max_file_size is not None else float("inf")
        self._gp = _Grandparents(grandparents, max_grandparent_overlap) if grandparents else None
        self._file = None
        self._builder = None
        self._name = None
        self._last_ukey = None
        self._cut_due = False  # the current table reached max_file_size
        self._carry = None  # rows add_uniform left for the next call: (entries, starts, hashes, layout)
        self.outputs: list[OutputTable] = []
        self.created: list[str] = []  # every name created, finished or not

    @property
    def bytes_written(self) -> int:
        return sum(o.size for o in self.outputs)

    def _open(self):
        name = output_name(len(self.created) + 1)
        path = os.path.join(self._dir, name)
        f = self._fs.create(path, exclusive=True)
        self.created.append(name)
        self._file = f
        self._name = name
        self._builder = TableBuilder(self._options, f.append)

    def _close_current(self):
        builder, f = self._builder, self._file
        self._builder = self._file = None
        size = builder.finish()
        f.sync()
        f.close()
        self.outputs.append(
            OutputTable(
                name=self._name,
                size=size,
                smallest=builder.smallest,
                largest=builder.largest,
                entries=builder.num_entries,
            )
        )

    def add(self, rows) -> None:
        """Append sorted rows (all after any row added before).

        Rows go to the builder in slices: a cut is considered only at a slice
        start, and slices end where one may be due -- at the first row of a
        user key that reaches the next grandparent, or every SLICE_ROWS rows
        for the size limit (so a table may pass max_file_size by up to one
        slice, as LevelDB's passes it by up to one block)."""
        n = len(rows)
        if not n:
            return  # every row of a chunk may have been dropped
        i = 0
        if self._carry is not None:
            self._flush_carry()
        if self._builder is None:
            self._open()
        gp = self._gp
        if gp is not None and not gp.started:
            # The job's first key: grandparents wholly before it never count.
            gp.should_stop_before(rows[0][0], rows[0][1])
        while i < n:
            ukey = rows[i][0]
            if ukey != self._last_ukey:
                # Only at a user-key boundary: versions of one key stay together.
                cut = self._cut_due
                gp_next = gp.next_ukey if gp is not None else None
                if gp_next is not None and ukey >= gp_next:
                    cut = gp.should_stop_before(ukey, rows[i][1]) or cut
                if cut and self._builder.num_entries:
                    self._close_current()
                    self._open()
                self._cut_due = False
                # This slice may run up to the next key that reaches a
                # grandparent, or that may take the table past max_file_size.
                stop = self._next_check(rows, i, ukey, self._room_limit(rows, i, min(n, i + SLICE_ROWS)))
            else:
                # More versions of the last key: they stay in the current table.
                stop = bisect_left(rows, (ukey, _AFTER_EVERY_TAG), i, n)
            self._add_slice(rows, i, stop)
            i = stop
            if self._builder.estimated_size >= self._max_size:
                self._cut_due = True

    def add_uniform(self, rows) -> None:
        """Append uniform.UniformRows (sorted, what the job keeps; starting at
        a new user key, after every row added before). Cuts where add()
        would for the grandparents; for max_file_size, as LevelDB: after the
        first block that takes the table's file to it, at the next user
        key. Rows too few to fill a block wait for the next call (or add(),
        or finish()), so windows of one job make the blocks one call would."""
        import numpy as np

        if not len(rows):
            return
        header_len, key_len, stride = rows.header_len, rows.key_len, rows.stride
        entries, starts, hashes = rows.array, rows.starts, self._hashes(rows)
        cuts = []
        if self._gp is not None:
            cuts = self._gp.cut_starts(KeysAtStarts(rows))
        carried = 0
        if self._carry is not None:
            carry_entries, carry_starts, carry_hashes, _layout = self._carry
            self._carry = None
            carried = len(carry_entries)
            entries = np.concatenate((carry_entries, entries))
            starts = np.concatenate((carry_starts, starts + carried))
            if hashes is not None:
                hashes = np.concatenate((carry_hashes, hashes))
        elif self._cut_due and self._builder is not None:
            self._close_current()  # the last call's rows took the table past max_file_size
        self._cut_due = False
        count = len(entries)
        size_limit = None if self._max_size == float("inf") else self._max_size
        flat = entries.reshape(-1)

        def add(lo, hi, limit, whole_blocks=False):
            return self._builder.add_uniform(flat[lo * stride:hi * stride], stride, header_len, key_len,
                                             None if hashes is None else hashes[lo:hi], limit, whole_blocks)

        def past_size():
            return size_limit is not None and self._builder.file_size >= size_limit

        pos = 0
        # Each grandparent cut ends a table; the rows after the last one may
        # leave a part-block for the next call.
        for end in [carried + int(rows.starts[j]) for j in cuts] + [None]:
            stop = count if end is None else end
            while pos < stop:
                if self._builder is None:
                    self._open()
                pos += add(pos, stop, size_limit, whole_blocks=end is None)
                if pos == stop:
                    break
                if past_size():
                    # The table ends with this user key's last version.
                    j = starts.searchsorted(pos)
                    next_key = min(int(starts[j]) if j < len(starts) else count, stop)
                    if next_key > pos:
                        pos += add(pos, next_key, None)
                    self._close_current()
                else:
                    keep = starts >= pos
                    self._carry = (entries[pos:], starts[keep] - pos, None if hashes is None else hashes[pos:],
                                   (header_len, key_len))
                    pos = stop
            if end is not None:
                if self._builder is not None and self._builder.num_entries:
                    self._close_current()
            elif self._builder is not None and self._carry is None and past_size():
                self._cut_due = True  # before the next user key: the next call's first
        self._last_ukey = rows.user_key(len(rows) - 1)

    def _hashes(self, rows):
        """The filter's hashes of the rows' user keys (None without a filter)."""
        if self._options.bloom_bits_per_key <= 0:
            return None
        from ..table.filter import hash_rows

        user_key = slice(rows.header_len, rows.header_len + rows.key_len - 8)
        return hash_rows(rows.array[:, user_key], rows.key_len - 8)

    def _flush_carry(self):
        """Write the part-block add_uniform left waiting, as a block."""
        entries, _starts, hashes, (header_len, key_len) = self._carry
        self._carry = None
        self._builder.add_uniform(entries.reshape(-1), entries.shape[1], header_len, key_len, hashes)

    def _room_limit(self, rows, i, limit):
        """Where the rows from i reach the bytes left under max_file_size
        (counted uncompressed: an overestimate, so a cut is never late)."""
        if self._max_size == float("inf"):
            return limit
        room = self._max_size - self._builder.estimated_size
        overhead = len(rows[i][0]) + _ENTRY_OVERHEAD
        ends = list(accumulate(map(add, map(len, map(_value_of_row, rows[i:limit])), repeat(overhead)), initial=0))
        return min(limit, i + bisect_left(ends, room, 1))

    def _next_check(self, rows, i, ukey, limit):
        gp = self._gp
        gp_next = gp.next_ukey if gp is not None else None
        if gp_next is None:
            return limit
        # The first row of a later user key that is >= gp_next.
        after = (gp_next,) if gp_next > ukey else (ukey, _AFTER_EVERY_TAG)
        return max(i + 1, bisect_left(rows, after, i + 1, limit))

    def _add_slice(self, rows, lo, hi):
        ukeys, nts, values = zip(*rows[lo:hi])
        self._builder.add_many(list(map(add, ukeys, map(_pack_tag, map(neg, nts)))), values)
        self._last_ukey = ukeys[-1]

    def finish(self) -> list[OutputTable]:
        if self._carry is not None:
            self._flush_carry()
        if self._builder is not None:
            self._close_current()
        return self.outputs

    def abandon(self) -> list[str]:
        """Close and remove every file this set created; return the names that
        could not be removed (the writer must delete those)."""
        if self._file is not None:
            try:
                self._file.close()
            except Exception:  # noqa: BLE001 - cleanup must go on
                pass
            self._file = self._builder = None
        self._carry = None
        left = []
        for name in self.created:
            try:
                self._fs.remove(os.path.join(self._dir, name))
            except Exception:  # noqa: BLE001
                left.append(name)
        self.outputs = []
        return left

