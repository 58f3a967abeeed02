"""Block codec, and the shortening of index keys (LevelDB's
FindShortestSeparator and FindShortSuccessor)."""
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsm.errors import DecodeError
from lsm.table.block import (
    PAST_END,
    _decode_entries,
    BlockBuilder,
    decode_block,
    decode_block_split,
    decode_block_split_from,
    entries_limit,
    find_in_block,
    seek_block,
    seek_layout,
    _uniform_layout,
    shared_prefix_length,
)
from lsm.table.builder import (
    find_short_successor,
    find_shortest_separator,
    index_separator,
    index_successor,
)

SEEK = b"\x01" + b"\xff" * 7  # (MAX_SEQUENCE, kTypeValue) trailer


def build(entries, interval=16):
    b = BlockBuilder(interval)
    for k, v in entries:
        b.add(k, v)
    return b.finish()


def reference_block(entries, interval):
    """Straight transcription of LevelDB's BlockBuilder, byte by byte."""

    def varint(n):
        out = bytearray()
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        out.append(n)
        return bytes(out)

    out = bytearray()
    restarts = [0]
    counter = 0
    last = b""
    for key, value in entries:
        shared = 0
        if counter < interval:
            while shared < min(len(last), len(key)) and last[shared] == key[shared]:
                shared += 1
        else:
            restarts.append(len(out))
            counter = 0
        out += varint(shared) + varint(len(key) - shared) + varint(len(value))
        out += key[shared:] + value
        last = key
        counter += 1
    for r in restarts:
        out += struct.pack("<I", r)
    out += struct.pack("<I", len(restarts))
    return bytes(out)


sorted_keys = st.lists(st.binary(max_size=40), unique=True, max_size=60).map(sorted)
# Keys with long shared prefixes (also beyond 128, the one-byte varint limit).
long_prefix_keys = st.tuples(
    st.binary(min_size=120, max_size=300), st.lists(st.binary(max_size=6), unique=True, max_size=30)
).map(lambda t: sorted(t[0] + s for s in t[1]))
values = st.one_of(st.just(b""), st.binary(max_size=200))


@settings(max_examples=150, deadline=None)
@given(keys=st.one_of(sorted_keys, long_prefix_keys), data=st.data(), interval=st.integers(1, 20))
def test_block_round_trip_matches_leveldb_builder(keys, data, interval):
    entries = [(k, data.draw(values)) for k in keys]
    block = build(entries, interval)
    assert block == reference_block(entries, interval)
    assert decode_block(block) == ([k for k, _ in entries], [v for _, v in entries])


def test_block_with_value_over_64k_and_empty_values():
    entries = [(b"a", b""), (b"b", b"x" * 70_000), (b"c", b""), (b"d", bytes(range(256)) * 300)]
    block = build(entries)
    assert block == reference_block(entries, 16)
    assert decode_block(block) == ([k for k, _ in entries], [v for _, v in entries])


def test_empty_block_is_eight_bytes():
    assert build([]) == b"\x00\x00\x00\x00\x01\x00\x00\x00"
    assert decode_block(build([])) == ([], [])


def test_size_estimate_counts_restart_array():
    b = BlockBuilder(2)
    assert b.size_estimate() == 8
    for i, key in enumerate([b"aa", b"ab", b"ac"]):
        b.add(key, b"v")
    assert b.size_estimate() == len(b.finish())


