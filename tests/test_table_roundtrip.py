"""Tables written by TableBuilder read back by Table: every entry, every block,
every point lookup at every snapshot; plus the exact bytes LevelDB writes for
a one-entry table (apple -> red at sequence 1)."""
import os
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsm.table.options import TableOptions
from lsm.fileio import DEFAULT_FS
from lsm.keys import TYPE_DELETION, TYPE_VALUE, make_internal_key, sort_key
from lsm.table import BlockCache, Table, TableBuilder
from lsm.table.format import (
    FOOTER_SIZE,
    MAGIC,
    decode_footer,
    decode_handle,
    encode_footer,
    encode_handle,
)
from table_helpers import MemFile


def build_table(entries, **options):
    out = []
    builder = TableBuilder(TableOptions(**options), out.append)
    for ikey, value in entries:
        builder.add(ikey, value)
    size = builder.finish()
    data = b"".join(out)
    assert size == len(data) == builder.file_size
    return builder, data


def open_table(data, **kw):
    return Table.open(MemFile(data), path="t.ldb", **kw)


# ---------------------------------------------------------------- exact bytes

SPEC_EXAMPLE = bytes.fromhex(
    "000d03" + b"apple".hex() + "0101000000000000" + b"red".hex() + "00000000" + "01000000"
    "00" "9de715ec"
    "000000000000c00f06" "00000000" "09000000" "0b"
    "00" "03b0b812"
    "002202" + b"filter.leveldb.BuiltinBloomFilter2".hex() + "2012" "00000000" "01000000"
    "00" "2b51f7e5"
    "000902" + b"b".hex() + "01ffffffffffffff" "001b" "00000000" "01000000"
    "00" "25f38eb7"
    "372f6b16" + "00" * 36 + "57fb808b247547db"
)


def test_spec_example_table_byte_for_byte():
    assert len(SPEC_EXAMPLE) == 182
    builder, data = build_table(
        [(make_internal_key(b"apple", 1, TYPE_VALUE), b"red")], compression=None, bloom_bits_per_key=10,
        lsm_filter=False,
    )
    assert data == SPEC_EXAMPLE
    assert builder.num_entries == 1
    assert builder.smallest == builder.largest == make_internal_key(b"apple", 1, TYPE_VALUE)
    table = open_table(data)
    assert table.get(b"apple", 1) == (TYPE_VALUE, b"red")
    assert table.get(b"apple", 0) is None
    assert table.get(b"apricot", 9) is None


def test_footer_and_handles():
    footer = encode_footer((55, 47), (107, 22))
    assert len(footer) == FOOTER_SIZE and footer == SPEC_EXAMPLE[-48:]
    assert decode_footer(footer) == ((55, 47), (107, 22))
    assert struct.unpack("<Q", footer[-8:])[0] == MAGIC == 0xDB4775248B80FB57
    big = encode_handle(1 << 40, 300)
    assert decode_handle(big) == (1 << 40, 300, len(big))
    wide = encode_footer((2**64 - 1, 2**64 - 1), (2**64 - 1, 2**64 - 1))
    assert decode_footer(wide) == ((2**64 - 1,) * 2, (2**64 - 1,) * 2)


def test_empty_table_and_no_filter_table():
    _, data = build_table([], bloom_bits_per_key=0, compression=None)
    # data: none; metaindex and index: empty 8-byte blocks (+ trailers); footer.
    assert len(data) == 13 + 13 + 48
    table = open_table(data)
    assert table.num_blocks == 0
    assert list(table.iter_entries()) == []
    assert table.get(b"x", 100) is None
    assert table.find_block(b"x") == 0
    _, data = build_table([], bloom_bits_per_key=10)
    assert open_table(data).get(b"x", 100) is None


def test_snappy_used_only_when_it_saves_an_eighth():
    compressible = [(make_internal_key(b"k%05d" % i, i + 1, 1), b"a" * 100) for i in range(100)]
    rng = random.Random(1)
    incompressible = [(make_internal_key(b"k%05d" % i, i + 1, 1), rng.randbytes(100)) for i in range(100)]
    for entries, expect_type in [(compressible, 1), (incompressible, 0)]:
        _, data = build_table(entries, compression="snappy", bloom_bits_per_key=0)
        table = open_table(data)
        first = table._offsets[0]
        assert data[first + table._sizes[0]] == expect_type
        assert list(table.iter_entries()) == entries


def test_unknown_compression_is_rejected():
    with pytest.raises(ValueError):
        TableBuilder(TableOptions(compression="zstd"), [].append)


# ---------------------------------------------------------------- round trips


def reference_get(entries, ukey, sequence):
    for ikey, value in entries:
        if ikey[:-8] == ukey:
            tag = int.from_bytes(ikey[-8:], "little")
            if tag >> 8 <= sequence:
                return tag & 0xFF, value
    return None


