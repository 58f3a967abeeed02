"""Flushes and compactions of fixed-size entries, done with numpy. Knows
tables (lsm.table), write batches and the drop rules of merge.py; reads
tables, writes nothing.

Uniform blocks (lsm.table.block) hold entries of one layout at a fixed
stride: a header, the whole internal key, the value. Laid end to end, a
run's entries are a 2-D uint8 array, one row per entry, and every step of
a compaction is a numpy operation on whole columns: the sort (user key
columns as big-endian words, then the tag descending), LevelDB's drop rule
(an entry is shadowed when the version before it, of the same user key, is
visible to every snapshot) and the gather of the rows kept. The rows kept
are already the bytes of the output blocks' entries, which is what
TableBuilder.add_uniform writes.

A flush of a WAL whose write batches are all puts of one key length and one
value length builds the same rows from the batches' records, tags counted
from each batch's sequence, and sorts them.

Only the common case takes this path: every block uniform with one layout,
and no deletion (deletion markers take merge.DropRules' base-level rule).
A flush that does not fit answers None; a compaction stops at the first
block that does not fit (UniformMerge.resume_at). The row-by-row path
(merge.py) does the rest, and reports damage in detail.
"""
from bisect import bisect_left
from dataclasses import dataclass

from ..batch import HEADER_SIZE as BATCH_HEADER_SIZE
from ..batch import decode_header as decode_batch_header
from ..coding import encode_varint
from ..record import clean_payloads
from ..table.block import uniform_layout

_KIND_VALUE = 1  # keys.TYPE_VALUE: the kind byte every entry here must carry
# Blocks read from a run at a time: a compaction holds a few such chunks per
# run (a level-0 backlog may be 20 runs), and each numpy step still covers
# thousands of entries, so its per-call cost vanishes.
CHUNK_BYTES = 256 << 10
# Sorted rows a flush hands to the output at a time.
WINDOW_BYTES = 1 << 20


def _user_key(entries, header_len: int, key_len: int, row: int) -> bytes:
    return entries[row, header_len:header_len + key_len - 8].tobytes()


@dataclass
class UniformRows:
    """Sorted entries of one layout, as a uniform block's entries.

    array: (n, stride) uint8 numpy array, one entry per row: header_len
    header bytes, the internal key (key_len bytes: user key, then the tag as
    a little-endian fixed64), the value. starts: the rows where a new user
    key begins (numpy int array, ascending, starting with 0 when n > 0)."""

    array: object
    header_len: int
    key_len: int
    starts: object

    @property
    def stride(self) -> int:
        return self.array.shape[1]

    def __len__(self) -> int:
        return len(self.array)

    def user_key(self, row: int) -> bytes:
        return _user_key(self.array, self.header_len, self.key_len, row)

    def sort_key(self, row: int):
        """(user key, -tag) of a row: keys.sort_key of its internal key."""
        at = self.header_len + self.key_len - 8
        return self.user_key(row), -int.from_bytes(self.array[row, at:at + 8].tobytes(), "little")


class _UserKeys:
    """The user keys of an entry array as a sequence, for bisect."""

    __slots__ = ("_entries", "_header_len", "_key_len")

    def __init__(self, entries, header_len: int, key_len: int):
        self._entries = entries
        self._header_len = header_len
        self._key_len = key_len

    def __len__(self):
        return len(self._entries)

    def __getitem__(self, row):
        return _user_key(self._entries, self._header_len, self._key_len, row)


class KeysAtStarts:
    """sort_key of the first row of every user key, as a sequence for bisect."""

    __slots__ = ("_rows", "_starts")

    def __init__(self, rows: UniformRows):
        self._rows = rows
        self._starts = rows.starts.tolist()

    def __len__(self):
        return len(self._starts)

    def __getitem__(self, j):
        return self._rows.sort_key(self._starts[j])