@given(st.binary(max_size=30), st.binary(max_size=30))
def test_shared_prefix_length(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    assert shared_prefix_length(a, b) == n


# ---------------------------------------------------------------- damage


def good_block():
    return build([(b"key%03d" % i, b"value%d" % i) for i in range(40)], 16)


@pytest.mark.parametrize("size", range(4))
def test_block_shorter_than_restart_count_is_corrupt(size):
    with pytest.raises(DecodeError):
        decode_block(good_block()[:size])


def test_zero_restarts_is_corrupt():
    with pytest.raises(DecodeError, match="restart count"):
        decode_block(b"\x00\x00\x00\x00")


def test_restart_count_larger_than_block_is_corrupt():
    with pytest.raises(DecodeError, match="restart count"):
        decode_block(b"\x00" * 8 + struct.pack("<I", 3))


def test_restart_pointing_past_entries_is_corrupt():
    block = bytearray(good_block())
    limit = entries_limit(bytes(block))
    struct.pack_into("<I", block, limit + 4, limit + 1)
    with pytest.raises(DecodeError, match="restart"):
        decode_block(bytes(block))


def test_restart_at_entry_with_shared_prefix_is_corrupt():
    block = bytearray(good_block())
    limit = entries_limit(bytes(block))
    # Point the second restart at the second entry, which shares "key0".
    second_entry = 3 + 6 + 6
    struct.pack_into("<I", block, limit + 4, second_entry)
    with pytest.raises(DecodeError, match="restart"):
        decode_block(bytes(block))


def test_entry_running_past_block_is_corrupt():
    entries = [(b"k", b"v" * 10)]
    block = bytearray(build(entries))
    block[2] = 50  # value length now runs into the restart array
    with pytest.raises(DecodeError, match="past"):
        decode_block(bytes(block))


def test_entry_sharing_more_than_previous_key_is_corrupt():
    block = bytearray(build([(b"ab", b""), (b"abc", b"")], interval=16))
    block[5] = 7  # second entry claims 7 shared bytes of a 2-byte key
    with pytest.raises(DecodeError, match="shares more"):
        decode_block(bytes(block))


def test_truncated_varint_header_is_corrupt():
    # One entry whose header is a lone continuation byte, then the restart array.
    with pytest.raises(DecodeError):
        decode_block(b"\x80" + struct.pack("<II", 0, 1))


def test_overlong_varint_is_corrupt():
    with pytest.raises(DecodeError):
        decode_block(b"\x00" + b"\xff" * 6 + b"\x01" + struct.pack("<II", 0, 1))


# ---------------------------------------------------------------- separators


def test_separator_examples_from_spec():
    assert index_separator(b"big" + b"\x01" * 8, b"key00000" + b"\x01" * 8) == b"c" + SEEK
    last = b"key00111" + b"\x01\x05" + b"\0" * 6
    assert index_separator(last, b"key00112" + b"\x01\x06" + b"\0" * 6) == last
    assert index_successor(b"cherry" + b"\x01\x01" + b"\0" * 6) == b"d" + SEEK
    a = b"a\x01\x01" + b"\0" * 6
    assert index_successor(a) == a


def test_separator_edge_cases():
    assert find_shortest_separator(b"abc", b"abcd") == b"abc"  # prefix: unchanged
    assert find_shortest_separator(b"ab\xff1", b"ac") == b"ab\xff1"  # 0xFF can't grow
    assert find_shortest_separator(b"abc", b"abd") == b"abc"  # c + 1 == d
    assert find_shortest_separator(b"abc", b"abz") == b"abd"
    assert find_short_successor(b"\xff\xffa") == b"\xff\xffb"
    assert find_short_successor(b"\xff\xff") == b"\xff\xff"
    assert find_short_successor(b"") == b""


def ikey_order(ikey):
    return (ikey[:-8], -int.from_bytes(ikey[-8:], "little"))


internal_keys = st.tuples(
    st.binary(max_size=12), st.integers(0, (1 << 56) - 1), st.integers(0, 1)
).map(lambda t: t[0] + ((t[1] << 8) | t[2]).to_bytes(8, "little"))


@given(internal_keys, internal_keys)
def test_separator_lies_between_the_blocks(a, b):
    if ikey_order(a) == ikey_order(b):
        return
    a, b = sorted([a, b], key=ikey_order)
    s = index_separator(a, b)
    assert ikey_order(a) <= ikey_order(s) < ikey_order(b)
    assert len(s) <= len(a)


@given(internal_keys)
def test_successor_is_not_smaller(a):
    s = index_successor(a)
    assert ikey_order(a) <= ikey_order(s)
    assert len(s) <= len(a)


@given(st.binary(max_size=12), st.binary(max_size=12))
def test_user_separator_properties(a, b):
    if a == b:
        return
    a, b = sorted([a, b])
    s = find_shortest_separator(a, b)
    assert a <= s < b
    assert len(s) <= len(a)


# ---------------------------------------------------------------- point lookups


def lookup(block, user_key, seek_tag):
    """A point lookup as a table makes it: the block decoded, then searched."""
    return find_in_block(decode_block_split(block), user_key, seek_tag)


@st.composite
def internal_block(draw, uniform=False):
    """Entries of a data block; uniform: user keys of one length and values
    of one length (a block of them with restart interval 1 is uniform)."""
    if uniform:
        key_len, value_len = draw(st.integers(0, 6)), draw(st.sampled_from([0, 5, 200]))
        ukey_strategy = st.binary(min_size=key_len, max_size=key_len)
        value_strategy = st.binary(min_size=value_len, max_size=value_len)
    else:
        ukey_strategy, value_strategy = st.binary(max_size=6), st.binary(max_size=5)
    ukeys = sorted(set(draw(st.lists(ukey_strategy, max_size=50))))
    entries = []
    for ukey in ukeys:
        seqs = sorted(set(draw(st.lists(st.integers(0, 50), min_size=1, max_size=4))), reverse=True)
        for seq in seqs:
            kind = draw(st.integers(0, 1))
            tag = (seq << 8) | kind
            entries.append((ukey + tag.to_bytes(8, "little"), draw(value_strategy)))
    return entries


@st.composite
def block_of_either_shape(draw):
    """(entries, restart interval, block): prefix-compressed, or uniform."""
    if draw(st.booleans()):
        entries = draw(internal_block(uniform=True))
        block = build(entries, 1)
        assert not entries or _uniform_layout(block, entries_limit(block)) is not None
        return entries, 1, block
    entries, interval = draw(internal_block()), draw(st.integers(1, 16))
    return entries, interval, build(entries, interval)


@settings(max_examples=300, deadline=None)
@given(shaped=block_of_either_shape(), target=st.binary(max_size=6), seq=st.integers(0, 51))
def test_lookup_matches_linear_search(shaped, target, seq):
    entries, _interval, block = shaped
    seek_tag = (seq << 8) | 1
    expected = PAST_END
    for ikey, value in entries:
        ukey, tag = ikey[:-8], int.from_bytes(ikey[-8:], "little")
        if (ukey, -tag) >= (target, -seek_tag):
            expected = (tag & 0xFF, value) if ukey == target else None
            break
    assert lookup(block, target, seek_tag) == expected
    for ikey, _ in entries:  # every stored key is found at its own sequence
        tag = int.from_bytes(ikey[-8:], "little")
        assert lookup(block, ikey[:-8], tag | 1) is not None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=0, max_size=6), st.integers(0, 2**57 - 1).map(lambda n: n >> 1 << 8 | n & 1),
                          st.binary(max_size=20)),
                min_size=1, max_size=80),
       st.integers(1, 17), st.binary(max_size=7))
