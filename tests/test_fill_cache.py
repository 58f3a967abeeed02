"""fill_cache, as plyvel takes it: False reads leave the block cache as it
was; by default a long scan, either way, stops filling it (so it does not
evict everything else), while explicit True caches every block read."""
import pytest

import lsm


@pytest.fixture
def db(tmp_path):
    with lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=0, block_size=1024,
                lru_cache_size=64 << 20) as db:
        for i in range(0, 20_000, 500):
            with db.write_batch() as wb:
                for j in range(i, i + 500):
                    wb.put(b"k%06d" % j, b"v" * 50)
        db.compact_range()
        db._engine.block_cache.clear()
        yield db


def cached_blocks(db):
    return len(db._engine.block_cache)


def test_scan_with_fill_cache_false_leaves_the_cache_alone(db):
    assert sum(1 for _ in db.iterator(fill_cache=False)) == 20_000
    assert sum(1 for _ in db.iterator(reverse=True, fill_cache=False)) == 20_000
    raw = db.raw_iterator(fill_cache=False)
    raw.seek_to_first()
    seen = 0
    while raw.valid():
        seen += 1
        raw.next()
    assert seen == 20_000
    assert cached_blocks(db) == 0


def test_get_with_fill_cache_false_leaves_the_cache_alone(db):
    assert all(db.get(b"k%06d" % j, fill_cache=False) == b"v" * 50 for j in range(0, 20_000, 97))
    assert db.snapshot().get(b"k000100", fill_cache=False) == b"v" * 50
    assert db.prefixed_db(b"k0").get(b"00100", fill_cache=False) == b"v" * 50
    assert cached_blocks(db) == 0
    assert db.get(b"k000100") == b"v" * 50
    assert cached_blocks(db) == 1


def test_long_scan_stops_filling_the_cache_unless_asked(db):
    total = sum(1 for _ in db.iterator(fill_cache=True))
    everything = cached_blocks(db)
    assert total == 20_000 and everything > 100
    for reverse in (False, True):
        db._engine.block_cache.clear()
        assert sum(1 for _ in db.iterator(reverse=reverse)) == 20_000
        assert 0 < cached_blocks(db) < everything // 4


def test_short_scan_repeated_reads_every_block_from_the_cache(db):
    # A YCSB-E scan of up to 100 entries runs into a third chunk; every
    # block it reads must be cached by the first run, or each later run
    # decodes the same blocks afresh.
    for reverse in (False, True):
        db._engine.block_cache.clear()

        def scan():
            it = db.iterator(start=b"k010000", reverse=reverse)
            got = [k for k, _ in zip(range(100), it)]
            it.close()
            return got

        first = scan()
        assert len(first) == 100
        misses = db._engine.block_cache.misses
        assert scan() == first
        assert db._engine.block_cache.misses == misses
