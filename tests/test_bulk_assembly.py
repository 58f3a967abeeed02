"""Tables assembled in bulk (lsm.table.bulk, TableBuilder.add_blocks) and the
flush's record columns (lsm.batch.record_columns) against the one-at-a-time
code they stand in for: the same bytes, the same errors."""
import random
import struct

import numpy as np
import pytest
from crc32c import crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from lsm.batch import HEADER_SIZE, decode_batch, encode_batch, record_columns
from lsm.errors import DecodeError
from lsm.keys import TYPE_DELETION, TYPE_VALUE
from lsm.table.block import BlockBuilder
from lsm.table.builder import TableBuilder, index_separator, index_separators
from lsm.table.bulk import (BlockCutter, encode_entries, encode_handles, gather_entries,
                            restart_every_entry_block, user_key_crcs, user_key_hashes,
                            user_key_hashes_and_crcs)
from lsm.table.filter import BloomFilterPolicy, FilterBlockBuilder, bloom_hash, hash_ragged
from lsm.table.format import block_trailer, compress_block, encode_handle, frame_blocks
from lsm.table.keyfilter import KeyFilterBuilder, crc32c_of_ragged
from lsm.table.options import TableOptions
from lsm.table.ragged import RaggedKeys

# Lengths around the one-byte and two-byte varint limits.
LENGTHS = st.sampled_from((0, 1, 7, 127, 128, 300, 16383, 16384))


def ops_strategy():
    key = st.binary(max_size=20) | LENGTHS.map(lambda n: b"k" * n)
    value = st.binary(max_size=20) | LENGTHS.map(lambda n: b"v" * n)
    put = st.tuples(st.just(TYPE_VALUE), key, value)
    delete = st.tuples(st.just(TYPE_DELETION), key, st.just(b""))
    return st.lists(put | delete, max_size=12)


# ------------------------------------------------------------------ record columns


@settings(max_examples=200, deadline=None)
@given(ops_strategy(), st.integers(0, 2**56), st.binary(max_size=5), st.binary(max_size=5))
def test_record_columns_locate_every_record_decode_batch_decodes(ops, sequence, before, after):
    batch = encode_batch(sequence, ops)
    data = before + batch + after
    found_sequence, count, fields = record_columns(data, len(before), len(before) + len(batch))
    assert (found_sequence, count) == (sequence, len(ops))
    records = [(fields[i], data[fields[i + 1]:fields[i + 1] + fields[i + 2]],
                data[fields[i + 3]:fields[i + 3] + fields[i + 4]]) for i in range(0, len(fields), 5)]
    assert records == decode_batch(batch)[1]


@pytest.mark.parametrize("damage", ["truncated value", "truncated key", "unknown tag", "count too high", "short"])
def test_record_columns_reject_the_batches_decode_batch_rejects(damage):
    batch = encode_batch(5, [(TYPE_VALUE, b"key", b"value" * 40), (TYPE_DELETION, b"gone", b"")])
    if damage == "truncated value":
        batch = encode_batch(5, [(TYPE_VALUE, b"key", b"value" * 40)])[:-3]
    elif damage == "truncated key":
        batch = batch[:-2]
    elif damage == "unknown tag":
        batch = batch + b"\x07"
    elif damage == "count too high":
        batch = struct.pack("<QI", 5, 3) + batch[HEADER_SIZE:]
    else:
        batch = batch[:HEADER_SIZE - 1]
    with pytest.raises(DecodeError) as expected:
        decode_batch(batch)
    with pytest.raises(DecodeError) as found:
        record_columns(batch)
    assert (found.value.reason, found.value.offset) == (expected.value.reason, expected.value.offset)


# ------------------------------------------------------------------ entries


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=30), st.binary(max_size=300)), min_size=1, max_size=40),
       st.sampled_from(("any", "one size", "wide keys")))
