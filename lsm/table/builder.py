"""TableBuilder: writes a LevelDB table through the `write` callable it is given
and nothing else. With prefix_compression, which LevelDB always does,
byte-identical to LevelDB 1.22's TableBuilder for the same entries and options
(block cut rule, separators, filter buckets, compression). Without it, every
key is stored whole and every entry is a restart point (restart interval 1,
whatever block_restart_interval says): the restart array then locates each
entry, a seek lands on its key directly, and a run of keys of one length and
values of one length makes uniform blocks (lsm.table.block). Still LevelDB's
format: LevelDB reads such blocks as written with interval 1.
"""
import struct
from bisect import bisect_left
from functools import lru_cache
from itertools import accumulate, count, repeat
from operator import getitem, sub, xor

from ..coding import encode_varint
from ..errors import Error
from ..keys import MAX_SEQUENCE, TYPE_FOR_SEEK
from .block import BlockBuilder, entry_header, restart_trailer, shared_prefix_length
from .bulk import encode_handles, restart_every_entry_block
from .filter import FILTER_META_KEY, BloomFilterPolicy, FilterBlockBuilder
from .format import (
    BLOCK_TRAILER_SIZE,
    NO_COMPRESSION,
    block_trailer,
    compress_block,
    encode_footer,
    encode_handle,
)
from .keyfilter import KEY_FILTER_META_KEY, KeyFilterBuilder, bits_per_key_beside

_pack_header = struct.Struct("BBB").pack  # three one-byte varints
_from_bytes = int.from_bytes
_SEEK_TRAILER = struct.pack("<Q", (MAX_SEQUENCE << 8) | TYPE_FOR_SEEK)
_ONE_BYTE = tuple(bytes((b,)) for b in range(256))
# index_separators works on user keys of up to this many bytes in numpy.
_MAX_SEPARATOR_KEY = 256
# Output is handed to `write` in pieces of about this size: fewer system calls.
_WRITE_CHUNK = 1 << 16

# add_many's batch path takes runs of at least _BATCH_MIN_ENTRIES entries (fewer
# cost less through add()) whose keys are all of one length below
# _BATCH_KEY_LIMIT (so the shared and non-shared lengths are one-byte varints)
# and whose values are all of one length (for values of several lengths its
# extra passes would cost about what it saves). Longer inputs are cut into runs
# of _BATCH_MAX_ENTRIES: its lists stay small.
_BATCH_MIN_ENTRIES = 64
_BATCH_MAX_ENTRIES = 4096
_BATCH_KEY_LIMIT = 128


# The batch path looks up what it needs about an entry by `bits`: the bit length
# of its key's XOR with the key before it (as big-endian ints of `width` bytes).
# The key is non-shared from the first byte that differs on; a key that shares
# nothing, as a restart entry's, has bits = 8 * width.
@lru_cache(maxsize=_BATCH_KEY_LIMIT)
def _keys_by_bits(width: int):
    """(non-shared lengths, shared and non-shared lengths as one-byte varints,
    key suffix slices), by bits."""
    non_shared = tuple((bits + 7) >> 3 for bits in range(8 * width + 1))
    lengths = tuple(bytes((width - n, n)) for n in non_shared)
    return non_shared, lengths, tuple(slice(width - n, None) for n in non_shared)


@lru_cache(maxsize=256)
def _entries_by_bits(width: int, value_len: int):
    """(headers, sizes, key suffix slices) of entries with keys `width` bytes
    long and values value_len long, by bits."""
    non_shared, lengths, suffixes = _keys_by_bits(width)
    value_header = encode_varint(value_len)
    rest = 2 + len(value_header) + value_len  # all but the key suffix
    return tuple(pair + value_header for pair in lengths), tuple(n + rest for n in non_shared), suffixes


