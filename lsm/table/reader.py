"""Table: reads a LevelDB table through the RandomAccessFile it is given (spec §7).

Every block read is checked against its CRC, always (LevelDB checks data blocks
only when asked to): damaged bytes raise CorruptionError(path, offset of the
block, reason) and never turn into a wrong value, a phantom key or a false miss.
"""
from bisect import bisect_left
from operator import gt

from ..errors import CorruptionError, DecodeError
from .block import (
    PAST_END,
    decode_block,
    decode_block_split,
    decode_block_split_from,
    first_user_key,
    seek_internal,
    seek_uniform,
    trailer_tags,
    uniform_seek_layout,
)
from .cache import BlockCache, block_charge
from .filter import FILTER_META_KEY, FilterBlockReader
from .format import (
    BLOCK_TRAILER_SIZE,
    FOOTER_SIZE,
    SNAPPY_COMPRESSION,
    decode_footer,
    decode_handle,
    inflate,
    unpack_block,
)
from .keyfilter import KEY_FILTER_META_KEY, KeyFilterReader, cached_key_hash

# A scan reads the blocks it does not find in the cache this many bytes at a
# time: one pread per 4 KiB block was 0.7 us of a scan's ~11 us per block.
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


class _UniformBlock:
    """Raw contents of a uniform block as the block cache keeps them for
    point lookups, with the layout (block.uniform_seek_layout) found once."""

    __slots__ = ("data", "layout")

    def __init__(self, data, layout):
        self.data = data
        self.layout = layout


class _PackedBlock:
    """A snappy block as stored in the file, checksum verified, as a cache
    under pressure keeps it (BlockCache.pressed): ~half the bytes of its
    contents, so twice as many blocks fit, for a decompression (~0.8 us for
    4 KiB) at each lookup. A lookup that misses costs ~11 us: with random
    gets over 134 MB of blocks and a 64 MiB cache, a first pass of 100k
    took 11.2 us each, one with room for every block 9.2. layout: the
    contents' uniform_seek_layout, or None."""

    __slots__ = ("stored", "layout")

    def __init__(self, stored, layout):
        self.stored = stored
        self.layout = layout


