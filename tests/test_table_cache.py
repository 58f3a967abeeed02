"""BlockCache: LRU by charged bytes, thread-safe, shared by tables."""
import threading

import pytest

import lsm

from lsm.table.options import TableOptions
from lsm.keys import TYPE_VALUE, make_internal_key
from lsm.table import BlockCache, Table, TableBuilder
from table_helpers import MemFile


def test_lru_evicts_least_recently_used_by_charge():
    cache = BlockCache(100)
    cache.put((1, 0), "a", 40)
    cache.put((1, 50), "b", 40)
    assert cache.get((1, 0)) == "a"  # now (1, 50) is the oldest
    cache.put((2, 0), "c", 40)
    assert cache.get((1, 50)) is None
    assert cache.get((1, 0)) == "a" and cache.get((2, 0)) == "c"
    assert cache.usage == 80 and len(cache) == 2


def test_oversized_entry_is_not_cached_and_evicts_nothing():
    cache = BlockCache(100)
    cache.put((1, 0), "a", 60)
    cache.put((1, 1), "huge", 101)
    assert cache.get((1, 1)) is None and cache.get((1, 0)) == "a"


def test_replacing_a_key_recharges():
    cache = BlockCache(100)
    cache.put((1, 0), "a", 60)
    cache.put((1, 0), "b", 30)
    assert cache.usage == 30 and cache.get((1, 0)) == "b"


def test_erase_table_drops_only_that_table():
    cache = BlockCache(1000)
    for n in (1, 2):
        for off in (0, 10, 20):
            cache.put((n, off), (n, off), 10)
    cache.erase_table(1)
    assert len(cache) == 3 and cache.usage == 30
    assert cache.get((2, 10)) == (2, 10) and cache.get((1, 10)) is None


def test_concurrent_use_keeps_accounting_exact():
    cache = BlockCache(5000)

    def worker(seed):
        for i in range(3000):
            key = (seed, i % 97)
            if cache.get(key) is None:
                cache.put(key, i, 10 + i % 7)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.usage <= 5000
    assert cache.usage == sum(charge for _, charge in cache._map.values())


def make_table(prefix, number, cache):
    out = []
    builder = TableBuilder(TableOptions(block_size=128), out.append)
    for i in range(100):
        builder.add(make_internal_key(prefix + b"%03d" % i, i + 1, TYPE_VALUE), prefix * 10)
    builder.finish()
    f = MemFile(b"".join(out))
    return Table.open(f, path=f"{number}.ldb", number=number, block_cache=cache), f


def test_tables_share_a_cache_without_mixing_blocks():
    cache = BlockCache(1 << 20)
    t1, f1 = make_table(b"a", 1, cache)
    t2, f2 = make_table(b"b", 2, cache)
    for t, prefix in ((t1, b"a"), (t2, b"b")):
        for i in range(100):
            assert t.get(prefix + b"%03d" % i, 1000) == (TYPE_VALUE, prefix * 10)
    reads = f1.reads, f2.reads
    for t, prefix in ((t1, b"a"), (t2, b"b")):
        for i in range(100):
            assert t.get(prefix + b"%03d" % i, 1000) == (TYPE_VALUE, prefix * 10)
    assert (f1.reads, f2.reads) == reads  # second pass served from the cache
    assert cache.hits >= 200


def test_private_cache_when_none_given():
    t, f = make_table(b"c", 3, None)
    t.block(0)
    reads = f.reads
    t.block(0)
    assert f.reads == reads


def test_concurrent_gets_and_block_reads_on_one_table():
    cache = BlockCache(4 << 10)  # small: blocks are evicted, re-read and upgraded concurrently
    table, _ = make_table(b"t", 4, cache)
    errors = []

    def worker(seed):
        try:
            for n in range(400):
                i = (n * 7 + seed) % 100
                assert table.get(b"t%03d" % i, 1000) == (TYPE_VALUE, b"t" * 10)
                assert table.get(b"t%03dx" % i, 1000) is None
                ukeys, tags, values = table.block(n % table.num_blocks)
                assert values == [b"t" * 10] * len(ukeys)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_block_cached_by_a_point_lookup_serves_scans_and_seeks_too():
    """A get caches the block it decodes; the scan, seek and first-key reads
    of that block find the same decoded block in it."""
    cache = BlockCache(1 << 20)
    table, f = make_table(b"u", 5, cache)
    for i in range(100):
        assert table.get(b"u%03d" % i, 1000) == (TYPE_VALUE, b"u" * 10)
        assert table.get(b"u%03dx" % i, 1000) is None
    reads = f.reads
    for i in range(table.num_blocks):
        first = table.first_user_key(i)
        ukeys, tags, values, whole = table.block_from(i, first, fill_cache=False)
        assert whole and ukeys[0] == first and values == [b"u" * 10] * len(ukeys)
        assert table.block(i, fill_cache=False) == (ukeys, tags, values)
    assert f.reads == reads  # every block came from what the gets cached


