"""A table's index block decoded in bulk (a restart at every entry, handles
decoded as a byte matrix) against a plain reference decoder: index blocks
lsm writes, LevelDB writes (through plyvel), blocks at any restart interval,
handles of every length, and index blocks damaged under a valid checksum,
which must fail the open with CorruptionError naming the file and the index
block, or decode exactly as the reference does."""
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsm.coding import masked_crc32c
from lsm.errors import CorruptionError, DecodeError
from lsm.fileio import DEFAULT_FS
from lsm.keys import make_internal_key
from lsm.table import Table
from lsm.table.block import BlockBuilder, decode_block_split, split_restart_entries
from lsm.table.format import (
    BLOCK_TRAILER_SIZE,
    FOOTER_SIZE,
    NO_COMPRESSION,
    decode_footer,
    decode_handle,
    decode_handles,
    encode_footer,
    encode_handle,
    unpack_block,
)
from table_helpers import MemFile
from test_table_decode import internal_entries, reference_decode, reference_split, table_bytes

plyvel = pytest.importorskip("plyvel")

PATH = "index.ldb"


class NotAnIndex(Exception):
    """The reference declines the block: the open must fail."""


def reference_index(block: bytes, data_end: int):
    """(user keys, tags, offsets, sizes) as an index block is read entry by
    entry; NotAnIndex for any block lsm must refuse."""
    if len(block) < 4:
        raise NotAnIndex("short")
    (count,) = struct.unpack_from("<I", block, len(block) - 4)
    if not 0 < count <= (len(block) - 4) // 4:
        raise NotAnIndex("restart count")
    try:
        entries = reference_decode(block)
    except Exception as exc:  # the reference's own way of failing on garbage
        raise NotAnIndex(repr(exc)) from None
    ukeys, tags, offsets, sizes = [], [], [], []
    for key, value in entries:
        if len(key) < 8 or key[-8] > 1:
            raise NotAnIndex("internal key")
        try:
            offset, size, end = decode_handle(value)
        except Exception as exc:
            raise NotAnIndex(repr(exc)) from None
        if end != len(value) or offset + size + BLOCK_TRAILER_SIZE > data_end:
            raise NotAnIndex("handle")
        ukeys.append(key[:-8])
        tags.append(int.from_bytes(key[-8:], "little"))
        offsets.append(offset)
        sizes.append(size)
    order = [(k, -t) for k, t in zip(ukeys, tags)]
    if any(a >= b for a, b in zip(order, order[1:])):
        raise NotAnIndex("order")
    if any(o + s + BLOCK_TRAILER_SIZE > n for o, s, n in zip(offsets, sizes, offsets[1:])):
        raise NotAnIndex("overlap")
    return ukeys, tags, offsets, sizes


def index_of(data: bytes):
    """(index contents, index offset) of a table."""
    _meta, (offset, size) = decode_footer(data[-FOOTER_SIZE:])
    return unpack_block(data[offset : offset + size + BLOCK_TRAILER_SIZE], size), offset


def with_index_contents(data: bytes, contents: bytes) -> bytes:
    """The table with its index replaced by `contents`, stored raw with a valid checksum."""
    meta, (offset, _size) = decode_footer(data[-FOOTER_SIZE:])
    trailer = bytes([NO_COMPRESSION]) + struct.pack("<I", masked_crc32c(contents + b"\x00"))
    return data[:offset] + contents + trailer + encode_footer(meta, (offset, len(contents)))


def opened_index(table):
    return table.index_user_keys, table._index_tags, table._offsets, table._sizes


def check_index_opens_as_the_reference(data: bytes):
    contents, offset = index_of(data)
    try:
        expected = reference_index(contents, offset)
    except NotAnIndex:
        with pytest.raises(CorruptionError) as info:
            Table.open(MemFile(data), path=PATH)
        assert info.value.path == PATH and info.value.offset == offset
        return
    assert list(map(list, opened_index(Table.open(MemFile(data), path=PATH)))) == list(expected)


def check_split_as_the_reference(block: bytes):
    try:
        split = split_restart_entries(block)
    except DecodeError:
        with pytest.raises(DecodeError):
            decode_block_split(block)
        return
    if split is None:
        return
    ukeys, tags, value_starts, value_ends = split
    values = [block[a:b] for a, b in zip(value_starts.tolist(), value_ends.tolist())]
    assert (ukeys, tags, values) == reference_split(block)


# ---------------------------------------------------------------- blocks


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(entries=internal_entries(max_keys=60), interval=st.integers(1, 20))
def test_blocks_at_any_restart_interval_split_as_the_reference_or_are_declined(entries, interval):
    builder = BlockBuilder(interval)
    for key, value in entries:
        builder.add(key, value)
    check_split_as_the_reference(builder.finish())


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.binary(max_size=100), min_size=1, max_size=80, unique=True),
       values=st.lists(st.binary(max_size=119), min_size=80, max_size=80))
