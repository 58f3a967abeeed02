"""Iteration over the whole database as of one sequence number.

Knows memtables, versions and tables; no files of its own. Each source
(memtable, frozen memtable, one level-0 table, one level >= 1) answers with a
*chunk*: the visible newest entry of every user key in a key range it can
vouch for completely, computed from whole decoded blocks so that C does the
loops. The merged view combines the sources' chunks over the range all of
them cover (newest source wins per key; deletions hide older sources) and
drops deletions. DBIter gives LevelDB's iterator semantics on top of chunks.

Resolved entries are (user_key, tag_or_kind, value); kind = tag & 0xFF, 0 is a deletion.
"""
import sys
from array import array
from bisect import bisect_left, bisect_right
from itertools import compress

MEMTABLE_CHUNK = 256
# A scan (either way) that keeps asking for the chunk after the last one gets
# chunks of up to this many entries: the per-chunk work of merging and bounds
# checks is then paid per several blocks.
SCAN_CHUNK = 512
# By default a scan stops filling the block cache once a source has handed
# out this many entries to it: a long scan would otherwise evict everything
# for blocks it never reads again (LevelDB's cache pollution; its
# fill_cache=false by hand), and inserting and evicting decoded blocks costs
# it ~12%. Counted in entries, not chunks: chunks grow as a scan goes on, so
# a short scan (YCSB's are up to 100 entries) reaches its third chunk, and
# it would decode that chunk's blocks afresh every time it ran.
SCAN_FILL_ENTRIES = 1024
# Where a tag's kind (its low byte) lies in its 8 bytes in native order.
_KIND_BYTE = 0 if sys.byteorder == "little" else 7


def _resolve(ukeys, tags, values, sequence):
    """Newest entry per user key with seq <= sequence, as three lists."""
    if len(tags) == 0:
        return ukeys, tags, values
    if max(tags) >> 8 <= sequence and len(set(ukeys)) == len(ukeys):
        return ukeys, tags, values
    out_k, out_t, out_v = [], [], []
    last = None
    limit = (sequence + 1) << 8
    for k, t, v in zip(ukeys, tags, values):
        if t >= limit or k == last:
            continue
        out_k.append(k)
        out_t.append(t)
        out_v.append(v)
        last = k
    return out_k, out_t, out_v


def _kinds(tags) -> bytes:
    """The kind of every tag, one byte each, extracted in C: packed as
    uint64s, the kind is one byte of every eight."""
    return array("Q", tags).tobytes()[_KIND_BYTE::8]


class MemSource:
    def __init__(self, memtable, sequence):
        self._mem = memtable
        self._keys = memtable.sorted_keys()
        self._seq = sequence

    @property
    def empty(self) -> bool:
        """Whether the memtable held no key when the source was made."""
        return not self._keys

    def forward(self, key, inclusive):
        keys = self._keys
        if key is None:
            i = 0
        else:
            i = bisect_left(keys, key) if inclusive else bisect_right(keys, key)
        j = i + MEMTABLE_CHUNK
        limit = keys[j - 1] if j < len(keys) else None
        return self._entries(i, j), limit

    def backward(self, key, inclusive):
        keys = self._keys
        if key is None:
            j = len(keys)
        else:
            j = bisect_right(keys, key) if inclusive else bisect_left(keys, key)
        i = max(0, j - MEMTABLE_CHUNK)
        limit = keys[i] if i > 0 else None
        return self._entries(i, j), limit

    def _entries(self, i, j):
        out = self._mem.entries_from(self._keys, i, j, self._seq)
        if not out:
            return [], [], []
        ks, ts, vs = zip(*out)
        return list(ks), list(ts), list(vs)


