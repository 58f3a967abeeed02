"""Bloom hash, bloom filters and the filter block."""
import random
import struct
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lsm.errors import DecodeError
from lsm.table import filter as filter_module
from lsm.table import ragged
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


def reference_hash(data):
    """LevelDB's Hash() (util/hash.cc) transcribed literally, byte by byte."""
    m = 0xC6A4A793
    h = (0xBC9F1D34 ^ (len(data) * m)) % 2**32
    i = 0
    while i + 4 <= len(data):
        w = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        h = (h + w) * m % 2**32
        h ^= h >> 16
        i += 4
    rest = len(data) - i
    if rest:
        if rest == 3:
            h += data[i + 2] << 16
        if rest >= 2:
            h += data[i + 1] << 8
        h = (h + data[i]) * m % 2**32
        h ^= h >> 24
    return h


def reference_filter(keys, bits_per_key):
    """LevelDB's bloom CreateFilter transcribed literally, one probe at a time."""
    k = min(30, max(1, int(bits_per_key * 0.69)))
    bits = max(64, len(keys) * bits_per_key)
    nbytes = (bits + 7) // 8
    bits = nbytes * 8
    array = bytearray(nbytes)
    for key in keys:
        h = reference_hash(key)
        delta = ((h >> 17) | (h << 15)) & 0xFFFFFFFF
        for _ in range(k):
            pos = h % bits
            array[pos // 8] |= 1 << (pos % 8)
            h = (h + delta) & 0xFFFFFFFF
    return bytes(array) + bytes([k])


def reference_may_match(key, bloom):
    """LevelDB's KeyMayMatch, one probe at a time."""
    if len(bloom) < 2:
        return False
    k = bloom[-1]
    if k > 30:
        return True
    bits = (len(bloom) - 1) * 8
    h = reference_hash(key)
    delta = ((h >> 17) | (h << 15)) & 0xFFFFFFFF
    for _ in range(k):
        pos = h % bits
        if not bloom[pos // 8] & (1 << (pos % 8)):
            return False
        h = (h + delta) & 0xFFFFFFFF
    return True


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
@example(bytes(range(256)) + b"long")  # past the table of word unpackers
def test_hash_equals_reference(data):
    assert bloom_hash(data) == reference_hash(data)


# The batched code takes different paths by key length: whole words only
# (length % 4 == 0), tails of 1..3 bytes, no word at all, mixed lengths hashed
# apart and put back in order; and filters of many sizes share one scatter.
# Each must equal the literal algorithm, bit for bit.
KEY_LISTS = st.one_of(
    st.integers(0, 100).flatmap(lambda n: st.lists(st.binary(min_size=n, max_size=n), max_size=80)),
    st.lists(st.binary(max_size=100), max_size=80),
)
BITS_PER_KEY = st.sampled_from([1, 2, 3, 5, 7, 9, 10, 11, 13, 16, 23, 25, 50])


@settings(max_examples=300, deadline=None)
@given(KEY_LISTS, BITS_PER_KEY)
def test_filter_equals_reference(keys, bits_per_key):
    assert BloomFilterPolicy(bits_per_key).create_filter(keys) == reference_filter(keys, bits_per_key)


@settings(max_examples=200, deadline=None)
@given(KEY_LISTS, st.integers(0, (1 << 64) - 1), BITS_PER_KEY)
def test_internal_keys_hash_only_their_user_keys(ukeys, tag, bits_per_key):
    """skip=8: the 8-byte trailer rides along in the lanes but is never hashed."""
    policy = BloomFilterPolicy(bits_per_key)
    ikeys = [u + tag.to_bytes(8, "little") for u in ukeys]
    assert policy.create_filter(ikeys, skip=8) == reference_filter(ukeys, bits_per_key)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.integers(0, 100).flatmap(
            lambda n: st.lists(st.lists(st.binary(min_size=n, max_size=n), max_size=30), max_size=8)
        ),
        st.lists(st.lists(st.binary(max_size=100), max_size=30), max_size=8),
    ),
    BITS_PER_KEY,
    st.sampled_from([0, 8]),
    st.binary(min_size=8, max_size=8),
)
def test_batched_filters_equal_reference(groups, bits_per_key, skip, trailer):
    """create_filters: filters of equal size share their probe arithmetic, and
    the hashes of all the groups are computed together."""
    keys = [u + trailer[:skip] for group in groups for u in group]
    got = BloomFilterPolicy(bits_per_key).create_filters(keys, [len(g) for g in groups], skip)
    assert got == b"".join(reference_filter(group, bits_per_key) for group in groups)


