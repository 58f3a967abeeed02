"""Flushes and compactions on columns (numpy), for entries of any size and
kind. Knows tables (lsm.table), write batches and LevelDB's drop rules;
reads tables, writes nothing.

A job's entries become lsm.table.bulk.EntryArrays: the entries' bytes as
lsm's blocks store them, and columns of where each lies and of its tag. One
sort orders a window of them (user keys as big-endian words, zero-padded
alike, ties on padding broken by key length, then the tag descending); the
drop rules are masks over the sorted columns; what is kept goes to the
output as whole blocks (output.OutputSet.add_entries).

Drop rules, for each sorted entry against smallest_snapshot S:
- shadowed: the entry before it has the same user key and a sequence <= S,
  so every live reader sees that newer version (or a newer one) instead;
- a deletion marker with sequence <= S that is not shadowed is dropped when
  no deeper level's files can hold its key (deeper_ranges): no older value
  remains for it to hide. Keeping a marker is always safe.
Worked example, S = 6, entries a@9 put, a@5 put, a@3 del (sorted newest
first): a@9 is the first of its key, kept; a@5 follows a@9, whose sequence
9 > 6, so it is kept (snapshot 6 reads it); a@3 follows a@5, 5 <= 6, so it
is shadowed and dropped, deletion or not. Had a@5 been a deletion, it would
go too when no deeper file's range holds "a", leaving only a@9.

Keys too wide for a column (a window's keys are padded to its longest)
are sorted by Python instead; everything else stays the same.
"""
from bisect import bisect_left
from itertools import accumulate

from ..batch import HEADER_SIZE as BATCH_HEADER_SIZE
from ..batch import decode_header as decode_batch_header
from ..batch import record_columns, uniform_puts
from ..errors import CorruptionError, DecodeError
from ..keys import TYPE_VALUE
from ..table.bulk import EntryArrays, byte_rows, concat_entries, decode_joined_blocks, gather_entries
from .merge import BaseLevelCheck
from ..record import clean_payloads

# Blocks read from a run at a time: a compaction holds a few such chunks per
# run. Each window's numpy steps, block cuts and filter hashes cost a fixed
# amount per call besides their work per entry; a MiB of entries of a few
# hundred bytes each keeps that part small. A job of many runs (a level-0
# backlog may be 20) reads less of each, down to a quarter, so that its
# chunks stay near RUNS_BYTES in all.
CHUNK_BYTES = 1 << 20
RUNS_BYTES = 8 << 20
# Sorted entries a flush hands to the output at a time (a flush holds its
# whole WAL anyway).
WINDOW_BYTES = 4 << 20
# A window whose padded key column would pass this many bytes, or whose
# longest key passes _MAX_COLUMN_KEY, is sorted by Python.
_MAX_COLUMN_BYTES = 32 << 20
_MAX_COLUMN_KEY = 4096
# Entries of at most _FEW_RUNS sorted runs, or whose keys vary in more
# than _FEW_WORDS 8-byte words, are sorted as byte strings; others by
# their words.
_FEW_RUNS = 64
_FEW_WORDS = 2
_NO_SNAPSHOT = -1  # a flush drops nothing: no sequence is <= this


class SortedWindow:
    """Entries kept of a window, sorted, and `starts`: the positions where a
    new user key begins (numpy, ascending). A window holds every version of
    its user keys, so starts begins at 0 -- but for the part-block an
    OutputSet keeps for its next call, which may begin inside a key."""

    __slots__ = ("entries", "starts")

    def __init__(self, entries, starts):
        self.entries = entries
        self.starts = starts

    def __len__(self):
        return len(self.entries)