def _chunk_want(streamed: int) -> int:
    """Entries a scan's next chunk should hold once it has been handed
    `streamed` entries: a quarter as many again (at least one block), so
    a short scan (YCSB's are up to 100 entries) reads at most a block or
    two past its end, while a long one gets chunks of SCAN_CHUNK after a
    few dozen. A block read past the end costs a scan about as much as
    three chunks' merging and bounds checks."""
    return min(SCAN_CHUNK, max(1, streamed >> 2))


class _ScanPoint:
    """Where a forward scan of a TableRunSource stopped: the position of the
    next block, the fill_cache it read with, and the table and its
    scan_blocks reader standing there (None, None until a chunk reads
    on from there); limit is the chunk's bound."""

    __slots__ = ("limit", "pos", "fill", "table", "blocks")

    def __init__(self, pos, fill, table, blocks):
        self.limit = None
        self.pos = pos
        self.fill = fill
        self.table = table
        self.blocks = blocks


class TableRunSource:
    """A run of non-overlapping tables in key order (one level >= 1, or a
    single level-0 table), read block by block."""

    def __init__(self, files, table_cache, sequence, fill_cache=None, bounds=None):
        self._files = files
        self._fill_cache = fill_cache
        self._cache = table_cache
        self._seq = sequence
        # bounds: the files' (smallest, largest) user keys, when the caller has them.
        if bounds is None:
            bounds = ([f.smallest[:-8] for f in files], [f.largest[:-8] for f in files])
        self._smallest, self._largest = bounds
        self._group_cache = None  # ((file_i, block_i), lo_pos, hi_pos, resolved lists)
        self._scan = None  # a _ScanPoint: where the last chunk's scan stopped
        self._last_limit = None  # the limit forward() returned last
        self._streamed = 0  # entries handed out since the scan began (either way)
        self._last_back_limit = None  # the same two for backward()
        self._back_streak = 0

    def _block(self, fi, bi):
        fill = self._fill_cache
        if fill is None:
            fill = self._streamed < SCAN_FILL_ENTRIES
        return self._cache.get(self._files[fi].number).block(bi, bool(fill))

    def _num_blocks(self, fi):
        return self._cache.get(self._files[fi].number).num_blocks

    def _next_pos(self, fi, bi):
        bi += 1
        if bi < self._num_blocks(fi):
            return fi, bi
        fi += 1
        while fi < len(self._files):
            if self._num_blocks(fi):
                return fi, 0
            fi += 1
        return None

    def _prev_pos(self, fi, bi):
        bi -= 1
        if bi >= 0:
            return fi, bi
        fi -= 1
        while fi >= 0:
            n = self._num_blocks(fi)
            if n:
                return fi, n - 1
            fi -= 1
        return None

    def _may_start_with(self, pos, nxt, ukey) -> bool:
        """Whether block nxt (the one after pos) may begin with ukey, asked
        without decoding nxt: a seek would otherwise decode two blocks."""
        if nxt[0] != pos[0]:
            return self._smallest[nxt[0]] == ukey
        table = self._cache.get(self._files[pos[0]].number)
        if table.separator_user_key(pos[1]) != ukey:
            return False
        return table.first_user_key(nxt[1]) == ukey

    def _may_end_with(self, prv, pos, ukey) -> bool:
        """Whether block prv (the one before pos) may end with ukey."""
        if prv[0] != pos[0]:
            return self._largest[prv[0]] == ukey
        return self._cache.get(self._files[prv[0]].number).separator_user_key(prv[1]) == ukey

    def _group(self, pos, seek_key=None):
        """Resolved entries of the block at pos, extended over neighbouring
        blocks that continue the same user key (versions of one key may span
        a block or file boundary). Returns (lists, first_pos, last_pos).

        With seek_key, a block not decoded yet is decoded only from the
        restart point before seek_key: keys below it may then be missing
        versions, so such a group is good for keys >= seek_key only, and is
        neither extended backward nor kept for reuse."""
        cached = self._group_cache
        if cached is not None and cached[1] <= pos <= cached[2]:
            return cached[3], cached[1], cached[2]
        whole = True
        if seek_key is None:
            ukeys, tags, values = self._block(*pos)
        else:
            fi, bi = pos
            ukeys, tags, values, whole = self._cache.get(self._files[fi].number).block_from(
                bi, seek_key, self._fill_cache is not False)
        ukeys, tags, values = list(ukeys), list(tags), list(values)
        first = last = pos
        visible_limit = (self._seq + 1) << 8
        while ukeys:
            if tags[-1] < visible_limit:
                # The last key's oldest version here is visible, so any older
                # ones in the next block can never be: no need to look.
                break
            nxt = self._next_pos(*last)
            if nxt is None or not self._may_start_with(last, nxt, ukeys[-1]):
                break
            nk, nt, nv = self._block(*nxt)
            if not nk or nk[0] != ukeys[-1]:
                break
            ukeys += nk
            tags += nt
            values += nv
            last = nxt
        while ukeys and whole:
            prv = self._prev_pos(*first)
            if prv is None or not self._may_end_with(prv, first, ukeys[0]):
                break
            pk, pt, pv = self._block(*prv)
            if not pk or pk[-1] != ukeys[0]:
                break
            ukeys = list(pk) + ukeys
            tags = list(pt) + tags
            values = list(pv) + values
            first = prv
        lists = _resolve(ukeys, tags, values, self._seq)
        if whole:
            self._group_cache = (None, first, last, lists)
        return lists, first, last

    def forward(self, key, inclusive):
        scan, self._scan = self._scan, None
        continues = key is not None and not inclusive and key == self._last_limit
        if not continues:
            self._streamed = 0
        if scan is not None and not inclusive and key == scan.limit:
            # The chunk before ended at key, complete: go on where it stopped.
            ks, ts, vs = [], [], []
            nxt = self._scan_forward(ks, ts, vs, scan.pos, key, _chunk_want(self._streamed), scan)
            return self._forward_chunk(ks, ts, vs, nxt)
        files = self._files
        if key is None:
            fi, bi = 0, 0
        else:
            fi = bisect_left(self._largest, key)
            if fi >= len(files):
                return ([], [], []), None
            bi = self._cache.get(files[fi].number).find_block(key)
        pos = (fi, bi)
        if key is not None and not continues:
            found = self._seek_in_block(fi, bi, key, inclusive)
            if found is not None:
                return found
        if bi >= self._num_blocks(fi):
            pos = self._next_pos(fi, bi - 1) if bi > 0 else self._next_pos(fi, -1)
            if pos is None:
                return ([], [], []), None
        seek_key = key
        while True:
            (ks, ts, vs), _first, last = self._group(pos, seek_key)
            seek_key = None  # only the block the key falls in is decoded part way
            i = 0 if key is None else (bisect_left(ks, key) if inclusive else bisect_right(ks, key))
            nxt = self._next_pos(*last)
            if i < len(ks) or nxt is None:
                break
            pos = nxt
        ks, ts, vs = ks[i:], ts[i:], vs[i:]
        if continues and nxt is not None and len(ks) < _chunk_want(self._streamed):
            nxt = self._scan_forward(ks, ts, vs, nxt, None, _chunk_want(self._streamed), scan)
        elif nxt is not None:
            # The next chunk, if asked for, reads on from the block after this one.
            self._scan = _ScanPoint(nxt, None, None, None)
        return self._forward_chunk(ks, ts, vs, nxt)

    def _seek_in_block(self, fi, bi, key, inclusive):
        """forward()'s chunk for a seek into block bi of file fi (the first
        whose index entry is not below key) when that block alone answers it:
        its last entry is visible, so the next block holds no version the
        chunk needs. The blocks before hold only keys below key. None
        otherwise: _group then looks at the neighbours."""
        table = self._cache.get(self._files[fi].number)
        if bi >= table.num_blocks:
            return None
        ukeys, tags, values, _whole = table.block_from(bi, key, self._fill_cache is not False)
        if not tags or tags[-1] >= (self._seq + 1) << 8:
            return None
        i = bisect_left(ukeys, key) if inclusive else bisect_right(ukeys, key)
        if i == len(ukeys):
            return None
        ks, ts, vs = _resolve(ukeys[i:], tags[i:], values[i:], self._seq)
        nxt = (fi, bi + 1) if bi + 1 < table.num_blocks else self._next_pos(fi, bi)
        if nxt is not None:
            # The next chunk, if asked for, reads on from the block after this one.
            self._scan = _ScanPoint(nxt, None, None, None)
        return self._forward_chunk(ks, ts, vs, nxt)

    def _forward_chunk(self, ks, ts, vs, nxt):
        limit = ks[-1] if (nxt is not None and ks) else None
        self._last_limit = limit
        self._streamed += len(ks)
        if limit is None:
            self._scan = None
        elif self._scan is not None:
            self._scan.limit = limit
        return (ks, ts, vs), limit

    def _scan_forward(self, ks, ts, vs, pos, after, want, scan):
        """Extend ks, ts, vs (ascending, resolved, every key > `after`)
        with the blocks from pos on until they hold `want` entries; return
        the position of the block after the last one used (None: none
        left), with self._scan standing there.

        Each block is resolved alone, without _group's look at its
        neighbours: a key's versions are stored newest first, so the first
        block holding a visible version of it holds its newest, and a later
        block's entries for the key the chunk already ends with (or for
        `after`) are older versions, dropped. That is a scan's common case
        at a few calls per block.

        scan: the last chunk's _ScanPoint, or None. Its block reader reads
        ahead, so a scan goes on with the same one from chunk to chunk when
        it stands at pos; it holds its table, and so the table's file, open
        even once the table cache has dropped it."""
        fill = self._fill_cache
        if fill is None:
            fill = self._streamed < SCAN_FILL_ENTRIES
        fill = bool(fill)
        files = self._files
        cache = self._cache
        sequence = self._seq
        fi, bi = pos
        if scan is not None and scan.pos == pos and scan.fill == fill and scan.blocks is not None:
            table, blocks = scan.table, scan.blocks
        else:
            table = cache.get(files[fi].number)
            blocks = table.scan_blocks(bi, fill)
        if ks:
            after = ks[-1]
        while True:
            # A StopIteration here would end the user's loop silently.
            decoded = next(blocks, None)
            if decoded is None:
                raise RuntimeError(f"table {files[fi].number}: block reader ended before block {bi}")
            uk, tg, vl = _resolve(*decoded, sequence)
            if after is not None and uk and uk[0] <= after:
                j = bisect_right(uk, after)
                uk, tg, vl = uk[j:], tg[j:], vl[j:]
            if uk:
                ks += uk
                ts += tg
                vs += vl
                after = ks[-1]
            bi += 1
            while bi >= table.num_blocks:
                fi += 1
                if fi == len(files):
                    return None
                table = cache.get(files[fi].number)
                blocks = table.scan_blocks(0, fill)
                bi = 0
            if len(ks) >= want:
                break
        nxt = (fi, bi)
        self._scan = _ScanPoint(nxt, fill, table, blocks)
        return nxt

    def backward(self, key, inclusive):
        continues = key is not None and not inclusive and key == self._last_back_limit
        if not continues:
            self._back_streak = self._streamed = 0
        files = self._files
        if key is None:
            fi = len(files) - 1
            while fi >= 0 and not self._num_blocks(fi):
                fi -= 1
            if fi < 0:
                return ([], [], []), None
            pos = (fi, self._num_blocks(fi) - 1)
        else:
            fi = bisect_right(self._smallest, key) - 1
            if fi < 0:
                return ([], [], []), None
            table = self._cache.get(files[fi].number)
            bi = min(table.find_block(key), table.num_blocks - 1)
            if bi < 0:
                return ([], [], []), None
            pos = (fi, bi)
        while True:
            (ks, ts, vs), first, _last = self._group(pos)
            j = len(ks) if key is None else (bisect_right(ks, key) if inclusive else bisect_left(ks, key))
            prv = self._prev_pos(*first)
            if j > 0 or prv is None:
                break
            pos = prv
        ks, ts, vs = ks[:j], ts[:j], vs[:j]
        if continues:
            # A backward scan: chunks grow as forward()'s do.
            self._back_streak += 1
            want = min(SCAN_CHUNK, len(ks) << self._back_streak)
            while prv is not None and len(ks) < want:
                (more_k, more_t, more_v), first, _last = self._group(prv)
                # A group reaching forward over a block boundary repeats keys.
                j = bisect_left(more_k, ks[0]) if ks else len(more_k)
                ks = more_k[:j] + ks
                ts = more_t[:j] + ts
                vs = more_v[:j] + vs
                prv = self._prev_pos(*first)
        limit = ks[0] if (prv is not None and ks) else None
        self._last_back_limit = limit
        self._streamed += len(ks)
        return (ks, ts, vs), limit


