"""Table: reads a LevelDB table through the RandomAccessFile it is given.

Every block read is checked against its CRC, always (LevelDB checks data blocks
only when asked to): damaged bytes raise CorruptionError(path, offset of the
block, reason) and never turn into a wrong value, a phantom key or a false miss.
"""
from bisect import bisect_left
from operator import eq, gt, le
from typing import Callable, NamedTuple

from ..errors import CorruptionError, DecodeError
from .block import (
    PAST_END,
    decode_block,
    decode_block_split,
    decode_block_split_from,
    find_in_block,
    restart_every_entry,
    seek_block,
    seek_layout,
    seek_restart_entry,
    split_restart_entries,
    trailer_tags,
)
from .cache import BlockCache, block_charge
from .filter import FILTER_META_KEY, FilterBlockReader
from .format import (
    BLOCK_TRAILER_SIZE,
    FOOTER_SIZE,
    SNAPPY_COMPRESSION,
    decode_footer,
    decode_handle,
    decode_handles,
    inflate,
    unpack_block,
    unpack_blocks,
)
from .keyfilter import KEY_FILTER_META_KEY, KeyFilterReader, cached_key_hash

# A scan reads the blocks it does not find in the cache this many bytes at a
# time: one pread per 4 KiB block is a noticeable share of a scan's cost per block.
SCAN_READAHEAD = 64 << 10

# Per-table cache when the caller shares none: enough for a scan and a few
# hot blocks, small enough that thousands of open tables stay cheap.
PRIVATE_CACHE_BYTES = 256 << 10


def _trailers(keys) -> bytes:
    """The 8-byte trailers of internal keys, joined; DecodeError for a key
    shorter than 8 bytes (their types are trailer_tags' to check)."""
    if keys and min(map(len, keys)) < 8:
        raise DecodeError("internal key shorter than 8 bytes")
    return b"".join([k[-8:] for k in keys])


class _PackedBlock:
    """A snappy block as stored in the file, checksum verified, as a cache
    under pressure keeps it for point lookups (BlockCache.pressed) instead
    of its raw contents: ~half their bytes, so twice as many blocks fit, for
    a snappy decompression at each lookup. Scans decode and
    cache blocks whole. `layout`: seek_layout of the contents, worked out
    once for every lookup that inflates them."""

    __slots__ = ("stored", "layout")

    def __init__(self, stored, layout):
        self.stored = stored
        self.layout = layout


# Point lookups a table opened with lazy_index answers from its index block
# as read, before it decodes the block: a get its filter answers needs no
# index, and in a database of many tables each may see only gets of absent
# keys and a few filter false positives. At least LOOKUPS_BEFORE_INDEX;
# for a larger index, one per INDEX_ENTRIES_PER_LOOKUP of its entries:
# decoding an index of n entries costs about what n / 24 lookups without
# it cost more than lookups with it (measured on 2 MB tables of 765
# blocks: 0.27-0.45 ms against 8-13 us), so a table that is decoded late
# has spent at most that again, and one that never needed it saved it.
LOOKUPS_BEFORE_INDEX = 4
INDEX_ENTRIES_PER_LOOKUP = 24


