"""WriteBatch encoding, the payload of every WAL record. Pure: no files.

    fixed64 sequence | fixed32 count | count records:
        0x01 varint32(klen) key varint32(vlen) value    (put)
        0x00 varint32(klen) key                         (delete)

Operation i gets sequence ``sequence + i``. Ops are ``(kind, key, value)`` with
kind ``keys.TYPE_VALUE`` or ``keys.TYPE_DELETION``.
"""
import struct
from itertools import repeat

from .coding import decode_varint32, encode_varint, repeats_at_stride, unpack_records
from .errors import DecodeError
from .keys import TYPE_DELETION, TYPE_VALUE

HEADER_SIZE = 12  # on-disk constant: fixed64 sequence + fixed32 count

_HEADER = struct.Struct("<QI")
_PUT = b"\x01"  # TYPE_VALUE as the record tag byte
_DEL = b"\x00"  # TYPE_DELETION as the record tag byte


# encode_header(sequence, count) -> bytes and decode_header(data, offset=0)
# -> (sequence, count): the struct's own pack and unpack_from, as they run
# once per write and once per WAL record.
encode_header = _HEADER.pack
decode_header = _HEADER.unpack_from


def encode_put(key, value) -> bytes:
    return b"".join((_PUT, encode_varint(len(key)), key, encode_varint(len(value)), value))


def encode_delete(key) -> bytes:
    return b"".join((_DEL, encode_varint(len(key)), key))


# A record as the four pieces a WriteBatch collects: b"".join of them is the
# record. Keys and values shorter than 128 bytes (nearly all) take
# PUT_HEADERS[len(key)], key, LENGTHS[len(value)], value: no encoding call.
PUT_HEADERS = tuple(_PUT + bytes([n]) for n in range(128))
LENGTHS = tuple(bytes([n]) for n in range(128))


def put_pieces(key, value) -> tuple:
    return (_PUT + encode_varint(len(key)), key, encode_varint(len(value)), value)


def delete_pieces(key) -> tuple:
    return (_DEL + encode_varint(len(key)), key, b"", b"")


def encode_batch(sequence: int, ops) -> bytes:
    """ops: iterable of (kind, key, value_or_None); the value of a deletion is ignored."""
    out = [b""]
    count = 0
    for kind, key, value in ops:
        if kind == TYPE_VALUE:
            out.append(encode_put(key, value))
        elif kind == TYPE_DELETION:
            out.append(encode_delete(key))
        else:
            raise ValueError(f"unknown operation kind {kind!r}")
        count += 1
    out[0] = _HEADER.pack(sequence, count)
    return b"".join(out)


