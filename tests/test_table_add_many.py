"""TableBuilder.add_many against the add() loop it stands for: byte-identical
tables, and the same sizes, counts and bounds after every call, whatever the
slicing, key and value lengths, block size, restart interval, compression and
filter."""
import random
import struct
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from lsm.table.options import TableOptions
from lsm.keys import TYPE_VALUE, make_internal_key
from lsm.table import Table, TableBuilder
from lsm.table import builder as builder_module
from table_helpers import MemFile


class Recorder:
    """A builder's `write`: keeps every piece, to compare what was written when."""

    def __init__(self):
        self.pieces = []

    def __call__(self, data):
        self.pieces.append(bytes(data))


def state(builder, out):
    return (
        builder.num_entries,
        builder.estimated_size,
        builder.file_size,
        builder.smallest,
        builder.largest,
        out.pieces,
    )


def build_both(options, steps):
    """Build one table with add() only and one with `steps`: ("add", pairs)
    goes through add(), ("many", pairs) through add_many. The states must agree
    after every step; return both tables' bytes."""
    ref_out, out = Recorder(), Recorder()
    ref, builder = TableBuilder(options, ref_out), TableBuilder(options, out)
    for how, pairs in steps:
        for key, value in pairs:
            ref.add(key, value)
        if how == "many":
            builder.add_many([k for k, _ in pairs], [v for _, v in pairs])
        else:
            for key, value in pairs:
                builder.add(key, value)
        assert state(builder, out) == state(ref, ref_out)
    assert builder.finish() == ref.finish()
    assert state(builder, out) == state(ref, ref_out)
    return b"".join(ref_out.pieces), b"".join(out.pieces)


def internal_keys(user_keys):
    return [make_internal_key(u, i + 1, TYPE_VALUE) for i, u in enumerate(sorted(set(user_keys)))]


@st.composite
def user_keys(draw):
    """Sorted distinct user keys sharing prefixes: mostly of one length (the
    case add_many batches, past 128 bytes with the trailer too), or several."""
    prefix = draw(st.one_of(st.binary(max_size=8), st.binary(min_size=100, max_size=130)))
    count = draw(st.integers(0, 400))
    rng = random.Random(draw(st.integers(0, 2**32)))
    if draw(st.sampled_from([True, True, False])):
        width = draw(st.integers(1, 3))
        return [prefix + n.to_bytes(width, "big") for n in rng.sample(range(256**width), min(count, 256**width))]
    lengths = [rng.choice([0, 1, 2, 3, 4, 120, 140]) for _ in range(count)]
    return [prefix + rng.randbytes(n) for n in lengths]


@st.composite
def value_lists(draw, count):
    """`count` values: all of one length (below or past 128) or of many."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    spread = draw(st.sampled_from([(0, 0), (0, 40), (100, 140), (0, 300)]))
    if draw(st.sampled_from([True, True, False])):
        lengths = [rng.randint(*spread)] * count
    else:
        lengths = [rng.randint(*spread) for _ in range(count)]
    # Half random, half repeated: some blocks compress, some do not.
    return [(rng.randbytes(n // 2) * 3)[:n] for n in lengths]


@st.composite
def table_options(draw):
    return TableOptions(
        block_size=draw(st.one_of(st.integers(-1, 300), st.sampled_from([1024, 4096, 65536]))),
        block_restart_interval=draw(st.integers(1, 17)),
        compression=draw(st.sampled_from(["snappy", None])),
        bloom_bits_per_key=draw(st.sampled_from([0, 10])),
        prefix_compression=draw(st.booleans()),
    )


@st.composite
def steps(draw):
    keys = internal_keys(draw(user_keys()))
    pairs = list(zip(keys, draw(value_lists(len(keys)))))
    rng = random.Random(draw(st.integers(0, 2**32)))
    out = []
    while pairs:
        size = rng.choice([rng.randint(0, 4), rng.randint(32, 300)])
        out.append((rng.choice(["many", "many", "add"]), pairs[:size]))
        pairs = pairs[size:]
    return out


@settings(max_examples=1000)
@given(options=table_options(), steps=steps(), batch_min=st.sampled_from([1, builder_module._BATCH_MIN_ENTRIES]))
def test_add_many_writes_what_the_add_loop_writes(options, steps, batch_min):
    # batch_min 1: slices of any length take the batch path, edge cases too.
    with mock.patch.object(builder_module, "_BATCH_MIN_ENTRIES", batch_min):
        expected, actual = build_both(options, steps)
    assert actual == expected


def bench_like_entries(count, value_size=100):
    """As lsm.bench: 16-byte user keys in order, values half random and half repeated."""
    rng = random.Random(5)
    pool = [(rng.randbytes(value_size // 2) * 2)[:value_size] for _ in range(64)]
    keys = [b"%016d" % i + struct.pack("<Q", ((i + 1) << 8) | TYPE_VALUE) for i in range(count)]
    return keys, [pool[i % 64] for i in range(count)]


def test_flush_sized_slices_with_default_options():
    keys, values = bench_like_entries(5000)
    for bloom, prefix_compression in [(0, False), (10, False), (10, True)]:
        options = TableOptions(bloom_bits_per_key=bloom, prefix_compression=prefix_compression)
        slices = [("many", list(zip(keys[i : i + 256], values[i : i + 256]))) for i in range(0, len(keys), 256)]
        expected, actual = build_both(options, slices)
        assert actual == expected
        table = Table.open(MemFile(actual), path="t.ldb")
        assert [k for k, _ in table.iter_entries()] == keys


def test_value_lengths_of_several_varint_bytes():
    keys, _ = bench_like_entries(600)
    rng = random.Random(6)
    for values in (
        [b"v" * 300] * 600,
        [b"w" * 20000] * 600,
        [rng.randbytes(rng.choice([5, 127, 128, 16384])) for _ in keys],
    ):
        pairs = list(zip(keys, values))
        for interval, prefix_compression in [(1, False), (16, False), (16, True)]:
            options = TableOptions(block_restart_interval=interval, compression=None, prefix_compression=prefix_compression)
            steps = [("many", pairs[:250]), ("add", pairs[250:251]), ("many", pairs[251:])]
            expected, actual = build_both(options, steps)
            assert actual == expected


def test_whole_table_in_one_call():
    # Longer inputs are taken in runs; the runs meet mid-block.
    keys, values = bench_like_entries(10000)
    expected, actual = build_both(TableOptions(), [("many", list(zip(keys, values)))])
    assert actual == expected


def test_any_iterables_and_zip_semantics():
    keys, values = bench_like_entries(300)
    for key_count, value_count in [(100, 300), (300, 130), (60, 300)]:
        expected = TableBuilder(TableOptions(), [].append)
        for key, value in zip(keys[:key_count], values[:value_count]):
            expected.add(key, value)
        builder = TableBuilder(TableOptions(), [].append)
        builder.add_many(iter(keys[:key_count]), (v for v in values[:value_count]))
        builder.add_many([], [])
        assert (builder.num_entries, builder.estimated_size, builder.largest) == (
            expected.num_entries,
            expected.estimated_size,
            expected.largest,
        )
        assert builder.finish() == expected.finish()
