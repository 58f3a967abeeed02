"""A table opened with lazy_index, as the writer's table cache opens them:
its first point lookups search the index block as read, and any other use
decodes it. Lookups must answer exactly as an eagerly opened table's,
whatever the versions, deletions and sequences; damage behind the index's
checksum must surface as CorruptionError naming the table and the index
block; gets the filter answers must leave the index undecoded; and tables
lazy_index cannot serve (no lsm filter, another index layout) open whole."""
import struct
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsm.coding import masked_crc32c
from lsm.errors import CorruptionError
from lsm.keys import TYPE_DELETION, TYPE_VALUE, make_internal_key
from lsm.table import Table
from lsm.table.block import BlockBuilder
from lsm.table.format import FOOTER_SIZE, NO_COMPRESSION, decode_footer, encode_footer, encode_handle
from lsm.table.cache import BlockCache
from lsm.table.reader import LOOKUPS_BEFORE_INDEX, lookups_before_index
from table_helpers import MemFile, table_bytes

PATH = "lazy.ldb"


def versioned_entries(keys, versions, deletions):
    """Sorted internal entries: each key with `versions` versions, newest
    first, sequences interleaved across keys; every `deletions`-th a
    deletion marker."""
    entries = []
    sequence = len(keys) * versions
    for i, key in enumerate(sorted(keys)):
        for v in range(versions):
            seq = sequence - v * len(keys) - i
            kind = TYPE_DELETION if deletions and (i + v) % deletions == 0 else TYPE_VALUE
            value = b"" if kind == TYPE_DELETION else b"%s@%d" % (key, seq) * (1 + i % 5)
            entries.append((make_internal_key(key, seq, kind), value))
    return entries


def lazy(data):
    return Table.open(MemFile(data), path=PATH, lazy_index=True)


def index_is_decoded(table):
    return "_offsets" in table.__dict__


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.lists(st.binary(min_size=0, max_size=24), min_size=1, max_size=60, unique=True),
       versions=st.integers(1, 6), deletions=st.integers(0, 4), block_size=st.sampled_from([64, 256, 4096]),
       data=st.data())
def test_lookups_before_and_after_the_index_is_decoded_answer_as_an_eager_open(
        keys, versions, deletions, block_size, data):
    entries = versioned_entries(keys, versions, deletions)
    table_data = table_bytes(entries, block_size=block_size)
    eager = Table.open(MemFile(table_data), path=PATH)
    max_sequence = len(keys) * versions
    probes = [(key, data.draw(st.integers(0, max_sequence + 1))) for key in keys]
    probes += [(key + b"\x00", max_sequence) for key in keys[:5]] + [(b"", max_sequence), (b"\xff" * 30, 5)]
    # Each probe on a fresh lazy table: every one takes the in-place search.
    for key, sequence in probes:
        assert lazy(table_data).get(key, sequence) == eager.get(key, sequence), (key, sequence)
    # And all on one: the index is decoded after the first few, answers unchanged.
    table = lazy(table_data)
    assert [table.get(k, s) for k, s in probes] == [eager.get(k, s) for k, s in probes]
    # Lookups the filter answers do not count.
    assert index_is_decoded(table) or sum(table.may_contain(k) for k, _ in probes) <= lookups_before_index(eager.num_blocks)


def test_gets_the_filter_answers_leave_the_index_undecoded_and_a_scan_decodes_it():
    entries = versioned_entries([b"key%05d" % i for i in range(2000)], 1, 0)
    table = lazy(table_bytes(entries, block_size=512))
    rejected = [key for key in (b"absent%05d" % i for i in range(2000)) if not table.may_contain(key)]
    assert len(rejected) > 1900
    assert all(table.get(key, 10**6) is None for key in rejected)
    assert not index_is_decoded(table)
    assert table.get(b"key00042", 10**6)[0] == TYPE_VALUE
    assert not index_is_decoded(table)
    assert [key for key, _ in table.iter_entries()] == [key for key, _ in entries]
    assert index_is_decoded(table) and table.num_blocks > 10
    assert table._raw_index is None  # the block as read is let go once decoded