def lookups_before_index(index_entries: int) -> int:
    """How many point lookups a lazy_index table of that many index
    entries answers before it decodes its index."""
    return max(LOOKUPS_BEFORE_INDEX, index_entries // INDEX_ENTRIES_PER_LOOKUP)

# What Table keeps of its decoded index block; until a table opened with
# lazy_index decodes it, asking for any of them does (Table.__getattr__).
_INDEX_ATTRIBUTES = frozenset(("_index_ukeys", "_index_tags", "_offsets", "_sizes", "num_blocks"))

# _get_before_index: "answer from the decoded index instead".
_INDEX_NEEDED = "index needed"


class _RawIndex(NamedTuple):
    """An index block as read (checksum verified) whose entries are each a
    restart point (block.restart_every_entry: limit, restarts), at `offset`
    of a file whose data blocks end by data_end; decode() gives
    _parse_index's result or raises CorruptionError."""

    data: bytes
    limit: int
    restarts: list
    data_end: int
    offset: int
    decode: Callable


class Table:
    """An open table. Build it with Table.open(); all reads are thread-safe."""

    def __init__(self, path, number, block_cache, filter_reader, index, meta_offset, file, key_filter=None):
        """index: _parse_index's result, or a _RawIndex to decode at its
        first use but point lookups (lazy_index)."""
        self.path = path
        self.number = number
        self.file = file
        self._mapped = getattr(file, "mapped", False)
        self._cache = block_cache if block_cache is not None else BlockCache(PRIVATE_CACHE_BYTES)
        # lsm's filter when the table has one; else LevelDB's, consulted per block.
        self._key_filter = key_filter
        self._filter = filter_reader if key_filter is None else None
        if type(index) is _RawIndex:
            self._raw_index = index
            self._index_pending = True
            self._lookups_before_index = 0
            self._lookups_allowed = lookups_before_index(len(index.restarts))
        else:
            self._set_index(index)
        self._meta_offset = meta_offset
        # The table's first user key, learnt when block 0 is decoded: a get
        # of a smaller key is answered before the filter is asked. (Keys past
        # the last block's index entry need no such help: find_block says.)
        self._first_ukey = None

    def _set_index(self, index):
        # Index block, decoded once: parallel lists, so find_block is one bisect.
        self._index_ukeys, self._index_tags, self._offsets, self._sizes = index
        self.num_blocks = len(self._offsets)
        self._index_pending = False

    def __getattr__(self, name):
        # Reached only for attributes not set: the decoded index's, in a
        # table opened with lazy_index, until a use decodes it. Two threads
        # may both decode it; they set the same lists.
        raw = self.__dict__.get("_raw_index")
        if raw is None or name not in _INDEX_ATTRIBUTES:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self._set_index(raw.decode())
        self._raw_index = None  # its bytes and restart list are no longer needed
        return self.__dict__[name]

    # ------------------------------------------------------------------ open

    @classmethod
    def open(cls, file, *, path, number=0, block_cache=None, bloom=True, ordered=None, lazy_index=False):
        """Read the footer, index, metaindex and filter of `file` (anything with
        .read(offset, n) and .size). `path` names the file in errors; `number`
        keys its blocks in `block_cache` (a BlockCache shared by tables with
        distinct numbers; None: a small private one); bloom=False checks the
        filter block but never consults it. ordered: a custom comparator's
        key type (lsm.order), by which the index keys' order is checked.

        lazy_index: a table with lsm's filter and an index block of lsm's
        layout (a restart at every entry) keeps the block as read, its
        checksum and entry headers checked: its first point lookups search
        it in place, as LevelDB does, and its first other use decodes it,
        checking the keys' and handles' order then (CorruptionError).
        Decoding is most of an open, and a get the filter answers needs no
        index."""
        size = file.size
        if size < FOOTER_SIZE:
            raise CorruptionError(path, 0, f"file too short to be a table ({size} bytes)")
        footer_offset = size - FOOTER_SIZE
        footer = file.read(footer_offset, FOOTER_SIZE)
        try:
            (meta_off, meta_size), (index_off, index_size) = decode_footer(footer)
        except DecodeError as exc:
            raise CorruptionError(path, footer_offset + (exc.offset or 0), exc.reason) from None

        def read(offset, length, what, referrer):
            # A handle past the end is damage where the handle is stored (`referrer`).
            if offset + length + BLOCK_TRAILER_SIZE > footer_offset:
                raise CorruptionError(path, referrer, f"{what} block handle past the end of the file")
            try:
                return unpack_block(file.read(offset, length + BLOCK_TRAILER_SIZE), length)
            except DecodeError as exc:
                raise CorruptionError(path, offset, f"{what} block: {exc.reason}") from None

        def decode(offset, contents, what, parse):
            try:
                return parse(contents)
            except DecodeError as exc:
                raise CorruptionError(path, offset, f"{what} block: {exc.reason}") from None

        index_contents = read(index_off, index_size, "index", footer_offset)

        def decode_index():
            return decode(
                index_off, index_contents, "index", lambda data: _parse_index(data, footer_offset, ordered)
            )

        meta_keys, meta_values = decode(
            meta_off, read(meta_off, meta_size, "metaindex", footer_offset), "metaindex", decode_block
        )
        filters = {FILTER_META_KEY: None, KEY_FILTER_META_KEY: None}
        parsers = {FILTER_META_KEY: FilterBlockReader, KEY_FILTER_META_KEY: KeyFilterReader}
        for key, value in zip(meta_keys, meta_values):
            if key not in filters:
                continue  # another policy's filter (e.g. goleveldb's): not ours to trust
            f_off, f_size = decode(meta_off, value, "metaindex", _parse_handle)
            contents = read(f_off, f_size, "filter", meta_off)
            # Checked even when unused: damage anywhere in the file is reported.
            reader = decode(f_off, contents, "filter", parsers[key])
            if bloom:
                filters[key] = reader
        restarts = None
        if lazy_index and ordered is None and filters[KEY_FILTER_META_KEY] is not None:
            restarts = decode(index_off, index_contents, "index", restart_every_entry)
        if restarts is None:
            index = decode_index()
        else:
            index = _RawIndex(index_contents, *restarts, footer_offset, index_off, decode_index)
        return cls(
            path, number, block_cache, filters[FILTER_META_KEY], index, meta_off, file, filters[KEY_FILTER_META_KEY]
        )

    # ------------------------------------------------------------------ reads

    @property
    def index_user_keys(self):
        """The user keys of the index entries, one per data block, ascending:
        entry i lies between block i's last key and block i + 1's first."""
        return self._index_ukeys

    def find_block(self, user_key: bytes) -> int:
        """Index of the first block that may hold user_key (num_blocks if none)."""
        return bisect_left(self._index_ukeys, user_key)

    def block_offset(self, i: int) -> int:
        """File offset of data block i: where a report about the block points."""
        return self._offsets[i]

    def _contents(self, i: int) -> bytes:
        """Block i's uncompressed contents, checksum verified."""
        offset = self._offsets[i]
        size = self._sizes[i]
        try:
            return unpack_block(self.file.read(offset, size + BLOCK_TRAILER_SIZE), size)
        except DecodeError as exc:
            raise self._damaged(i, exc) from None

    def blocks_within(self, start: int, stop: int, nbytes: int) -> int:
        """The end of the run of blocks from `start` (before `stop`) that
        takes about nbytes of the file: at least one block."""
        limit = self._offsets[start] + nbytes
        return max(start + 1, min(stop, bisect_left(self._offsets, limit, start, stop)))

    def contents_of_blocks(self, start: int, stop: int):
        """The uncompressed contents of data blocks start..stop-1, checksums
        verified, read with one read (the cache is neither used nor filled):
        for a compaction, which reads every block once."""
        if start >= stop:
            return
        base = self._offsets[start]
        end = self._offsets[stop - 1] + self._sizes[stop - 1] + BLOCK_TRAILER_SIZE
        data = self.file.read(base, end - base)
        view = memoryview(data)
        for i in range(start, stop):
            at = self._offsets[i] - base
            size = self._sizes[i]
            try:
                yield unpack_block(view[at:at + size + BLOCK_TRAILER_SIZE], size)
            except DecodeError as exc:
                raise self._damaged(i, exc) from None

    def joined_contents_of_blocks(self, start: int, stop: int):
        """(contents, lengths): the uncompressed contents of data blocks
        start..stop-1 end to end in one bytes object, and each one's size,
        as contents_of_blocks reads them (one read, checksums verified, no
        cache): a compaction's input, decompressed in place."""
        if start >= stop:
            return b"", []
        base = self._offsets[start]
        end = self._offsets[stop - 1] + self._sizes[stop - 1] + BLOCK_TRAILER_SIZE
        data = self.file.read(base, end - base)
        try:
            return unpack_blocks(data, [at - base for at in self._offsets[start:stop]], self._sizes[start:stop])
        except DecodeError as exc:
            raise self._damaged(start + exc.block, exc) from None

    def _decode(self, i: int, contents: bytes):
        """(internal keys, values) of block i; CorruptionError if malformed."""
        try:
            return decode_block(contents)
        except DecodeError as exc:
            raise self._damaged(i, exc) from None

    def _damaged(self, i: int, exc: DecodeError) -> CorruptionError:
        return self._damaged_at(self._offsets[i], exc)

    def _damaged_at(self, offset: int, exc: DecodeError) -> CorruptionError:
        return CorruptionError(self.path, offset, f"data block: {exc.reason}")

    def block(self, i: int, fill_cache: bool = True):
        """Block i decoded: (user_keys, tags, values), from the cache, else
        read, decoded and cached unless fill_cache is false."""
        cached = self._cache.get((self.number, self._offsets[i]))
        if type(cached) is tuple:
            return cached
        return self._decode_split(i, self._uncached_contents(i, cached), fill_cache)

    def _uncached_contents(self, i: int, cached) -> bytes:
        """Block i's contents when the cache holds no decode of it: the raw
        contents or the stored copy (_PackedBlock) a point lookup cached, or
        the file's."""
        if cached is None:
            return self._contents(i)
        if type(cached) is bytes:
            return cached
        return inflate(cached.stored)

    def _decode_split(self, i: int, contents: bytes, fill_cache: bool):
        """Block i's contents decoded as block() returns them, and cached if fill_cache."""
        return self._decode_split_at(self._offsets[i], i == 0, contents, fill_cache)

    def _decode_split_at(self, offset: int, first: bool, contents: bytes, fill_cache: bool):
        """_decode_split of the block at offset, the table's first if `first`
        (so also before the index is decoded)."""
        try:
            decoded = decode_block_split(contents)
        except DecodeError as exc:
            raise self._damaged_at(offset, exc) from None
        if fill_cache:
            self._cache.put((self.number, offset), decoded, block_charge(len(contents), len(decoded[0])))
        if first and decoded[0]:
            self._first_ukey = decoded[0][0]
        return decoded

    def _decode_read(self, i: int, contents: bytes, fill_cache: bool):
        """Block i's contents, just read from the file for a scan or a seek,
        decoded as block() returns them. If fill_cache, they are cached:
        decoded while the cache has room, raw once it is pressed (the
        database outgrows it), as a point lookup's are -- a decoded block
        evicted later costs its scan several microseconds to free, and
        most blocks are evicted unread then; one read again from the
        cache is decoded into it (block())."""
        if fill_cache and self._cache.pressed:
            self._cache.put((self.number, self._offsets[i]), contents, len(contents))
            return self._decode_split(i, contents, False)
        return self._decode_split(i, contents, fill_cache)

    def scan_blocks(self, start: int, fill_cache: bool):
        """Blocks start, start + 1, ... decoded as block() returns them, for
        a scan: a cached block is used, and from one the cache lacks on, the
        blocks are read SCAN_READAHEAD bytes at a time (contents_of_blocks;
        one run held at a time) and cached as _decode_read says."""
        cache = self._cache
        number = self.number
        offsets = self._offsets
        n = self.num_blocks
        i = start
        while i < n:
            cached = cache.get((number, offsets[i]))
            if cached is not None:
                yield cached if type(cached) is tuple else self.block(i, fill_cache)
                i += 1
                continue
            # A block the cache gained meanwhile is decoded again from the run: it is read anyway.
            for contents in self.contents_of_blocks(i, self.blocks_within(i, n, SCAN_READAHEAD)):
                yield self._decode_read(i, contents, fill_cache)
                i += 1

    def block_from(self, i: int, user_key: bytes, fill_cache: bool = True):
        """Block i for a seek to user_key: (user_keys, tags, values, whole).
        A cached or cacheable (fill_cache) block is decoded whole; otherwise
        only the entries from the restart point before user_key are decoded
        (whole says whether that was the first entry)."""
        cached = self._cache.get((self.number, self._offsets[i]))
        if type(cached) is tuple:
            return (*cached, True)
        if cached is None and fill_cache:
            return (*self._decode_read(i, self._contents(i), True), True)
        contents = self._uncached_contents(i, cached)
        if fill_cache:
            return (*self._decode_split(i, contents, True), True)
        try:
            return decode_block_split_from(contents, user_key)
        except DecodeError as exc:
            raise self._damaged(i, exc) from None

    def separator_user_key(self, i: int) -> bytes:
        """User key of block i's index entry: for i < num_blocks - 1 it lies
        between block i's last key and block i+1's first key, so a block
        i+1 that starts with user key u has separator_user_key(i) == u."""
        return self._index_ukeys[i]

    def first_user_key(self, i: int):
        """User key of block i's first entry (None if empty). The block is
        decoded and cached for the decode that usually follows."""
        ukeys = self.block(i)[0]
        return ukeys[0] if ukeys else None

    def may_contain(self, user_key: bytes, key_hash=None) -> bool:
        """False only if the table certainly holds no entry for user_key.
        key_hash: keyfilter.key_hash(user_key), computed once for all the
        tables a get probes. Tables without lsm's filter (LevelDB's) answer
        through LevelDB's filter of the one block that could hold the key."""
        key_filter = self._key_filter
        if key_filter is not None:
            return key_filter.may_match(cached_key_hash(user_key) if key_hash is None else key_hash)
        i = bisect_left(self._index_ukeys, user_key)
        if i == self.num_blocks:
            return False  # past the last block's separator: past every key
        return self._filter is None or self._filter.key_may_match(self._offsets[i], user_key)

    def get(self, user_key: bytes, sequence: int, fill_cache: bool = True, key_hash=None):
        """(kind, value) of the newest entry for user_key with seq <= sequence,
        or None. key_hash: as for may_contain. Probes only what may hold
        the key: a key past the last block's index entry or before the
        table's first key (once known) reads nothing, and the filter is
        asked before any block not cached decoded is searched.

        A block is decoded for lookups once a second one reads it: the first
        searches its raw contents (seek_block: the restart points locate the
        entry) and caches them, as LevelDB does, so a block read once never
        pays for a whole decode; a block read again is decoded and cached
        so, and each later lookup is a bisect (find_in_block). Once the
        cache has had to evict, lookups keep blocks raw (or as stored,
        _PackedBlock): a decoded block takes twice the memory, and in a
        database larger than the cache more blocks held beat faster ones."""
        key_filter = self._key_filter
        if key_filter is not None and not key_filter.may_match(
            cached_key_hash(user_key) if key_hash is None else key_hash
        ):
            return None
        return self.get_past_filter(user_key, sequence, fill_cache)

    @property
    def key_filter_probe(self):
        """may_match(key_hash) of lsm's filter, which get() asks first; None
        for a table without one (LevelDB's asks its filter per block)."""
        return None if self._key_filter is None else self._key_filter.may_match

    def get_past_filter(self, user_key: bytes, sequence: int, fill_cache: bool = True):
        """get()'s answer once key_filter_probe has said the table may hold
        user_key (or when the table has no filter of lsm's)."""
        seek_tag = (sequence << 8) | 1
        if self._index_pending:
            found = self._get_before_index(user_key, seek_tag, fill_cache)
            if found is not _INDEX_NEEDED:
                return found
        index_ukeys = self._index_ukeys
        n = self.num_blocks
        i = bisect_left(index_ukeys, user_key)
        if not i:
            first = self._first_ukey
            if first is not None and user_key < first:
                return None
        # A separator equal to user_key ends a block holding only versions too new.
        while i < n and index_ukeys[i] == user_key and self._index_tags[i] > seek_tag:
            i += 1
        cache = self._cache
        number = self.number
        while i < n:
            offset = self._offsets[i]
            cached = cache.get((number, offset))
            if type(cached) is tuple:
                found = find_in_block(cached, user_key, seek_tag)
            else:
                # LevelDB's filter, when the table has no filter of lsm's (asked before).
                bloom = self._filter
                if bloom is not None and not bloom.key_may_match(offset, user_key):
                    return None
                # The same steps as _get_before_index's, written out here: a
                # method shared by both cost random gets of cached blocks
                # 5-8% (a call and its arguments on every get).
                if type(cached) is bytes and fill_cache and not cache.pressed:
                    found = find_in_block(self._decode_split(i, cached, True), user_key, seek_tag)
                else:
                    if cached is None:
                        contents, layout = self._read_for_lookup(offset, self._sizes[i], fill_cache)
                    elif type(cached) is bytes:
                        contents, layout = cached, None
                    else:
                        contents, layout = inflate(cached.stored), cached.layout
                    try:
                        found = seek_block(contents, user_key, seek_tag, layout)
                    except DecodeError as exc:
                        raise self._damaged(i, exc) from None
            if found is not PAST_END:
                return found
            i += 1  # every version here was too new: older ones may open the next block
        return None

    def _get_before_index(self, user_key: bytes, seek_tag: int, fill_cache: bool):
        """get()'s answer, past the filter, in a table whose index is not
        decoded (lazy_index), for its first lookups_before_index(entries) lookups: a
        binary search of the index block's restart points finds the data
        block, whose handle is read where it lies; the block is searched as
        get() searches one it has not decoded. _INDEX_NEEDED once that many
        lookups came, or when the answer may open the next block."""
        self._lookups_before_index += 1
        raw = self._raw_index
        if raw is None or self._lookups_before_index > self._lookups_allowed:
            return _INDEX_NEEDED  # (None: another thread decoded the index meanwhile)
        try:
            i, handle = seek_restart_entry(raw.data, raw.limit, raw.restarts, user_key, seek_tag)
            if handle is None:
                return None  # past the last block's separator: past every key
            offset, size = _parse_handle(handle)
        except DecodeError as exc:
            raise CorruptionError(self.path, raw.offset, f"index block: {exc.reason}") from None
        if offset + size + BLOCK_TRAILER_SIZE > raw.data_end:
            raise CorruptionError(self.path, raw.offset, f"index block: data block handle ({offset}, {size}) "
                                                         "past the end of the file")
        cached = self._cache.get((self.number, offset))
        try:
            if cached is None:
                contents, layout = self._read_for_lookup(offset, size, fill_cache)
                found = seek_block(contents, user_key, seek_tag, layout)
            elif type(cached) is tuple:
                found = find_in_block(cached, user_key, seek_tag)
            elif type(cached) is bytes and fill_cache and not self._cache.pressed:
                # Read once before: decoded now, as get_past_filter decodes one.
                found = find_in_block(self._decode_split_at(offset, i == 0, cached, True), user_key, seek_tag)
            elif type(cached) is bytes:
                found = seek_block(cached, user_key, seek_tag)
            else:
                found = seek_block(inflate(cached.stored), user_key, seek_tag, cached.layout)
        except DecodeError as exc:
            raise self._damaged_at(offset, exc) from None
        if found is PAST_END:
            # Every entry here sorts before the key: its answer, if any, opens the next block.
            return None if i == len(raw.restarts) - 1 else _INDEX_NEEDED
        return found

    def _read_for_lookup(self, offset: int, size: int, fill_cache: bool):
        """(contents, layout) of the data block at offset (size stored
        bytes) for a point lookup when the cache holds no copy of it,
        layout being its seek_layout if known (else None): read from the
        file and, if fill_cache, cached -- raw, or once the cache is under
        pressure as stored if compressed (_PackedBlock), and not at all if
        stored uncompressed in a mapped file. CorruptionError if damaged."""
        framed = self.file.read(offset, size + BLOCK_TRAILER_SIZE)
        try:
            contents = unpack_block(framed, size)
        except DecodeError as exc:
            raise self._damaged_at(offset, exc) from None
        if fill_cache:
            cache = self._cache
            if cache.pressed:
                if framed[size] == SNAPPY_COMPRESSION:
                    try:
                        layout = seek_layout(contents)
                    except DecodeError as exc:
                        raise self._damaged_at(offset, exc) from None
                    cache.put((self.number, offset), _PackedBlock(framed[:size], layout), size)
                    return contents, layout
                if self._mapped:
                    # Stored uncompressed and mapped: read again for a copy
                    # and a checksum, about a hit's cost. The room is left to
                    # blocks whose miss costs a decompression.
                    return contents, None
            cache.put((self.number, offset), contents, len(contents))
        return contents, None

    def iter_entries(self):
        """Every (internal_key, value) of the table in order (bypasses the cache)."""
        for i in range(self.num_blocks):
            keys, values = self._decode(i, self._contents(i))
            if keys:
                try:
                    trailer_tags(_trailers(keys), len(keys))
                except DecodeError as exc:
                    raise self._damaged(i, exc) from None
            yield from zip(keys, values)

    def approximate_offset_of(self, user_key: bytes) -> int:
        """File offset where user_key's data would be; past the data blocks if absent."""
        i = self.find_block(user_key)
        return self._offsets[i] if i < self.num_blocks else self._meta_offset


def _parse_handle(value: bytes):
    offset, size, end = decode_handle(value)
    if end != len(value):
        raise DecodeError("trailing bytes after a block handle")
    return offset, size


def _parse_index(data: bytes, data_end: int, ordered=None):
    # Opening a table is most of a fresh process's first gets, and decoding
    # its index most of an open: index blocks (a restart at every entry)
    # decode in bulk, their handles too; any other takes the entry loop.
    import numpy as np

    split = split_restart_entries(data)
    handles = None
    if split is not None:
        ukeys, tags, value_starts, value_ends = split
        handles = decode_handles(data, value_starts, value_ends - value_starts)
        if handles is None:
            values = list(map(data.__getitem__, map(slice, value_starts.tolist(), value_ends.tolist())))
    else:
        ukeys, tags, values = decode_block_split(data)
    if handles is None:
        handles = np.array([_parse_handle(value) for value in values], dtype=object).reshape(-1, 2).T
    offsets, sizes = handles
    ends = offsets + sizes + BLOCK_TRAILER_SIZE
    # Each alone too: decoded handles are int64, whose sum may wrap.
    past = np.flatnonzero((offsets > data_end) | (sizes > data_end) | (ends > data_end))
    if len(past):
        i = past[0]
        raise DecodeError(f"data block handle ({offsets[i]}, {sizes[i]}) past the end of the file")
    keys = ukeys if ordered is None else list(map(ordered, ukeys))
    # Keys ascending, checked by C loops; ties (a block ending inside one
    # key's versions) need their tags descending.
    out_of_order = not all(map(le, keys, keys[1:]))
    if not out_of_order and any(map(eq, keys, keys[1:])):
        order = list(zip(keys, [-t for t in tags]))
        out_of_order = any(a >= b for a, b in zip(order, order[1:]))
    if out_of_order:
        raise DecodeError("index keys out of order")
    # Blocks lie in the file in key order, one after another: a compaction
    # reads a run of them with one read.
    if (ends[:-1] > offsets[1:]).any():
        raise DecodeError("data block handles overlap or are out of order")
    return ukeys, tags, offsets.tolist(), sizes.tolist()
