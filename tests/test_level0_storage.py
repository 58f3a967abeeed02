"""How flushes store their tables: a WAL of keys that arrived out of order
makes an uncompressed table that stays at level 0 (Options.compress_level0);
every other table is compressed. The damage checked: a table stored for
level 0 reaching a deeper level as it is, a sorted load left uncompressed,
or either form unreadable by LevelDB."""
import random
import re

import plyvel

import lsm
from lsm.table.format import NO_COMPRESSION, SNAPPY_COMPRESSION
from table_helpers import stored_block_types

# Text that snappy shrinks by far more than the eighth it must.
VALUE = b"lorem ipsum dolor sit amet, consectetur adipiscing elit " * 3


def _open(path, **options):
    return lsm.DB(str(path), create_if_missing=True, write_buffer_size=64 << 10, compactors=0, **options)


def _files_by_level(db):
    """{level: [file numbers]} from leveldb.sstables."""
    levels, level = {}, None
    for line in db.get_property(b"leveldb.sstables").decode().splitlines():
        heading = re.match(r"--- level (\d+) ---", line)
        if heading:
            level = int(heading.group(1))
            levels[level] = []
        elif line.strip():
            levels[level].append(int(line.split(":")[0]))
    return levels


def _write(db, keys, model):
    for key in keys:
        db.put(key, VALUE)
        model[key] = VALUE


def _assert_leveldb_reads(path, model):
    with plyvel.DB(str(path), paranoid_checks=True) as pdb:
        assert dict(pdb.iterator()) == model


def test_flushes_of_unordered_keys_stay_uncompressed_at_level0_until_compaction_compresses_them(tmp_path):
    rng = random.Random(5)
    model = {}
    db = _open(tmp_path)
    _write(db, (b"%08d" % rng.randrange(10**8) for _ in range(3000)), model)
    levels = _files_by_level(db)
    types = stored_block_types(tmp_path)
    assert levels[0] and all(types[n] == {NO_COMPRESSION} for n in levels[0])
    deeper = [n for level, files in levels.items() if level > 0 for n in files]
    assert deeper and all(types[n] == {SNAPPY_COMPRESSION} for n in deeper)
    db.compact_range()
    assert not _files_by_level(db)[0]
    assert set(map(frozenset, stored_block_types(tmp_path).values())) == {frozenset({SNAPPY_COMPRESSION})}
    db.close()
    _assert_leveldb_reads(tmp_path, model)


def test_a_sorted_load_is_compressed_as_its_flushes_go_below_level0(tmp_path):
    model = {}
    db = _open(tmp_path)
    _write(db, (b"%08d" % i for i in range(3000)), model)
    levels = _files_by_level(db)
    assert not levels[0] and sum(map(len, levels.values())) >= 3
    assert set(map(frozenset, stored_block_types(tmp_path).values())) == {frozenset({SNAPPY_COMPRESSION})}
    db.close()
    _assert_leveldb_reads(tmp_path, model)


def test_a_table_stored_for_level0_stays_there_though_nothing_overlaps_it(tmp_path):
    rng = random.Random(6)
    model = {}
    db = _open(tmp_path)
    _write(db, (b"a%08d" % rng.randrange(10**8) for _ in range(1000)), model)
    db.compact_range()
    before = set(stored_block_types(tmp_path))
    # Keys after every other, shuffled: placed by overlap alone, their
    # tables would go below level 0.
    shuffled = [b"z%08d" % i for i in range(1200)]
    rng.shuffle(shuffled)
    _write(db, shuffled, model)
    types = stored_block_types(tmp_path)
    new = set(types) - before
    assert new and all(types[n] == {NO_COMPRESSION} for n in new)
    assert new <= set(_files_by_level(db)[0])
    db.close()
    _assert_leveldb_reads(tmp_path, model)


def test_compress_level0_compresses_every_flush(tmp_path):
    rng = random.Random(7)
    model = {}
    db = _open(tmp_path, compress_level0=True)
    _write(db, (b"%08d" % rng.randrange(10**8) for _ in range(3000)), model)
    assert _files_by_level(db)[0]
    assert set(map(frozenset, stored_block_types(tmp_path).values())) == {frozenset({SNAPPY_COMPRESSION})}
    db.close()
    _assert_leveldb_reads(tmp_path, model)