@settings(max_examples=100, deadline=None)
@given(KEY_LISTS, st.lists(st.binary(max_size=100), max_size=40), BITS_PER_KEY)
def test_policy_answers_equal_reference(keys, others, bits_per_key):
    policy = BloomFilterPolicy(bits_per_key)
    bloom = policy.create_filter(keys)
    for key in keys + others:
        assert policy.key_may_match(key, bloom) == reference_may_match(key, bloom)


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
    """Blocks at 0, 100029, 104164, 108277, with a filter every 2 KiB of
    table: 54 offsets, filter 0 = block 0, 48 = block 1, 50 = block 2,
    52 = block 3, others empty."""
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


def reference_filter_block(blocks, bits_per_key):
    """LevelDB's FilterBlockBuilder over consecutive data blocks [(size, user
    keys)] from offset 0, one filter at a time: (block, {bucket: filter})."""
    filters, pending, buckets, offset = {}, [], 0, 0
    for size, ukeys in blocks:
        pending += ukeys
        offset += size
        while buckets < offset >> FILTER_BASE_LG:  # start_block(offset)
            if pending:
                filters[buckets] = reference_filter(pending, bits_per_key)
                pending = []
            buckets += 1
    if pending:  # finish()
        filters[buckets] = reference_filter(pending, bits_per_key)
        buckets += 1
    result, offsets = b"", []
    for i in range(buckets):
        offsets.append(len(result))
        result += filters.get(i, b"")
    tail = struct.pack("<%dIIB" % len(offsets), *offsets, len(result), FILTER_BASE_LG)
    return result + tail, filters


BLOCK_KEYS = st.one_of(
    st.lists(st.binary(min_size=16, max_size=16), max_size=40),
    st.lists(st.binary(max_size=100), max_size=10),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 5000), BLOCK_KEYS), max_size=30),
    BITS_PER_KEY,
    st.sampled_from([0, 8]),
    st.sampled_from([1, 7, 50, 16384]),
    st.lists(st.binary(max_size=100), max_size=20),
)
def test_filter_block_equals_reference(blocks, bits_per_key, skip, batch, others):
    """Blocks of varied sizes (buckets empty, with one block or several) and
    filters built in batches of every size: the block is LevelDB's, and the
    reader answers as the literal algorithm does."""
    builder = FilterBlockBuilder(BloomFilterPolicy(bits_per_key), skip)
    trailer = b"\x01\x02\x03\x04\x05\x06\x07\x08"[:skip]
    starts = []
    with mock.patch.object(filter_module, "_BATCH_KEYS", batch):
        builder.start_block(0)
        offset = 0
        for size, ukeys in blocks:
            starts.append(offset)
            builder.add_keys([u + trailer for u in ukeys])
            offset += size
            builder.start_block(offset)
        data = builder.finish()
    expected, filters = reference_filter_block(blocks, bits_per_key)
    assert data == expected
    reader = FilterBlockReader(data)
    buckets = (len(data) - 5 - struct.unpack_from("<I", data, len(data) - 5)[0]) // 4
    for start, (_, ukeys) in zip(starts, blocks):
        index = start >> FILTER_BASE_LG
        for key in ukeys + others:
            if index >= buckets:
                want = True  # past the last filter: LevelDB says "may match"
            else:
                want = index in filters and reference_may_match(key, filters[index])
            assert reader.key_may_match(start, key) == want


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.binary(max_size=20), min_size=1, max_size=30),
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 29), st.booleans()), max_size=60),
)
def test_reader_answers_do_not_depend_on_the_previous_lookup(keys, lookups):
    """The reader keeps the hash of the last key object asked about: asking
    another table, the same object again, an equal copy or another key in any
    order must give the literal algorithm's answers."""
    policy = BloomFilterPolicy(10)
    halves = [keys[::2], keys[1::2]]
    readers, blooms = [], []
    for half in halves:
        builder = FilterBlockBuilder(policy)
        builder.start_block(0)
        builder.add_keys(half)
        data = builder.finish()
        readers.append(FilterBlockReader(data))
        blooms.append(reference_filter(half, 10) if half else None)
    for which, i, copy in lookups:
        key = keys[i % len(keys)]
        if copy:
            key = bytes(bytearray(key))
        bloom = blooms[which]
        want = bloom is None or reference_may_match(key, bloom)  # no filters: may match
        assert readers[which].key_may_match(0, key) == want


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


