"""Output tables of one job: where to cut, and writing them into the staging
directory. Knows the staging directory only; never the database directory.

Entries come as columnar.SortedWindows, which go to the builder as whole
blocks (add_entries), or, on the row path, as sorted rows ``(user_key,
-tag, value)`` (see merge.py); one job sends one kind. A new table is
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
from ..table.bulk import BlockCutter, concat_entries, user_key_hashes, user_key_hashes_and_crcs
from ..table.format import BLOCK_TRAILER_SIZE as _BLOCK_TRAILER_SIZE
from ..table.format import frame_blocks
from .columnar import SortedWindow

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


class _KeysAtStarts:
    """sort_key of the first entry of every user key of a SortedWindow, as a
    sequence for bisect."""

    __slots__ = ("_entries", "_starts")

    def __init__(self, window):
        self._entries = window.entries
        self._starts = window.starts.tolist()

    def __len__(self):
        return len(self._starts)

    def __getitem__(self, j):
        return sort_key(self._entries.internal_key(self._starts[j]))


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
        shorten_index_keys=True,
    ):
        self._fs = fs
        self._shorten = shorten_index_keys  # off for a custom comparator (TableBuilder)
        self._dir = staging_dir
        self._options = table_options
        self._max_size = max_file_size if max_file_size is not None else float("inf")
        self._gp = _Grandparents(grandparents, max_grandparent_overlap) if grandparents else None
        self._file = None
        self._builder = None
        self._name = None
        self._last_ukey = None
        self._cut_due = False  # the current table reached max_file_size
        self._carry = None  # a SortedWindow add_entries left for the next call: less than a block
        self.outputs: list[OutputTable] = []
        self.created: list[str] = []  # every name created, finished or not

    def build_with(self, table_options) -> None:
        """Build this set's tables with table_options instead: before any is begun."""
        if self.created:
            raise ValueError("build_with: a table is already begun")
        self._options = table_options

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
        self._builder = TableBuilder(self._options, f.append, self._shorten)

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

    def add_entries(self, window) -> None:
        """Append a columnar.SortedWindow (what the job keeps; it starts at a
        new user key, after every entry added before) as whole blocks. Cuts
        where add() would for the grandparents; for max_file_size, as
        LevelDB: after the first block that takes the table's file to it, at
        the next user key. Entries too few to fill a block wait for the next
        call (or finish()), so windows of one job make the blocks one call
        would."""
        import numpy as np

        if not len(window):
            return
        entries, starts = window.entries, window.starts
        cuts = self._gp.cut_starts(_KeysAtStarts(window)) if self._gp is not None else []
        cuts = [int(starts[j]) for j in cuts]
        if self._carry is not None:
            carried = len(self._carry.entries)
            cuts = [c + carried for c in cuts]
            entries = concat_entries((self._carry.entries, entries))
            starts = np.concatenate((self._carry.starts, starts + carried))
            self._carry = None
        if self._builder is None:
            self._open()  # the table these entries start, whether or not they fill a block now
        self._add_blocks(entries, starts, cuts, last_call=False)
        self._last_ukey = entries.user_key(len(entries) - 1)

    def _add_blocks(self, entries, starts, cuts, last_call: bool) -> None:
        """Cut sorted entries into blocks and tables. starts: where user keys
        start; cuts: the starts where a table must end (grandparents).
        Unless last_call, a last block that is not full waits in _carry.
        Blocks are made and compressed a cut at a time, and go to the
        builder together up to the one that takes the table to
        max_file_size."""
        n = len(entries)
        if cuts and cuts[0] == 0:
            cuts = cuts[1:]
            if self._builder is not None and self._builder.num_entries:
                self._close_current()
        cuts = cuts + [n]
        options = self._options
        blocks = BlockCutter(entries, options.block_size)
        filtered = options.bloom_bits_per_key > 0
        hashes = crcs = None
        if filtered and options.lsm_filter:
            hashes, crcs = user_key_hashes_and_crcs(entries)
        elif filtered:
            hashes = user_key_hashes(entries)
        pos = 0
        size_stop = None  # where the table ends, once it reached max_file_size
        while pos < n:
            stop = cuts[0] if size_stop is None else min(cuts[0], size_stop)
            ends, full = blocks.cut(pos, stop)
            if not full and stop == n and size_stop is None and not last_call:
                # A last block short of block_size waits for the next call's entries.
                ends.pop()
                first = ends[-1] if ends else pos
                self._carry = SortedWindow(entries.take(slice(first, n)), starts[starts >= first] - first)
                if not ends:
                    return
            raw, raw_ends, first_keys, last_keys, counts = blocks.blocks(pos, ends)
            framed, sizes = frame_blocks(raw, raw_ends, options.compression)
            del raw
            # Where each block starts in framed, and the end of the last.
            framed_at = list(accumulate(sizes, lambda at, size: at + size + _BLOCK_TRAILER_SIZE, initial=0))
            bounds = [pos] + ends
            k = 0
            while k < len(ends):
                if self._builder is None:
                    self._open()
                take = len(ends) - k if size_stop is not None else self._blocks_to_size(framed_at, k)
                lo, hi = bounds[k], bounds[k + take]
                self._builder.add_blocks(framed[framed_at[k]:framed_at[k + take]], sizes[k:k + take],
                                         counts[k:k + take], first_keys[k:k + take], last_keys[k:k + take],
                                         None if hashes is None else hashes[lo:hi],
                                         None if crcs is None else crcs[lo:hi])
                k += take
                pos = hi
                if size_stop is None and self._builder.file_size >= self._max_size:
                    # The table ends with this user key's last version.
                    i = int(starts.searchsorted(pos))
                    size_stop = int(starts[i]) if i < len(starts) else n
                    if size_stop != pos:
                        # The key goes on: the blocks up to its end are cut
                        # again, and what waits for the next call with them.
                        self._carry = None
                        break
                if pos == size_stop:
                    self._close_current()
                    size_stop = None
            if self._carry is not None or pos == n:
                return
            if pos == cuts[0]:
                cuts.pop(0)
                if self._builder is not None:
                    self._close_current()
                size_stop = None

    def _blocks_to_size(self, framed_at, k: int) -> int:
        """How many blocks from block k to add to the current table: up to
        the first that takes its file to max_file_size, or all. framed_at:
        where each block starts among them, trailers included, then their
        end."""
        room = self._max_size - self._builder.file_size
        last = len(framed_at) - 1
        if framed_at[last] - framed_at[k] <= room:
            return last - k
        return bisect_left(framed_at, framed_at[k] + room, k + 1) - k


    def _flush_carry(self):
        """Write the part-block add_entries left waiting, as a block."""
        carry, self._carry = self._carry, None
        self._add_blocks(carry.entries, carry.starts, [], last_call=True)

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

