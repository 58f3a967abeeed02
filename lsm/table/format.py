"""Table framing: block handles, block trailers, compression and the footer.
Pure: no files; bytes in, bytes out, DecodeError on damage.
"""
import struct
from operator import sub

import cramjam

from ..coding import crc32c, decode_varint32, encode_varint, mask_crc, masked_crc32c
from ..errors import DecodeError

# On-disk constants (frozen; changing any of them breaks compatibility with LevelDB).
MAGIC = 0xDB4775248B80FB57  # last 8 bytes of every table, fixed64 LE
FOOTER_SIZE = 48  # two handles padded to 40 bytes, then the magic
MAX_HANDLE_SIZE = 20  # two varint64s of at most 10 bytes each
BLOCK_TRAILER_SIZE = 5  # compression type byte + fixed32 masked CRC32C
NO_COMPRESSION = 0
SNAPPY_COMPRESSION = 1  # raw Snappy block format, not the framing format

_FIXED32 = struct.Struct("<I")
_FIXED64 = struct.Struct("<Q")
_TRAILER = struct.Struct("<BI")
_snappy_compress = cramjam.snappy.compress_raw
_snappy_compress_into = cramjam.snappy.compress_raw_into
_snappy_decompress = cramjam.snappy.decompress_raw
_snappy_decompress_into = cramjam.snappy.decompress_raw_into
_snappy_length = cramjam.snappy.decompress_raw_len
_TYPE_BYTES = (bytes((NO_COMPRESSION,)), bytes((SNAPPY_COMPRESSION,)))


# A Snappy element of n bytes yields at most 64 bytes (a 2-byte copy of 64),
# so a larger declared length can only come from a damaged or hostile block.
_SNAPPY_MAX_EXPANSION = 32


def encode_handle(offset: int, size: int) -> bytes:
    return encode_varint(offset) + encode_varint(size)


def decode_handle(data, pos: int = 0):
    """Return (offset, size, next_pos). DecodeError on a truncated or overlong varint."""
    values = []
    for _ in range(2):
        result = shift = 0
        start = pos
        while True:
            if pos >= len(data):
                raise DecodeError("truncated block handle", start)
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift >= 70:
                raise DecodeError("block handle varint longer than 10 bytes", start)
        if result > 0xFFFFFFFFFFFFFFFF:
            raise DecodeError("block handle value out of range", start)
        values.append(result)
    return values[0], values[1], pos


# decode_handles takes handles of at most this many bytes: seven bits a byte
# of each fit one int64, and a table under 32 GiB has no longer ones.
_BULK_HANDLE_BYTES = 9


def decode_handles(data: bytes, starts, lengths):
    """(offsets, sizes), numpy int64 arrays, of the block handles
    data[starts[i]:starts[i] + lengths[i]] (numpy int64 arrays), each
    exactly two varints, decoded together as rows of a byte matrix; None if
    any is not so or is over _BULK_HANDLE_BYTES long (decode_handle then
    says what is wrong, or decodes it)."""
    import numpy as np

    if not len(starts) or not len(data):
        return None
    width = int(lengths.max())
    if width > _BULK_HANDLE_BYTES:
        return None
    columns = np.arange(width)
    valid = columns < lengths[:, None]
    at = np.minimum(starts[:, None] + columns, len(data) - 1)
    matrix = np.where(valid, np.frombuffer(data, dtype=np.uint8)[at], 0).astype(np.int64)
    # Bit c of a row's `ends`: its byte c ends a varint. The handle must
    # hold two, the second ending it.
    ends = ((matrix < 0x80) @ (1 << columns)) & ((1 << lengths) - 1)
    first = ends & -ends
    if not first.all() or ((ends ^ first) != 1 << (lengths - 1)).any():
        return None
    # Seven bits a byte, the first varint's below the second's.
    value = (matrix & 0x7F) @ (1 << 7 * columns)
    split = (2 * first) ** 7
    return value & (split - 1), value // split


def encode_footer(metaindex_handle, index_handle) -> bytes:
    handles = encode_handle(*metaindex_handle) + encode_handle(*index_handle)
    return handles + bytes(2 * MAX_HANDLE_SIZE - len(handles)) + _FIXED64.pack(MAGIC)


def decode_footer(data):
    """Return ((meta_offset, meta_size), (index_offset, index_size)) from the 48 footer bytes.

    Like LevelDB, the zero padding is not checked; the magic is."""
    if len(data) != FOOTER_SIZE:
        raise DecodeError(f"footer is {len(data)} bytes, expected {FOOTER_SIZE}")
    if _FIXED64.unpack_from(data, 40)[0] != MAGIC:
        raise DecodeError("not an sstable (bad magic number)", 40)
    meta_off, meta_size, pos = decode_handle(data, 0)
    index_off, index_size, pos = decode_handle(data, pos)
    if pos > 2 * MAX_HANDLE_SIZE:
        raise DecodeError("footer handles run into the magic number", 0)
    return (meta_off, meta_size), (index_off, index_size)


