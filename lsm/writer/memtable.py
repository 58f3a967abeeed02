"""The memtable: recent writes, held in memory for reads. Knows keys and
sequences; no files (its WAL is the durable copy, and flushes read the WAL).

Batches are indexed lazily: a write appends the batch to a pending list, and
the first read decodes and indexes everything pending. A pure ingest never
pays for the index: flushes read the WAL, and a stalled writer flushing a
memtable itself asks for its rows (flush_rows) only when the WAL's batches
are not all fixed-size puts. A pending batch is kept as where its WAL
record lies (add_logged), and the memtable's `load` reads it back when a
read needs it; so the batch's bytes are freed as soon as they are written,
and the next batch reuses the memory instead of faulting in fresh pages.

A dict maps each user key to its newest entry ``(tag, value)``; older versions
are kept only while a live snapshot can still see them (a list, newest first),
because nothing else ever reads them — the WAL, and so the flushed table,
keeps every version anyway. Sorted order is built lazily for iterators:
Timsort merges the already-sorted keys with the keys added since.
"""
import threading
from bisect import bisect_left
from operator import itemgetter, neg

from ..batch import decode_batch

# Per-entry overhead charged against write_buffer_size, close to what
# LevelDB's arena charges (skiplist node, varint headers, trailer).
ENTRY_OVERHEAD = 24

_tag_of = itemgetter(0)
_value_of = itemgetter(1)


