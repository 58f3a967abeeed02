"""The log format shared by WAL (*.log) and MANIFEST files. Pure: no files.

A log is a sequence of 32 KiB blocks. Each logical record is cut into physical
records (FULL, or FIRST/MIDDLE*/LAST) that never cross a block boundary; each has
a 7-byte header: masked CRC-32C of (type byte || payload), uint16 length, type.
A block tail shorter than a header is zero-filled.

``LogWriter.encode`` returns the framed bytes for the caller to append
(``frame`` the same as buffers, for a large record); the
reader takes the whole file's bytes and follows C++ ``log::Reader`` exactly,
so that we drop (or report) precisely what LevelDB drops.
"""
import struct

from .coding import crc32c, mask_crc, masked_crc32c
from .errors import DecodeError

# On-disk constants (frozen).
BLOCK_SIZE = 32768
HEADER_SIZE = 7
ZERO = 0  # never written; preallocated/zeroed regions read as type 0 length 0
FULL = 1
FIRST = 2
MIDDLE = 3
LAST = 4
MAX_RECORD_TYPE = LAST

_HEADER = struct.Struct("<IHB")  # masked crc, length, type
_pack_header = _HEADER.pack
_unpack_header_from = _HEADER.unpack_from
_ZEROES = bytes(HEADER_SIZE)
_BLOCK_MASK = BLOCK_SIZE - 1
# CRC of the type byte alone, extended over the payload (as C++ precomputes it).
_TYPE_CRC = [crc32c(bytes([t])) for t in range(MAX_RECORD_TYPE + 1)]
_TYPE_CRC_FULL = _TYPE_CRC[FULL]


class LogWriter:
    """Frames logical records. Holds only the position inside the current block."""

    __slots__ = ("block_offset",)

    def __init__(self, initial_offset: int = 0):
        # Appending to an existing log: continue inside its last block.
        self.block_offset = initial_offset % BLOCK_SIZE

    def encode(self, payload) -> bytes:
        """Return the physical records (and any trailer padding) for one
        logical record, given as bytes or any buffer."""
        left = len(payload)
        block_offset = self.block_offset
        if block_offset + HEADER_SIZE + left <= BLOCK_SIZE:
            # The WAL's hot path (every single put): one FULL record in this
            # block, in as few calls as possible.
            self.block_offset = block_offset + HEADER_SIZE + left
            return _pack_header(masked_crc32c(payload, _TYPE_CRC_FULL), left, FULL) + payload
        return b"".join(self.frame(payload))

    def frame(self, head, body=b"") -> list:
        """encode(head + body) as a list of buffers to write in order: the
        headers and padding, and views of head and body, so that a large
        record (a batch of 116 KB) is written without copying it twice."""
        head_len = len(head)
        left = head_len + len(body)
        head = memoryview(head)
        body = memoryview(body)
        out = []
        pos = 0
        begin = True
        block_offset = self.block_offset
        while True:
            leftover = BLOCK_SIZE - block_offset
            if leftover < HEADER_SIZE:
                if leftover:
                    out.append(_ZEROES[:leftover])
                block_offset = 0
            avail = BLOCK_SIZE - block_offset - HEADER_SIZE
            frag_len = left if left < avail else avail
            end = frag_len == left
            if begin:
                rtype = FULL if end else FIRST
            else:
                rtype = LAST if end else MIDDLE
            stop = pos + frag_len
            crc = _TYPE_CRC[rtype]
            parts = []
            if pos < head_len:
                parts.append(head[pos:min(stop, head_len)])
            if stop > head_len:
                parts.append(body[max(pos, head_len) - head_len:stop - head_len])
            for part in parts:
                crc = crc32c(part, crc)
            out.append(_pack_header(mask_crc(crc), frag_len, rtype))
            out += parts
            block_offset += HEADER_SIZE + frag_len
            pos = stop
            left -= frag_len
            begin = False
            # An empty record still emits one FULL header (do-while in C++).
            if left <= 0:
                break
        self.block_offset = block_offset
        return out


def unframe(framed, block_offset: int) -> bytes:
    """The payload of one logical record, from the bytes LogWriter.encode
    returned for it when it began `block_offset` bytes into a block:
    encode's inverse, with every header, checksum and record type checked.
    DecodeError (offset relative to `framed`) for anything else."""
    end = len(framed)
    pieces = []
    pos = 0
    expected = (FULL, FIRST)
    while True:
        leftover = BLOCK_SIZE - block_offset
        if leftover < HEADER_SIZE:
            pos += leftover  # the zeroed tail of a block
            block_offset = 0
        if pos + HEADER_SIZE > end:
            raise DecodeError("record ends inside a header", pos)
        crc, length, rtype = _unpack_header_from(framed, pos)
        start = pos + HEADER_SIZE
        if rtype not in expected or start + length > end:
            raise DecodeError(f"bad fragment (type {rtype}, length {length})", pos)
        fragment = framed[start:start + length]
        if mask_crc(crc32c(fragment, _TYPE_CRC[rtype])) != crc:
            raise DecodeError("checksum mismatch", pos)
        pieces.append(fragment)
        pos = start + length
        block_offset += HEADER_SIZE + length
        if rtype in (FULL, LAST):
            break
        expected = (MIDDLE, LAST)
    if pos != end:
        raise DecodeError(f"{end - pos} bytes after the record", pos)
    return b"".join(pieces)


