"""lsm's own filter block (lsm.table.keyfilter) and the tables that carry it
beside LevelDB's: its bytes follow the frozen layout, it never hides a key,
plyvel reads tables that have it, and tables without it (LevelDB's) are
still filtered through LevelDB's filter."""
import random
from unittest import mock

import pytest
from crc32c import crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from lsm.errors import CorruptionError, DecodeError
from lsm.keys import TYPE_VALUE, make_internal_key
from lsm.table import Table
from lsm.table.block import decode_block
from lsm.table.filter import FILTER_META_KEY
from lsm.table.format import decode_footer, unpack_block
from lsm.table import keyfilter, ragged
from lsm.table.keyfilter import (
    KEY_FILTER_META_KEY,
    KeyFilterBuilder,
    KeyFilterReader,
    cached_key_hash,
    crc32c_of_keys,
    key_hash,
)
from lsm.table.options import TableOptions
from table_helpers import MemFile, table_bytes
from test_table_plyvel import table_files, write_db_of_one_table

plyvel = pytest.importorskip("plyvel")


def reference_hash(user_key):
    """The key hash as the layout states it, with Python's integers."""
    y = crc32c(user_key) * 0x9E3779B97F4A7C15 % 2**64
    return y ^ (y >> 29)


def reference_probes(x, nblocks, k):
    """(block, [bit in the block]) of key hash x, literally."""
    block = (x >> 32) * nblocks >> 32
    a, d = x % 512, (x >> 9) % 512 | 1
    return block, [(a + i * d) % 512 for i in range(k)]