class UniformMerge:
    """A compaction's rows on this path, in windows of whole user keys.

    runs: lists of tables, each list disjoint and in key order (a level-0
    file alone, or the files of one level); lower, upper: the user-key
    bounds of a subcompaction (None: unbounded).

    windows() yields UniformRows: every row kept with a user key in
    [previous bound, bound), sorted, where bound is the smallest user key
    among the last rows read of the runs not yet exhausted: no unread row
    can sort below it. Each run is read chunk_bytes of blocks at a time, so
    memory stays a few chunks per run, whatever the job's size. When a
    block turns out not to fit (see the module docstring), windows() stops
    early: `complete` stays false, and the rows from user key `resume_at`
    on (None: from the start) are the row path's to write."""

    def __init__(self, runs, lower, upper, smallest_snapshot: int, chunk_bytes=None):
        self._runs = runs
        self._lower = lower
        self._upper = upper
        self._snapshot = smallest_snapshot
        self._chunk_bytes = chunk_bytes or CHUNK_BYTES
        self._layout = None
        self.complete = False
        self.resume_at = lower

    def windows(self):
        import numpy as np

        try:
            cursors = []
            for tables in self._runs:
                chunks = self._chunks(tables)
                cursors.append([next(chunks, None), chunks])
            cursors = [c for c in cursors if c[0] is not None]
            while cursors:
                live = [c[0] for c in cursors if c[1] is not None]
                bound = min(self._user_key(rows, -1) for rows in live) if live else None
                pieces = []
                for c in cursors:
                    rows = c[0]
                    taken = len(rows) if bound is None else bisect_left(self._user_keys(rows), bound)
                    if taken:
                        pieces.append(rows[:taken])
                        c[0] = rows[taken:]
                if pieces:
                    entries = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
                    header_len, key_len, _value_len = self._layout
                    yield _sorted_rows(entries, header_len, key_len, len(pieces) > 1, self._snapshot)
                    self.resume_at = bound
                for c in cursors:
                    # Read on where little is left, and where every buffered
                    # row has the bound's user key when no row could be taken.
                    stuck = not pieces and len(c[0]) and self._user_key(c[0], 0) == bound
                    while c[1] is not None and (stuck or len(c[0]) * c[0].shape[1] < self._chunk_bytes):
                        stuck = False
                        more = next(c[1], None)
                        if more is None:
                            c[1] = None
                        else:
                            c[0] = np.concatenate((c[0], more)) if len(c[0]) else more
                cursors = [c for c in cursors if len(c[0]) or c[1] is not None]
            self.complete = True
        except _DoesNotFit:
            return

    def _user_key(self, rows, row: int) -> bytes:
        return _user_key(rows, self._layout[0], self._layout[1], row)

    def _user_keys(self, rows):
        return _UserKeys(rows, self._layout[0], self._layout[1])

    def _chunks(self, tables):
        """The run's entries within [lower, upper) as arrays of about
        chunk_bytes of blocks each (never empty); _DoesNotFit at a block
        this path cannot take."""
        lower, upper = self._lower, self._upper
        for table in tables:
            start = 0 if lower is None else table.find_block(lower)
            stop = table.num_blocks
            if upper is not None:
                # Block i + 1 starts at or after separator i: none >= upper is needed.
                stop = min(stop, max(start + 1, bisect_left(table.index_user_keys, upper) + 1))
            while start < stop:
                end = table.blocks_within(start, stop, self._chunk_bytes)
                entries = self._entries(table.contents_of_blocks(start, end))
                start = end
                if lower is not None and self._user_key(entries, 0) < lower:
                    entries = entries[bisect_left(self._user_keys(entries), lower):]
                    if not len(entries):
                        continue
                if upper is not None and self._user_key(entries, -1) >= upper:
                    entries = entries[:bisect_left(self._user_keys(entries), upper)]
                    if len(entries):
                        yield entries
                    return
                if len(entries):
                    yield entries

    def _entries(self, blocks):
        """The entries of uniform blocks of the job's layout, puts only, as
        one (n, stride) array; _DoesNotFit otherwise."""
        import numpy as np

        pieces = []
        for contents in blocks:
            found = uniform_layout(contents)
            if found is None:
                raise _DoesNotFit
            limit, header_len, key_len, value_len, _count = found
            if self._layout is None:
                if key_len < 8:
                    raise _DoesNotFit  # not an internal key: the row path reports it
                self._layout = (header_len, key_len, value_len)
            elif self._layout != (header_len, key_len, value_len):
                raise _DoesNotFit
            pieces.append(memoryview(contents)[:limit])
        header_len, key_len, value_len = self._layout
        entries = np.frombuffer(b"".join(pieces), dtype=np.uint8).reshape(-1, header_len + key_len + value_len)
        if not (entries[:, header_len + key_len - 8] == _KIND_VALUE).all():
            raise _DoesNotFit
        return entries


class _DoesNotFit(Exception):
    """A block the uniform path cannot take."""