def test_compact_range_leaves_its_tables_open_for_the_reads_that_follow(tmp_path):
    """As LevelDB's compaction leaves each output it checks in its table
    cache: the first gets after a compact_range do not each open a table."""
    import lsm

    db = lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=0, write_buffer_size=64 << 10,
                max_file_size=1 << 20)
    try:
        for i in range(30000):
            db.put(b"%08d" % i, b"v" * 60)
        engine = db._engine
        db.compact_range(start=b"00010000", stop=b"00019999")
        version = engine.versions.current
        in_range = {f.number for files in version.levels for f in files
                    if f.largest[:-8] >= b"00010000" and f.smallest[:-8] <= b"00019999"}
        assert len(in_range) >= 2
        assert in_range <= set(engine.table_cache._tables)
        while engine.table_cache._tables:
            engine.table_cache._tables.popitem()[1].file.close()
        db.compact_range()
        everything = {f.number for files in engine.versions.current.levels for f in files}
        assert everything == set(engine.table_cache._tables)
        assert db.get(b"00012345") == b"v" * 60
    finally:
        db.close()


def _packable_table(number, cache, compression="snappy"):
    """Keys k0000.. with compressible values; from 300 on every 7th value is
    longer, so the first blocks are uniform and the later ones are not."""
    out = []
    builder = TableBuilder(TableOptions(block_size=512, compression=compression), out.append)
    expected = {}
    for i in range(600):
        key = b"k%04d" % i
        value = (b"%04d" % i) * (13 if i >= 300 and i % 7 == 0 else 10)
        builder.add(make_internal_key(key, i + 1, TYPE_VALUE), value)
        expected[key] = value
    builder.finish()
    f = MemFile(b"".join(out))
    return Table.open(f, path=f"{number}.ldb", number=number, block_cache=cache), f, expected


def test_a_cache_under_pressure_keeps_blocks_as_stored_and_answers_from_them():
    from lsm.table.block import uniform_layout
    from lsm.table.format import inflate
    from lsm.table.reader import _PackedBlock

    cache = BlockCache(6 << 10)
    table, f, expected = _packable_table(5, cache)
    assert not cache.pressed
    packed_shapes = set()  # uniform or not, of every block seen packed
    for _ in range(2):
        for key, value in expected.items():
            assert table.get(key, 10_000) == (TYPE_VALUE, value)
            assert table.get(key + b"x", 10_000) is None
            packed_shapes |= {uniform_layout(inflate(v.stored)) is None
                              for v, _ in cache._map.values() if type(v) is _PackedBlock}
    assert cache.pressed
    packed = [(v, c) for v, c in cache._map.values() if type(v) is _PackedBlock]
    assert packed, "blocks read under pressure are kept as stored"
    # Charged as stored: snappy halves these blocks at least.
    assert all(c == len(v.stored) and c * 2 < 512 for v, c in packed)
    assert packed_shapes == {True, False}  # uniform and other blocks alike
    # Scans and seeks take a packed block too.
    assert [k for k, _ in table.iter_entries()] == [make_internal_key(k, i + 1, TYPE_VALUE)
                                                    for i, k in enumerate(expected)]
    for i in range(table.num_blocks):
        ukeys, _, values = table.block(i, fill_cache=False)
        assert [expected[k] for k in ukeys] == values
    # The cache holds more blocks than it could unpacked.
    assert len(cache) * 400 > cache.capacity
    cache.clear()
    assert not cache.pressed


def test_a_block_kept_as_stored_remembers_the_layout_of_its_contents():
    from lsm.table.block import seek_layout
    from lsm.table.format import inflate
    from lsm.table.reader import _PackedBlock

    cache = BlockCache(6 << 10)
    table, _, expected = _packable_table(7, cache)
    layouts = set()  # uniform or not, of every block seen packed
    for _ in range(2):
        for key, value in expected.items():
            assert table.get(key, 10_000) == (TYPE_VALUE, value)
            packed = [v for v, _ in cache._map.values() if type(v) is _PackedBlock]
            # A wrong layout would send lookups to the wrong entries.
            assert all(v.layout == seek_layout(inflate(v.stored)) for v in packed)
            layouts |= {bool(v.layout) for v in packed}
    assert layouts == {True, False}


def test_blocks_stored_uncompressed_are_never_packed():
    from lsm.table.reader import _PackedBlock

    cache = BlockCache(6 << 10)
    table, _, expected = _packable_table(6, cache, compression=None)
    for key, value in expected.items():
        assert table.get(key, 10_000) == (TYPE_VALUE, value)
    assert cache.pressed
    assert not [v for v, _ in cache._map.values() if type(v) is _PackedBlock]