def skip_block_tail(pos: int) -> int:
    """Where the next physical record starts for one that would start at
    `pos`: a block's last bytes, too few for a header, are padding."""
    room = BLOCK_SIZE - pos % BLOCK_SIZE
    return pos + room if room < HEADER_SIZE else pos


def physical_end(offset: int, length: int) -> int:
    """File offset just past a logical record of `length` bytes that
    LogWriter began at `offset` (its fragments, the block tails they skip
    and the empty FULL of an empty record included)."""
    pos = offset
    left = length
    while True:
        pos = skip_block_tail(pos)
        fragment = min(left, BLOCK_SIZE - pos % BLOCK_SIZE - HEADER_SIZE)
        pos += HEADER_SIZE + fragment
        left -= fragment
        if left == 0 and (fragment or length == 0):
            return pos


# A clean log, read fast: the functions below answer only for whole, sound
# records and return None at anything unusual -- padding of zeroes, a torn
# tail, a bad checksum, fragments out of order -- and the caller then reads
# the log with LogReader, which reports damage exactly.


def clean_fragment(data, view, pos):
    """(type, payload start, payload end) of the physical record whose
    header is at `pos` (`view` is memoryview(data)), or None unless it lies
    whole in its block with a good checksum."""
    if len(data) - pos < HEADER_SIZE:
        return None  # a torn header at the end
    masked, length, rtype = _unpack_header_from(data, pos)
    end = pos + HEADER_SIZE + length
    if end > len(data) or length > BLOCK_SIZE - pos % BLOCK_SIZE - HEADER_SIZE:
        return None
    if masked_crc32c(view[pos + 6:end]) != masked:
        return None
    return rtype, pos + HEADER_SIZE, end


def clean_joined_record(data, view, start, pos):
    """(payload, end) of a logical record whose FIRST fragment's payload is
    data[start:pos], its MIDDLE and LAST fragments joined on; None unless
    they follow whole and sound."""
    parts = [view[start:pos]]
    rtype = FIRST
    while rtype != LAST:
        pos = skip_block_tail(pos)
        fragment = clean_fragment(data, view, pos) if pos < len(data) else None
        if fragment is None or fragment[0] not in (MIDDLE, LAST):
            return None
        rtype, start, pos = fragment
        parts.append(view[start:pos])
    return b"".join(parts), pos


def clean_payloads(data: bytes):
    """The payloads of a clean log of whole records, in order (views of
    `data` for single fragments), or None at anything unusual."""
    payloads = []
    view = memoryview(data)
    n = len(data)
    pos = 0
    while True:
        pos = skip_block_tail(pos)
        if pos >= n:
            return payloads
        fragment = clean_fragment(data, view, pos)
        if fragment is None:
            return None
        rtype, start, pos = fragment
        if rtype == FULL:
            payloads.append(view[start:pos])
            continue
        joined = clean_joined_record(data, view, start, pos) if rtype == FIRST else None
        if joined is None:
            return None
        payload, pos = joined
        payloads.append(payload)