def compress_block(raw: bytes, compression):
    """Return (stored_bytes, type). Snappy is kept only when it saves at least
    1/8 of the block, exactly LevelDB's rule, so our tables match its bytes."""
    if compression == "snappy":
        packed = _snappy_compress(raw)
        if _keeps_snappy(len(packed), len(raw)):
            return bytes(packed), SNAPPY_COMPRESSION
    elif compression is not None:
        raise ValueError(f"unknown compression {compression!r} (use 'snappy' or None)")
    return raw, NO_COMPRESSION


def _snappy_max_len(raw_size: int) -> int:
    """The most bytes Snappy can make of raw_size bytes (its MaxCompressedLength)."""
    return 32 + raw_size + raw_size // 6


def _keeps_snappy(packed_size: int, raw_size: int) -> bool:
    return packed_size < raw_size - (raw_size >> 3)


def _uninitialised(size: int):
    """A writable buffer of `size` bytes, not zeroed (a numpy array): for
    buffers whose every byte is written before it is read. Zeroing one,
    as bytearray(size) does, cost about 2% of a compaction."""
    import numpy as np

    return np.empty(size, dtype=np.uint8)


def frame_blocks(raw, ends, compression):
    """(framed, sizes): the blocks raw[ends[i - 1]:ends[i]] (the first from
    0) as a table stores them -- compress_block's bytes, then block_trailer's
    -- end to end in one buffer (a memoryview), each compressed straight
    into it; sizes: each one's stored size (without its trailer)."""
    if compression not in ("snappy", None):
        raise ValueError(f"unknown compression {compression!r} (use 'snappy' or None)")
    snappy = compression == "snappy"
    view = memoryview(raw)
    bounds = [0] + list(ends)
    room = sum(map(_snappy_max_len, map(sub, bounds[1:], bounds[:-1]))) if snappy else len(view)
    # Uninitialised: every byte returned is written below.
    framed = _uninitialised(room + BLOCK_TRAILER_SIZE * (len(bounds) - 1))
    into = memoryview(framed)
    sizes = []
    pos = 0
    pack_trailer = _TRAILER.pack_into
    for lo, hi in zip(bounds, bounds[1:]):
        block_type = NO_COMPRESSION
        size = hi - lo
        if snappy:
            packed = _snappy_compress_into(view[lo:hi], into[pos:])
            if _keeps_snappy(packed, size):
                block_type, size = SNAPPY_COMPRESSION, packed
        if block_type == NO_COMPRESSION:
            into[pos:pos + size] = view[lo:hi]
        framed[pos + size] = block_type
        # The CRC covers the stored bytes followed by the type byte.
        pack_trailer(framed, pos + size, block_type, masked_crc32c(into[pos:pos + size + 1]))
        sizes.append(size)
        pos += size + BLOCK_TRAILER_SIZE
    return into[:pos], sizes


def block_trailer(stored: bytes, block_type: int) -> bytes:
    # The CRC covers the stored (possibly compressed) bytes followed by the type byte.
    return _TRAILER.pack(block_type, masked_crc32c(bytes((block_type,)), crc32c(stored)))


def unpack_block(framed, size: int) -> bytes:
    """Check the trailer of `framed` (= stored block || 5-byte trailer) and return
    the uncompressed block contents. DecodeError for a bad checksum or type."""
    # Every random read passes here: decode_varint32 is inlined, and one
    # memoryview serves the checksum and the decompression.
    if len(framed) != size + BLOCK_TRAILER_SIZE:
        raise DecodeError("truncated block read")
    view = memoryview(framed)
    if masked_crc32c(view[: size + 1]) != _FIXED32.unpack_from(framed, size + 1)[0]:
        raise DecodeError("block checksum mismatch")
    block_type = framed[size]
    if block_type == SNAPPY_COMPRESSION:
        declared = framed[0] if size else 0
        if declared >= 0x80:
            if size > 1 and framed[1] < 0x80:
                # Two bytes: every block under 16 KiB, so nearly all of them.
                declared = (declared & 0x7F) | (framed[1] << 7)
            else:
                declared, _ = decode_varint32(framed[: min(size, 5)])
        if declared > _SNAPPY_MAX_EXPANSION * size:
            raise DecodeError(f"snappy block claims {declared} bytes from {size}")
        try:
            return inflate(view[:size])
        except Exception as exc:  # cramjam raises its own error types
            raise DecodeError(f"corrupted snappy block: {exc}") from None
    if block_type == NO_COMPRESSION:
        return framed[:size] if type(framed) is bytes else bytes(view[:size])
    raise DecodeError(f"bad block type {block_type}")


