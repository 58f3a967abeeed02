"""Fast path of a flush: the rows of a clean frozen WAL. Made for the WAL
of single puts, where per-record overhead is most of a flush: a record
that is one put is decoded inline, without the batch decoder.

Knows the WriteBatch layout; the log framing is lsm.record's (its clean_*
readers). No files. Anything unusual -- padding of zeroes, a torn tail, a
bad checksum, fragment order or batch -- returns None, and the caller
replays the WAL with the full reader, which reports damage exactly. So this
path only ever answers for a clean log, and answers what the full reader
would.
"""
from operator import itemgetter, neg, or_

from ..batch import HEADER_SIZE as BATCH_HEADER_SIZE
from ..batch import decode_batch
from ..batch import decode_header as decode_batch_header
from ..errors import DecodeError
from ..keys import TYPE_DELETION, TYPE_VALUE
from ..record import FIRST, FULL, clean_fragment, clean_joined_record, skip_block_tail

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
        fragment = clean_fragment(data, view, pos)
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
            joined = clean_joined_record(data, view, start, pos)
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


def batch_rows(sequence, ops):
    """Rows (user_key, -tag, value) of a batch's ops numbered from sequence."""
    first = sequence << 8
    tags = map(or_, range(first, first + (len(ops) << 8), 256), map(_kind_of, ops))
    return zip(map(_key_of, ops), map(neg, tags), map(_value_of, ops))