class LogReader:
    """Iterate ``(offset, payload)`` over the logical records in ``data``.

    ``offset`` is the file offset of the record's first physical header.
    A torn tail (partial header, short payload or unfinished fragmented record
    in the last block) ends iteration silently. Damage elsewhere is passed to
    ``report(offset, bytes_dropped, reason)`` and reading resumes at the next
    block (C++ semantics), or, when ``strict``, raises ``DecodeError(reason, offset)``.

    ``verify_tail=True`` (for MANIFESTs, which are synced after every record,
    so only the last record can be torn by a crash) accepts a record running
    past the end of the data as a torn tail only if a crash could have left
    it: its fragment fits in its block as a writer lays it out, its checksum
    does not verify over a shorter length (a damaged length field), and no
    complete valid record follows its header. A zeroed region followed by a
    valid record (a hole, not preallocation) is damage too. Either is passed
    to ``report`` / raised like other damage, at the bad header's offset.
    The WAL keeps C++ semantics (the default).

    After iteration, ``tail_offset`` is the offset where a silently dropped
    torn tail begins (None when the data ended cleanly).
    """

    __slots__ = ("_data", "_report", "_strict", "_verify_tail", "tail_offset")

    def __init__(self, data, *, report=None, strict=False, verify_tail=False):
        self._data = data if isinstance(data, bytes) else bytes(data)
        self._report = report
        self._strict = strict
        self._verify_tail = verify_tail
        self.tail_offset = None

    def _corruption(self, offset, dropped, reason):
        if self._strict:
            raise DecodeError(reason, offset)
        if self._report is not None:
            self._report(offset, dropped, reason)

    def __iter__(self):
        data = self._data
        view = memoryview(data)
        n = len(data)
        corruption = self._corruption
        unpack = _unpack_header_from
        masked_crc = masked_crc32c
        verify_tail = self._verify_tail
        pos = 0
        parts = None  # fragments of the open logical record; None when none is open
        scratch_len = 0
        start = 0  # offset of the open logical record's first header
        zeroed = None  # verify_tail: offset of a skipped zeroed region, until a record follows it
        self.tail_offset = None
        while True:
            block_limit = (pos & ~_BLOCK_MASK) + BLOCK_SIZE
            # C++ reads block by block; a short read marks EOF. A file that ends
            # exactly on a block boundary reads one full block and then EOF.
            if block_limit > n:
                eof = True
                block_end = n
            else:
                eof = False
                block_end = block_limit
            if block_end - pos < HEADER_SIZE:
                if eof:
                    # torn header at the end (or clean end)
                    self._end(start if parts is not None else pos if zeroed is None else zeroed, n)
                    return
                pos = block_limit  # block trailer
                continue
            masked, length, rtype = unpack(data, pos)
            end = pos + HEADER_SIZE + length
            if end > block_end:
                if eof:
                    # The writer died mid-record: not damage, unless verify_tail
                    # finds that no crash could have left these bytes.
                    reason = _not_a_torn_tail(view, pos, masked, length, block_limit) if verify_tail else None
                    if reason is not None:
                        corruption(pos, n - pos, reason)
                    self._end(start if parts is not None else pos if zeroed is None else zeroed, n)
                    return
                corruption(pos, block_end - pos, "bad record length")
                pos = block_limit
            elif rtype == ZERO and length == 0:
                if verify_tail and zeroed is None:
                    zeroed = pos
                pos = block_limit  # preallocated zeroes: skip silently
            elif masked_crc(view[pos + 6:end]) != masked:
                # The length itself may be wrong: trust nothing else in this block.
                corruption(pos, block_end - pos, "checksum mismatch")
                pos = block_limit
            else:
                if zeroed is not None:
                    # Preallocated zeroes only ever end a log; a valid record after
                    # them means written bytes were lost: a hole.
                    corruption(zeroed, pos - zeroed, "zeroed region before a later record")
                    zeroed = None
                phys = pos
                pos = end
                if rtype == FULL:
                    if scratch_len:
                        corruption(start, scratch_len, "partial record without end")
                    parts = None
                    scratch_len = 0
                    yield phys, data[phys + HEADER_SIZE:end]
                elif rtype == FIRST:
                    if scratch_len:
                        corruption(start, scratch_len, "partial record without end")
                    parts = [view[phys + HEADER_SIZE:end]]
                    scratch_len = length
                    start = phys
                elif rtype == MIDDLE:
                    if parts is None:
                        corruption(phys, length, "missing start of fragmented record")
                    else:
                        parts.append(view[phys + HEADER_SIZE:end])
                        scratch_len += length
                elif rtype == LAST:
                    if parts is None:
                        corruption(phys, length, "missing start of fragmented record")
                    else:
                        parts.append(view[phys + HEADER_SIZE:end])
                        record = b"".join(parts)
                        parts = None
                        scratch_len = 0
                        yield start, record
                else:
                    if parts is None:
                        corruption(phys, length, f"unknown record type {rtype}")
                    else:
                        corruption(start, length + scratch_len, f"unknown record type {rtype}")
                    parts = None
                    scratch_len = 0
                continue
            # A physical record was dropped: an open logical record cannot complete.
            if parts is not None:
                corruption(start, scratch_len, "error in middle of record")
                parts = None
                scratch_len = 0

    def _end(self, tail, n):
        self.tail_offset = tail if tail < n else None


def _not_a_torn_tail(view, pos, masked, length, block_limit):
    """Why the record at ``pos``, which claims to run past the end of the data,
    cannot be what a crash mid-append leaves; None if it can be."""
    n = len(view)
    if pos + HEADER_SIZE + length > block_limit:
        # A writer never lets a fragment cross a block boundary.
        return f"record length {length} runs past its block"
    # Torn: the header is as written and the payload is cut short, so its
    # checksum cannot verify over any shorter payload. If it does, the length
    # field is what is damaged.
    crc = crc32c(view[pos + 6:pos + HEADER_SIZE])
    for p in range(pos + HEADER_SIZE, n + 1):
        if mask_crc(crc) == masked:
            return f"record length field damaged (checksum verifies at length {p - pos - HEADER_SIZE}, not {length})"
        if p < n:
            crc = crc32c(view[p:p + 1], crc)
    # Nothing is ever written after a torn record: a complete, valid record
    # after its header means this header is damage, not the end of the log.
    unpack = _unpack_header_from
    type_crc = _TYPE_CRC
    for p in range(pos + 1, n - HEADER_SIZE):
        rtype = view[p + 6]
        if rtype < FULL or rtype > MAX_RECORD_TYPE:
            continue
        other_masked, other_length, _ = unpack(view, p)
        other_end = p + HEADER_SIZE + other_length
        if other_length and other_end <= n and \
                mask_crc(crc32c(view[p + HEADER_SIZE:other_end], type_crc[rtype])) == other_masked:
            return f"a valid record at offset {p} follows a record that runs past the end of the data"
    return None