def test_gathered_entries_are_the_bytes_encode_entries_makes(records, shape):
    if shape == "one size":  # whole entries as matrix rows
        records = [(k.ljust(30, b"k")[:30], v.ljust(50, b"v")[:50]) for k, v in records]
    elif shape == "wide keys":  # heads joined from pieces
        records = [(k * 200 + b"x" * 1100, v) for k, v in records]
    rng = random.Random(len(records))
    rng.shuffle(records)
    # Records laid in a buffer as a WAL lays them: something between each.
    pieces, key_at, value_at = [], [], []
    at = 0
    for key, value in records:
        gap = rng.randbytes(rng.randint(0, 3))
        key_at.append(at + len(gap))
        value_at.append(at + len(gap) + len(key) + 1)
        piece = gap + key + b"|" + value
        pieces.append(piece)
        at += len(piece)
    tags = [rng.getrandbits(56) << 8 | rng.randint(0, 1) for _ in records]
    as_array = lambda values: np.array(values, dtype=np.int64)  # noqa: E731
    gathered = gather_entries(b"".join(pieces), as_array(key_at), as_array([len(k) for k, _ in records]),
                              as_array(value_at), as_array([len(v) for _, v in records]),
                              np.array(tags, dtype=np.uint64))
    encoded = encode_entries([k for k, _ in records], tags, [v for _, v in records])
    assert gathered.data == encoded.data
    for column in ("start", "key", "user_len", "end", "tag"):
        assert getattr(gathered, column).tolist() == getattr(encoded, column).tolist()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=140), st.binary(max_size=140)), max_size=30))
def test_index_blocks_encoded_together_are_block_builders(entries):
    block = BlockBuilder(1)
    for key, value in entries:
        block.add(key, value)
    assert restart_every_entry_block([k for k, _ in entries], [v for _, v in entries]) == block.finish()


def test_handles_encoded_together_are_encode_handles():
    values = [0, 1, 127, 128, 16383, 16384, 2**32, 2**56 + 5, 2**63 - 1]
    offsets = np.array(values, dtype=np.int64)
    sizes = np.array(values[::-1], dtype=np.int64)
    assert encode_handles(offsets, sizes) == [encode_handle(o, s) for o, s in zip(values, values[::-1])]


@pytest.mark.parametrize("compression", ["snappy", None])
def test_blocks_framed_together_are_compress_block_and_block_trailer(compression):
    rng = random.Random(4)
    # Some blocks that compress, some that snappy cannot shrink by an eighth, empty ones.
    contents = [rng.choice((rng.randbytes(rng.randint(0, 5000)), b"ab" * rng.randint(0, 3000), b""))
                for _ in range(30)]
    ends = np.cumsum([len(c) for c in contents]).tolist()
    framed, sizes = frame_blocks(b"".join(contents), ends, compression)
    stored = [compress_block(c, compression) for c in contents]
    assert bytes(framed) == b"".join(s + block_trailer(s, t) for s, t in stored)
    assert sizes == [len(s) for s, _ in stored]


# ------------------------------------------------------------------ filters


@pytest.mark.parametrize("seed", range(4))
def test_filter_buckets_of_a_run_of_blocks_are_those_of_one_block_at_a_time(seed):
    """Blocks far apart, several in one 2 KiB bucket, runs that end inside a
    bucket, and more keys than one batch of filters holds."""
    rng = random.Random(seed)
    policy = BloomFilterPolicy(10)
    one_at_a_time, in_runs = FilterBlockBuilder(policy), FilterBlockBuilder(policy)
    offset = 0
    while offset < 400_000:
        run_starts, run_hashes, run_counts = [], [], []
        for _ in range(rng.randint(1, 12)):
            count = rng.choice((0, 1, 5, 300))
            hashes = np.array([rng.getrandbits(32) for _ in range(count)], dtype=np.uint32)
            one_at_a_time.add_hashes(hashes)
            run_starts.append(offset)
            run_hashes.append(hashes)
            run_counts.append(count)
            offset += rng.choice((10, 700, 2100, 9000))
            one_at_a_time.start_block(offset)
        in_runs.add_blocks(np.concatenate(run_hashes), run_counts, run_starts, offset)
    assert in_runs.finish() == one_at_a_time.finish()


def test_key_filter_of_crcs_is_the_key_filter_of_the_keys():
    keys = [b"user%d" % i for i in range(5000)] + [b"", b"x" * 3000]
    from_keys, from_crcs = KeyFilterBuilder(10), KeyFilterBuilder(10)
    from_keys.add_user_keys(keys)
    from_crcs.add_crcs(np.array([crc32c(k) for k in keys], dtype=np.uint32))
    assert from_crcs.finish() == from_keys.finish()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=50))