def decode_batch(data):
    """Return (sequence, ops) with ops = [(kind, key, value)], value b"" for deletions.

    Raises DecodeError (offset relative to ``data``) for short data, an unknown
    record tag, a truncated slice, or a record count that disagrees with the
    header. C++ applies the records parsed before the error, so the exception
    carries them too, as ``partial = (sequence, ops)``.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    n = len(data)
    if n < HEADER_SIZE:
        raise DecodeError("WriteBatch too small", 0)
    sequence, count = _HEADER.unpack_from(data, 0)
    ops = _decode_uniform_puts(data, count)
    if ops is not None:
        return sequence, ops
    ops = []
    append = ops.append
    pos = HEADER_SIZE
    start = pos
    try:
        while pos < n:
            start = pos
            tag = data[pos]
            if tag > TYPE_VALUE:
                break
            # Keys and values under 128 bytes have one-byte lengths: skip the call.
            klen = data[pos + 1]
            if klen < 128:
                pos += 2
            else:
                klen, pos = decode_varint32(data, pos + 1)
            kend = pos + klen
            if kend > n:
                raise IndexError
            key = data[pos:kend]
            if tag == TYPE_VALUE:
                vlen = data[kend]
                if vlen < 128:
                    pos = kend + 1
                else:
                    vlen, pos = decode_varint32(data, kend)
                vend = pos + vlen
                if vend > n:
                    raise IndexError
                append((TYPE_VALUE, key, data[pos:vend]))
                pos = vend
            else:
                append((TYPE_DELETION, key, b""))
                pos = kend
    except (IndexError, DecodeError):
        kind = "Put" if data[start] == TYPE_VALUE else "Delete"
        _fail(f"bad WriteBatch {kind}", start, sequence, ops)
    if pos < n:
        _fail(f"unknown WriteBatch tag {data[pos]}", pos, sequence, ops)
    if len(ops) != count:
        _fail(f"WriteBatch has wrong count (header {count}, found {len(ops)})", n, sequence, ops)
    return sequence, ops


def _decode_uniform_puts(data: bytes, count: int):
    """The ops of a batch of `count` puts whose keys have one length and whose
    values have one length (a bulk load's batch), else None: one struct call
    unpacks them (see uniform_puts)."""
    layout = uniform_puts(data, 0, len(data), count)
    if layout is None:
        return None
    stride, key_at, klen, value_at, vlen = layout
    record = "%dx%ds%dx%ds" % (key_at - HEADER_SIZE, klen, value_at - key_at - klen, vlen)
    fields = unpack_records(data, HEADER_SIZE, stride, count, record)
    return list(zip(repeat(TYPE_VALUE), fields[0::2], fields[1::2]))


def uniform_puts(data, start: int, end: int, count: int):
    """(stride, key_at, key_len, value_at, value_len) of the batch in
    data[start:end] when it is `count` puts whose keys have one length and
    whose values have one length (a bulk load's batch), with the offsets
    of the first record's key and value; else None. Its records lie at a
    fixed stride: each byte of the first record's tag and two lengths is
    compared at every stride in C, and once all match, a record-by-record
    parse would find exactly these records."""
    first = start + HEADER_SIZE
    if count == 0 or end - start < HEADER_SIZE + 3 or data[first] != TYPE_VALUE:
        return None
    try:
        klen, key_at = decode_varint32(data, first + 1)
        vlen, value_at = decode_varint32(data, key_at + klen)
    except (IndexError, DecodeError):
        return None  # the record loop reports it
    stride = value_at + vlen - first
    if (
        count * stride != end - first
        or not repeats_at_stride(data, first, key_at, stride, count)
        or not repeats_at_stride(data, key_at + klen, value_at, stride, count)
    ):
        return None
    return stride, key_at, klen, value_at, vlen


def record_columns(data, start: int = 0, end=None):
    """(sequence, count, fields) of the batch in data[start:end]: fields
    holds five ints for each record in turn -- its kind, the offsets in
    `data` of its key and value and their lengths (a deletion's value: 0
    bytes where its key ends). The records where they lie, for callers
    that copy them once, in bulk. DecodeError (offset relative to `start`)
    where decode_batch raises one."""
    end = len(data) if end is None else end
    if end - start < HEADER_SIZE:
        raise DecodeError("WriteBatch too small", 0)
    sequence, count = _HEADER.unpack_from(data, start)
    fields = []
    extend = fields.extend
    pos = start + HEADER_SIZE
    record = pos
    put, delete = TYPE_VALUE, TYPE_DELETION  # locals: read once per record
    try:
        while pos < end:
            record = pos
            tag = data[pos]
            if tag > put:
                break
            # Keys and values under 128 bytes have one-byte lengths: skip the call.
            klen = data[pos + 1]
            if klen < 128:
                key_at = pos + 2
            else:
                klen, key_at = decode_varint32(data, pos + 1)
            pos = key_at + klen
            if tag == put:
                vlen = data[pos]
                if vlen < 128:
                    value_at = pos + 1
                elif data[pos + 1] < 128:  # values under 16 KiB: two bytes
                    vlen = (vlen & 0x7F) | (data[pos + 1] << 7)
                    value_at = pos + 2
                else:
                    vlen, value_at = decode_varint32(data, pos)
                pos = value_at + vlen
                extend((put, key_at, klen, value_at, vlen))
            else:
                extend((delete, key_at, klen, pos, 0))
    except (IndexError, DecodeError):
        pos = end + 1
    if pos > end:
        kind = "Put" if data[record] == TYPE_VALUE else "Delete"
        raise DecodeError(f"bad WriteBatch {kind}", record - start)
    if pos < end:
        raise DecodeError(f"unknown WriteBatch tag {data[pos]}", pos - start)
    if len(fields) != 5 * count:
        raise DecodeError(f"WriteBatch has wrong count (header {count}, found {len(fields) // 5})", end - start)
    return sequence, count, fields


def _fail(reason, offset, sequence, ops):
    err = DecodeError(reason, offset)
    err.partial = (sequence, ops)
    raise err