class Table:
    """An open table. Build it with Table.open(); all reads are thread-safe."""

    def __init__(self, path, number, block_cache, filter_reader, index, meta_offset, file, key_filter=None):
        self.path = path
        self.number = number
        self.file = file
        self._cache = block_cache if block_cache is not None else BlockCache(PRIVATE_CACHE_BYTES)
        # lsm's filter when the table has one; else LevelDB's, consulted per block.
        self._key_filter = key_filter
        self._filter = filter_reader if key_filter is None else None
        # Index block, decoded once: parallel lists, so find_block is one bisect.
        self._index_ukeys, self._index_tags, self._offsets, self._sizes = index
        self.num_blocks = len(self._offsets)
        self._meta_offset = meta_offset

    # ------------------------------------------------------------------ open

    @classmethod
    def open(cls, file, *, path, number=0, block_cache=None, bloom=True):
        """Read the footer, index, metaindex and filter of `file` (anything with
        .read(offset, n) and .size). `path` names the file in errors; `number`
        keys its blocks in `block_cache` (a BlockCache shared by tables with
        distinct numbers; None: a small private one); bloom=False checks the
        filter block but never consults it."""
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

        index = decode(
            index_off,
            read(index_off, index_size, "index", footer_offset),
            "index",
            lambda data: _parse_index(data, footer_offset),
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

    def _decode(self, i: int, contents: bytes):
        """(internal keys, values) of block i; CorruptionError if malformed."""
        try:
            return decode_block(contents)
        except DecodeError as exc:
            raise self._damaged(i, exc) from None

    def _cached(self, i: int, cache_raw: bool):
        """Block i as the block cache holds it: decoded (a tuple) or raw
        contents (bytes). A block the cache lacks is read, and its raw
        contents are cached if cache_raw."""
        cache_key = (self.number, self._offsets[i])
        cached = self._cache.get(cache_key)
        if cached is None:
            cached = self._contents(i)
            if cache_raw:
                self._cache.put(cache_key, cached, len(cached))
        elif type(cached) is _UniformBlock:
            cached = cached.data
        elif type(cached) is _PackedBlock:
            cached = inflate(cached.stored)
        return cached

    def _damaged(self, i: int, exc: DecodeError) -> CorruptionError:
        return CorruptionError(self.path, self._offsets[i], f"data block: {exc.reason}")

    def block(self, i: int, fill_cache: bool = True):
        """Block i decoded: (user_keys, tags, values), cached unless
        fill_cache is false (a cached copy is used either way)."""
        contents = self._cached(i, cache_raw=False)
        if type(contents) is not bytes:
            return contents
        return self._decode_split(i, contents, fill_cache)

    def _decode_split(self, i: int, contents: bytes, fill_cache: bool):
        """Block i's contents decoded as block() returns them, and cached if fill_cache."""
        try:
            decoded = decode_block_split(contents)
        except DecodeError as exc:
            raise self._damaged(i, exc) from None
        if fill_cache:
            self._cache.put((self.number, self._offsets[i]), decoded, block_charge(len(contents), len(decoded[0])))
        return decoded

    def scan_blocks(self, start: int, fill_cache: bool):
        """Blocks start, start + 1, ... decoded as block() returns them, for
        a scan: a cached block is used, and from one the cache lacks on, the
        blocks are read SCAN_READAHEAD bytes at a time (contents_of_blocks;
        one run held at a time)."""
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
                yield self._decode_split(i, contents, fill_cache)
                i += 1

    def block_from(self, i: int, user_key: bytes, fill_cache: bool = True):
        """Block i for a seek to user_key: (user_keys, tags, values, whole).
        A decoded cached copy is returned whole; otherwise only the entries
        from the restart point before user_key are decoded (whole says
        whether that was the first entry), and the raw contents are cached
        unless fill_cache is false."""
        contents = self._cached(i, cache_raw=fill_cache)
        if type(contents) is not bytes:
            return (*contents, True)
        try:
            ukeys, tags, values, whole = decode_block_split_from(contents, user_key)
        except DecodeError as exc:
            raise self._damaged(i, exc) from None
        return ukeys, tags, values, whole

    def separator_user_key(self, i: int) -> bytes:
        """User key of block i's index entry: for i < num_blocks - 1 it lies
        between block i's last key and block i+1's first key, so a block
        i+1 that starts with user key u has separator_user_key(i) == u."""
        return self._index_ukeys[i]

    def first_user_key(self, i: int):
        """User key of block i's first entry (None if empty), without
        decoding the block when it is not decoded already; the raw contents
        are cached for the decode that usually follows."""
        contents = self._cached(i, cache_raw=True)
        if type(contents) is not bytes:
            return contents[0][0] if contents[0] else None
        try:
            return first_user_key(contents)
        except DecodeError as exc:
            raise self._damaged(i, exc) from None

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
        or None. key_hash: as for may_contain."""
        key_filter = self._key_filter
        if key_filter is not None and not key_filter.may_match(
            cached_key_hash(user_key) if key_hash is None else key_hash
        ):
            return None
        seek_tag = (sequence << 8) | 1
        index_ukeys = self._index_ukeys
        n = self.num_blocks
        i = bisect_left(index_ukeys, user_key)
        # A separator equal to user_key ends a block holding only versions too new.
        while i < n and index_ukeys[i] == user_key and self._index_tags[i] > seek_tag:
            i += 1
        bloom = self._filter
        cache = self._cache
        number = self.number
        while i < n:
            offset = self._offsets[i]
            cached = cache.get((number, offset))
            if type(cached) is tuple:
                # Decoded by an iterator: bisect, cheaper than the filter.
                ukeys, tags, values = cached
                j = bisect_left(ukeys, user_key)
                m = len(ukeys)
                while j < m and ukeys[j] == user_key:
                    tag = tags[j]
                    if tag <= seek_tag:
                        return tag & 0xFF, values[j]
                    j += 1
                if j < m:
                    return None
            else:
                # A cached block is searched without the filter: a uniform
                # block's search costs less than the filter's probe.
                try:
                    if cached is None:
                        if bloom is not None and not bloom.key_may_match(offset, user_key):
                            return None
                        data, layout = self._read_for_lookup(i, fill_cache)
                    elif type(cached) is _UniformBlock:
                        data, layout = cached.data, cached.layout
                    elif type(cached) is _PackedBlock:
                        data, layout = inflate(cached.stored), cached.layout
                    else:
                        data, layout = cached, None
                    if layout is not None:
                        found = seek_uniform(data, layout, user_key, seek_tag)
                    else:
                        found = seek_internal(data, user_key, seek_tag)
                except DecodeError as exc:
                    raise self._damaged(i, exc) from None
                if found is not PAST_END:
                    return found
            i += 1  # every version here was too new: older ones may open the next block
        return None

    def _read_for_lookup(self, i: int, fill_cache: bool):
        """(contents, uniform layout or None) of block i, read from the file
        and, if fill_cache, cached for later lookups: raw contents are kept,
        not a decode of 30-odd entries that a random read would mostly
        waste (LevelDB's way: a binary search answers), with a uniform
        block's layout (finding it again costs 0.6 us); as stored, once the
        cache is under pressure (_PackedBlock). DecodeError if damaged."""
        offset = self._offsets[i]
        size = self._sizes[i]
        framed = self.file.read(offset, size + BLOCK_TRAILER_SIZE)
        contents = unpack_block(framed, size)
        layout = uniform_seek_layout(contents)
        if fill_cache:
            cache = self._cache
            if cache.pressed and framed[size] == SNAPPY_COMPRESSION:
                cache.put((self.number, offset), _PackedBlock(framed[:size], layout), size)
            else:
                cache.put((self.number, offset), contents if layout is None else _UniformBlock(contents, layout),
                          len(contents))
        return contents, layout

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


def _parse_index(data: bytes, data_end: int):
    # Split as decoded: a separate pass over the keys cost a table open 10%.
    # Its restart array goes unchecked, as it is unused: the keys are bisected.
    ukeys, tags, values = decode_block_split(data)
    offsets = []
    sizes = []
    for value in values:
        offset, size = _parse_handle(value)
        if offset + size + BLOCK_TRAILER_SIZE > data_end:
            raise DecodeError(f"data block handle ({offset}, {size}) past the end of the file")
        offsets.append(offset)
        sizes.append(size)
    order = list(zip(ukeys, [-t for t in tags]))
    if any(a >= b for a, b in zip(order, order[1:])):
        raise DecodeError("index keys out of order")
    # Blocks lie in the file in key order, one after another: a compaction
    # reads a run of them with one read.
    ends = [offset + size + BLOCK_TRAILER_SIZE for offset, size in zip(offsets, sizes)]
    if any(map(gt, ends, offsets[1:])):
        raise DecodeError("data block handles overlap or are out of order")
    return ukeys, tags, offsets, sizes
