"""Log format (lsm.record): framing, exact bytes from the spec, and C++ reader semantics on damage."""
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsm.coding import masked_crc32c
from lsm.errors import DecodeError
from lsm.record import (BLOCK_SIZE, FIRST, FULL, HEADER_SIZE, LAST, MIDDLE, LogReader,
                        LogWriter, unframe)


def write_log(payloads, initial_offset=0):
    """Return (bytes, offsets): the framed log and where each record's first header lands."""
    writer = LogWriter(initial_offset)
    out = bytearray()
    offsets = []
    for payload in payloads:
        before = initial_offset + len(out)
        leftover = BLOCK_SIZE - before % BLOCK_SIZE
        offsets.append(before + leftover if leftover < HEADER_SIZE else before)
        out += writer.encode(payload)
    return bytes(out), offsets


def read_all(data, **kw):
    return list(LogReader(data, **kw))


def headers(data):
    """Physical records as (offset, type, length), walking blocks like the writer lays them out."""
    pos, out = 0, []
    while pos < len(data):
        left = BLOCK_SIZE - pos % BLOCK_SIZE
        if left < HEADER_SIZE:
            assert data[pos:pos + left] == bytes(left), "block trailer must be zero-filled"
            pos += left
            continue
        _, length, rtype = struct.unpack_from("<IHB", data, pos)
        out.append((pos, rtype, length))
        pos += HEADER_SIZE + length
    return out


class Reports(list):
    def __call__(self, offset, dropped, reason):
        self.append((offset, dropped, reason))


# Round trips ---------------------------------------------------------------------------------

# Sizes cluster around block and fragment limits; content is random but drawn
# from a seed so Hypothesis does not have to generate every byte.
size_st = st.one_of(
    st.integers(0, 64),
    st.integers(BLOCK_SIZE - 3 * HEADER_SIZE, BLOCK_SIZE + HEADER_SIZE),
    st.integers(0, 140_000),
)
payload_st = st.builds(lambda n, seed: random.Random(seed).randbytes(n), size_st, st.integers(0, 2**32))


@given(st.lists(payload_st, max_size=12))
@settings(max_examples=60)
def test_records_round_trip_across_block_boundaries(payloads):
    data, offsets = write_log(payloads)
    reports = Reports()
    assert read_all(data, report=reports) == list(zip(offsets, payloads))
    assert reports == []


@given(st.integers(0, BLOCK_SIZE - 1), st.lists(payload_st, min_size=1, max_size=6), st.data())
@settings(max_examples=60)
def test_unframe_gives_back_each_payload_and_refuses_a_flipped_header_or_payload_byte(start, payloads, data):
    """A memtable reads its pending batches back from the WAL this way."""
    writer = LogWriter(start)
    for payload in payloads:
        block_offset = writer.block_offset
        framed = writer.encode(payload)
        assert unframe(framed, block_offset) == payload
        # Only the zeroed tail of a block carries no checksum.
        checked = []
        pos, at = 0, block_offset
        while pos < len(framed):
            if BLOCK_SIZE - at < HEADER_SIZE:
                pos, at = pos + BLOCK_SIZE - at, 0
                continue
            length = struct.unpack_from("<H", framed, pos + 4)[0]
            checked.append((pos, pos + HEADER_SIZE + length))
            pos, at = pos + HEADER_SIZE + length, at + HEADER_SIZE + length
        lo, hi = data.draw(st.sampled_from(checked))
        flip = data.draw(st.integers(lo, hi - 1))
        damaged = bytearray(framed)
        damaged[flip] ^= 1 << data.draw(st.integers(0, 7))
        with pytest.raises(DecodeError):
            unframe(bytes(damaged), block_offset)


@given(st.integers(0, BLOCK_SIZE * 3), st.lists(payload_st, max_size=6))
@settings(max_examples=60)
def test_writer_continuing_an_existing_log_matches_one_writer(split_at, payloads):
    prefix, _ = write_log([b"p" * split_at])
    one = LogWriter()
    one.encode(b"p" * split_at)
    expected = b"".join(one.encode(p) for p in payloads)
    cont = LogWriter(len(prefix))
    assert b"".join(cont.encode(p) for p in payloads) == expected
    assert [p for _, p in read_all(prefix + expected)] == [b"p" * split_at] + payloads


