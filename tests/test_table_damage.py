"""Damaged tables: every answer is either exactly right or a CorruptionError that
names the file and an offset -- never a wrong value, a phantom key or a false miss."""
import random
import struct

import pytest

from lsm.coding import masked_crc32c
from lsm.table.options import TableOptions
from lsm.errors import CorruptionError
from lsm.keys import MAX_SEQUENCE, TYPE_DELETION, TYPE_VALUE, make_internal_key
from lsm.table import Table, TableBuilder
from lsm.table.block import BlockBuilder
from lsm.table.format import (
    BLOCK_TRAILER_SIZE,
    FOOTER_SIZE,
    NO_COMPRESSION,
    decode_footer,
    encode_footer,
    encode_handle,
)
from table_helpers import MemFile

PATH = "/db/000009.ldb"


def small_table(compression="snappy", bloom=10):
    """A few blocks: some Snappy-compressed, some stored raw, and a filter block."""
    rng = random.Random(3)
    entries = []
    for i in range(40):
        kind = TYPE_DELETION if i % 9 == 4 else TYPE_VALUE
        value = b"" if kind == TYPE_DELETION else (b"ab" * 20 if i % 2 else rng.randbytes(12))
        entries.append((make_internal_key(b"key%03d" % i, 100 + i, kind), value))
    out = []
    builder = TableBuilder(
        TableOptions(block_size=300, compression=compression, bloom_bits_per_key=bloom), out.append
    )
    for k, v in entries:
        builder.add(k, v)
    builder.finish()
    return entries, b"".join(out)


def expected_answers(entries):
    return {k[:-8]: (k[-8], v) for k, v in entries}


ABSENT = [b"key", b"key0005", b"key0399", b"zzz", b"", b"key039\xff"]


def check_answers_or_corruption(data, entries, size):
    """Each operation returns exactly the right thing or raises CorruptionError
    naming the file and an offset inside it. Returns whether any operation raised."""
    answers = expected_answers(entries)
    raised = []

    def attempt(operation):
        try:
            operation()
        except CorruptionError as exc:
            assert exc.path == PATH
            assert isinstance(exc.offset, int) and 0 <= exc.offset < max(size, 1), exc
            raised.append(exc)

    opened = []
    attempt(lambda: opened.append(Table.open(MemFile(data), path=PATH, number=9)))
    if not opened:
        return True
    table = opened[0]

    def whole_table():
        assert list(table.iter_entries()) == entries

    def get(ukey, answer):
        assert table.get(ukey, MAX_SEQUENCE) == answer, ukey

    def block(i):
        ukeys, tags, values = table.block(i)
        for ukey, tag, value in zip(ukeys, tags, values):
            assert answers[ukey] == (tag & 0xFF, value)

    attempt(whole_table)
    for ukey, answer in answers.items():
        attempt(lambda: get(ukey, answer))
    for ukey in ABSENT:
        attempt(lambda: get(ukey, None))
    for i in range(table.num_blocks):
        attempt(lambda: block(i))
    return bool(raised)


@pytest.mark.parametrize("mask", [0xFF, 0x01])
def test_flip_every_byte(mask):
    entries, good = small_table()
    assert check_answers_or_corruption(good, entries, len(good)) is False
    detected = 0
    for pos in range(len(good)):
        damaged = bytearray(good)
        damaged[pos] ^= mask
        detected += check_answers_or_corruption(bytes(damaged), entries, len(good))
    # Every flip before the footer hits a checksummed block and is detected;
    # in the footer only the zero padding goes unchecked (as in LevelDB).
    assert detected >= len(good) - FOOTER_SIZE


def test_flip_every_byte_uncompressed_without_filter():
    entries, good = small_table(compression=None, bloom=0)
    for pos in range(len(good)):
        damaged = bytearray(good)
        damaged[pos] ^= 0x10
        check_answers_or_corruption(bytes(damaged), entries, len(good))


def test_truncated_at_every_length():
    entries, good = small_table()
    for length in range(len(good)):
        with pytest.raises(CorruptionError) as info:
            Table.open(MemFile(good[:length]), path=PATH)
        assert info.value.path == PATH and isinstance(info.value.offset, int)


# ------------------------------------------------ damage behind a valid checksum
# A buggy writer can produce blocks whose CRC is right and whose contents are not.


def locate(data):
    """(metaindex (off, size), index (off, size), first data block (off, size))."""
    meta, index = decode_footer(data[-FOOTER_SIZE:])
    table = Table.open(MemFile(data), path=PATH)
    return meta, index, (table._offsets[0], table._sizes[0])


def reseal(data, offset, size, contents):
    """Replace a block's stored bytes (stored raw) and give it a valid trailer."""
    assert len(contents) == size
    out = bytearray(data)
    out[offset : offset + size] = contents
    out[offset + size] = 0
    crc = masked_crc32c(bytes(contents) + b"\x00")
    struct.pack_into("<I", out, offset + size + 1, crc)
    return bytes(out)


def with_index(good, handles):
    """The table `good` with its index replaced by a well-formed one (valid
    CRC) of these block handles; (table bytes, the new index's offset)."""
    meta, (index_off, _), _ = locate(good)
    index = BlockBuilder(1)
    for i, handle in enumerate(handles):
        index.add(make_internal_key(b"key%03d" % i, 1, TYPE_VALUE), encode_handle(*handle))
    contents = index.finish()
    trailer = bytes([NO_COMPRESSION]) + struct.pack("<I", masked_crc32c(contents + b"\x00"))
    return good[:index_off] + contents + trailer + encode_footer(meta, (index_off, len(contents))), index_off