def flush_uniform(wal: bytes):
    """(windows, max sequence) of a WAL's contents, or None unless the log
    is clean (lsm.record.clean_payloads) and every batch holds only puts
    with one key length and one value length, each below 128 bytes: the WAL
    of a load in batches. windows yields UniformRows of every entry,
    sorted, a MiB or so at a time (the sorted copy is made window by
    window). Nothing is dropped."""
    import numpy as np

    payloads = clean_payloads(wal)
    if not payloads:
        return None
    layout = None
    pieces, sequences, counts = [], [], []
    for payload in payloads:
        if len(payload) < BATCH_HEADER_SIZE:
            return None
        sequence, count = decode_batch_header(payload)
        records = memoryview(payload)[BATCH_HEADER_SIZE:]
        if len(records) < 3:
            if count or len(records):
                return None
            continue  # an empty batch
        key_len = records[1]
        value_len = records[2 + key_len] if 2 + key_len < len(records) else 128
        if key_len >= 128 or value_len >= 128 or layout not in (None, (key_len, value_len)):
            return None
        layout = (key_len, value_len)
        if len(records) != count * (3 + key_len + value_len):
            return None
        pieces.append(records)
        sequences.append(sequence)
        counts.append(count)
    if layout is None:
        return None
    key_len, value_len = layout
    records = np.frombuffer(b"".join(pieces), dtype=np.uint8).reshape(-1, 3 + key_len + value_len)
    del payloads, pieces, payload  # records are a copy: the batches go now
    # Every record at the stride: a put, the key length, the value length.
    if not (
        (records[:, 0] == _KIND_VALUE).all()
        and (records[:, 1] == key_len).all()
        and (records[:, 2 + key_len] == value_len).all()
    ):
        return None
    n = len(records)
    counts = np.array(counts, dtype=np.int64)
    firsts = np.cumsum(counts) - counts  # each batch's first row
    sequence_of = np.repeat(np.array(sequences, dtype=np.uint64) - firsts.astype(np.uint64), counts)
    tags = ((sequence_of + np.arange(n, dtype=np.uint64)) << np.uint64(8)) | np.uint64(_KIND_VALUE)
    header = encode_varint(0) + encode_varint(key_len + 8) + encode_varint(value_len)
    at = len(header)
    entries = np.empty((n, at + key_len + 8 + value_len), dtype=np.uint8)
    entries[:, :at] = np.frombuffer(header, dtype=np.uint8)
    entries[:, at:at + key_len] = records[:, 2:2 + key_len]
    entries[:, at + key_len:at + key_len + 8] = tags.astype("<u8").view(np.uint8).reshape(n, 8)
    entries[:, at + key_len + 8:] = records[:, 3 + key_len:]
    del records
    max_sequence = max(s + c - 1 for s, c in zip(sequences, counts.tolist()))
    order, same_key = _sort(entries, at, key_len + 8, True)
    starts = np.flatnonzero(np.concatenate(([True], ~same_key)))
    return _windows(entries, order, starts, at, key_len + 8), max_sequence


def _windows(entries, order, starts, header_len: int, key_len: int):
    """UniformRows of entries[order], about WINDOW_BYTES at a time, each
    window starting at a user key (starts: the sorted rows where one begins)."""
    step = max(1, WINDOW_BYTES // entries.shape[1])
    n = len(order)
    lo = 0
    while lo < n:
        j = int(starts.searchsorted(lo + step))
        hi = int(starts[j]) if j < len(starts) else n
        first = int(starts.searchsorted(lo))
        yield UniformRows(entries[order[lo:hi]], header_len, key_len, starts[first:j] - lo)
        lo = hi


def _sort(entries, header_len: int, key_len: int, merge: bool):
    """(order, same_key) of entries: order sorts them into internal-key
    order (None when they are in it already: one run); same_key[i] says
    sorted rows i and i + 1 have one user key."""
    import numpy as np

    user_len = key_len - 8
    # User keys compare as bytes: as big-endian words, zero-padded alike.
    words = np.zeros((len(entries), -(-user_len // 8) * 8), dtype=np.uint8)
    words[:, :user_len] = entries[:, header_len:header_len + user_len]
    words = words.view(">u8")
    order = None
    if merge:
        order = _internal_order(words.astype(np.uint64), _tags(entries, header_len, key_len))
        words = words[order]
    return order, (words[1:] == words[:-1]).all(axis=1)


def _internal_order(columns, tags):
    """The order of rows by user key (the words of `columns`, most significant
    first) ascending, then tag descending. Words equal on every row order
    nothing and are skipped; when the first word that varies has no two rows
    alike (fresh keys), one argsort of it is the order -- about a tenth of a
    lexsort over every word and the tag."""
    import numpy as np

    width = columns.shape[1]
    first = 0
    while first < width and (columns[:, first] == columns[0, first]).all():
        first += 1
    if first == width:
        return np.argsort(~tags, kind="stable")  # one user key: newest first
    lead = columns[:, first]
    order = np.argsort(lead, kind="stable")
    ranked = lead[order]
    if (ranked[1:] == ranked[:-1]).any():
        # lexsort's last key is the primary one: user key words, then newest first.
        order = np.lexsort((~tags, *columns[:, first:].T[::-1]))
    return order


def _tags(entries, header_len: int, key_len: int):
    import numpy as np

    return np.ascontiguousarray(entries[:, header_len + key_len - 8:header_len + key_len]).view("<u8").ravel()


def _sorted_rows(entries, header_len: int, key_len: int, merge: bool, smallest_snapshot: int):
    """UniformRows of entries (their runs laid end to end; merge: more than
    one run, so sort) less those shadowed below smallest_snapshot."""
    import numpy as np

    order, same_key = _sort(entries, header_len, key_len, merge)
    tags = _tags(entries, header_len, key_len)
    if order is not None:
        tags = tags[order]
    # Shadowed: the newer version just before it, same user key, has a
    # sequence every snapshot sees (DropRules' rule 1).
    shadowed = same_key & ((tags[:-1] >> 8) <= smallest_snapshot)
    keep = np.concatenate(([True], ~shadowed))
    new_key = np.concatenate(([True], ~same_key))
    if order is None and keep.all():
        kept = entries
    else:
        kept = entries[order[keep] if order is not None else keep]
    return UniformRows(np.ascontiguousarray(kept), header_len, key_len, np.flatnonzero(new_key[keep]))