def _batchable(keys, values) -> bool:
    """Whether add_many may take its batch path for this run of entries."""
    if len(keys) < _BATCH_MIN_ENTRIES:
        return False
    width, value_len = len(keys[0]), len(values[0])
    # The last entry alone turns most slices of several lengths away cheaply.
    if width >= _BATCH_KEY_LIMIT or len(keys[-1]) != width or len(values[-1]) != value_len:
        return False
    return set(map(len, keys)) == {width} and set(map(len, values)) == {value_len}


def find_shortest_separator(start: bytes, limit: bytes) -> bytes:
    """Bytewise comparator's FindShortestSeparator on user keys: a short key in
    [start, limit), or start itself when no shorter one is found."""
    n = min(len(start), len(limit))
    x = int.from_bytes(start[:n], "big") ^ int.from_bytes(limit[:n], "big")
    i = n - ((x.bit_length() + 7) >> 3)
    if i >= n:
        return start  # one is a prefix of the other
    byte = start[i]
    if byte < 0xFF and byte + 1 < limit[i]:
        return start[:i] + bytes((byte + 1,))
    return start


def find_short_successor(key: bytes) -> bytes:
    """Bytewise comparator's FindShortSuccessor: a short key >= key."""
    stripped = key.lstrip(b"\xff")
    if not stripped:
        return key  # all 0xFF: nothing shorter sorts after it
    i = len(key) - len(stripped)
    return key[:i] + bytes((key[i] + 1,))


def index_separator(last_ikey: bytes, next_ikey: bytes) -> bytes:
    """InternalKeyComparator::FindShortestSeparator: the shortened user key with
    (MAX_SEQUENCE, kTypeValue) if it is physically shorter, else last_ikey."""
    user = last_ikey[:-8]
    short = find_shortest_separator(user, next_ikey[:-8])
    if len(short) < len(user) and user < short:
        return short + _SEEK_TRAILER
    return last_ikey


def index_separators(last_ikeys, next_ikeys) -> list:
    """index_separator(last_ikeys[i], next_ikeys[i]) for every i, worked
    out together: where each pair of user keys first differs, by numpy over
    the keys padded to the longest."""
    import numpy as np

    from .bulk import byte_rows

    n = len(last_ikeys)
    if not n:
        return []
    last_len = np.fromiter(map(len, last_ikeys), dtype=np.int64, count=n) - 8
    next_len = np.fromiter(map(len, next_ikeys), dtype=np.int64, count=n) - 8
    width = int(max(last_len.max(), next_len.max()))
    if width > _MAX_SEPARATOR_KEY:
        return list(map(index_separator, last_ikeys, next_ikeys))
    rows = []
    for keys, lengths in ((last_ikeys, last_len), (next_ikeys, next_len)):
        at = np.zeros(n, dtype=np.int64)
        np.cumsum(lengths[:-1] + 8, out=at[1:])
        rows.append(byte_rows(np.frombuffer(b"".join(keys), dtype=np.uint8), at, max(width, 1)).astype(np.int64))
    start, limit = rows
    common = np.minimum(last_len, next_len)
    differs = (start != limit) & (np.arange(start.shape[1]) < common[:, None])
    at = differs.argmax(axis=1)
    byte = start[np.arange(n), at]
    # FindShortestSeparator's rule, and index_separator's: kept only if shorter.
    shorter = differs.any(axis=1) & (byte < 0xFF) & (byte + 1 < limit[np.arange(n), at]) & (at + 1 < last_len)
    out = list(last_ikeys)
    for i, cut, value in zip(np.flatnonzero(shorter).tolist(), at[shorter].tolist(), (byte[shorter] + 1).tolist()):
        out[i] = last_ikeys[i][:cut] + _ONE_BYTE[value] + _SEEK_TRAILER
    return out


def _last_key_separator(last_ikey: bytes, _next_ikey: bytes) -> bytes:
    return last_ikey


def _last_key(last_ikey: bytes) -> bytes:
    return last_ikey


def index_successor(last_ikey: bytes) -> bytes:
    """InternalKeyComparator::FindShortSuccessor, same rule as index_separator."""
    user = last_ikey[:-8]
    short = find_short_successor(user)
    if len(short) < len(user) and user < short:
        return short + _SEEK_TRAILER
    return last_ikey