class MergedView:
    """Visible (user_key, value) pairs of the whole database at one sequence,
    served in chunks. Sources are ordered newest first."""

    ordered = None  # a custom comparator's key type (OrderedMergedView)

    def __init__(self, sources):
        self._sources = sources
        # Per source and direction, its last chunk unless handed out up to
        # its limit: (start key or None, lists, limit).
        self._held = {True: [None] * len(sources), False: [None] * len(sources)}

    def forward(self, key, inclusive):
        """Ascending visible entries with user key >= key (> if not inclusive),
        complete up to the returned bound (inclusive; None: to the end)."""
        return self._chunk(key, inclusive, True)

    def backward(self, key, inclusive):
        """Ascending visible entries with user key <= key (< if not inclusive),
        complete down to the returned bound (inclusive; None: to the start)."""
        return self._chunk(key, inclusive, False)

    def _chunk(self, key, inclusive, ascending):
        """forward() or backward(). The bound is the nearest of the sources'
        limits, so a chunk takes only part of the others' chunks. Each
        source's is held, and a move from inside it in the same direction
        takes the rest from there rather than asking the source again:
        otherwise the sources would take turns restarting at each other's
        limits, and no scan of several sources would get past one group of
        blocks at a time."""
        sources = self._sources
        if len(sources) == 1:
            # Nothing to merge with, nor to hold: the source's own chunk.
            src = sources[0]
            lists, bound = src.forward(key, inclusive) if ascending else src.backward(key, inclusive)
            return _merge((lists,)), bound
        held = self._held[ascending]
        heads = []
        bound = None
        for n, src in enumerate(sources):
            h = held[n]
            if h is not None and not inclusive and key is not None and _holds(h, key, ascending):
                start, lists, limit = h
                # Not from where the last chunk left it: a move may go back.
                at = bisect_right(lists[0], key) if ascending else bisect_left(lists[0], key)
            else:
                lists, limit = src.forward(key, inclusive) if ascending else src.backward(key, inclusive)
                start, at = key, 0 if ascending else len(lists[0])
            heads.append((start, lists, limit, at))
            if limit is not None and (bound is None or (limit < bound if ascending else limit > bound)):
                bound = limit
        parts = []
        for n, (start, lists, limit, at) in enumerate(heads):
            ks, ts, vs = lists
            whole = bound is None or limit == bound
            if ascending:
                i, j = at, len(ks) if whole else bisect_right(ks, bound, at)
            else:
                i, j = 0 if whole else bisect_left(ks, bound, 0, at), at
            parts.append((ks[i:j], ts[i:j], vs[i:j]) if i or j < len(ks) else lists)
            # Used up to its limit: the source goes on from there when asked.
            held[n] = None if limit is not None and limit == bound else (start, lists, limit)
        return _merge(parts), bound