class MemTable:
    __slots__ = ("_table", "_sorted", "_unsorted", "approximate_bytes", "wal_number", "entries",
                 "flush_job", "flush_done", "_pending", "_apply_lock", "_load", "_ordered", "__weakref__")

    def __init__(self, wal_number: int = 0, load=None, ordered=None):
        self._table = {}
        self._sorted = []
        self._unsorted = []
        self.approximate_bytes = 0
        self.wal_number = wal_number
        self.entries = 0
        self.flush_job = None  # the job flushing this memtable's WAL, once frozen
        self.flush_done = None  # its finished, validated run, waiting for older flushes
        self._pending = []  # spans (for _load) of the batches not yet indexed, oldest first
        self._apply_lock = threading.Lock()
        self._load = load  # span -> the payload add_logged was told of
        # A custom comparator's key type (lsm.order): sorted keys and rows
        # hold ordered keys; the dict holds the keys as written.
        self._ordered = ordered

    def __len__(self):
        return len(self._table)

    def add_payload(self, payload: bytes, snapshots) -> None:
        """Apply a WriteBatch as the WAL holds it (header and records), now.

        `snapshots` is the ascending list of live snapshot sequences; it
        decides which superseded versions must stay readable, so the batch
        is indexed at once (with none live, add_logged defers it)."""
        if self._pending:
            self._apply_pending()
        self._index(*decode_batch(payload), snapshots)

    def add_logged(self, span, count: int, nbytes: int) -> None:
        """Apply a batch of `count` operations and `nbytes` bytes, written
        while no snapshot is live, given by where its WAL holds it: the
        memtable's `load` turns span back into the payload when a read needs
        the index. A pure ingest never decodes it."""
        self._pending.append(span)
        self.entries += count
        self.approximate_bytes += nbytes + ENTRY_OVERHEAD * count

    def _apply_pending(self):
        """Index pending batches in order. Writers only append to the list, so
        taking a prefix and deleting it is safe while they keep appending."""
        with self._apply_lock:
            pending = self._pending
            n = len(pending)
            if not n:
                return
            table = self._table
            new_keys = self._unsorted
            for payload in map(self._load, pending[:n]):
                first_sequence, ops = decode_batch(payload)
                tag = first_sequence << 8
                for kind, key, value in ops:
                    if key not in table:
                        new_keys.append(key)
                    table[key] = (tag | kind, value)
                    tag += 256
            del pending[:n]

    def _index(self, first_sequence, ops, snapshots):
        table = self._table
        new_keys = self._unsorted
        tag = first_sequence << 8
        added = 0
        if not snapshots:
            for kind, key, value in ops:
                if key not in table:
                    new_keys.append(key)
                table[key] = (tag | kind, value)
                added += len(key) + len(value)
                tag += 256
        else:
            for kind, key, value in ops:
                old = table.get(key)
                entry = (tag | kind, value)
                if old is None:
                    new_keys.append(key)
                    table[key] = entry
                else:
                    table[key] = _keep_visible(entry, old, snapshots)
                added += len(key) + len(value)
                tag += 256
        self.entries += len(ops)
        self.approximate_bytes += added + ENTRY_OVERHEAD * len(ops)

    def add_one(self, tag: int, key: bytes, value: bytes) -> None:
        """One entry, when no snapshot is live (nothing older needs keeping)."""
        if self._pending:
            self._apply_pending()
        table = self._table
        if key not in table:
            self._unsorted.append(key)
        table[key] = (tag, value)
        self.entries += 1
        self.approximate_bytes += len(key) + len(value) + ENTRY_OVERHEAD

    def get(self, key: bytes, sequence: int):
        """Newest entry for key with seq <= sequence: (kind, value), or None."""
        if self._pending:
            self._apply_pending()
        entry = self._table.get(key)
        if entry is None:
            return None
        if type(entry) is tuple:
            tag, value = entry
            if tag >> 8 <= sequence:
                return tag & 0xFF, value
            return None
        for tag, value in entry:
            if tag >> 8 <= sequence:
                return tag & 0xFF, value
        return None

    def sorted_keys(self) -> list:
        """Every user key ever added, ascending. Later adds may extend it, so
        callers that need a stable view keep the list object they got."""
        if self._pending:
            self._apply_pending()
        if self._unsorted:
            if self._ordered is None:
                merged = self._sorted + self._unsorted
            else:
                merged = self._sorted + list(map(self._ordered, self._unsorted))
            merged.sort()
            self._sorted = merged
            self._unsorted = []
        return self._sorted

    def flush_rows(self) -> list:
        """Every kept entry as a row (user_key, -tag, value), sorted: what a
        flush of this frozen memtable writes. Versions superseded before any
        live snapshot could see them were never kept, so a table flushed from
        here may hold fewer versions than one flushed from the WAL, never
        fewer visible ones."""
        if self._pending:
            self._apply_pending()  # under its lock: no reader changes the dict after this
        table = self._table
        entries = list(table.values())
        if list not in map(type, entries):
            # One version per key, the usual case: built by C loops.
            rows = list(zip(table.keys(), map(neg, map(_tag_of, entries)), map(_value_of, entries)))
        else:
            rows = []
            for key, entry in zip(table.keys(), entries):
                if type(entry) is tuple:
                    rows.append((key, -entry[0], entry[1]))
                else:
                    rows += [(key, -tag, value) for tag, value in entry]
        if self._ordered is not None:
            ordered = self._ordered
            rows = [(ordered(key), nt, value) for key, nt, value in rows]
        rows.sort()
        return rows

    def resolve(self, keys, sequence: int):
        """For each key, its visible (kind, value) at `sequence` or None."""
        get = self.get
        return [get(k, sequence) for k in keys]

    def entries_from(self, keys: list, start: int, stop: int, sequence: int):
        """Resolved (ukey, kind, value) for keys[start:stop] at sequence, skipping
        keys with no visible version."""
        out = []
        table = self._table
        for key in keys[start:stop]:
            entry = table[key]
            if type(entry) is tuple:
                tag, value = entry
                if tag >> 8 <= sequence:
                    out.append((key, tag & 0xFF, value))
                continue
            for tag, value in entry:
                if tag >> 8 <= sequence:
                    out.append((key, tag & 0xFF, value))
                    break
        return out


def _keep_visible(entry, old, snapshots):
    """New version list after adding `entry` above `old` (tuple or list).

    Version v_i (newest first) must stay if some snapshot s has
    seq(v_i) <= s < seq(v_{i-1}); the new entry is above every snapshot.
    Example: versions a@10, a@5 with snapshot 7 then a@15 arrives: a@10 is
    seen by nobody (no snapshot in [10, 15)), a@5 is seen by 7 -> [a@15, a@5]."""
    versions = [old] if type(old) is tuple else old
    kept = [entry]
    upper = entry[0] >> 8
    for version in versions:
        seq = version[0] >> 8
        i = bisect_left(snapshots, seq)
        if i < len(snapshots) and snapshots[i] < upper:
            kept.append(version)
        upper = seq
    return kept[0] if len(kept) == 1 else kept