def _padded_keys(entries):
    """The user keys zero-padded to the longest, rounded up to whole 8-byte
    words, as the rows of a contiguous uint8 array, or None when it would
    be too large. Keys compare as their rows, except keys equal but for
    trailing zeros, which pad alike."""
    import numpy as np

    n = len(entries)
    lengths = entries.user_len
    width = int(lengths.max()) if n else 0
    if width > _MAX_COLUMN_KEY or width * n > _MAX_COLUMN_BYTES:
        return None
    padded = max(8, -(-width // 8) * 8)
    rows = byte_rows(np.frombuffer(entries.data, dtype=np.uint8), entries.key, padded)
    if (lengths != padded).any():
        rows[np.arange(padded) >= lengths[:, None]] = 0
    return np.ascontiguousarray(rows)


def sort_entries(entries, presorted: bool, runs=None):
    """(order, same_key): order puts the entries in internal-key order (None
    when they are in it: presorted, or fewer than two); same_key[i] says
    sorted entries i and i + 1 have one user key. runs: how many sorted
    runs the entries are laid end to end in, if few (a compaction's window).

    The padded keys are sorted first: entries of a few runs as byte
    strings, by one stable sort that finds the runs; entries in any order
    (a flush's) by their varying 8-byte words, one integer sort each, or
    as byte strings when more than two words vary.
    Keys that pad alike (versions of one key, or keys equal but for
    trailing zeros) are then ordered among themselves by length -- the
    shorter is a prefix of the longer, so it sorts first -- and by tag,
    descending."""
    import numpy as np

    rows = _padded_keys(entries)
    if rows is None:
        keys = list(map(entries.user_key, range(len(entries))))
        order = None
        if not presorted:
            tags = entries.tag.tolist()
            order = np.array(sorted(range(len(keys)), key=lambda i: (keys[i], -tags[i])), dtype=np.int64)
            keys = list(map(keys.__getitem__, order.tolist()))
        same = np.fromiter(map(bytes.__eq__, keys, keys[1:]), dtype=bool, count=max(len(keys) - 1, 0))
        return order, same
    lengths = entries.user_len
    order = None
    words = varying = None
    if not presorted and len(entries) > 1 and (runs is None or runs > _FEW_RUNS):
        words = rows.view(">u8").astype(np.uint64)
        # Words equal on every row order nothing.
        varying = [j for j in range(words.shape[1]) if (words[:, j] != words[0, j]).any()]
    if presorted or len(entries) < 2:
        alike = (rows[1:] == rows[:-1]).all(axis=1)
    elif varying is None or len(varying) > _FEW_WORDS:
        strings = rows.view("S%d" % rows.shape[1]).ravel()
        order = np.argsort(strings, kind="stable")
        strings = strings[order]
        alike = strings[1:] == strings[:-1]
    else:
        # lexsort's last key is the primary one.
        order = np.lexsort([words[:, j] for j in reversed(varying)]) if varying else np.arange(len(entries))
        words = words[order]
        alike = (words[1:] == words[:-1]).all(axis=1)
    if order is not None:
        if alike.any():
            # Only the entries of groups that pad alike move, within their group.
            group = np.concatenate(([0], np.cumsum(~alike)))
            moved = np.zeros(len(order), dtype=bool)
            moved[1:] = alike
            moved[:-1] |= alike
            at = np.flatnonzero(moved)
            members = order[at]
            order[at] = members[np.lexsort((~entries.tag[members], lengths[members], group[at]))]
        lengths = lengths[order]  # the padded keys stay as sorted: those reordered pad alike
    return order, alike & (lengths[1:] == lengths[:-1])


def drop_mask(tags, same_key, smallest_snapshot: int, is_base_level, user_key):
    """Which sorted entries to keep (numpy bool), given their tags, by the
    rules in the module docstring; is_base_level(user_key(i)) asked in
    increasing key order (None: no deeper level holds any file)."""
    import numpy as np

    sequence = tags >> np.uint64(8)
    keep = np.ones(len(tags), dtype=bool)
    if smallest_snapshot < 0 or not len(tags):
        return keep
    visible = sequence <= np.uint64(smallest_snapshot)
    keep[1:] = ~(same_key & visible[:-1])
    deletion = (tags & np.uint64(0xFF)) == 0
    droppable = keep & deletion & visible
    if is_base_level is None:
        return keep & ~droppable  # no deeper file: every key is at its base level
    for i in np.flatnonzero(droppable).tolist():
        if is_base_level(user_key(i)):
            keep[i] = False
    return keep


def sorted_window(entries, runs: int, smallest_snapshot: int, is_base_level=None) -> SortedWindow:
    """The entries, laid end to end in `runs` sorted runs, sorted, less
    those the drop rules drop."""
    import numpy as np

    order, same_key = sort_entries(entries, runs == 1, runs)
    if order is None:
        tags, user_key = entries.tag, entries.user_key
    else:
        tags = entries.tag[order]
        user_key = lambda i: entries.user_key(int(order[i]))  # noqa: E731
    keep = drop_mask(tags, same_key, smallest_snapshot, is_base_level, user_key)
    new_key = np.concatenate(([True], ~same_key)) if len(entries) else np.zeros(0, dtype=bool)
    if not keep.all():
        order = np.flatnonzero(keep) if order is None else order[keep]
        new_key = new_key[keep]
    # One gather of the columns: sorted and kept.
    return SortedWindow(entries if order is None else entries.take(order), np.flatnonzero(new_key))


class ColumnarMerge:
    """A compaction's entries, in windows of whole user keys.

    runs: lists of tables, each list disjoint and in key order (a level-0
    file alone, or the files of one level); lower, upper: the user-key
    bounds of a subcompaction (None: unbounded).

    windows() yields SortedWindows: every entry kept with a user key in
    [previous bound, bound), where bound is the smallest user key among the
    last entries read of the runs not yet exhausted: no unread entry can sort
    below it. Each run is read chunk_bytes of blocks at a time, so memory
    stays a few chunks per run, whatever the job's size."""

    def __init__(self, runs, lower, upper, smallest_snapshot: int, deeper_ranges, chunk_bytes=None):
        self._runs = runs
        self._lower = lower
        self._upper = upper
        self._snapshot = smallest_snapshot
        self._is_base_level = BaseLevelCheck(deeper_ranges) if deeper_ranges else None
        self._chunk_bytes = chunk_bytes or min(CHUNK_BYTES, max(CHUNK_BYTES // 4, RUNS_BYTES // max(1, len(runs))))

    def windows(self):
        # A cursor per run: [the chunks read and not yet wholly taken, in
        # order, none empty; the run's chunks still to read, or None]. The
        # chunks stay as read: a window's entries are copied once, by the
        # concat_entries that lays them out for its sort.
        cursors = []
        for tables in self._runs:
            chunks = self._chunks(tables)
            first = next(chunks, None)
            if first is not None:
                cursors.append([[first], chunks])
        while cursors:
            live = [c[0][-1] for c in cursors if c[1] is not None]
            bound = min(rows.user_key(len(rows) - 1) for rows in live) if live else None
            pieces = []
            runs = 0
            for c in cursors:
                taken = _take_below(c[0], bound)
                if taken:
                    pieces += taken
                    runs += 1
            if pieces:
                yield sorted_window(concat_entries(pieces), runs, self._snapshot, self._is_base_level)
            for c in cursors:
                # Read on where little is left, and where every buffered
                # entry has the bound's user key when none could be taken.
                buffered = c[0]
                stuck = not pieces and buffered and buffered[0].user_key(0) == bound
                while c[1] is not None and (stuck or sum(map(_span, buffered)) < self._chunk_bytes):
                    stuck = False
                    more = next(c[1], None)
                    if more is None:
                        c[1] = None
                    else:
                        buffered.append(more)
            cursors = [c for c in cursors if c[0] or c[1] is not None]

    def _chunks(self, tables):
        """The run's entries within [lower, upper) as EntryArrays of about
        chunk_bytes of blocks each (never empty)."""
        lower, upper = self._lower, self._upper
        for table in tables:
            start = 0 if lower is None else table.find_block(lower)
            stop = table.num_blocks
            if upper is not None:
                # Block i + 1 starts at or after separator i: none >= upper is needed.
                stop = min(stop, max(start + 1, bisect_left(table.index_user_keys, upper) + 1))
            while start < stop:
                end = table.blocks_within(start, stop, self._chunk_bytes)
                entries = _decode(table, start, end)
                start = end
                if not len(entries):
                    continue
                if lower is not None and entries.user_key(0) < lower:
                    entries = entries.take(slice(bisect_left(entries.user_keys(), lower), None))
                    if not len(entries):
                        continue
                if upper is not None and entries.user_key(len(entries) - 1) >= upper:
                    entries = entries.take(slice(0, bisect_left(entries.user_keys(), upper)))
                    if len(entries):
                        yield entries
                    return
                yield entries


def _take_below(chunks, bound):
    """Remove from the front of chunks (a list of EntryArrays in key order)
    the entries whose user key is below bound (every one if bound is None),
    and return them, as pieces in order."""
    taken = []
    while chunks:
        rows = chunks[0]
        k = len(rows) if bound is None else bisect_left(rows.user_keys(), bound)
        if k == len(rows):
            taken.append(chunks.pop(0))
            continue
        if k:
            taken.append(rows.take(slice(0, k)))
            chunks[0] = rows.take(slice(k, None))
        break
    return taken


def _span(entries) -> int:
    return int(entries.end[-1] - entries.start[0]) if len(entries) else 0


def _decode(table, start: int, end: int):
    """EntryArrays of data blocks start..end-1 of a table; CorruptionError
    naming the table and block when one is malformed."""
    try:
        return decode_joined_blocks(*table.joined_contents_of_blocks(start, end))
    except DecodeError as exc:
        block = start + getattr(exc, "block", 0)
        raise CorruptionError(table.path, None, f"data block {block}: {exc.reason}") from None


# ------------------------------------------------------------------ flush


def flush_windows(wal: bytes):
    """(windows, max sequence, arrived sorted) of a WAL's contents, or None unless the log
    is clean (lsm.record.clean_payloads) and every batch decodes: then the
    row path replays it and reports the damage. windows yields
    SortedWindows of every entry, a MiB or so at a time; nothing is
    dropped: older versions may still be read through snapshots, and a
    deletion must shadow older tables. arrived sorted: the WAL held the
    entries in internal-key order already (a sorted load's).

    Records are located where they lie (batch.record_columns; a batch of
    one key length and one value length by its stride alone), sorted by
    their columns, and copied once, in order (bulk.gather_entries)."""
    import numpy as np

    payloads = clean_payloads(wal)
    if payloads is None:
        return None
    data = b"".join(payloads)
    bounds = list(accumulate(map(len, payloads), initial=0))
    del payloads
    scanned = []  # the fields of every batch record_columns read, end to end
    strided = []  # (n, 5) arrays of the same fields, of batches located by stride
    sequences, counts = [], []  # of scanned batches, then of strided ones
    strided_batches = []
    max_sequence = 0
    for start, end in zip(bounds, bounds[1:]):
        if end - start < BATCH_HEADER_SIZE:
            return None
        sequence, count = decode_batch_header(data, start)
        layout = uniform_puts(data, start, end, count)
        if layout is None:
            try:
                sequence, count, fields = record_columns(data, start, end)
            except DecodeError:
                return None
            scanned += fields
            sequences.append(sequence)
            counts.append(count)
        else:
            strided.append(_strided_fields(count, *layout))
            strided_batches.append((sequence, count))
        if count:
            max_sequence = max(max_sequence, sequence + count - 1)
    for sequence, count in strided_batches:
        sequences.append(sequence)
        counts.append(count)
    fields = np.concatenate([np.array(scanned, dtype=np.int64).reshape(-1, 5)] + strided)
    kind, key_at, key_len, value_at, value_len = fields.T
    # Record i of a batch has the batch's sequence + i.
    counts = np.array(counts, dtype=np.int64)
    firsts = np.cumsum(counts) - counts
    sequence = np.repeat(np.array(sequences, dtype=np.int64) - firsts, counts) + np.arange(len(fields))
    tags = (sequence.astype(np.uint64) << np.uint64(8)) | kind.astype(np.uint64)
    keys = EntryArrays(data, key_at, key_at, key_len, key_at + key_len, tags)
    order, same_key = sort_entries(keys, False)
    arrived_sorted = order is None or bool((order == np.arange(len(order))).all())
    if order is not None:
        key_at, key_len, value_at, value_len, tags = (
            key_at[order], key_len[order], value_at[order], value_len[order], tags[order])
    entries = gather_entries(data, key_at, key_len, value_at, value_len, tags)
    starts = np.flatnonzero(np.concatenate(([True], ~same_key))) if len(tags) else np.zeros(0, np.int64)
    return _split(SortedWindow(entries, starts)), max_sequence, arrived_sorted


def _strided_fields(count: int, stride: int, key_at: int, key_len: int, value_at: int, value_len: int):
    """record_columns' fields of `count` puts at a fixed stride from the
    first's key and value offsets, as a (count, 5) array."""
    import numpy as np

    at = np.arange(count, dtype=np.int64) * stride
    fields = np.empty((count, 5), dtype=np.int64)
    fields[:, 0] = TYPE_VALUE
    fields[:, 1] = at + key_at
    fields[:, 2] = key_len
    fields[:, 3] = at + value_at
    fields[:, 4] = value_len
    return fields


def _split(window):
    """window in pieces of about WINDOW_BYTES, each starting at a user key."""
    import numpy as np

    entries, starts = window.entries, window.starts
    n = len(entries)
    ends = np.cumsum(entries.end - entries.start)  # bytes up to the end of each entry
    lo = 0
    while lo < n:
        j = int(starts.searchsorted(lo))  # starts[j] == lo
        reach = int(ends.searchsorted(int(ends[lo]) + WINDOW_BYTES))
        k = max(int(starts.searchsorted(reach)), j + 1)
        hi = int(starts[k]) if k < len(starts) else n
        yield SortedWindow(entries.take(slice(lo, hi)), starts[j:k] - lo)
        lo = hi