def _holds(held, key, ascending) -> bool:
    """Whether a held chunk has every entry a move from key (exclusive)
    in that direction needs up to its limit."""
    start, _lists, limit = held
    if ascending:
        return (start is None or start <= key) and (limit is None or key < limit)
    return (start is None or key <= start) and (limit is None or key > limit)


def _merge(parts):
    """One ascending list of (key, value) pairs, newest source winning,
    deletions removed."""
    nonempty = [p for p in parts if p[0]]
    if not nonempty:
        return []
    if len(nonempty) == 1:
        ks, ts, vs = nonempty[0]
        kinds = _kinds(ts)
        if 0 not in kinds:
            return list(zip(ks, vs))
        return list(compress(zip(ks, vs), kinds))  # a deletion's kind is 0: dropped
    merged = {}
    for ks, ts, vs in reversed(nonempty):
        merged.update(zip(ks, zip(ts, vs)))
    return [(k, tv[1]) for k in sorted(merged) for tv in (merged[k],) if tv[0] & 0xFF]


class DBIter:
    """LevelDB iterator semantics (Valid, SeekToFirst, SeekToLast, Seek, Next,
    Prev, key, value) over a MergedView."""

    __slots__ = ("_view", "chunk", "pos", "_lo", "_lo_incl", "_hi", "_hi_incl", "_lo_end", "_hi_end")

    def __init__(self, view):
        self._view = view
        self.chunk = []
        self.pos = 0

    def valid(self) -> bool:
        return 0 <= self.pos < len(self.chunk)

    def key(self):
        return self.chunk[self.pos][0]

    def value(self):
        return self.chunk[self.pos][1]

    def _load_forward(self, key, inclusive):
        while True:
            chunk, bound = self._view.forward(key, inclusive)
            self._lo, self._lo_incl, self._lo_end = key, inclusive, key is None
            if bound is None:
                self._hi, self._hi_incl, self._hi_end = None, True, True
            else:
                self._hi, self._hi_incl, self._hi_end = bound, True, False
            if chunk or bound is None:
                self.chunk = chunk
                self.pos = 0
                return
            key, inclusive = bound, False

    def _load_backward(self, key, inclusive):
        while True:
            chunk, bound = self._view.backward(key, inclusive)
            self._hi, self._hi_incl, self._hi_end = key, inclusive, key is None
            if bound is None:
                self._lo, self._lo_incl, self._lo_end = None, True, True
            else:
                self._lo, self._lo_incl, self._lo_end = bound, True, False
            if chunk or bound is None:
                self.chunk = chunk
                self.pos = len(chunk) - 1
                return
            key, inclusive = bound, False

    def seek_to_first(self):
        self._load_forward(None, True)

    def seek_to_last(self):
        self._load_backward(None, True)

    def seek(self, key):
        self._load_forward(key, True)

    def next(self):
        self.pos += 1
        if self.pos >= len(self.chunk):
            if self._hi_end:
                self.chunk, self.pos = [], 0
                return
            self._load_forward(self._hi, not self._hi_incl)

    def prev(self):
        self.pos -= 1
        if self.pos < 0:
            if self._lo_end:
                self.chunk, self.pos = [], 0
                return
            self._load_backward(self._lo, not self._lo_incl)
            if not self.chunk:
                self.pos = 0


class OrderedMergedView(MergedView):
    """The MergedView of a database with a custom comparator: its sources
    hold ordered keys (lsm.order), and so do the keys it is asked from."""

    def __init__(self, sources, ordered):
        super().__init__(sources)
        self.ordered = ordered

    def forward(self, key, inclusive):
        return self._chunk(None if key is None else self.ordered(key), inclusive, True)

    def backward(self, key, inclusive):
        return self._chunk(None if key is None else self.ordered(key), inclusive, False)