def test_seek_decode_misses_no_entry_at_or_after_the_key(rows, interval, target):
    # Internal keys sorted as a block holds them: user key up, tag down.
    rows = sorted({(u, -t): v for u, t, v in rows}.items())
    entries = [(u + struct.pack("<Q", -nt), v) for (u, nt), v in rows]
    block = build(entries, interval)
    all_ukeys, all_tags, all_values = decode_block_split(block)
    ukeys, tags, values, whole = decode_block_split_from(block, target)
    n = len(ukeys)
    # A suffix of the whole decode, reaching back to before the target...
    assert (ukeys, tags, values) == (all_ukeys[-n:], all_tags[-n:], all_values[-n:])
    assert whole == (n == len(all_ukeys))
    assert whole or ukeys[0] < target
    # ...by at most one restart interval, unless the block is uniform and so
    # decoded whole.
    if _uniform_layout(block, entries_limit(block)) is None:
        assert sum(1 for u in ukeys if u < target) <= interval
    else:
        assert whole


def linear_lookup(entries, target, seek_tag):
    """The first entry at or after (target, seek_tag), found one by one."""
    for ikey, value in entries:
        ukey, tag = ikey[:-8], int.from_bytes(ikey[-8:], "little")
        if (ukey, -tag) >= (target, -seek_tag):
            return (tag & 0xFF, value) if ukey == target else None
    return PAST_END


@settings(max_examples=300, deadline=None)
@given(shaped=block_of_either_shape(), target=st.binary(max_size=6), seq=st.integers(0, 51))
def test_seek_in_raw_block_finds_what_a_linear_search_finds(shaped, target, seq):
    entries, _interval, block = shaped
    # Told the block's layout (as a cached block remembers it) or not, alike.
    for layout in (None, seek_layout(block)):
        assert seek_block(block, target, (seq << 8) | 1, layout) == linear_lookup(entries, target, (seq << 8) | 1)
        for ikey, value in entries:  # every version is found at its own sequence, past newer ones
            tag = int.from_bytes(ikey[-8:], "little")
            assert seek_block(block, ikey[:-8], tag | 1, layout) == (tag & 0xFF, value)