def test_sequence_of_empty_records_fills_blocks_with_one_byte_trailers():
    count = 3 * (BLOCK_SIZE // HEADER_SIZE) + 5
    data, offsets = write_log([b""] * count)
    assert read_all(data) == [(o, b"") for o in offsets]
    # 4681 headers fill 32767 bytes of each block; one zero byte is the trailer.
    assert data[BLOCK_SIZE - 1:BLOCK_SIZE] == b"\x00"
    assert all(rtype == FULL and length == 0 for _, rtype, length in headers(data))


@pytest.mark.parametrize("left", range(0, 9))
def test_record_leaving_exactly_n_bytes_in_block(left):
    first = b"a" * (BLOCK_SIZE - HEADER_SIZE - left)
    data, offsets = write_log([first, b"next", b"x" * 100])
    hdrs = headers(data)
    assert hdrs[0] == (0, FULL, len(first))
    if left < HEADER_SIZE:
        # 0..6 bytes: zero-filled trailer, next record starts the next block.
        assert data[BLOCK_SIZE - left:BLOCK_SIZE] == bytes(left)
        assert hdrs[1] == (BLOCK_SIZE, FULL, 4)
        assert offsets[1] == BLOCK_SIZE
    elif left == HEADER_SIZE:
        # Exactly 7 bytes: an empty FIRST fills them, the data goes in a LAST.
        assert hdrs[1] == (BLOCK_SIZE - HEADER_SIZE, FIRST, 0)
        assert hdrs[2] == (BLOCK_SIZE, LAST, 4)
        assert offsets[1] == BLOCK_SIZE - HEADER_SIZE
    else:
        assert hdrs[1] == (BLOCK_SIZE - left, FIRST, left - HEADER_SIZE)
        assert hdrs[2][1:] == (LAST, 4 - (left - HEADER_SIZE))
    assert read_all(data) == list(zip(offsets, [first, b"next", b"x" * 100]))


def test_zero_length_first_when_seven_bytes_remain_exact_bytes():
    writer = LogWriter(BLOCK_SIZE - HEADER_SIZE)
    out = writer.encode(b"hello")
    empty_first = struct.pack("<IHB", masked_crc32c(bytes([FIRST])), 0, FIRST)
    last = struct.pack("<IHB", masked_crc32c(bytes([LAST]) + b"hello"), 5, LAST) + b"hello"
    assert out == empty_first + last
    assert writer.block_offset == HEADER_SIZE + 5


def test_100020_byte_record_fragments_like_leveldb():
    payload = bytes(range(256)) * 390 + b"z" * 180
    assert len(payload) == 100020
    data, _ = write_log([payload])
    assert [(t, n) for _, t, n in headers(data)] == [
        (FIRST, 32761), (MIDDLE, 32761), (MIDDLE, 32761), (LAST, 1737)]
    assert read_all(data) == [(0, payload)]


def test_header_crc_covers_type_byte_and_payload_masked():
    out = LogWriter().encode(b"foo")
    crc, length, rtype = struct.unpack_from("<IHB", out)
    assert (length, rtype, out[7:]) == (3, FULL, b"foo")
    assert crc == masked_crc32c(b"\x01foo")


def test_empty_log_has_no_records():
    assert read_all(b"") == []


# Torn tails ----------------------------------------------------------------------------------

def test_torn_tail_at_every_length_of_last_record_is_dropped_silently():
    payloads = [b"one" * 10, b"two" * 300, b"last record" * 20]
    data, offsets = write_log(payloads)
    for cut in range(offsets[-1], len(data)):
        reports = Reports()
        got = read_all(data[:cut], report=reports, strict=False)
        assert got == list(zip(offsets[:-1], payloads[:-1])), cut
        assert reports == [], cut
        assert read_all(data[:cut], strict=True) == got


def test_torn_tail_of_record_spanning_blocks_is_dropped_silently():
    payloads = [b"head" * 5000, bytes(range(256)) * 300]  # the second spans blocks 0..2
    data, offsets = write_log(payloads)
    cuts = set(range(offsets[1], len(data), 61))
    for boundary in (BLOCK_SIZE, 2 * BLOCK_SIZE):  # around fragment headers
        cuts.update(range(boundary - 3, boundary + HEADER_SIZE + 3))
    for cut in sorted(cuts):
        assert read_all(data[:cut], strict=True) == [(0, payloads[0])], cut


def test_trailing_zero_bytes_are_not_damage():
    data, offsets = write_log([b"a", b"b"])
    reports = Reports()
    padded = data + bytes(BLOCK_SIZE + 100)  # preallocated, never written
    assert read_all(padded, report=reports) == [(offsets[0], b"a"), (offsets[1], b"b")]
    assert reports == []


# Damage in the middle ------------------------------------------------------------------------

def three_blocks():
    """Block 0: A. Block 1: B then B2 (which fills it). Block 2: C and two small records."""
    payloads = [b"A" * (BLOCK_SIZE - HEADER_SIZE), b"B" * 1000,
                b"b" * (BLOCK_SIZE - 2 * HEADER_SIZE - 1000), b"C" * 500, b"tail-1", b"tail-2"]
    data, offsets = write_log(payloads)
    assert offsets[:4] == [0, BLOCK_SIZE, BLOCK_SIZE + 1007, 2 * BLOCK_SIZE]
    survivors = [(o, p) for o, p in zip(offsets, payloads) if o // BLOCK_SIZE != 1]
    return bytearray(data), offsets, survivors


def test_flipped_payload_byte_mid_log_is_reported_and_later_blocks_still_read():
    data, offsets, survivors = three_blocks()
    data[offsets[1] + HEADER_SIZE + 500] ^= 0x40
    reports = Reports()
    assert read_all(bytes(data), report=reports) == survivors
    # The rest of the block goes too: a damaged record's length cannot be trusted.
    assert reports == [(BLOCK_SIZE, BLOCK_SIZE, "checksum mismatch")]


def test_flipped_byte_mid_log_raises_decode_error_in_strict_mode():
    data, offsets, _ = three_blocks()
    data[offsets[1] + 3] ^= 0x01  # inside the stored crc
    with pytest.raises(DecodeError) as info:
        read_all(bytes(data), strict=True)
    assert info.value.offset == offsets[1]
    assert info.value.reason == "checksum mismatch"


def test_damaged_middle_fragment_drops_the_record_and_reports_each_loss():
    big = bytes(range(256)) * 300  # FIRST in block 0, MIDDLE in block 1, LAST in block 2
    payloads = [b"before", big, b"after"]
    data, offsets = write_log(payloads)
    data = bytearray(data)
    data[BLOCK_SIZE + HEADER_SIZE + 10] ^= 0xFF
    reports = Reports()
    got = read_all(bytes(data), report=reports)
    assert got == [(offsets[0], b"before"), (offsets[2], b"after")]
    first_len = BLOCK_SIZE - offsets[1] - HEADER_SIZE
    last_len = len(big) - first_len - (BLOCK_SIZE - HEADER_SIZE)
    assert reports == [
        (BLOCK_SIZE, BLOCK_SIZE, "checksum mismatch"),
        (offsets[1], first_len, "error in middle of record"),
        (2 * BLOCK_SIZE, last_len, "missing start of fragmented record"),
    ]


def test_length_running_past_block_mid_log_is_bad_record_length():
    data, offsets, survivors = three_blocks()
    struct.pack_into("<H", data, offsets[1] + 4, 40000)
    reports = Reports()
    assert read_all(bytes(data), report=reports) == survivors
    assert reports == [(BLOCK_SIZE, BLOCK_SIZE, "bad record length")]


def test_file_ending_on_block_boundary_with_bad_length_is_reported_not_torn():
    # C++ only treats an overlong record as torn when its block was a short read.
    data = bytearray(write_log([b"x" * (BLOCK_SIZE - HEADER_SIZE)])[0])
    assert len(data) == BLOCK_SIZE
    struct.pack_into("<H", data, 4, BLOCK_SIZE)
    with pytest.raises(DecodeError, match="bad record length"):
        read_all(bytes(data), strict=True)


def test_zeroed_block_mid_log_is_skipped_silently():
    data, _, survivors = three_blocks()
    data[BLOCK_SIZE:2 * BLOCK_SIZE] = bytes(BLOCK_SIZE)
    reports = Reports()
    assert read_all(bytes(data), report=reports) == survivors
    assert reports == []


def physical(rtype, payload):
    crc = masked_crc32c(bytes([rtype]) + payload)
    return struct.pack("<IHB", crc, len(payload), rtype) + payload


def test_unknown_record_type_with_good_crc_is_reported_and_skipped():
    data = physical(FULL, b"a") + physical(7, b"junk") + physical(FULL, b"b")
    reports = Reports()
    assert read_all(data, report=reports) == [(0, b"a"), (19, b"b")]
    assert reports == [(8, 4, "unknown record type 7")]


def test_orphan_middle_and_last_are_reported():
    data = physical(MIDDLE, b"mm") + physical(LAST, b"lll") + physical(FULL, b"ok")
    reports = Reports()
    assert read_all(data, report=reports) == [(19, b"ok")]
    assert reports == [(0, 2, "missing start of fragmented record"),
                       (9, 3, "missing start of fragmented record")]


def test_first_without_last_then_full_reports_partial_record():
    data = physical(FIRST, b"abc") + physical(FULL, b"ok")
    reports = Reports()
    assert read_all(data, report=reports) == [(10, b"ok")]
    assert reports == [(0, 3, "partial record without end")]


def test_empty_first_abandoned_silently():
    # Older C++ writers could leave an empty FIRST before a FULL: not damage.
    data = physical(FIRST, b"") + physical(FULL, b"ok")
    reports = Reports()
    assert read_all(data, report=reports) == [(7, b"ok")]
    assert reports == []


@given(st.lists(st.binary(max_size=20000), min_size=1, max_size=8),
       st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=4))
@settings(max_examples=80)
def test_random_damage_never_crashes_and_yields_only_real_records(payloads, flips):
    data, offsets = write_log(payloads)
    damaged = bytearray(data)
    for where, mask in flips:
        damaged[where % len(damaged)] ^= mask
    originals = dict(zip(offsets, payloads))
    for offset, payload in LogReader(bytes(damaged), report=Reports()):
        assert originals.get(offset) == payload
    try:
        read_all(bytes(damaged), strict=True)
    except DecodeError as exc:
        assert 0 <= exc.offset < len(damaged)


# verify_tail (MANIFEST recovery): only what a crash mid-append leaves is a torn tail ---------

def test_verify_tail_accepts_a_torn_last_record_at_every_length():
    payloads = [b"one" * 10, b"two" * 300, bytes(range(256)) * 40]
    data, offsets = write_log(payloads)
    for cut in range(offsets[-1], len(data)):
        reports = Reports()
        reader = LogReader(data[:cut], report=reports, verify_tail=True)
        assert list(reader) == list(zip(offsets[:-1], payloads[:-1])), cut
        assert reports == [], cut
        assert reader.tail_offset == (offsets[-1] if cut > offsets[-1] else None), cut
    reader = LogReader(data, verify_tail=True, strict=True)
    assert [p for _, p in reader] == payloads and reader.tail_offset is None


def test_verify_tail_accepts_a_torn_record_spanning_blocks():
    payloads = [b"head" * 5000, bytes(range(256)) * 300]  # the second spans blocks 0..2
    data, offsets = write_log(payloads)
    cuts = set(range(offsets[1], len(data), 61))
    for boundary in (BLOCK_SIZE, 2 * BLOCK_SIZE):
        cuts.update(range(boundary - 3, boundary + HEADER_SIZE + 3))
    for cut in sorted(cuts):
        reader = LogReader(data[:cut], strict=True, verify_tail=True)
        assert list(reader) == [(0, payloads[0])], cut
        assert reader.tail_offset == (offsets[1] if cut > offsets[1] else None), cut


LENGTH_FLIP_PAYLOADS = [b"first" * 20, b"second" * 30, b"third" * 25, b"last" * 10]


def _length_flips():
    """Every (record, byte of its length field, mask) flip of LENGTH_FLIP_PAYLOADS's
    log, split by what it does: (runs past the end of the data, stays inside it)."""
    data, offsets = write_log(LENGTH_FLIP_PAYLOADS)
    past, inside = [], []
    for record, at in enumerate(offsets):
        for byte, mask in ((4, 0x01), (4, 0x80), (5, 0x01), (5, 0x80)):
            length = int.from_bytes(data[at + 4:at + 6], "little") ^ (mask << 8 * (byte - 4))
            case = pytest.param(record, byte, mask, id=f"record{record}-byte{byte}-{mask:#04x}")
            (past if at + HEADER_SIZE + length > len(data) else inside).append(case)
    assert past and inside
    return past, inside


LENGTH_FLIPS_PAST_THE_END, LENGTH_FLIPS_INSIDE = _length_flips()


def _flip_length(record, byte, mask):
    data, offsets = write_log(LENGTH_FLIP_PAYLOADS)
    damaged = bytearray(data)
    damaged[offsets[record] + byte] ^= mask
    return bytes(damaged), offsets


@pytest.mark.parametrize("record, byte, mask", LENGTH_FLIPS_INSIDE)
def test_a_length_flipped_inside_the_data_is_a_checksum_mismatch_in_either_mode(record, byte, mask):
    """Shorter, or longer but still ending inside the data: the checksum no
    longer verifies, the rest of the block is dropped, with or without verify_tail."""
    payloads = LENGTH_FLIP_PAYLOADS
    damaged, offsets = _flip_length(record, byte, mask)
    for verify_tail in (False, True):
        with pytest.raises(DecodeError, match="checksum mismatch") as info:
            read_all(damaged, strict=True, verify_tail=verify_tail)
        assert info.value.offset == offsets[record]
        reports = Reports()
        reader = LogReader(damaged, report=reports, verify_tail=verify_tail)
        assert list(reader) == list(zip(offsets, payloads))[:record]  # all in one block
        assert reports == [(offsets[record], len(damaged) - offsets[record], "checksum mismatch")]
        assert reader.tail_offset is None


@pytest.mark.parametrize("record, byte, mask", LENGTH_FLIPS_PAST_THE_END)
def test_verify_tail_refuses_a_length_flipped_past_the_end(record, byte, mask):
    payloads = LENGTH_FLIP_PAYLOADS
    damaged, offsets = _flip_length(record, byte, mask)
    # The WAL's reading (C++): a torn tail, everything after it dropped silently.
    reader = LogReader(damaged, strict=True)
    assert list(reader) == list(zip(offsets, payloads))[:record]
    assert reader.tail_offset == offsets[record]
    with pytest.raises(DecodeError) as info:
        read_all(damaged, strict=True, verify_tail=True)
    assert info.value.offset == offsets[record]
    reports = Reports()
    assert read_all(damaged, report=reports, verify_tail=True) == list(zip(offsets, payloads))[:record]
    assert [r[0] for r in reports] == [offsets[record]]


def test_verify_tail_refuses_a_garbage_header_followed_by_a_valid_record():
    """Header checksum and length both damaged (the length reaching past the
    end): only the scan for a later valid record can tell it from a torn tail."""
    payloads = [b"a" * 50, b"b" * 60, b"c" * 70]
    data, offsets = write_log(payloads)
    damaged = bytearray(data)
    struct.pack_into("<IH", damaged, offsets[1], 0x12345678, 300)
    assert read_all(bytes(damaged), strict=True) == [(0, payloads[0])]
    with pytest.raises(DecodeError, match="valid record at offset %d" % offsets[2]) as info:
        read_all(bytes(damaged), strict=True, verify_tail=True)
    assert info.value.offset == offsets[1]


def test_verify_tail_refuses_a_length_crossing_the_block_boundary_at_the_end():
    data, offsets = write_log([b"x" * 100, b"y" * 100])
    damaged = bytearray(data)
    struct.pack_into("<H", damaged, offsets[1] + 4, BLOCK_SIZE)
    with pytest.raises(DecodeError, match="runs past its block") as info:
        read_all(bytes(damaged), strict=True, verify_tail=True)
    assert info.value.offset == offsets[1]


def test_verify_tail_refuses_a_hole_but_not_trailing_zeroes():
    data, offsets, survivors = three_blocks()
    # Trailing preallocated zeroes end the log quietly, as without verify_tail.
    padded = bytes(data) + bytes(BLOCK_SIZE + 100)
    reports = Reports()
    assert len(read_all(padded, report=reports, verify_tail=True)) == len(offsets)
    assert reports == []
    # A zeroed block with valid records after it is a hole.
    data[BLOCK_SIZE:2 * BLOCK_SIZE] = bytes(BLOCK_SIZE)
    reports = Reports()
    assert read_all(bytes(data), report=reports, verify_tail=True) == survivors
    assert reports == [(BLOCK_SIZE, BLOCK_SIZE, "zeroed region before a later record")]
    with pytest.raises(DecodeError) as info:
        read_all(bytes(data), strict=True, verify_tail=True)
    assert info.value.offset == BLOCK_SIZE


def test_verify_tail_accepts_lost_pages_of_the_last_append():
    """A crash that loses unsynced 4 KiB pages of the last append (read as
    zeros) and keeps a later one, cut: no complete record follows, so the
    last record is still a torn tail."""
    payloads = [b"head" * 25, bytes(range(256)) * 60]  # the second: one FULL record over 4 pages
    data, offsets = write_log(payloads)
    assert offsets[1] < 4096 and len(data) > 3 * 4096
    for lost in ((offsets[1], 4096), (4096, 8192), (offsets[1], 8192)):
        for cut in (8192 + 1, 8192 + 700, len(data) - 1):
            damaged = bytearray(data[:cut])
            damaged[lost[0]:lost[1]] = bytes(lost[1] - lost[0])
            reader = LogReader(bytes(damaged), strict=True, verify_tail=True)
            assert list(reader) == [(0, payloads[0])], (lost, cut)
            assert reader.tail_offset == offsets[1], (lost, cut)