def test_restart_at_every_entry_blocks_of_short_entries_decode_in_bulk(keys, values):
    builder = BlockBuilder(1)
    for i, key in enumerate(sorted(keys)):
        builder.add(make_internal_key(key, i, i & 1), values[i])
    block = builder.finish()
    assert split_restart_entries(block) is not None
    check_split_as_the_reference(block)


@settings(max_examples=300, deadline=None)
@given(base=st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=12)), min_size=1, max_size=20),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4))
def test_damaged_blocks_split_as_the_reference_or_are_declined(base, flips):
    builder = BlockBuilder(1)
    for i, (key, value) in enumerate(sorted(dict(base).items())):
        builder.add(make_internal_key(key, i, 1), value)
    block = bytearray(builder.finish())
    for at, byte in flips:
        block[at % len(block)] = byte
    check_split_as_the_reference(bytes(block))


# ---------------------------------------------------------------- handles

handle_ints = st.one_of(st.integers(0, 1 << 20), st.integers(0, (1 << 63) - 1), st.integers(0, (1 << 64) - 1))


@settings(max_examples=200, deadline=None)
@given(handles=st.lists(st.tuples(handle_ints, handle_ints), min_size=1, max_size=50), junk=st.binary(max_size=3))
def test_handles_decode_together_as_one_at_a_time(handles, junk):
    encoded = [encode_handle(o, s) for o, s in handles]
    data = junk + b"".join(encoded)
    lengths = np.array(list(map(len, encoded)), dtype=np.int64)
    starts = np.cumsum(lengths) - lengths + len(junk)
    decoded = decode_handles(data, starts, lengths)
    if max(lengths) <= 9:
        assert decoded is not None
    if decoded is not None:
        assert list(zip(*(column.tolist() for column in decoded))) == handles


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=1, max_size=60), cuts=st.lists(st.integers(1, 12), min_size=1, max_size=8))
def test_any_bytes_decode_as_handles_only_as_decode_handle_reads_them(data, cuts):
    lengths = np.array(cuts, dtype=np.int64)
    starts = (np.cumsum(lengths) - lengths) % len(data)
    lengths = np.minimum(lengths, len(data) - starts)
    decoded = decode_handles(data, starts, lengths)
    if decoded is None:
        return
    for i, (offset, size) in enumerate(zip(*(column.tolist() for column in decoded))):
        start, length = int(starts[i]), int(lengths[i])
        assert decode_handle(data[start : start + length]) == (offset, size, length)


# ---------------------------------------------------------------- tables


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(entries=internal_entries(max_keys=60), block_size=st.sampled_from([64, 256, 4096]))
def test_index_lsm_writes_opens_as_the_reference_reads_it(entries, block_size):
    check_index_opens_as_the_reference(table_bytes(entries, block_size=block_size))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=3))
def test_index_damaged_under_a_valid_checksum_fails_the_open_or_reads_as_the_reference(flips):
    entries = [(make_internal_key(b"key%05d" % i, 1, 1), b"v" * (i % 300)) for i in range(400)]
    data = table_bytes(entries, block_size=256, compression=None)
    contents = bytearray(index_of(data)[0])
    for at, byte in flips:
        contents[at % len(contents)] = byte
    check_index_opens_as_the_reference(with_index_contents(data, bytes(contents)))


def test_index_of_long_keys_and_long_handles_takes_the_entry_loop_and_reads_as_the_reference():
    # Separators over 120 bytes: lengths of two varint bytes, not decoded in bulk.
    entries = [(make_internal_key(b"k" * 150 + b"%04d" % i, 1, 1), b"v" * 200) for i in range(200)]
    data = table_bytes(entries, block_size=256, compression=None)
    contents, _offset = index_of(data)
    assert split_restart_entries(contents) is None
    check_index_opens_as_the_reference(data)


@pytest.mark.parametrize("compression", [None, "snappy"])
def test_index_leveldb_writes_opens_as_the_reference_reads_it(tmp_path, compression):
    path = str(tmp_path / "leveldb")
    db = plyvel.DB(path, create_if_missing=True, block_size=256, compression=compression, write_buffer_size=64 << 10)
    for i in range(3000):
        db.put(b"user%08d" % (i * 7919 % 3001), b"value %d " % i * (i % 20))
        if i % 7 == 0:
            db.delete(b"user%08d" % (i * 31 % 3001))
    db.compact_range()
    db.close()
    tables = [name for name in os.listdir(path) if name.endswith(".ldb")]
    assert tables
    for name in tables:
        data = DEFAULT_FS.read_file(os.path.join(path, name))
        contents, _offset = index_of(data)
        assert split_restart_entries(contents) is not None
        check_index_opens_as_the_reference(data)
