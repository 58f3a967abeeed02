"""Merging sorted runs of entries, and what a compaction may drop (LevelDB's
two drop rules, see DropRules).
Pure: no files, no sockets; rows in, rows out.

An entry travels as a row ``(user_key, -tag, value)`` with ``tag = seq << 8 |
kind``. Python's own tuple order on rows is LevelDB's internal-key order (user
key ascending, then newest first), so ``list.sort``, ``bisect`` and tuple
comparisons do all the comparing in C.

Rows move in lists ("chunks") rather than one at a time: a compaction pays for
Python bytecode only in the single loop that applies the drop rules.
"""
from bisect import bisect_left, bisect_right
from itertools import islice, repeat
from operator import and_, eq, itemgetter, neg

# A chunk of a few thousand rows: big enough that the per-chunk work (a
# bisect per run, one sort call) vanishes, small enough to stay in cache.
CHUNK_ROWS = 4096


def rows_from_block(ukeys, tags, values) -> list:
    """A decoded block (Table.block) as rows."""
    return list(zip(ukeys, map(neg, tags), values))


def clip_rows(rows, lower, upper) -> list:
    """The rows whose user key k satisfies lower <= k < upper (None: unbounded).
    ``(k,)`` sorts before every row of user key k, so bisect finds the edges."""
    lo = 0 if lower is None else bisect_left(rows, (lower,))
    hi = len(rows) if upper is None else bisect_left(rows, (upper,))
    if lo == 0 and hi == len(rows):
        return rows
    return rows[lo:hi]


def _fill(buf, it, target):
    while len(buf) < target:
        more = next(it, None)
        if more is None:
            break
        if buf:
            buf += more
        else:
            buf = list(more)
    return buf


def merge_runs(runs, chunk_rows=CHUNK_ROWS):
    """Merge sorted runs into one sorted stream of chunks.

    Each run is an iterable of row lists, sorted within and across lists (a
    level-0 table, or the files of one level >= 1 in key order). Every round
    takes, from every run, the rows up to the smallest "last buffered row" of
    any run -- no unread row of any run can sort before that bound -- and
    sorts them together. Timsort finds the pre-sorted pieces and merges them,
    so a round costs about one C comparison per row per overlapping run."""
    cursors = []
    for run in runs:
        it = iter(run)
        buf = _fill([], it, chunk_rows)
        if buf:
            cursors.append([buf, it])
    while len(cursors) > 1:
        bound = min([c[0][-1] for c in cursors])
        out = []
        live = []
        for c in cursors:
            buf, it = c
            if buf[-1] <= bound:
                out += buf
                buf = _fill([], it, chunk_rows)
            else:
                i = bisect_right(buf, bound)
                if i:
                    out += buf[:i]
                    buf = buf[i:]
                if len(buf) < chunk_rows:
                    buf = _fill(buf, it, chunk_rows)
            if buf:
                c[0] = buf
                live.append(c)
        cursors = live
        if len(out) > 1:
            out.sort()
        yield out
    if cursors:
        # One run left: its blocks still go out in chunks, since every chunk
        # costs the output a slice and a block's worth makes a small one.
        buf, it = cursors[0]
        while buf:
            yield buf
            buf = _fill([], it, chunk_rows)


class BaseLevelCheck:
    """IsBaseLevelForKey over the spans of files deeper than the output level.

    Asked about user keys in increasing order (as a compaction meets them), it
    walks forward through the merged spans once."""

    __slots__ = ("_starts", "_ends", "_i")

    def __init__(self, ranges):
        merged = []
        for lo, hi in sorted(ranges):
            if merged and lo <= merged[-1][1]:
                if hi > merged[-1][1]:
                    merged[-1][1] = hi
            else:
                merged.append([lo, hi])
        self._starts = [m[0] for m in merged]
        self._ends = [m[1] for m in merged]
        self._i = 0

    def __call__(self, ukey) -> bool:
        """True when no deeper file can hold ukey."""
        ends = self._ends
        i = self._i
        n = len(ends)
        while i < n and ends[i] < ukey:
            i += 1
        self._i = i
        return i == n or ukey < self._starts[i]


class DropRules:
    """LevelDB's compaction drop rules, applied chunk by chunk in row order.

    Worked example, smallest_snapshot 6, rows for key a: a@9 put, a@5 put,
    a@3 del.
    - a@9: the first version seen: kept (readers at sequence >= 9 see it).
    - a@5: first version with seq <= 6, kept: it is what snapshot 6 (and
      every older live snapshot) reads.
    - a@3: a version with seq <= 6 (a@5) was already seen, so no live reader
      can reach a@3: dropped (rule 1) -- its being a deletion doesn't matter.
    A deletion that is itself the first version <= smallest_snapshot (say
    a@5 del) is dropped only when no deeper level may hold an older a (rule
    2): otherwise dropping it would resurrect that older value.
    """

    __slots__ = ("_snap_nt", "_is_base", "_last_ukey", "_shadowing")

    def __init__(self, smallest_snapshot: int, deeper_ranges):
        # seq <= smallest_snapshot  <=>  -tag >= -(smallest_snapshot << 8 | 0xFF)
        self._snap_nt = -((smallest_snapshot << 8) | 0xFF)
        self._is_base = BaseLevelCheck(deeper_ranges)
        self._last_ukey = None
        self._shadowing = False  # a version of _last_ukey with seq <= snapshot was seen

    def apply(self, rows) -> list:
        """The rows that survive, in order. State carries over to the next call,
        so a user key whose versions straddle two chunks is handled whole."""
        if rows and self._keeps_all(rows):
            self._last_ukey = rows[-1][0]
            self._shadowing = rows[-1][1] >= self._snap_nt
            return rows
        snap_nt = self._snap_nt
        is_base = self._is_base
        last_ukey = self._last_ukey
        shadowing = self._shadowing
        kept = []
        keep = kept.append
        for row in rows:
            ukey = row[0]
            if ukey != last_ukey:
                last_ukey = ukey
                shadowing = False
            elif shadowing:
                continue  # rule 1
            nt = row[1]
            if nt >= snap_nt:
                shadowing = True
                # kind = tag & 0xFF, and -tag has the same low byte zero-ness.
                if not nt & 0xFF and is_base(ukey):
                    continue  # rule 2
            keep(row)
        self._last_ukey = last_ukey
        self._shadowing = shadowing
        return kept

    def _keeps_all(self, rows) -> bool:
        """True when no rule can drop a row: one version per user key (rule 1
        needs two) and no deletion (rule 2 drops only those). The usual chunk
        of a load of fresh keys; checked with C loops instead of the per-row
        one in apply()."""
        ukeys = list(map(itemgetter(0), rows))
        if ukeys[0] == self._last_ukey or any(map(eq, ukeys, islice(ukeys, 1, None))):
            return False
        # -tag has a zero low byte exactly when tag's kind is a deletion.
        return all(map(and_, map(itemgetter(1), rows), repeat(0xFF)))