def test_index_handle_beyond_file_size():
    """A well-formed index block (valid CRC) whose handle points past the file."""
    entries, good = small_table(compression=None, bloom=0)
    index_off = locate(good)[1][0]
    data, index_off = with_index(good, [(index_off - 10, 100)])
    with pytest.raises(CorruptionError, match="past the end") as info:
        Table.open(MemFile(data), path=PATH)
    assert info.value.offset == index_off


def test_index_handles_out_of_file_order_are_corruption():
    """A well-formed index whose handles point at the data blocks in another
    order than the file's: refused at open, since a compaction reads a run
    of blocks with one read."""
    entries, good = small_table(compression=None, bloom=0)
    table = Table.open(MemFile(good), path=PATH)
    assert table.num_blocks >= 3
    handles = list(zip(table._offsets, table._sizes))
    handles[0], handles[1] = handles[1], handles[0]
    data, index_off = with_index(good, handles)
    with pytest.raises(CorruptionError, match="out of order") as info:
        Table.open(MemFile(data), path=PATH)
    assert info.value.offset == index_off


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda b: b[:-4] + struct.pack("<I", 0), "restart count"),
        (lambda b: b[:-4] + struct.pack("<I", 10**6), "restart count"),
        (lambda b: b[:2] + bytes([b[2] + 100]) + b[3:], "data block"),
        (lambda b: b[:3] + b[3:].replace(b"\x01\x64", b"\x07\x64", 1), "type"),
    ],
)
def test_bad_data_block_with_valid_crc(damage, reason):
    entries, good = small_table(compression=None, bloom=0)
    _, _, (off, size) = locate(good)
    data = reseal(good, off, size, damage(good[off : off + size]))
    table = Table.open(MemFile(data), path=PATH)
    with pytest.raises(CorruptionError, match=reason) as info:
        table.block(0)
    assert info.value.offset == off
    with pytest.raises(CorruptionError, match=reason):
        list(table.iter_entries())


def test_bad_magic_names_footer():
    entries, good = small_table()
    data = good[:-1] + b"\x00"
    with pytest.raises(CorruptionError, match="magic") as info:
        Table.open(MemFile(data), path=PATH)
    assert info.value.offset == len(good) - 8


def test_damaged_filter_raises_instead_of_false_miss():
    entries, good = small_table(compression=None, bloom=10)
    table = Table.open(MemFile(good), path=PATH)
    filter_off = table._offsets[-1] + table._sizes[-1] + BLOCK_TRAILER_SIZE
    damaged = bytearray(good)
    damaged[filter_off] ^= 0xFF
    with pytest.raises(CorruptionError, match="filter") as info:
        Table.open(MemFile(bytes(damaged)), path=PATH)
    assert info.value.offset == filter_off
    # bloom=False: the filter is not consulted, but damage is still reported
    with pytest.raises(CorruptionError):
        Table.open(MemFile(bytes(damaged)), path=PATH, bloom=False)


@pytest.mark.parametrize(
    "stored",
    [b"", b"\x80", b"\xff\xff\xff\xff\x0f", b"\xff\x7fx", b"\x05abc", b"\x10\x00"],
    ids=["empty", "truncated-length", "claims-4GiB", "claims-16KiB-in-two-bytes", "bad-offset", "short-output"],
)
def test_bad_snappy_block_with_valid_crc(stored):
    from lsm.errors import DecodeError
    from lsm.table.format import block_trailer, unpack_block

    with pytest.raises(DecodeError):
        unpack_block(stored + block_trailer(stored, 1), len(stored))


@pytest.mark.parametrize("compression", ["snappy", None])
def test_flip_in_blocks_read_together_names_the_damaged_block(compression):
    """A compaction reads a table's blocks together (joined_contents_of_blocks):
    any flipped byte of a block is a CorruptionError at that block's offset,
    never contents that differ."""
    entries, good = small_table(compression=compression, bloom=0)
    table = Table.open(MemFile(good), path=PATH, number=9)
    n = table.num_blocks
    assert table.joined_contents_of_blocks(0, n)[0] == b"".join(table.contents_of_blocks(0, n))
    starts = [table.block_offset(i) for i in range(n)]
    data_end = table.block_offset(n - 1) + table._sizes[n - 1] + BLOCK_TRAILER_SIZE
    for pos in range(data_end):
        damaged = bytearray(good)
        damaged[pos] ^= 0x01
        reopened = Table.open(MemFile(bytes(damaged)), path=PATH, number=9)
        with pytest.raises(CorruptionError) as info:
            reopened.joined_contents_of_blocks(0, n)
        assert info.value.path == PATH
        assert info.value.offset == max(at for at in starts if at <= pos)


@pytest.mark.parametrize(
    "stored",
    [b"", b"\x80", b"\xff\xff\xff\xff\x0f", b"\xff\x7fx", b"\x05abc", b"\x10\x00"],
    ids=["empty", "truncated-length", "claims-4GiB", "claims-16KiB-in-two-bytes", "bad-offset", "short-output"],
)
def test_bad_snappy_block_among_good_ones_is_named(stored):
    from lsm.errors import DecodeError
    from lsm.table.format import block_trailer, compress_block, unpack_blocks

    good, _ = compress_block(b"abcd" * 300, "snappy")
    blocks = [good, good, stored, good]
    framed = b"".join(b + block_trailer(b, 1) for b in blocks)
    offsets = [0]
    for b in blocks[:-1]:
        offsets.append(offsets[-1] + len(b) + BLOCK_TRAILER_SIZE)
    with pytest.raises(DecodeError) as info:
        unpack_blocks(framed, offsets, [len(b) for b in blocks])
    assert info.value.block == 2
    contents, lengths = unpack_blocks(framed, offsets[:2], [len(good)] * 2)
    assert contents == b"abcd" * 600 and lengths == [1200, 1200]
