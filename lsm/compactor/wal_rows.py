"""Fast path of a flush: the rows of a clean frozen WAL. Made for the WAL
of single puts, where per-record overhead is most of a flush: a record
that is one put is decoded inline, with no call.

Knows the log framing (spec §4) and the WriteBatch layout (spec §5); no
files. Anything unusual -- padding of zeroes, a torn tail, a bad checksum,
fragment order or batch -- returns None, and the caller replays the WAL
with the full reader, which reports damage exactly. So this path only ever
answers for a clean log, and answers what the full reader would.
"""
import struct
from operator import itemgetter, neg, or_

from crc32c import crc32c

from ..batch import HEADER_SIZE as BATCH_HEADER_SIZE
from ..batch import decode_batch
from ..coding import MASK_DELTA
from ..errors import DecodeError
from ..keys import TYPE_DELETION, TYPE_VALUE
from ..record import BLOCK_SIZE, FIRST, FULL, HEADER_SIZE, LAST, MIDDLE

_LOG_HEADER = struct.Struct("<IHB")
_BATCH_HEADER = struct.Struct("<QI")
_kind_of = itemgetter(0)
_key_of = itemgetter(1)
_value_of = itemgetter(2)


def clean_wal_rows(data: bytes):
    """(rows, max_sequence, in_order) of a clean log of whole records, or None.

    rows are (user_key, -tag, value) oldest first; in_order says every
    record's sequences follow the previous record's."""
    rows = []
    append = rows.append
    extend = rows.extend
    view = memoryview(data)
    unpack_header = _LOG_HEADER.unpack_from
    unpack_batch = _BATCH_HEADER.unpack_from
    n = len(data)
    pos = 0
    max_sequence = 0
    next_sequence = 0
    in_order = True
    while pos < n:
        room = BLOCK_SIZE - pos % BLOCK_SIZE
        if room < HEADER_SIZE:
            pos += room  # block tail: padding
            continue
        if n - pos < HEADER_SIZE:
            return None  # a torn header at the end: the full reader decides
        masked, length, rtype = unpack_header(data, pos)
        end = pos + HEADER_SIZE + length
        if length > room - HEADER_SIZE or end > n:
            return None
        c = crc32c(view[pos + 6:end])
        if (((c >> 15) | (c << 17)) + MASK_DELTA) & 0xFFFFFFFF != masked:
            return None
        if rtype != FULL:
            if rtype != FIRST:
                return None
            # A record across blocks (about one per block): joined, then
            # decoded the general way.
            parts = [data[pos + HEADER_SIZE:end]]
            pos = end
            while rtype != LAST:
                room = BLOCK_SIZE - pos % BLOCK_SIZE
                if room < HEADER_SIZE:
                    pos += room
                    continue
                if n - pos < HEADER_SIZE:
                    return None
                masked, length, rtype = unpack_header(data, pos)
                end = pos + HEADER_SIZE + length
                if (rtype != MIDDLE and rtype != LAST) or length > room - HEADER_SIZE or end > n:
                    return None
                c = crc32c(view[pos + 6:end])
                if (((c >> 15) | (c << 17)) + MASK_DELTA) & 0xFFFFFFFF != masked:
                    return None
                parts.append(data[pos + HEADER_SIZE:end])
                pos = end
            payload = b"".join(parts)
            if len(payload) < BATCH_HEADER_SIZE:
                return None
            try:
                sequence, ops = decode_batch(payload)
            except DecodeError:
                return None
            count = unpack_batch(payload)[1]
            if len(ops) != count:
                return None
            if ops:
                first = sequence << 8
                tags = map(or_, range(first, first + (count << 8), 256), map(_kind_of, ops))
                extend(zip(map(_key_of, ops), map(neg, tags), map(_value_of, ops)))
            if count and sequence + count - 1 > max_sequence:
                max_sequence = sequence + count - 1
            if sequence < next_sequence:
                in_order = False
            next_sequence = sequence + count
            continue
        if length < BATCH_HEADER_SIZE:
            return None
        start = pos + HEADER_SIZE
        sequence, count = unpack_batch(data, start)
        p = start + BATCH_HEADER_SIZE
        kind = data[p] if p < end else -1
        klen = data[p + 1] if p + 1 < end else 128
        if count == 1 and klen < 128 and (kind == TYPE_VALUE or kind == TYPE_DELETION):
            kend = p + 2 + klen
            if kind == TYPE_VALUE:
                vlen = data[kend] if kend < end else 128
                if vlen >= 128 or kend + 1 + vlen != end:
                    return None
                append((data[p + 2:kend], -((sequence << 8) | TYPE_VALUE), data[kend + 1:end]))
            else:
                if kend != end:
                    return None
                append((data[p + 2:kend], -(sequence << 8), b""))
        else:
            try:
                sequence, ops = decode_batch(data[start:end])
            except DecodeError:
                return None
            if len(ops) != count:
                return None
            if ops:
                first = sequence << 8
                tags = map(or_, range(first, first + (count << 8), 256), map(_kind_of, ops))
                extend(zip(map(_key_of, ops), map(neg, tags), map(_value_of, ops)))
        if count:
            last = sequence + count - 1
            if last > max_sequence:
                max_sequence = last
        if sequence < next_sequence:
            in_order = False
        next_sequence = sequence + count
        pos = end
    return rows, max_sequence, in_order