# Keys long enough for the ragged path's numpy steps, its slabs and its
# Python finish: many keys with a word j, then fewer than FEW_KEYS.
@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(0, 3000), min_size=1, max_size=60),
    st.sampled_from([0, 8]),
    BITS_PER_KEY,
    st.randoms(use_true_random=False),
)
def test_filter_of_long_keys_of_many_lengths_equals_reference(lengths, skip, bits_per_key, rng):
    ukeys = [rng.randbytes(n) for n in lengths]
    keys = [u + rng.randbytes(skip) for u in ukeys]
    with mock.patch.object(ragged, "SLAB_WORDS", rng.choice([1, 7, 1 << 16])):
        got = BloomFilterPolicy(bits_per_key).create_filter(keys, skip=skip)
    assert got == reference_filter(ukeys, bits_per_key)


def test_filter_of_keys_up_to_100_kib_equals_reference():
    """The shape that took 90 s through the scalar hash: every length from 0
    to 100 KiB, near-duplicates (a key and its prefix), an empty key."""
    rng = random.Random(16)
    ukeys = [rng.randbytes(rng.randrange(100 << 10)) for _ in range(40)]
    ukeys += [b"", ukeys[0][:5], ukeys[1][:4 << 10], bytes(100 << 10)]
    policy = BloomFilterPolicy(10)
    assert policy.create_filter(ukeys) == reference_filter_fast(ukeys, 10)
    internal = [u + b"\xff" * 8 for u in ukeys]
    assert policy.create_filter(internal, skip=8) == reference_filter_fast(ukeys, 10)


def reference_filter_fast(keys, bits_per_key):
    """reference_filter with bloom_hash for the hash (itself checked against
    reference_hash above): the literal transcription is too slow for 2 MB."""
    with mock.patch(f"{__name__}.reference_hash", bloom_hash):
        return reference_filter(keys, bits_per_key)


def test_bulk_hashes_of_rare_and_huge_key_lengths_match_leveldbs_hash():
    # A table of keys whose lengths are all different (up to 100 KB, as in
    # plyvel's approximate-sizes test) next to a length many keys share:
    # every hash must still be bloom_hash's.
    import numpy as np

    from lsm.table.bulk import EntryArrays, user_key_hashes

    rng = random.Random(7)
    keys = [bytes(i) * 100 for i in range(0, 1000, 37)] + [b"k%05d" % rng.randrange(10**5) for _ in range(100)]
    keys.append(b"")
    data = b"".join(k + b"\x01" * 8 for k in keys)
    lengths = np.array([len(k) for k in keys], dtype=np.int64)
    at = np.concatenate([[0], np.cumsum(lengths + 8)[:-1]]).astype(np.int64)
    entries = EntryArrays(data, at, at, lengths, at + lengths + 8, np.zeros(len(keys), dtype=np.uint64))
    assert user_key_hashes(entries).tolist() == [bloom_hash(k) for k in keys]
