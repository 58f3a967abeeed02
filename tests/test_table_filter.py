"""Bloom hash, bloom filters and the filter block (spec §7.6, §8)."""
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsm.errors import DecodeError
from lsm.table.filter import (
    FILTER_BASE_LG,
    FILTER_META_KEY,
    BloomFilterPolicy,
    FilterBlockBuilder,
    FilterBlockReader,
    bloom_hash,
)


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", 0xBC9F1D34),
        (b"\x62", 0xEF1345C4),
        (b"\xc3\x97", 0x5B663814),
        (b"\xe2\x99\xa5", 0x323C078F),
        (b"\xe1\x80\xb9\x32", 0xED21633A),
        (b"apple", 0x7C7F163B),
    ],
)
def test_hash_vectors_from_spec(data, expected):
    assert bloom_hash(data) == expected


def test_frozen_constants():
    assert FILTER_META_KEY == b"filter.leveldb.BuiltinBloomFilter2"
    assert FILTER_BASE_LG == 11
    assert [BloomFilterPolicy(b).k for b in (1, 2, 10, 20, 100)] == [1, 1, 6, 13, 30]


def test_spec_example_filters():
    policy = BloomFilterPolicy(10)
    assert policy.create_filter([b"apple"]).hex() == "000000000000c00f06"
    assert policy.create_filter([b"apple", b"apple", b"banana", b"cherry"]).hex() == "0240000c8000d00f06"


def reference_filter(keys, bits_per_key):
    """Spec §8.3 transcribed literally, one probe at a time."""
    k = min(30, max(1, int(bits_per_key * 0.69)))
    bits = max(64, len(keys) * bits_per_key)
    nbytes = (bits + 7) // 8
    bits = nbytes * 8
    array = bytearray(nbytes)
    for key in keys:
        h = bloom_hash(key)
        delta = ((h >> 17) | (h << 15)) & 0xFFFFFFFF
        for _ in range(k):
            pos = h % bits
            array[pos // 8] |= 1 << (pos % 8)
            h = (h + delta) & 0xFFFFFFFF
    return bytes(array) + bytes([k])


# The batched hash takes different paths by key length and group size:
# scalar (< 6 keys of a length, or keys over 72 bytes), keys spread into 8-byte
# lanes (< 8 bytes), key-wide lanes (8..72 bytes, unpacked through a uint32 view
# when the width is a multiple of 4). Each must equal the literal algorithm.
@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.integers(0, 80).flatmap(lambda n: st.lists(st.binary(min_size=n, max_size=n), max_size=80)),
        st.lists(st.binary(max_size=80), max_size=80),
    ),
    st.sampled_from([1, 2, 3, 5, 10, 16, 25, 50]),
)
def test_filter_equals_reference(keys, bits_per_key):
    assert BloomFilterPolicy(bits_per_key).create_filter(keys) == reference_filter(keys, bits_per_key)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.integers(0, 80).flatmap(lambda n: st.lists(st.binary(min_size=n, max_size=n), max_size=60)),
        st.lists(st.binary(max_size=80), max_size=60),
    ),
    st.integers(0, (1 << 64) - 1),
)
def test_internal_keys_hash_only_their_user_keys(ukeys, tag):
    """skip=8: the 8-byte trailer rides along in the lanes but is never hashed."""
    policy = BloomFilterPolicy(10)
    ikeys = [u + tag.to_bytes(8, "little") for u in ukeys]
    assert policy.create_filter(ikeys, skip=8) == reference_filter(ukeys, 10)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=30), min_size=1, max_size=200))
def test_no_false_negatives(keys):
    policy = BloomFilterPolicy(10)
    bloom = policy.create_filter(keys)
    assert all(policy.key_may_match(k, bloom) for k in keys)


def test_false_positive_rate_is_about_one_percent():
    policy = BloomFilterPolicy(10)
    bloom = policy.create_filter([b"key%06d" % i for i in range(10000)])
    hits = sum(policy.key_may_match(b"other%06d" % i, bloom) for i in range(10000))
    assert hits < 250


def test_query_edge_cases():
    assert not BloomFilterPolicy.key_may_match(b"x", b"")
    assert not BloomFilterPolicy.key_may_match(b"x", b"\x06")
    assert BloomFilterPolicy.key_may_match(b"x", b"\x00" * 8 + bytes([31]))  # reserved k: match


# ---------------------------------------------------------------- filter block


def test_empty_filter_block():
    assert FilterBlockBuilder(BloomFilterPolicy(10)).finish() == b"\x00\x00\x00\x00\x0b"


def test_buckets_follow_block_start_offsets():
    """Blocks at 0, 100029, 104164, 108277 (spec §7.6 example): 54 offsets,
    filter 0 = block 0, 48 = block 1, 50 = block 2, 52 = block 3, others empty."""
    policy = BloomFilterPolicy(10)
    builder = FilterBlockBuilder(policy)
    builder.start_block(0)
    blocks = [(0, [b"a"]), (100029, [b"b"]), (104164, [b"c"]), (108277, [b"d"])]
    ends = [100029, 104164, 108277, 111675]
    for (_, keys), end in zip(blocks, ends):
        builder.add_keys(keys)
        builder.start_block(end)
    data = builder.finish()
    array_offset = struct.unpack_from("<I", data, len(data) - 5)[0]
    offsets = struct.unpack_from("<%dI" % ((len(data) - 5 - array_offset) // 4), data, array_offset)
    assert len(offsets) == 54
    bounds = list(offsets) + [array_offset]
    nonempty = [i for i in range(54) if bounds[i] != bounds[i + 1]]
    assert nonempty == [0, 48, 50, 52]
    reader = FilterBlockReader(data)
    for (start, keys), other in zip(blocks, [b"b", b"c", b"d", b"a"]):
        assert reader.key_may_match(start, keys[0])
        assert not reader.key_may_match(start, other)
    assert not reader.key_may_match(2048, b"a")  # empty bucket: nothing there
    assert reader.key_may_match(54 << 11, b"zzz")  # beyond the filters: may match


def test_small_blocks_share_a_filter():
    builder = FilterBlockBuilder(BloomFilterPolicy(10))
    builder.start_block(0)
    for start, key in [(0, b"a"), (100, b"b"), (200, b"c")]:
        builder.add_keys([key])
        builder.start_block(start + 100)
    reader = FilterBlockReader(builder.finish())
    assert all(reader.key_may_match(s, k) for s, k in [(0, b"c"), (100, b"a"), (200, b"b")])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x0b",
        b"\x00\x00\x00\x0b",
        struct.pack("<IB", 1, 11),  # array offset past the array
        b"\x00" * 3 + struct.pack("<IB", 0, 11),  # offset array not whole words
        b"ab" + struct.pack("<IIIB", 2, 0, 2, 11),  # offsets out of order
        b"ab" + struct.pack("<IIB", 3, 2, 11),  # a filter ends past the offset array
    ],
)
def test_malformed_filter_block_raises(data):
    with pytest.raises(DecodeError):
        FilterBlockReader(data)