@pytest.mark.parametrize("mapped", [True, False])
def test_under_pressure_a_mapped_uncompressed_block_is_read_again_not_cached(tmp_path, mapped):
    """A mapping serves an uncompressed block at about a hit's cost, so the
    pressed cache keeps its room for blocks that cost a decompression; a
    table read with pread still caches them. Either way every get answers
    from checked blocks."""
    from lsm.fileio import FileSystem

    cache = BlockCache(6 << 10)
    _, memfile, expected = _packable_table(8, cache, compression=None)
    path = tmp_path / "000008.ldb"
    path.write_bytes(memfile.data)
    fs = FileSystem()
    file = fs.open_mapped(str(path)) if mapped else fs.open_random(str(path))
    cache.clear()
    cache.expect(len(memfile.data))  # a database larger than the cache
    table = Table.open(file, path=str(path), number=9, block_cache=cache)
    for _ in range(2):
        for key, value in expected.items():
            assert table.get(key, 10_000) == (TYPE_VALUE, value)
    cached = [key for key in cache._map if key[0] == 9]
    assert (cached == []) is mapped


def test_compact_range_leaves_a_table_that_will_not_open_to_the_read_that_needs_it(tmp_path):
    """Opening the range's tables is a head start, not a check: compact_range
    itself succeeds, and the read of the damaged table reports it."""
    import os

    import lsm

    path = str(tmp_path / "db")
    db = lsm.DB(path, create_if_missing=True, compactors=0, write_buffer_size=64 << 10, max_file_size=1 << 20)
    for i in range(30000):
        db.put(b"%08d" % i, b"v" * 60)
    db.compact_range()
    db.close()
    tables = sorted(name for name in os.listdir(path) if name.endswith(".ldb"))
    assert len(tables) >= 2
    with open(os.path.join(path, tables[1]), "r+b") as f:  # keys from ~700 on
        f.seek(-8, os.SEEK_END)
        f.write(b"\0" * 8)  # the footer's magic number
    db = lsm.DB(path)
    try:
        db.compact_range()  # the tables sit in the last level: nothing to rewrite
        assert db.get(b"00000000") == b"v" * 60
        with pytest.raises(lsm.CorruptionError):
            for i in range(0, 30000, 500):
                db.get(b"%08d" % i)
    finally:
        db.close()


def _reopened_after_a_load(path, lru_cache_size):
    """A database of ~1 MB of tables, reopened with an empty block cache."""
    with lsm.DB(path, create_if_missing=True, compactors=0) as db:
        for i in range(0, 8_000, 1000):
            with db.write_batch() as wb:
                for j in range(i, i + 1000):
                    wb.put(b"k%06d" % j, b"%0120d" % j)
        db.compact_range()
    return lsm.DB(path, compactors=0, lru_cache_size=lru_cache_size)


def test_a_block_cache_smaller_than_the_tables_keeps_blocks_as_stored_from_the_first_read(tmp_path):
    from lsm.table.reader import _PackedBlock

    with _reopened_after_a_load(str(tmp_path / "db"), 64 << 10) as db:
        cache = db._engine.block_cache
        assert db.get(b"k004000") == b"%0120d" % 4000
        # No eviction yet, but raw or decoded blocks would only be evicted again.
        assert len(cache) == 1 and cache.usage < cache.capacity
        assert cache.pressed
        assert all(type(v) is _PackedBlock for v, _ in cache._map.values())
        assert all(db.get(b"k%06d" % j) == b"%0120d" % j for j in range(0, 8_000, 7))


def test_a_block_cache_larger_than_the_tables_keeps_blocks_raw(tmp_path):
    with _reopened_after_a_load(str(tmp_path / "db"), 64 << 20) as db:
        cache = db._engine.block_cache
        assert db.get(b"k004000") == b"%0120d" % 4000
        assert not cache.pressed
        assert [type(v) for v, _ in cache._map.values()] == [bytes]


def test_the_table_cache_keeps_filter_probes_only_for_the_tables_it_holds(tmp_path):
    # A get asks an open table's filter through TableCache.key_filters before
    # taking the table: a probe left behind by an evicted table would answer
    # for a table the cache no longer holds (harmless, but unbounded).
    from job_helpers import PUT, write_table
    from lsm.fileio import DEFAULT_FS
    from lsm.keys import MAX_SEQUENCE
    from lsm.table.keyfilter import key_hash
    from lsm.writer.table_cache import TableCache

    keys = {}
    for number in range(1, 6):
        keys[number] = [b"t%d-%04d" % (number, i) for i in range(200)]
        write_table(tmp_path, number, [(key, i + 1, PUT, b"v%d" % number) for i, key in enumerate(keys[number])])
    cache = TableCache(str(tmp_path), DEFAULT_FS, 2, BlockCache(1 << 20))
    for number in (1, 2, 3, 1, 4, 5):
        table = cache.get(number)
        assert set(cache.key_filters) == set(cache._tables)
        probe = cache.key_filters[number]
        assert all(probe(key_hash(key)) for key in keys[number])
        assert table.get_past_filter(keys[number][7], MAX_SEQUENCE) == (TYPE_VALUE, b"v%d" % number)
    assert len(cache.key_filters) == 2
    cache.evict(5)
    assert set(cache.key_filters) == set(cache._tables) == {4}
    cache.close()
    assert cache.key_filters == {}