class TableBuilder:
    """Builds one table from entries added in internal-key order (not checked).

    Output reaches `write` in pieces of at least 64 KiB, the rest at finish();
    file_size counts every byte produced so far. The data block is encoded
    inline rather than through BlockBuilder, as every entry of every flush and
    compaction passes here: by add(), or for a run of entries of one key length
    and one value length by add_many's batch path, a map per step over the
    whole run."""

    __slots__ = (
        "_write",
        "_block_size",
        "_interval",
        "_prefix_compression",
        "_compression",
        "_filter",
        "_key_filter",
        "_index_keys",
        "_handle_offsets",
        "_handle_sizes",
        "_buf",
        "_restarts",
        "_counter",
        "_limit",
        "_last_key",
        "_last_int",
        "_block_keys",
        "_pending_handle",
        "_pending_last_key",
        "_offset",
        "_out",
        "_out_size",
        "_flushed_entries",
        "_smallest",
        "_finished",
        "file_size",
        "_separator",
        "_successor",
    )

    def __init__(self, options, write, shorten_index_keys=True):
        """shorten_index_keys: index keys shortened as the bytewise comparator
        shortens them; off (a custom comparator) each block's index key is
        its last key, right in any order."""
        if options.block_restart_interval < 1:
            raise ValueError("block_restart_interval must be at least 1")
        self._write = write
        self._separator = index_separator if shorten_index_keys else _last_key_separator
        self._successor = index_successor if shorten_index_keys else _last_key
        self._block_size = options.block_size
        self._prefix_compression = options.prefix_compression
        self._interval = options.block_restart_interval if options.prefix_compression else 1
        self._compression = options.compression
        compress_block(b"", self._compression)  # reject an unknown compression now
        bits = options.bloom_bits_per_key
        self._filter = FilterBlockBuilder(BloomFilterPolicy(bits), skip=8) if bits > 0 else None
        # lsm's own filter beside LevelDB's, which plyvel keeps using.
        self._key_filter = KeyFilterBuilder(bits_per_key_beside(bits)) if bits > 0 and options.lsm_filter else None
        # The index block's entries, encoded together at finish(). As in
        # LevelDB's, every index entry is a restart point storing its whole key.
        self._index_keys = []
        self._handle_offsets = []
        self._handle_sizes = []
        self._buf = bytearray()  # entries of the data block being built
        # The first entry of every block starts a restart (and shares nothing).
        self._restarts = []
        # Cut when the entries reach block_size - 4 * (restarts + 1).
        self._limit = options.block_size - 4
        self._counter = options.block_restart_interval
        self._last_key = b""
        self._last_int = 0  # _last_key as a big-endian int, for the prefix XOR
        self._block_keys = []
        self._pending_handle = None  # handle of the last block, awaiting its index key
        self._pending_last_key = None
        self._offset = 0  # bytes produced so far (written or buffered)
        self._out = []
        self._out_size = 0
        self._flushed_entries = 0
        self._smallest = None
        self._finished = False
        self.file_size = 0

    @property
    def num_entries(self) -> int:
        return self._flushed_entries + len(self._block_keys)

    @property
    def estimated_size(self) -> int:
        """file_size plus the block being built (uncompressed)."""
        return self._offset + len(self._buf)

    @property
    def smallest(self):
        """First internal key added (None while empty)."""
        if self._smallest is None and self._block_keys:
            return self._block_keys[0]
        return self._smallest

    @property
    def largest(self):
        """Last internal key added (None while empty)."""
        return self._last_key if self.num_entries else None

    def add(self, key: bytes, value: bytes) -> None:
        buf = self._buf
        prefix_compression = self._prefix_compression
        if prefix_compression:
            key_int = _from_bytes(key, "big")
        counter = self._counter
        if counter < self._interval:
            key_len = len(key)
            if not prefix_compression:
                shared = 0
            elif len(self._last_key) == key_len:
                # Common prefix in C: the highest bit where the keys differ.
                shared = key_len - (((self._last_int ^ key_int).bit_length() + 7) >> 3)
            else:
                shared = shared_prefix_length(self._last_key, key)
            self._counter = counter + 1
            non_shared = key_len - shared
        else:
            self._restarts.append(len(buf))
            self._limit -= 4
            self._counter = 1
            shared = 0
            non_shared = len(key)
        value_len = len(value)
        if non_shared < 128 and value_len < 128 and shared < 128:
            buf += _pack_header(shared, non_shared, value_len)
        else:
            buf += entry_header(shared, non_shared, value_len)
        buf += key[shared:]
        buf += value
        self._block_keys.append(key)
        self._last_key = key
        if prefix_compression:
            self._last_int = key_int
        # LevelDB's cut rule: entries + restart array + count >= block_size.
        if len(buf) >= self._limit:
            self._flush()

    def add_many(self, keys, values) -> None:
        """add() for every (key, value) pair, in order; the same bytes. Runs of
        keys of one length below 128 bytes with values of one length take
        _add_batch, which does the per-entry work in C-level loops."""
        keys, values = list(keys), list(values)
        pairs = min(len(keys), len(values))  # as zip() pairs them
        add = self.add
        for start in range(0, pairs, _BATCH_MAX_ENTRIES):
            end = min(start + _BATCH_MAX_ENTRIES, pairs)
            run_keys, run_values = keys[start:end], values[start:end]
            if _batchable(run_keys, run_values):
                self._add_batch(run_keys, run_values, len(run_keys[0]), len(run_values[0]))
            else:
                for key, value in zip(run_keys, run_values):
                    add(key, value)

    def _add_batch(self, keys, values, width: int, value_len: int) -> None:
        """add_many for keys all `width` bytes long and values all value_len
        long. Every entry is sized and encoded as if it were no restart, each
        step a map over all entries; _add_blocks cuts them into blocks."""
        headers, entry_sizes, suffixes = _entries_by_bits(width, value_len)
        whole_key = 8 * width  # the bits of a key that shares nothing
        pieces = [b""] * (3 * len(keys))  # header, key suffix, value of every entry
        pieces[2::3] = values
        if self._prefix_compression:
            ints = list(map(_from_bytes, keys, repeat("big")))
            bits = [8 * (width - shared_prefix_length(self._last_key, keys[0]))]
            bits += map(int.bit_length, map(xor, ints, ints[1:]))
            pieces[0::3] = map(headers.__getitem__, bits)
            pieces[1::3] = map(getitem, keys, map(suffixes.__getitem__, bits))
            sizes = list(map(entry_sizes.__getitem__, bits))
            self._last_int = ints[-1]
        else:
            pieces[0::3] = repeat(headers[whole_key], len(keys))
            pieces[1::3] = keys
            sizes = [entry_sizes[whole_key]] * len(keys)
        self._add_blocks(keys, pieces, sizes, entry_sizes[whole_key], headers[whole_key])
        self._last_key = keys[-1]

    def _add_blocks(self, keys, pieces, sizes, restart_size: int, restart_header: bytes) -> None:
        """Cut encoded entries (three pieces each: header, key suffix, value)
        into blocks where add() would, from the block being built on. sizes:
        each entry's size as no restart; restart_size, restart_header: a
        restart entry's, which shares nothing."""
        interval, block_size = self._interval, self._block_size
        # Every entry takes at least min(sizes) bytes: no block holds more.
        span = max(block_size, 0) // min(sizes) + 1
        # A restart also takes a slot in the restart array.
        restart_sizes = [restart_size + 4] * len(keys)
        restart_headers = [restart_header] * len(keys)
        phase = (interval - self._counter) % interval  # entries before the next restart
        slots = 4 * len(self._restarts) + 4  # the restart array and its count
        used = len(self._buf) + slots
        start = 0
        while start < len(keys):
            first, stop = start + phase, start + span
            window = sizes[start:stop]
            window[phase::interval] = restart_sizes[first:stop:interval]
            # ends[i]: the block's finished size with i more entries; add() cuts
            # at the first entry that takes it to block_size.
            ends = list(accumulate(window, initial=used))
            taken = min(bisect_left(ends, block_size, 1), len(window))
            full = ends[taken] >= block_size
            end = start + taken
            if self._prefix_compression:
                # Restart entries share nothing: a restart's header, the whole
                # key (without prefix compression every entry already has them).
                pieces[3 * first : 3 * end : 3 * interval] = restart_headers[first:end:interval]
                pieces[3 * first + 1 : 3 * end : 3 * interval] = keys[first:end:interval]
            # A restart's offset: its end less the restart slots counted before it.
            offsets = list(map(sub, ends[phase:taken:interval], count(slots, 4)))
            entries = pieces[3 * start : 3 * end]
            if full and not self._block_keys:
                # A block of these entries alone goes straight out; the builder
                # is left at a new block, as _flush leaves it.
                entries.append(restart_trailer(offsets))
                self._emit_block(b"".join(entries), keys[start:end])
            else:
                self._buf += b"".join(entries)
                self._restarts += offsets
                self._block_keys += keys[start:end]
                if full:
                    self._flush()
                else:
                    self._counter = (taken - phase - 1) % interval + 1 if offsets else self._counter + taken
                    self._limit = block_size - 4 - 4 * len(self._restarts)
            start, phase, slots, used = end, 0, 4, 4

    def _flush(self) -> None:
        if not self._block_keys:
            return
        self._buf += restart_trailer(self._restarts)
        self._emit_block(bytes(self._buf), self._block_keys)
        self._buf = bytearray()
        self._restarts = []
        self._limit = self._block_size - 4
        self._counter = self._interval
        self._block_keys = []

    def _emit_block(self, raw: bytes, keys) -> None:
        """Write a finished data block (entries and restart array) of `keys`."""
        if self._filter is not None:
            self._filter.add_keys(keys)
        if self._key_filter is not None:
            self._key_filter.add_keys(keys)
        self._index_block(raw, len(keys), keys[0], keys[-1])

    def _index_block(self, raw: bytes, count: int, first_key: bytes, last_key: bytes) -> None:
        """Write a finished data block whose keys the filter already has."""
        handle = self._write_block(raw, self._compression)
        if self._filter is not None:
            self._filter.start_block(self._offset)
        if self._pending_handle is not None:
            # The previous block's index key needs this block's first key (LevelDB
            # adds it at the next add(); here add() is spared the check).
            self._index_keys.append(self._separator(self._pending_last_key, first_key))
            self._handle_offsets.append(self._pending_handle[0])
            self._handle_sizes.append(self._pending_handle[1])
        elif self._smallest is None:
            self._smallest = first_key
        self._flushed_entries += count
        self._pending_handle = handle
        self._pending_last_key = last_key

    def add_blocks(self, framed, sizes, counts, first_keys, last_keys, hashes=None, crcs=None) -> None:
        """Add data blocks assembled and compressed elsewhere (lsm.table.bulk):
        framed holds them as the file is to, each stored block and its
        trailer (format.frame_blocks); block i has sizes[i] stored bytes and
        counts[i] entries, from internal key first_keys[i] to last_keys[i];
        all after any entry added before. A block under way is finished
        first. hashes: LevelDB's filter hash of every entry's user key, in
        order (bulk.user_key_hashes), needed when the table has that filter;
        crcs: crc32c of the same keys (bulk.user_key_crcs), needed when it
        has lsm's (keyfilter). The blocks' handles, index entries and filter
        buckets are made together."""
        import numpy as np

        n = len(sizes)
        if not n:
            return
        if self._filter is not None and hashes is None:
            raise ValueError("add_blocks needs the keys' hashes for the filter block")
        if self._key_filter is not None and crcs is None:
            raise ValueError("add_blocks needs the keys' crc32c for lsm's filter block")
        self._flush()
        sizes = np.array(sizes, dtype=np.int64)
        starts = np.empty(n + 1, dtype=np.int64)
        starts[0] = self._offset
        np.cumsum(sizes + BLOCK_TRAILER_SIZE, out=starts[1:])
        starts[1:] += self._offset
        end = int(starts[-1])
        if end - self._offset != len(framed):
            raise ValueError(f"add_blocks: {len(framed)} bytes framed, blocks of {end - self._offset}")
        if len(framed) >= _WRITE_CHUNK:
            self._drain()
            self._write(framed)
        else:
            self._out.append(framed)
            self._out_size += len(framed)
        self._offset = self.file_size = end
        if self._filter is not None:
            self._filter.add_blocks(hashes, counts, starts[:-1], end)
        if self._key_filter is not None:
            self._key_filter.add_crcs(crcs)
        block_starts, block_sizes = starts[:-1].tolist(), sizes.tolist()
        if self._pending_handle is not None:
            self._index_keys.append(self._separator(self._pending_last_key, first_keys[0]))
            self._handle_offsets.append(self._pending_handle[0])
            self._handle_sizes.append(self._pending_handle[1])
        elif self._smallest is None:
            self._smallest = first_keys[0]
        if self._separator is index_separator:
            self._index_keys += index_separators(last_keys[:-1], first_keys[1:])
        else:
            self._index_keys += map(self._separator, last_keys[:-1], first_keys[1:])
        self._handle_offsets += block_starts[:-1]
        self._handle_sizes += block_sizes[:-1]
        self._pending_handle = (block_starts[-1], block_sizes[-1])
        self._pending_last_key = self._last_key = last_keys[-1]
        self._flushed_entries += int(sum(counts))
        if self._out_size >= _WRITE_CHUNK:
            self._drain()

    def _write_block(self, raw: bytes, compression):
        stored, block_type = compress_block(raw, compression)
        return self._write_stored(stored, block_type)

    def _write_stored(self, stored: bytes, block_type: int):
        """Append stored || trailer to the output; return the block's (offset, size)."""
        handle = (self._offset, len(stored))
        self._out.append(stored)
        self._out.append(block_trailer(stored, block_type))
        self._offset += len(stored) + BLOCK_TRAILER_SIZE
        self._out_size += len(stored) + BLOCK_TRAILER_SIZE
        self.file_size = self._offset
        if self._out_size >= _WRITE_CHUNK:
            self._drain()
        return handle

    def _drain(self) -> None:
        if self._out:
            data = b"".join(self._out)
            self._out = []
            self._out_size = 0
            self._write(data)

    def _index_block_contents(self) -> bytes:
        import numpy as np

        handles = encode_handles(np.array(self._handle_offsets, dtype=np.int64),
                                 np.array(self._handle_sizes, dtype=np.int64))
        return restart_every_entry_block(self._index_keys, handles)

    def finish(self) -> int:
        """Write the remaining data, filter, metaindex, index and footer; return the file size."""
        if self._finished:
            raise Error("TableBuilder.finish() called twice")
        self._finished = True
        self._flush()
        meta = BlockBuilder(16)
        if self._filter is not None:
            filter_handle = self._write_stored(self._filter.finish(), NO_COMPRESSION)
            meta.add(FILTER_META_KEY, encode_handle(*filter_handle))
        if self._key_filter is not None:
            key_filter_handle = self._write_stored(self._key_filter.finish(), NO_COMPRESSION)
            meta.add(KEY_FILTER_META_KEY, encode_handle(*key_filter_handle))
        meta_handle = self._write_block(meta.finish(), self._compression)
        if self._pending_handle is not None:
            self._index_keys.append(self._successor(self._pending_last_key))
            self._handle_offsets.append(self._pending_handle[0])
            self._handle_sizes.append(self._pending_handle[1])
            self._pending_handle = None
        index_handle = self._write_block(self._index_block_contents(), self._compression)
        footer = encode_footer(meta_handle, index_handle)
        self._out.append(footer)
        self._offset += len(footer)
        self.file_size = self._offset
        self._drain()
        return self._offset