@st.composite
def table_contents(draw):
    ukeys = draw(
        st.lists(
            st.one_of(st.binary(max_size=12), st.binary(min_size=1, max_size=3).map(lambda b: b * 40)),
            unique=True,
            max_size=80,
        )
    )
    entries = []
    seq = 1
    for ukey in ukeys:
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from([TYPE_VALUE, TYPE_VALUE, TYPE_DELETION]))
            value = b"" if kind == TYPE_DELETION else draw(st.binary(max_size=300))
            entries.append((make_internal_key(ukey, seq, kind), value))
            seq += draw(st.integers(1, 1000))
    entries.sort(key=lambda e: sort_key(e[0]))
    return entries, seq


options = st.fixed_dictionaries(
    {
        "block_size": st.sampled_from([1, 64, 256, 1024, 4096]),
        "block_restart_interval": st.integers(1, 17),
        "compression": st.sampled_from([None, "snappy"]),
        "bloom_bits_per_key": st.sampled_from([0, 1, 10]),
    }
)


@settings(max_examples=120, deadline=None)
@given(contents=table_contents(), opts=options, data=st.data())
def test_table_round_trip(contents, opts, data):
    entries, max_seq = contents
    builder, raw = build_table(entries, **opts)
    assert builder.num_entries == len(entries)
    if entries:
        assert builder.smallest == entries[0][0] and builder.largest == entries[-1][0]
    table = open_table(raw, number=7, block_cache=BlockCache(1 << 16))
    assert list(table.iter_entries()) == entries
    # get() answers from raw blocks (restart-point search) on first touch and
    # from decoded blocks once cached; a zero-size cache keeps it on raw blocks.
    uncached = open_table(raw, number=8, block_cache=BlockCache(0))

    # block(i) concatenated is the whole table, as (ukey, tag, value)
    rows = []
    for i in range(table.num_blocks):
        ukeys, tags, values = table.block(i)
        rows += zip(ukeys, tags, values)
    assert rows == [(k[:-8], int.from_bytes(k[-8:], "little"), v) for k, v in entries]

    # get at random snapshots, present and absent keys
    ukeys = sorted({k[:-8] for k, _ in entries})
    probes = list(ukeys) + [u + b"\x00" for u in ukeys] + [b"", b"\xff" * 5]
    for ukey in probes:
        seq = data.draw(st.integers(0, max_seq + 1))
        expected = reference_get(entries, ukey, seq)
        assert uncached.get(ukey, seq) == expected, (ukey, seq)
        assert table.get(ukey, seq) == expected, (ukey, seq)  # raw, then decoded
        assert table.get(ukey, seq) == expected, (ukey, seq)
        assert table.get(ukey, max_seq) == reference_get(entries, ukey, max_seq)

    # find_block: the first block that may hold the key holds its newest version
    for ukey in ukeys:
        i = table.find_block(ukey)
        assert ukey in table.block(i)[0]
    assert table.find_block(b"\xff" * 200) == table.num_blocks

    offsets = [table.approximate_offset_of(u) for u in probes]
    assert all(0 <= o <= len(raw) for o in offsets)
    order = sorted(range(len(probes)), key=lambda i: probes[i])
    assert [offsets[i] for i in order] == sorted(offsets)


def test_versions_of_one_key_spanning_many_blocks():
    """get must walk on into the next blocks when a block holds only newer versions."""
    entries = [(make_internal_key(b"k", seq, TYPE_VALUE), b"v%d" % seq) for seq in range(300, 0, -1)]
    entries.append((make_internal_key(b"l", 1, TYPE_VALUE), b"l"))
    for bloom in (0, 10):
        _, raw = build_table(entries, block_size=64, compression=None, bloom_bits_per_key=bloom)
        table = open_table(raw)
        assert table.num_blocks > 20
        for seq in (1, 2, 150, 299, 300, 10**6):
            assert table.get(b"k", seq) == (TYPE_VALUE, b"v%d" % min(seq, 300))
        assert table.get(b"k", 0) is None
        assert table.get(b"l", 5) == (TYPE_VALUE, b"l")
        assert table.get(b"kk", 5) is None


def test_large_table_through_fileio(tmp_path):
    path = str(tmp_path / "000001.ldb")
    f = DEFAULT_FS.create(path)
    builder = TableBuilder(TableOptions(), f.append)
    entries = [(make_internal_key(b"key%06d" % i, i + 1, 1), b"value%d" % i * 5) for i in range(20000)]
    for k, v in entries:
        builder.add(k, v)
    size = builder.finish()
    f.close()
    assert os.path.getsize(path) == size
    rf = DEFAULT_FS.open_random(path)
    cache = BlockCache(64 << 10)
    table = Table.open(rf, path=path, number=1, block_cache=cache)
    assert list(table.iter_entries()) == entries
    for i in range(0, 20000, 97):
        assert table.get(b"key%06d" % i, 10**9) == (1, b"value%d" % i * 5)
        assert table.get(b"key%06dx" % i, 10**9) is None
    assert cache.usage <= 64 << 10
    no_bloom = Table.open(rf, path=path, number=1, bloom=False)
    for i in range(0, 20000, 997):
        assert no_bloom.get(b"key%06d" % i, 10**9) == (1, b"value%d" % i * 5)
        assert no_bloom.get(b"key%06dx" % i, 10**9) is None
    rf.close()