@settings(max_examples=300, deadline=None)
@given(shaped=block_of_either_shape())
def test_uniform_decode_matches_the_entry_loop(shaped):
    entries, _interval, block = shaped
    limit = entries_limit(block)
    ukeys, trailers, values = _decode_entries(block, limit, split=True)
    tags = [int.from_bytes(t, "little") for t in trailers]
    assert decode_block_split(block) == (ukeys, tags, values)
    assert decode_block(block) == ([k for k, _ in entries], [v for _, v in entries])


def uniform_block(count=20, value=b"v" * 10):
    entries = [(b"key%03d" % i + ((i << 8) | 1).to_bytes(8, "little"), value) for i in range(count)]
    block = build(entries, 1)
    header_len = 3 if len(value) < 128 else 4
    assert _uniform_layout(block, entries_limit(block)) == (header_len, 14, len(value), count)
    return entries, bytearray(block)


def test_uniform_block_with_an_unknown_value_type_is_refused():
    entries, block = uniform_block()
    stride = 3 + 14 + 10
    block[5 * stride + 3 + 6] = 7  # entry 5's type byte
    with pytest.raises(DecodeError, match="unknown value type"):
        decode_block_split(bytes(block))
    with pytest.raises(DecodeError, match="unknown value type"):
        lookup(bytes(block), b"key005", (6 << 8) | 1)


def test_block_uniform_but_for_one_header_takes_the_entry_loop():
    # Entry 7's value length byte says 9, not 10: no fixed stride, and the
    # loop finds the block's entries out of step with its end.
    entries, block = uniform_block()
    block[7 * (3 + 14 + 10) + 2] = 9
    assert _uniform_layout(bytes(block), entries_limit(bytes(block))) is None
    with pytest.raises(DecodeError):
        decode_block_split(bytes(block))


def test_uniform_block_with_long_values_has_two_byte_value_lengths():
    entries, block = uniform_block(count=3, value=b"w" * 300)
    assert _uniform_layout(bytes(block), entries_limit(bytes(block))) == (4, 14, 300, 3)
    assert decode_block(bytes(block)) == ([k for k, _ in entries], [v for _, v in entries])
    assert lookup(bytes(block), b"key001", (1 << 8) | 1) == (1, b"w" * 300)


def test_uniform_block_of_thousands_of_entries_decodes_in_pieces():
    entries = [(b"%06d" % i + ((i << 8) | 1).to_bytes(8, "little"), b"") for i in range(1300)]
    block = build(entries, 1)
    assert _uniform_layout(block, entries_limit(block)) == (3, 14, 0, 1300)
    assert decode_block(block) == ([k for k, _ in entries], [b""] * 1300)
    assert decode_block_split(block)[0] == [k[:-8] for k, _ in entries]


def test_uniform_seek_is_not_misled_by_the_key_s_bytes_inside_values():
    # Values that hold the looked-up key, whole and straddling, ahead of it.
    entries = [(b"key%03d" % i + ((i << 8) | 1).to_bytes(8, "little"), b"..key015..." if i < 15 else b"5" * 11)
               for i in range(30)]
    block = build(entries, 1)
    assert _uniform_layout(block, entries_limit(block)) is not None
    assert lookup(block, b"key015", (15 << 8) | 1) == (1, b"5" * 11)
    assert lookup(block, b"key015", (14 << 8) | 1) is None  # only a newer version: the next key is larger
    assert lookup(block, b"key555", (99 << 8) | 1) is PAST_END
    assert lookup(block, b"kez", (99 << 8) | 1) is PAST_END  # another length: the binary search
    assert lookup(block, b"aaa000", (99 << 8) | 1) is None


def test_uniform_seek_goes_on_past_versions_too_new_to_the_next_block():
    entries = [(b"hot" + ((s << 8) | 1).to_bytes(8, "little"), b"v%d" % s) for s in range(9, 4, -1)]
    block = build(entries, 1)
    assert _uniform_layout(block, entries_limit(block)) is not None
    assert lookup(block, b"hot", (7 << 8) | 1) == (1, b"v7")
    assert lookup(block, b"hot", (4 << 8) | 1) is PAST_END  # older versions may open the next block
