"""Fast path of a flush: the rows of a clean frozen WAL. Made for the WAL
of single puts, where per-record overhead is most of a flush: a record
that is one put is decoded inline, without the batch decoder.

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
from ..batch import decode_header as decode_batch_header
from ..coding import MASK_DELTA
from ..errors import DecodeError
from ..keys import TYPE_DELETION, TYPE_VALUE
from ..record import BLOCK_SIZE, FIRST, FULL, HEADER_SIZE, LAST, MIDDLE

_LOG_HEADER = struct.Struct("<IHB")
_kind_of = itemgetter(0)
_key_of = itemgetter(1)
_value_of = itemgetter(2)


def clean_wal_rows(data: bytes):
    """(rows, max_sequence, in_order) of a clean log of whole records, or None.

    rows are (user_key, -tag, value) oldest first; in_order says every
    record's sequences follow the previous record's."""
    rows = []
    append = rows.append
    view = memoryview(data)
    unpack_batch = decode_batch_header
    n = len(data)
    pos = 0
    max_sequence = 0
    next_sequence = 0
    in_order = True
    while True:
        pos = skip_block_tail(pos)
        if pos >= n:
            break
        fragment = _fragment(data, view, pos)
        if fragment is None:
            return None
        rtype, start, pos = fragment
        payload = None
        if rtype == FULL:
            if pos - start < BATCH_HEADER_SIZE:
                return None
            sequence, count = unpack_batch(data, start)
            p = start + BATCH_HEADER_SIZE
            kind = data[p] if p < pos else -1
            klen = data[p + 1] if p + 1 < pos else 128
            if count == 1 and klen < 128 and (kind == TYPE_VALUE or kind == TYPE_DELETION):
                # One put or delete, the record of a db.put: decoded right here.
                kend = p + 2 + klen
                if kind == TYPE_VALUE:
                    vlen = data[kend] if kend < pos else 128
                    if vlen >= 128 or kend + 1 + vlen != pos:
                        return None
                    append((data[p + 2:kend], -((sequence << 8) | TYPE_VALUE), data[kend + 1:pos]))
                else:
                    if kend != pos:
                        return None
                    append((data[p + 2:kend], -(sequence << 8), b""))
            else:
                payload = data[start:pos]
        elif rtype == FIRST:
            # A record across blocks (about one per block): joined.
            joined = _joined_record(data, view, start, pos)
            if joined is None:
                return None
            payload, pos = joined
        else:
            return None
        if payload is not None:
            try:
                sequence, ops = decode_batch(payload)  # a short batch or wrong count raises too
            except DecodeError:
                return None
            count = len(ops)
            rows += batch_rows(sequence, ops)
        if count and sequence + count - 1 > max_sequence:
            max_sequence = sequence + count - 1
        if sequence < next_sequence:
            in_order = False
        next_sequence = sequence + count
    return rows, max_sequence, in_order


def clean_wal_payloads(data: bytes):
    """The payloads (write batches) of a clean log of whole records, in
    order, or None at anything unusual, as for clean_wal_rows."""
    payloads = []
    view = memoryview(data)
    n = len(data)
    pos = 0
    while True:
        pos = skip_block_tail(pos)
        if pos >= n:
            return payloads
        fragment = _fragment(data, view, pos)
        if fragment is None:
            return None
        rtype, start, pos = fragment
        if rtype == FULL:
            payloads.append(view[start:pos])
            continue
        joined = _joined_record(data, view, start, pos) if rtype == FIRST else None
        if joined is None:
            return None
        payload, pos = joined
        payloads.append(payload)


def _joined_record(data, view, start, pos):
    """(payload, end) of a record whose FIRST fragment's payload is
    data[start:pos], its MIDDLE and LAST fragments joined on; None unless
    they follow whole and sound."""
    parts = [view[start:pos]]
    rtype = FIRST
    while rtype != LAST:
        pos = skip_block_tail(pos)
        fragment = _fragment(data, view, pos) if pos < len(data) else None
        if fragment is None or fragment[0] not in (MIDDLE, LAST):
            return None
        rtype, start, pos = fragment
        parts.append(view[start:pos])
    return b"".join(parts), pos


def batch_rows(sequence, ops):
    """Rows (user_key, -tag, value) of a batch's ops numbered from sequence."""
    first = sequence << 8
    tags = map(or_, range(first, first + (len(ops) << 8), 256), map(_kind_of, ops))
    return zip(map(_key_of, ops), map(neg, tags), map(_value_of, ops))


def skip_block_tail(pos):
    """Where the next record starts for one that would start at pos: a
    block's last bytes, too few for a header, are padding."""
    room = BLOCK_SIZE - pos % BLOCK_SIZE
    return pos + room if room < HEADER_SIZE else pos


def _fragment(data, view, pos):
    """(type, payload start, payload end) of the fragment whose header is at
    pos, or None unless it lies whole in its block with a good checksum."""
    if len(data) - pos < HEADER_SIZE:
        return None  # a torn header at the end
    masked, length, rtype = _LOG_HEADER.unpack_from(data, pos)
    end = pos + HEADER_SIZE + length
    if end > len(data) or length > BLOCK_SIZE - pos % BLOCK_SIZE - HEADER_SIZE:
        return None
    c = crc32c(view[pos + 6:end])
    if (((c >> 15) | (c << 17)) + MASK_DELTA) & 0xFFFFFFFF != masked:
        return None
    return rtype, pos + HEADER_SIZE, end