def test_keys_hashed_where_they_lie_hash_as_themselves(keys):
    entries = encode_entries(keys, [1] * len(keys), [b"value"] * len(keys))
    in_place = RaggedKeys.in_buffer(entries.data, entries.key, entries.user_len)
    assert crc32c_of_ragged(in_place).tolist() == [crc32c(k) for k in keys]
    in_place = RaggedKeys.in_buffer(entries.data, entries.key, entries.user_len)
    assert hash_ragged(in_place).tolist() == [bloom_hash(k) for k in keys]
    assert user_key_crcs(entries).tolist() == [crc32c(k) for k in keys]
    assert user_key_hashes(entries).tolist() == [bloom_hash(k) for k in keys]
    hashes, crcs = user_key_hashes_and_crcs(entries)
    assert (hashes.tolist(), crcs.tolist()) == ([bloom_hash(k) for k in keys], [crc32c(k) for k in keys])


# ------------------------------------------------------------------ tables


@pytest.mark.parametrize("seed", range(3))
def test_a_table_of_blocks_added_in_runs_is_the_table_add_builds(seed):
    rng = random.Random(seed)
    keys = sorted({rng.randbytes(rng.choice((3, 20, 200))) for _ in range(3000)})
    values = [rng.randbytes(rng.choice((0, 10, 300, 5000))) * rng.randint(1, 2) for _ in keys]
    tags = [(i + 1) << 8 | 1 for i in range(len(keys))]
    options = TableOptions(block_size=rng.choice((512, 4096)), compression=rng.choice(("snappy", None)),
                           bloom_bits_per_key=10)
    one_by_one, in_runs = [], []
    builder = TableBuilder(options, one_by_one.append)
    for key, tag, value in zip(keys, tags, values):
        builder.add(key + tag.to_bytes(8, "little"), value)
    builder.finish()
    entries = encode_entries(keys, tags, values)
    cutter = BlockCutter(entries, options.block_size)
    ends, _ = cutter.cut(0, len(keys))
    hashes, crcs = user_key_hashes(entries), user_key_crcs(entries)
    builder = TableBuilder(options, in_runs.append)
    first = 0
    while first < len(ends):
        last = min(len(ends), first + rng.randint(1, 40))
        lo = ends[first - 1] if first else 0
        raw, raw_ends, first_keys, last_keys, counts = cutter.blocks(lo, ends[first:last])
        framed, sizes = frame_blocks(raw, raw_ends, options.compression)
        builder.add_blocks(framed, sizes, counts, first_keys, last_keys, hashes[lo:ends[last - 1]],
                           crcs[lo:ends[last - 1]])
        first = last
    builder.finish()
    assert b"".join(in_runs) == b"".join(one_by_one)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=6) | st.sampled_from((b"", b"\xff", b"a\xff\xff", b"a\x00")),
                          st.binary(max_size=6) | st.sampled_from((b"", b"\xff", b"b", b"a\x01"))),
                min_size=1, max_size=12))
def test_separators_worked_out_together_are_index_separators(pairs):
    pairs = [(min(a, b) + b"\x01" * 8, max(a, b) + b"\x02" * 8) for a, b in pairs]
    lasts, nexts = [a for a, _ in pairs], [b for _, b in pairs]
    assert index_separators(lasts, nexts) == list(map(index_separator, lasts, nexts))


@pytest.mark.parametrize("width", (0, 1, 3, 4, 21, 23, 67, 68, 300))
def test_keys_of_one_length_hash_as_themselves(width):
    """Lengths many keys share are hashed as rows; long ones leave their
    rest to crc32c; a few keys of other lengths go with them."""
    rng = random.Random(width)
    keys = sorted({rng.randbytes(width) for _ in range(100)} | {b"odd", b"odd key"})
    entries = encode_entries(keys, [1] * len(keys), [b"v"] * len(keys))
    assert user_key_crcs(entries).tolist() == [crc32c(k) for k in keys]
    assert user_key_hashes(entries).tolist() == [bloom_hash(k) for k in keys]
    hashes, crcs = user_key_hashes_and_crcs(entries)
    assert (hashes.tolist(), crcs.tolist()) == ([bloom_hash(k) for k in keys], [crc32c(k) for k in keys])