def reference_key_filter(user_keys, bits_per_key):
    k = min(30, max(1, int(bits_per_key * 0.69)))
    nblocks = max(1, -(-len(user_keys) * bits_per_key // 512))
    array = bytearray(64 * nblocks)
    for key in user_keys:
        block, bits = reference_probes(reference_hash(key), nblocks, k)
        for bit in bits:
            array[64 * block + bit // 8] |= 1 << (bit % 8)
    return bytes(array) + bytes([k])


def reference_may_match(user_key, data):
    nblocks, k = (len(data) - 1) // 64, data[-1]
    block, bits = reference_probes(reference_hash(user_key), nblocks, k)
    return all(data[64 * block + bit // 8] >> (bit % 8) & 1 for bit in bits)


def test_frozen_constants_and_layout():
    assert KEY_FILTER_META_KEY == b"filter.lsm.Crc32cBlockedBloom"
    assert KEY_FILTER_META_KEY > FILTER_META_KEY  # the metaindex keeps its keys sorted
    assert crc32c(b"apple") == 0x95CB3A6A
    assert key_hash(b"apple") == reference_hash(b"apple") == 0x91BAB7EABF4E9DC3
    builder = KeyFilterBuilder(10)
    builder.add_user_keys([b"apple"])
    data = builder.finish()
    assert len(data) == 65 and data[-1] == 6
    _, bits = reference_probes(key_hash(b"apple"), 1, 6)
    assert sorted(i for i in range(512) if data[i // 8] >> (i % 8) & 1) == sorted(bits)
    assert len(set(bits)) == 6


KEY_LISTS = st.one_of(
    st.lists(st.binary(max_size=40), max_size=300),
    st.lists(st.binary(min_size=16, max_size=16), max_size=300),
)
BITS_PER_KEY = st.sampled_from([1, 2, 5, 10, 16, 23, 50])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 200), max_size=150),
    st.sampled_from([0, 8]),
    st.sampled_from([1, 3, 1 << 16]),
    st.sampled_from([1, 64]),
    st.randoms(use_true_random=False),
)
def test_batched_crc32c_equals_crc32c(lengths, skip, slab, few, rng):
    """Keys of every length: words by numpy in slabs of any size, tails of
    1-3 bytes, keys past the numpy words or too few for numpy finished by
    crc32c from where numpy left them."""
    keys = [rng.randbytes(n + skip) for n in lengths]
    with mock.patch.object(ragged, "SLAB_WORDS", slab), mock.patch.object(keyfilter, "_FEW_KEYS", few):
        got = crc32c_of_keys(keys, skip).tolist()
    assert got == [crc32c(key[: len(key) - skip]) for key in keys]


@settings(max_examples=200, deadline=None)
@given(KEY_LISTS, BITS_PER_KEY, st.binary(min_size=8, max_size=8))
def test_filter_equals_reference(user_keys, bits_per_key, trailer):
    """User keys or internal keys (whose last 8 bytes are not hashed), empty
    keys and duplicates, added in pieces and hashed in batches of any size:
    the bytes the layout describes."""
    from_user_keys = KeyFilterBuilder(bits_per_key)
    from_user_keys.add_user_keys(user_keys)
    from_pieces = KeyFilterBuilder(bits_per_key)
    with mock.patch.object(keyfilter, "_BATCH_KEYS", 1 + trailer[0] % 50):
        for i in range(0, len(user_keys), 7):
            piece = user_keys[i : i + 7]
            if i % 2:
                from_pieces.add_user_keys(piece)
            else:
                from_pieces.add_keys([u + trailer for u in piece])
    expected = reference_key_filter(user_keys, bits_per_key)
    assert from_user_keys.finish() == expected
    assert from_pieces.finish() == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(KEY_LISTS, BITS_PER_KEY), min_size=1, max_size=3),
       st.lists(st.tuples(st.integers(0, 2), st.binary(max_size=40), st.booleans()), max_size=60))
def test_reader_answers_equal_reference_whatever_was_asked_before(filters, lookups):
    """The reader keeps the mask of the last hash it was asked about: readers
    of other k, the same hash again or another in any order must not matter;
    and no key added is ever missed."""
    blocks = []
    for keys, bits in filters:
        builder = KeyFilterBuilder(bits)
        builder.add_user_keys(keys)
        blocks.append(builder.finish())
    readers = [KeyFilterReader(data) for data in blocks]
    for (keys, _), reader in zip(filters, readers):
        assert all(reader.may_match(key_hash(key)) for key in keys)
    for which, key, from_added in lookups:
        which %= len(readers)
        keys = filters[which][0]
        if from_added and keys:
            key = keys[len(key) % len(keys)]
        assert readers[which].may_match(key_hash(key)) == reference_may_match(key, blocks[which])


def test_false_positives_near_one_percent_at_ten_bits():
    for make in (lambda i: b"key%08d" % i, lambda i: i.to_bytes(8, "big"), lambda i: b"user%d" % (i * 7919)):
        builder = KeyFilterBuilder(10)
        builder.add_user_keys([make(i) for i in range(20000)])
        reader = KeyFilterReader(builder.finish())
        hits = sum(reader.may_match(key_hash(make(i))) for i in range(20000, 60000))
        assert hits < 600  # 1.5%; about 1.1% measured


def test_cached_key_hash_follows_the_key_object():
    key = b"k" * 20
    same_bytes = bytes(bytearray(key))
    assert cached_key_hash(key) == key_hash(key)
    assert cached_key_hash(same_bytes) == key_hash(key)
    assert cached_key_hash(b"other") == key_hash(b"other")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x06", bytes(64), bytes(65)[:-1] + b"\x00", bytes(64) + b"\x1f", bytes(100) + b"\x06"],
)
def test_malformed_key_filter_raises(data):
    with pytest.raises(DecodeError):
        KeyFilterReader(data)


# ---------------------------------------------------------------- tables



def metaindex_keys(data):
    meta_handle, _ = decode_footer(data[-48:])
    offset, size = meta_handle
    return decode_block(unpack_block(data[offset : offset + size + 5], size))[0]


def test_table_has_both_filters_and_our_filter_rejects_absent_keys():
    entries = [(make_internal_key(b"key%06d" % i, i + 1, TYPE_VALUE), b"v%d" % i) for i in range(3000)]
    data = table_bytes(entries, block_size=1024, compression="snappy", bloom_bits_per_key=10)
    assert metaindex_keys(data) == [FILTER_META_KEY, KEY_FILTER_META_KEY]
    table = Table.open(MemFile(data), path="t")
    for i in range(3000):
        ukey = b"key%06d" % i
        assert table.may_contain(ukey) and table.may_contain(ukey, key_hash(ukey))
        assert table.get(ukey, 1 << 40, key_hash=key_hash(ukey)) == (TYPE_VALUE, b"v%d" % i)
    absent = [b"key%06d!" % i for i in range(3000)]
    assert sum(table.may_contain(k, key_hash(k)) for k in absent) < 90
    assert all(table.get(k, 1 << 40) is None for k in absent)
    assert metaindex_keys(table_bytes(entries, bloom_bits_per_key=10, lsm_filter=False)) == [FILTER_META_KEY]
    assert metaindex_keys(table_bytes(entries, bloom_bits_per_key=0)) == []


def test_damaged_key_filter_is_reported_at_open():
    entries = [(make_internal_key(b"key%06d" % i, i + 1, TYPE_VALUE), b"v") for i in range(100)]
    data = bytearray(table_bytes(entries, compression=None, bloom_bits_per_key=10))
    meta_handle, _ = decode_footer(bytes(data[-48:]))
    # lsm's filter block sits right before the metaindex: flip a bit of it.
    data[meta_handle[0] - 5 - 3] ^= 1
    with pytest.raises(CorruptionError, match="filter"):
        Table.open(MemFile(bytes(data)), path="t")


def test_plyvel_reads_our_table_of_keys_up_to_100_kib_through_its_filter(tmp_path):
    """LevelDB consults its filter at every get: a wrong bit would be a key it
    cannot find. Keys of every length up to 100 KiB, one empty."""
    rng = random.Random(16)
    ukeys = sorted({rng.randbytes(rng.randrange(100 << 10)) for _ in range(150)} | {b""})
    entries = [(make_internal_key(u, i + 1, TYPE_VALUE), b"%d" % i) for i, u in enumerate(ukeys)]
    path = write_db_of_one_table(
        str(tmp_path), entries, len(entries), TableOptions(compression="snappy", bloom_bits_per_key=10)
    )
    with open(path, "rb") as f:
        table = Table.open(MemFile(f.read()), path=path)
    assert all(table.may_contain(u) for u in ukeys)
    db = plyvel.DB(str(tmp_path), paranoid_checks=True, bloom_filter_bits=10)
    try:
        for i, ukey in enumerate(ukeys):
            assert db.get(ukey, verify_checksums=True) == b"%d" % i
            assert db.get(ukey + b"!", verify_checksums=True) is None
        assert [k for k, _ in db.iterator(verify_checksums=True)] == ukeys
    finally:
        db.close()


def test_leveldb_tables_are_filtered_through_leveldb_filter(tmp_path):
    db = plyvel.DB(str(tmp_path), create_if_missing=True, bloom_filter_bits=10, write_buffer_size=64 << 10)
    for i in range(20000):
        db.put(b"key%06d" % i, b"value%d" % i)
    db.close()
    plyvel.DB(str(tmp_path), bloom_filter_bits=10).close()  # flushes what the log still held
    present = absent = 0
    paths = table_files(tmp_path)
    assert paths
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        assert metaindex_keys(data) == [FILTER_META_KEY]
        table = Table.open(MemFile(data), path=path)
        ukeys = [ikey[:-8] for ikey, _ in table.iter_entries()]
        assert all(table.may_contain(u) and table.get(u, 1 << 40)[0] == TYPE_VALUE for u in ukeys)
        present += len(ukeys)
        # Absent keys inside the table's range reach LevelDB's filter.
        others = [u + b"!" for u in ukeys]
        absent += sum(table.may_contain(u, key_hash(u)) for u in others)
        assert all(table.get(u, 1 << 40) is None for u in others)
    assert present >= 20000 and absent < present * 0.03
