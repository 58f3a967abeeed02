"""The one block decoder against a plain reference decoder, on blocks of
every shape: written by lsm's table builder (prefix compression on or off),
by LevelDB's block layout at any restart interval, and by LevelDB itself
(plyvel); keys and values of any length, empty ones and values over 64 KiB.
Seeks, decodes from a restart point and point lookups (on the decoded block
and on the raw one) agree with the reference too, and plyvel reads every table lsm writes with paranoid checks.
"""
import os
import struct
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsm import filenames
from lsm.errors import DecodeError
from lsm.fileio import DEFAULT_FS
from lsm.filemeta import FileMetaData
from lsm.keys import COMPARATOR_NAME, make_internal_key
from lsm.record import LogWriter
from lsm.table import BlockCache, Table
from lsm.table.block import (
    PAST_END,
    BlockBuilder,
    decode_block,
    decode_block_split,
    decode_block_split_from,
    find_in_block,
    seek_block,
)
from lsm.table.cache import block_charge
from lsm.version_edit import VersionEdit
from table_helpers import MemFile, table_bytes

plyvel = pytest.importorskip("plyvel")


# ---------------------------------------------------------------- reference


def reference_decode(block: bytes):
    """Entry by entry, as LevelDB's Block::Iter reads a block: [(internal key, value)]."""

    def varint(pos):
        result = shift = 0
        while True:
            if pos >= limit:
                raise DecodeError("header runs past the entries")
            byte = block[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result, pos
            shift += 7

    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    entries = []
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = varint(pos)
        non_shared, pos = varint(pos)
        value_len, pos = varint(pos)
        if shared > len(key):
            raise DecodeError("entry shares more bytes than the previous key has")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    assert pos == limit
    return entries


def reference_split(block: bytes):
    entries = reference_decode(block)
    return ([k[:-8] for k, _ in entries], [int.from_bytes(k[-8:], "little") for k, _ in entries],
            [v for _, v in entries])


def internal_order(entry):
    key = entry[0]
    return key[:-8], -int.from_bytes(key[-8:], "little")


# ---------------------------------------------------------------- strategies

user_keys = st.one_of(st.binary(max_size=24), st.binary(min_size=120, max_size=300))
values = st.one_of(
    st.just(b""),
    st.binary(max_size=300),
    st.integers(65_536, 70_000).map(lambda n: bytes(range(256)) * (n // 256) + b"x" * (n % 256)),
)


@st.composite
def internal_entries(draw, max_keys=40):
    """Sorted (internal key, value) pairs: several versions of a key, both
    kinds (a deletion's value is empty), empty keys and values, long keys
    (varint lengths over one byte), a value over 64 KiB now and then."""
    ukeys = sorted(set(draw(st.lists(user_keys, max_size=max_keys))))
    entries = []
    for ukey in ukeys:
        for seq in sorted(set(draw(st.lists(st.integers(0, (1 << 56) - 1), min_size=1, max_size=3))), reverse=True):
            kind = draw(st.integers(0, 1))
            entries.append((make_internal_key(ukey, seq, kind), draw(values) if kind else b""))
    return entries



def data_blocks(table_data):
    table = Table.open(MemFile(table_data), path="t.ldb")
    return table, [table._contents(i) for i in range(table.num_blocks)]


def check_block(block, targets):
    """Every way of reading `block` agrees with the reference."""
    expected = reference_split(block)
    assert decode_block_split(block) == expected
    entries = reference_decode(block)
    assert decode_block(block) == ([k for k, _ in entries], [v for _, v in entries])
    ukeys, tags, vals = expected
    for target in targets:
        # A decode from the restart point before the target: a suffix of
        # the block holding every entry at or after the target.
        part = decode_block_split_from(block, target)
        n = len(part[0])
        assert part[:3] == (ukeys[len(ukeys) - n:], tags[len(tags) - n:], vals[len(vals) - n:])
        assert part[3] == (n == len(ukeys))
        assert sum(1 for u in ukeys if u >= target) <= n
        # Seek: the first entry >= (target, newest), as a linear search finds it.
        for seek_tag in ((1 << 64) - 1, (5 << 8) | 1):
            want = PAST_END
            for u, t, v in zip(ukeys, tags, vals):
                if (u, -t) >= (target, -seek_tag):
                    want = (t & 0xFF, v) if u == target else None
                    break
            assert find_in_block(expected, target, seek_tag) == want
            assert seek_block(block, target, seek_tag) == want


def targets_for(entries, draw_more):
    return [k[:-8] for k, _ in entries[::3]] + [k[:-8] + b"\x00" for k, _ in entries[1::5]] + draw_more


# ---------------------------------------------------------------- lsm's blocks


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(entries=internal_entries(), prefix=st.booleans(), interval=st.integers(1, 20),
       block_size=st.sampled_from([64, 512, 4096]), more=st.lists(st.binary(max_size=8), max_size=4))
def test_blocks_lsm_writes_decode_as_the_reference_reads_them(entries, prefix, interval, block_size, more):
    data = table_bytes(entries, prefix_compression=prefix, block_restart_interval=interval,
                       block_size=block_size, compression=None, bloom_bits_per_key=0)
    table, blocks = data_blocks(data)
    decoded = []
    for block in blocks:
        check_block(block, targets_for(entries, more))
        decoded += reference_decode(block)
        if not prefix:  # every entry a restart point, storing its key whole
            (count,) = struct.unpack_from("<I", block, len(block) - 4)
            assert count == len(reference_decode(block))
    assert decoded == entries
    # Whole-table point lookups, the cache holding decoded blocks.
    newest = {}
    for key, value in entries:
        newest.setdefault(key[:-8], (key[-8], value))
    table = Table.open(MemFile(data), path="t.ldb", block_cache=BlockCache(1 << 30))
    for ukey, answer in newest.items():
        assert table.get(ukey, (1 << 56) - 1) == answer
        if ukey + b"\x00" not in newest:
            assert table.get(ukey + b"\x00", (1 << 56) - 1) is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(entries=internal_entries(max_keys=60), interval=st.integers(1, 20),
       more=st.lists(st.binary(max_size=8), max_size=4))
def test_leveldb_layout_blocks_at_any_restart_interval_decode_as_the_reference(entries, interval, more):
    builder = BlockBuilder(interval)
    for key, value in entries:
        builder.add(key, value)
    check_block(builder.finish(), targets_for(entries, more))


def test_block_of_only_empty_user_keys_and_empty_values():
    entries = [(make_internal_key(b"", seq, 1), b"") for seq in range(30, 0, -1)]
    for interval in (1, 16):
        builder = BlockBuilder(interval)
        for key, value in entries:
            builder.add(key, value)
        check_block(builder.finish(), [b"", b"\x00"])


def test_value_length_of_two_bytes_read_inline_agrees_with_the_varint():
    # 127, 128, 16383 and 16384 bytes: the edges of the one- and two-byte
    # lengths the entry loop reads without a varint call.
    entries = [(make_internal_key(b"k%d" % n, 1, 1), b"v" * n) for n in (127, 128, 16383, 16384)]
    entries.sort(key=internal_order)
    builder = BlockBuilder(1)
    for key, value in entries:
        builder.add(key, value)
    check_block(builder.finish(), [b"k128", b"k2"])


def test_two_byte_value_length_running_past_the_block_is_corrupt():
    builder = BlockBuilder(1)
    builder.add(make_internal_key(b"k", 1, 1), b"v" * 200)
    block = bytearray(builder.finish())
    block[3] = 0x7F  # the value length's second byte: now ~16 KiB
    with pytest.raises(DecodeError, match="past"):
        decode_block_split(bytes(block))


# ---------------------------------------------------------------- LevelDB's blocks


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(user_keys, values), min_size=1, max_size=60), interval=st.integers(1, 20),
       block_size=st.sampled_from([128, 1024, 4096]), compression=st.sampled_from([None, "snappy"]),
       more=st.lists(st.binary(max_size=8), max_size=4))
def test_blocks_leveldb_writes_decode_as_the_reference_reads_them(tmp_path_factory, rows, interval, block_size,
                                                                  compression, more):
    path = str(tmp_path_factory.mktemp("leveldb"))
    db = plyvel.DB(path, create_if_missing=True, block_size=block_size, block_restart_interval=interval,
                   compression=compression, write_buffer_size=64 << 10)
    for i, (key, value) in enumerate(rows):
        if i % 5 == 4:
            db.delete(key)
        else:
            db.put(key, value)
    db.compact_range()
    db.close()
    tables = [name for name in os.listdir(path) if name.endswith(".ldb")]
    assert tables
    for name in tables:
        table, blocks = data_blocks(DEFAULT_FS.read_file(os.path.join(path, name)))
        for block in blocks:
            entries = reference_decode(block)
            check_block(block, [k[:-8] for k, _ in entries[::2]] + more)


# ---------------------------------------------------------------- LevelDB reads lsm's tables


@pytest.mark.parametrize("prefix", [False, True])
def test_leveldb_reads_every_table_lsm_writes_with_paranoid_checks(tmp_path, prefix):
    import random

    rng = random.Random(16)
    keys = sorted({b"user%d" % rng.randrange(10 ** rng.randint(1, 19)) for _ in range(3000)} | {b"", b"k" * 300})
    entries, expected = [], {}
    for seq, ukey in enumerate(keys, 1):
        if rng.random() < 0.2:
            entries.append((make_internal_key(ukey, seq, 0), b""))
            expected[ukey] = None
        else:
            value = rng.choice([b"", rng.randbytes(rng.randrange(10, 4096)), b"w" * 70_000])
            entries.append((make_internal_key(ukey, seq, 1), value))
            expected[ukey] = value
    number = 7
    data = table_bytes(entries, prefix_compression=prefix)
    DEFAULT_FS.write_file(filenames.table_file_name(str(tmp_path), number), data)
    edit = VersionEdit(comparator=COMPARATOR_NAME, log_number=0, prev_log_number=0, next_file_number=number + 1,
                       last_sequence=len(keys),
                       new_files=[(1, FileMetaData(number, len(data), entries[0][0], entries[-1][0]))])
    DEFAULT_FS.write_file(filenames.descriptor_file_name(str(tmp_path), 2), LogWriter().encode(edit.encode()))
    filenames.set_current_file(DEFAULT_FS, str(tmp_path), 2)
    db = plyvel.DB(str(tmp_path), paranoid_checks=True)
    try:
        for ukey, value in expected.items():
            assert db.get(ukey, verify_checksums=True) == value
        assert dict(db.iterator(verify_checksums=True)) == {k: v for k, v in expected.items() if v is not None}
    finally:
        db.close()


# ---------------------------------------------------------------- cache charge


def decoded_size(decoded):
    """What a decoded block takes in memory, by sys.getsizeof."""
    ukeys, tags, vals = decoded
    return (sys.getsizeof(decoded) + sum(map(sys.getsizeof, decoded))
            + sum(map(sys.getsizeof, ukeys)) + sum(map(sys.getsizeof, tags)) + sum(map(sys.getsizeof, vals)))


@pytest.mark.parametrize("shape", ["fixed", "variable", "tiny"])
def test_block_charge_is_within_a_fifth_of_the_decoded_block_s_real_size(shape):
    import random

    rng = random.Random(4)
    if shape == "fixed":
        rows = [(b"key%013d" % i, rng.randbytes(100)) for i in range(2000)]
    elif shape == "variable":
        rows = [(b"user%d" % i, rng.randbytes(rng.choice([0, 20, 200, 900]))) for i in range(2000)]
    else:
        rows = [(b"%05d" % i, b"") for i in range(2000)]
    rows.sort()
    entries = [(make_internal_key(k, (1 << 50) + i, 1), v) for i, (k, v) in enumerate(rows)]
    _, blocks = data_blocks(table_bytes(entries, compression=None))
    for block in blocks:
        decoded = decode_block_split(block)
        real = decoded_size(decoded)
        assert abs(block_charge(len(block), len(decoded[0])) - real) <= real / 5


def test_a_block_is_searched_raw_on_its_first_lookup_and_decoded_on_its_second():
    entries = [(make_internal_key(b"user%d" % i, i + 1, 1), b"v" * (i % 300)) for i in range(200)]
    entries.sort(key=internal_order)
    data = table_bytes(entries)
    cache = BlockCache(1 << 20)
    table = Table.open(MemFile(data), path="t.ldb", block_cache=cache)
    key = entries[50][0]
    held = lambda: cache.get((0, table._offsets[table.find_block(key[:-8])]))  # noqa: E731
    assert table.get(key[:-8], 1000) == (1, entries[50][1])
    assert type(held()) is bytes  # raw contents, searched in place
    assert table.get(key[:-8], 1000) == (1, entries[50][1])
    assert type(held()) is tuple  # decoded by the second lookup
    assert held() == decode_block_split(table._contents(table.find_block(key[:-8])))
    assert table.get(key[:-8] + b"!", 1000) is None


def test_gets_outside_the_table_s_key_range_read_no_block():
    entries = [(make_internal_key(b"m%04d" % i, i + 1, 1), b"v") for i in range(500)]
    f = MemFile(table_bytes(entries, bloom_bits_per_key=0))
    table = Table.open(f, path="t.ldb", block_cache=BlockCache(1 << 20))
    reads = f.reads
    assert table.get(b"z", 10_000) is None  # past the last block's index entry
    assert f.reads == reads
    table.block(0)  # the table learns its first key
    reads = f.reads
    assert table.get(b"a", 10_000) is None and table.get(b"m", 10_000) is None
    assert f.reads == reads
    table._cache.clear()
    assert table.get(b"m0000", 10_000) == (1, b"v")
    assert f.reads == reads + 1
