"""TableBuilder: writes a LevelDB table through the `write` callable it is given
and nothing else (spec §7). Byte-identical to LevelDB 1.22's TableBuilder for the
same entries and options (block cut rule, separators, filter buckets, compression).
"""
import struct
from ..errors import Error
from ..keys import MAX_SEQUENCE, TYPE_FOR_SEEK
from .block import BlockBuilder, entry_header, restart_trailer, shared_prefix_length
from .filter import FILTER_META_KEY, BloomFilterPolicy, FilterBlockBuilder
from .format import (
    BLOCK_TRAILER_SIZE,
    NO_COMPRESSION,
    block_trailer,
    compress_block,
    encode_footer,
    encode_handle,
)

INDEX_RESTART_INTERVAL = 1  # every index entry stores its full key (LevelDB's choice)
_pack_header = struct.Struct("BBB").pack  # three one-byte varints
_from_bytes = int.from_bytes
_SEEK_TRAILER = struct.pack("<Q", (MAX_SEQUENCE << 8) | TYPE_FOR_SEEK)
# Output is handed to `write` in pieces of about this size: fewer system calls.
_WRITE_CHUNK = 1 << 16


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
    inline in add() rather than through BlockBuilder: add() runs once per entry
    of every flush and compaction."""

    __slots__ = (
        "_write",
        "_block_size",
        "_interval",
        "_compression",
        "_filter",
        "_index",
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
    )

    def __init__(self, options, write):
        if options.block_restart_interval < 1:
            raise ValueError("block_restart_interval must be at least 1")
        self._write = write
        self._block_size = options.block_size
        self._interval = options.block_restart_interval
        self._compression = options.compression
        compress_block(b"", self._compression)  # reject an unknown compression now
        bits = options.bloom_bits_per_key
        self._filter = FilterBlockBuilder(BloomFilterPolicy(bits), skip=8) if bits > 0 else None
        self._index = BlockBuilder(INDEX_RESTART_INTERVAL)
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
        key_int = _from_bytes(key, "big")
        counter = self._counter
        if counter < self._interval:
            key_len = len(key)
            if len(self._last_key) == key_len:
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
        self._last_int = key_int
        # LevelDB's cut rule: entries + restart array + count >= block_size.
        if len(buf) >= self._limit:
            self._flush()

    def add_many(self, keys, values) -> None:
        """add() for every (key, value) pair, in order."""
        add = self.add
        for key, value in zip(keys, values):
            add(key, value)

    def _flush(self) -> None:
        keys = self._block_keys
        if not keys:
            return
        self._buf += restart_trailer(self._restarts)
        handle = self._write_block(bytes(self._buf), self._compression)
        if self._filter is not None:
            self._filter.add_keys(keys)
            self._filter.start_block(self._offset)
        if self._pending_handle is not None:
            # The previous block's index key needs this block's first key (LevelDB
            # adds it at the next add(); here add() is spared the check).
            separator = index_separator(self._pending_last_key, keys[0])
            self._index.add(separator, encode_handle(*self._pending_handle))
        elif self._smallest is None:
            self._smallest = keys[0]
        self._flushed_entries += len(keys)
        self._pending_handle = handle
        self._pending_last_key = keys[-1]
        self._buf = bytearray()
        self._restarts = []
        self._limit = self._block_size - 4
        self._counter = self._interval
        self._block_keys = []

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
        meta_handle = self._write_block(meta.finish(), self._compression)
        if self._pending_handle is not None:
            successor = index_successor(self._pending_last_key)
            self._index.add(successor, encode_handle(*self._pending_handle))
            self._pending_handle = None
        index_handle = self._write_block(self._index.finish(), self._compression)
        footer = encode_footer(meta_handle, index_handle)
        self._out.append(footer)
        self._offset += len(footer)
        self.file_size = self._offset
        self._drain()
        return self._offset

