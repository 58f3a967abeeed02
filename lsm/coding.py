"""Byte-level primitives of LevelDB's formats. Pure: no files, no sockets.

Varints are unsigned LEB128 (varint32 at most 5 bytes, varint64 at most 10),
fixed-width integers are little-endian, and every stored CRC is CRC-32C masked
as LevelDB masks it (see mask_crc).
"""
import struct
from functools import lru_cache

import crc32c as _crc32c

from .errors import DecodeError

FIXED32 = struct.Struct("<I")
FIXED64 = struct.Struct("<Q")

MASK_DELTA = 0xA282EAD8  # on-disk constant: LevelDB's crc mask

_VARINT_CACHE = [bytes([i]) for i in range(128)]
# unpack_records takes at most this many records per struct: a struct's size
# grows with its record count, and these stay cached.
_RECORDS_PER_STRUCT = 512


def encode_varint(value: int) -> bytes:
    if value < 128:
        if value < 0:
            raise ValueError(f"varint cannot encode a negative number: {value}")
        return _VARINT_CACHE[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


encode_varint32 = encode_varint
encode_varint64 = encode_varint


def decode_varint(data, offset: int = 0, max_bytes: int = 10):
    """Return (value, next_offset). Raises DecodeError on truncation or overlong input."""
    try:
        byte = data[offset]
    except IndexError:
        raise DecodeError("truncated varint", offset) from None
    if byte < 128:
        return byte, offset + 1
    result = byte & 0x7F
    shift = 7
    pos = offset + 1
    end = offset + max_bytes
    while pos < end:
        try:
            byte = data[pos]
        except IndexError:
            raise DecodeError("truncated varint", offset) from None
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 128:
            return result, pos
        shift += 7
    raise DecodeError(f"varint longer than {max_bytes} bytes", offset)


def decode_varint32(data, offset: int = 0):
    value, pos = decode_varint(data, offset, 5)
    if value > 0xFFFFFFFF:
        raise DecodeError("varint32 out of range", offset)
    return value, pos


def decode_varint64(data, offset: int = 0):
    value, pos = decode_varint(data, offset, 10)
    if value > 0xFFFFFFFFFFFFFFFF:
        raise DecodeError("varint64 out of range", offset)
    return value, pos


def encode_fixed32(value: int) -> bytes:
    return FIXED32.pack(value)


def decode_fixed32(data, offset: int = 0) -> int:
    if offset + 4 > len(data):
        raise DecodeError("truncated fixed32", offset)
    return FIXED32.unpack_from(data, offset)[0]


def encode_fixed64(value: int) -> bytes:
    return FIXED64.pack(value)


def decode_fixed64(data, offset: int = 0) -> int:
    if offset + 8 > len(data):
        raise DecodeError("truncated fixed64", offset)
    return FIXED64.unpack_from(data, offset)[0]


def encode_length_prefixed(data: bytes) -> bytes:
    return encode_varint(len(data)) + data


def decode_length_prefixed(data, offset: int = 0):
    """Return (bytes, next_offset)."""
    length, pos = decode_varint32(data, offset)
    end = pos + length
    if end > len(data):
        raise DecodeError("length-prefixed slice runs past the end", offset)
    return bytes(data[pos:end]), end


# crc32c(data, crc=0) -> int: the library's C function itself, not a
# wrapper around it: every get hashes its key with it once (lsm's filter).
crc32c = _crc32c.crc32c


def mask_crc(crc: int) -> int:
    """The CRC as stored: rotated right by 15 bits, plus MASK_DELTA (a CRC of
    bytes that hold CRCs would otherwise be weak). The rule lives here, and
    in masked_crc32c beside it: every other module calls one of them."""
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    rot = (masked - MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def masked_crc32c(data, crc: int = 0) -> int:
    """mask_crc(crc32c(data, crc)), in one call."""
    c = _crc32c.crc32c(data, crc)
    return ((((c >> 15) | (c << 17)) + MASK_DELTA) & 0xFFFFFFFF)


# Records at a fixed stride (a uniform table block, a batch of same-length
# puts): checked and unpacked by C calls over all records at once.


def repeats_at_stride(data, first: int, last: int, stride: int, count: int) -> bool:
    """Whether each byte of data[first:last] recurs at every `stride` bytes,
    `count` times in all (data must hold them all)."""
    for at in range(first, last):
        if data[at : at + stride * count : stride].count(data[at]) != count:
            return False
    return True


@lru_cache(maxsize=256)
def _records_struct(record_format: str, count: int):
    return struct.Struct("<" + record_format * count)


def unpack_records(data, offset: int, stride: int, count: int, record_format: str):
    """The fields of `count` records of `stride` bytes from data[offset:], each
    unpacked by the little-endian struct format `record_format`, flat (a
    tuple or a list)."""
    if count <= _RECORDS_PER_STRUCT:
        return _records_struct(record_format, count).unpack_from(data, offset)
    fields = []
    for start in range(0, count, _RECORDS_PER_STRUCT):
        n = min(_RECORDS_PER_STRUCT, count - start)
        fields += _records_struct(record_format, n).unpack_from(data, offset + start * stride)
    return fields