def unpack_blocks(framed, offsets, sizes):
    """(contents, lengths): the uncompressed contents of stored blocks, each
    with its trailer, at offsets[i] of `framed` with sizes[i] stored bytes
    (lists), checked as unpack_block checks one and decompressed end to end
    into one bytes object; lengths are their sizes. DecodeError for a
    damaged block, with `block` set to its place in the lists.

    Each step is one C call per block, over them all; should any step find
    a block wrong, the blocks are gone through again one at a time, which
    says which one and how."""
    import numpy as np

    view = memoryview(framed)
    n = len(offsets)
    if not n:
        return b"", []
    stored_at = np.array(offsets, dtype=np.int64)
    stored_end = stored_at + np.array(sizes, dtype=np.int64)
    checked = None
    if int(stored_end.max()) + BLOCK_TRAILER_SIZE <= len(framed):
        checked = _checked_together(framed, view, stored_at, stored_end)
    if checked is None:
        checked = _checked_one_by_one(framed, view, offsets, sizes)
    types, lengths = checked
    out_end = np.cumsum(lengths)
    out_at = (out_end - lengths).tolist()
    out_end = out_end.tolist()
    lengths = lengths.tolist()
    out = _uninitialised(out_end[-1])  # every byte is written below
    into = memoryview(out)
    stored = list(map(view.__getitem__, map(slice, offsets, stored_end.tolist())))
    snappy = types == SNAPPY_COMPRESSION
    if snappy.all():
        try:
            written = list(map(_snappy_decompress_into, stored, map(into.__getitem__, map(slice, out_at, out_end))))
        except Exception:  # cramjam raises its own error types: the loop below says where
            written = None
        if written == lengths:
            return bytes(out), lengths
    for i in range(n):
        if not snappy[i]:
            into[out_at[i]:out_end[i]] = stored[i]
            continue
        try:
            written = _snappy_decompress_into(stored[i], into[out_at[i]:out_end[i]])
        except Exception as exc:  # cramjam raises its own error types
            raise _block_error(i, f"corrupted snappy block: {exc}") from None
        if written != lengths[i]:
            raise _block_error(i, f"corrupted snappy block: {written} bytes, not the {lengths[i]} it claims")
    return bytes(out), lengths


def _checked_together(framed, view, stored_at, stored_end):
    """(types, lengths) of the blocks unpack_blocks is given, as numpy
    arrays, when every one is sound; else None."""
    import numpy as np

    n = len(stored_at)
    array = np.frombuffer(framed, dtype=np.uint8)
    with_type = map(view.__getitem__, map(slice, stored_at.tolist(), (stored_end + 1).tolist()))
    crcs = mask_crc(np.fromiter(map(crc32c, with_type), dtype=np.uint64, count=n))
    trailer = array[(stored_end + 1)[:, None] + np.arange(4)].copy().view("<u4").ravel()
    types = array[stored_end]
    if (crcs != trailer).any() or (types > SNAPPY_COMPRESSION).any():
        return None
    lengths = stored_end - stored_at
    snappy = np.flatnonzero(types == SNAPPY_COMPRESSION)
    if len(snappy):
        at, end = stored_at[snappy].tolist(), stored_end[snappy].tolist()
        try:
            declared = np.fromiter(map(_snappy_length, map(view.__getitem__, map(slice, at, end))),
                                   dtype=np.int64, count=len(snappy))
        except Exception:  # cramjam raises its own error types
            return None
        if (declared > _SNAPPY_MAX_EXPANSION * lengths[snappy]).any():
            return None
        lengths[snappy] = declared
    return types, lengths


def _checked_one_by_one(framed, view, offsets, sizes):
    """_checked_together's (types, lengths), a block at a time:
    DecodeError for the first block that is not sound."""
    import numpy as np

    types, lengths = [], []
    for i in range(len(offsets)):
        at, size = offsets[i], sizes[i]
        if at + size + BLOCK_TRAILER_SIZE > len(framed):
            raise _block_error(i, "truncated block read")
        if masked_crc32c(view[at:at + size + 1]) != _FIXED32.unpack_from(framed, at + size + 1)[0]:
            raise _block_error(i, "block checksum mismatch")
        block_type = framed[at + size]
        if block_type == SNAPPY_COMPRESSION:
            try:
                declared = _snappy_length(view[at:at + size])
            except Exception as exc:  # cramjam raises its own error types
                raise _block_error(i, f"corrupted snappy block: {exc}") from None
            if declared > _SNAPPY_MAX_EXPANSION * size:
                raise _block_error(i, f"snappy block claims {declared} bytes from {size}")
            lengths.append(declared)
        elif block_type == NO_COMPRESSION:
            lengths.append(size)
        else:
            raise _block_error(i, f"bad block type {block_type}")
        types.append(block_type)
    return np.array(types, dtype=np.uint8), np.array(lengths, dtype=np.int64)


def _block_error(i: int, reason: str) -> DecodeError:
    exc = DecodeError(reason)
    exc.block = i
    return exc


def inflate(stored) -> bytes:
    """The contents of a snappy block as stored (unpack_block checks the
    block first; a cached _PackedBlock was checked when it was read)."""
    return bytes(_snappy_decompress(stored))