def test_threads_looking_up_while_the_index_is_decoded_all_get_their_answers():
    entries = versioned_entries([b"key%05d" % i for i in range(3000)], 2, 3)
    data = table_bytes(entries, block_size=512)
    eager = Table.open(MemFile(data), path=PATH)
    keys = [b"key%05d" % i for i in range(0, 3000, 7)]
    expected = [eager.get(key, 10**6) for key in keys]
    for _ in range(5):
        table = lazy(data)
        results = [None] * 8

        def look(slot):
            results[slot] = [table.get(key, 10**6) for key in keys]

        threads = [threading.Thread(target=look, args=(slot,)) for slot in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(result == expected for result in results)


def with_index(good, handles):
    """The table `good` with its index replaced by a well-formed one (valid
    CRC, a restart at every entry) of these (user key, handle) pairs; (table
    bytes, the new index's offset)."""
    meta, (index_off, _) = decode_footer(good[-FOOTER_SIZE:])
    index = BlockBuilder(1)
    for ukey, handle in handles:
        index.add(make_internal_key(ukey, 1, TYPE_VALUE), encode_handle(*handle))
    contents = index.finish()
    trailer = bytes([NO_COMPRESSION]) + struct.pack("<I", masked_crc32c(contents + b"\x00"))
    return good[:index_off] + contents + trailer + encode_footer(meta, (index_off, len(contents))), index_off


def test_an_index_handle_past_the_file_fails_a_lazy_get_naming_the_index_block():
    entries = versioned_entries([b"key%03d" % i for i in range(50)], 1, 0)
    good = table_bytes(entries, block_size=256, compression=None)
    blocks = Table.open(MemFile(good), path=PATH)
    handles = list(zip(blocks.index_user_keys, zip(blocks._offsets, blocks._sizes)))
    handles[0] = (handles[0][0], (len(good) - 10, 100))
    data, index_off = with_index(good, handles)
    with pytest.raises(CorruptionError, match="past the end") as info:
        lazy(data).get(b"key000", 10)
    assert info.value.path == PATH and info.value.offset == index_off
    # Keys in other blocks are answered: the handle is checked where it is read.
    assert lazy(data).get(b"key049", 10) == blocks.get(b"key049", 10) == (TYPE_VALUE, b"key049@1" * 5)


def test_index_keys_out_of_order_fail_the_decode_of_a_lazily_opened_index():
    entries = versioned_entries([b"key%03d" % i for i in range(50)], 1, 0)
    good = table_bytes(entries, block_size=256, compression=None)
    blocks = Table.open(MemFile(good), path=PATH)
    handles = list(zip(blocks.index_user_keys, zip(blocks._offsets, blocks._sizes)))
    handles[0], handles[1] = (handles[1][0], handles[0][1]), (handles[0][0], handles[1][1])
    data, index_off = with_index(good, handles)
    table = lazy(data)
    with pytest.raises(CorruptionError, match="out of order") as info:
        list(table.iter_entries())
    assert info.value.path == PATH and info.value.offset == index_off


@pytest.mark.parametrize("options", [{"lsm_filter": False}, {"bloom_bits_per_key": 0},
                                     {"prefix_compression": True, "lsm_filter": False}])
def test_tables_without_lsms_filter_open_with_their_index_decoded(options):
    entries = versioned_entries([b"key%03d" % i for i in range(200)], 2, 3)
    table = lazy(table_bytes(entries, block_size=256, **options))
    assert index_is_decoded(table)
    eager = Table.open(MemFile(table_bytes(entries, block_size=256, **options)), path=PATH)
    assert [table.get(b"key%03d" % i, 300) for i in range(200)] == [eager.get(b"key%03d" % i, 300)
                                                                   for i in range(200)]


def test_a_large_index_is_decoded_only_after_lookups_that_cost_about_as_much():
    # Gets of absent keys that pass the filter by chance are a few per
    # table: decoding a large index at the fifth of them cost more than the
    # in-place searches it saves.
    entries = versioned_entries([b"key%05d" % i for i in range(4000)], 1, 0)
    data = table_bytes(entries, block_size=64)
    eager = Table.open(MemFile(data), path=PATH)
    allowed = lookups_before_index(eager.num_blocks)
    assert allowed > 4 * LOOKUPS_BEFORE_INDEX
    table = lazy(data)
    keys = [b"key%05d" % i for i in range(0, 4000, 4000 // allowed)][:allowed]
    assert [table.get(key, 10**6) for key in keys] == [eager.get(key, 10**6) for key in keys]
    assert not index_is_decoded(table)
    assert table.get(b"key03999", 10**6) == eager.get(b"key03999", 10**6)
    assert index_is_decoded(table)


def test_a_block_a_lookup_reads_again_before_the_index_is_decoded_is_cached_decoded():
    # Hot blocks of a table whose index waits must not be searched as raw
    # bytes at every get: the second lookup decodes the block into the cache.
    entries = versioned_entries([b"key%05d" % i for i in range(4000)], 1, 0)
    data = table_bytes(entries, block_size=512)
    cache = BlockCache(1 << 20)
    table = Table.open(MemFile(data), path=PATH, block_cache=cache, lazy_index=True)
    assert table.get(b"key00100", 10**6)[0] == TYPE_VALUE
    assert [type(value) for value, _ in cache._map.values()] == [bytes]
    assert table.get(b"key00101", 10**6)[0] == TYPE_VALUE
    assert [type(value) for value, _ in cache._map.values()] == [tuple]
    assert table.get(b"key00102", 10**6)[0] == TYPE_VALUE
    assert not index_is_decoded(table)
