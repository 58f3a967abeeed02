"""Short scans: a seek answered from one block, chunks that grow with what a
scan has consumed, and views that leave out empty memtables. Each must
return exactly the model's entries for every snapshot."""
import bisect
import random

import lsm

OPEN = dict(create_if_missing=True, compactors=0, write_buffer_size=64 << 10, max_file_size=1 << 20,
            block_size=1024)


def _model_after(model, key, count):
    keys = sorted(model)
    i = bisect.bisect_left(keys, key)
    return [(k, model[k]) for k in keys[i:i + count]]


def _load_compacted(db, seed):
    """20000 keys with 60 random bytes each (13 entries a 1 KiB block),
    written in batches and compacted; returns them in order."""
    rnd = random.Random(seed)
    entries = [(b"k%06d" % i, rnd.randbytes(60)) for i in range(20000)]
    for start in range(0, len(entries), 1000):
        with db.write_batch() as wb:
            for k, v in entries[start:start + 1000]:
                wb.put(k, v)
    db.compact_range()
    return entries


def test_seeks_between_versions_spanning_blocks_see_each_snapshots_entries(tmp_path):
    """Keys with several versions of varied sizes, so block boundaries fall
    between versions of one key, and deletions: a seek to any key, present
    or not, followed by a few entries, gives each snapshot its own view,
    whether the seek's block alone answers it or its neighbours must."""
    db = lsm.DB(str(tmp_path / "db"), **OPEN)
    rnd = random.Random(5)
    keys = [b"key%04d" % i for i in range(0, 1200, 2)]
    model = {}
    snaps = []
    try:
        for round_ in range(5):
            for k in rnd.sample(keys, 300):
                if rnd.random() < 0.15:
                    model.pop(k, None)
                    db.delete(k)
                else:
                    model[k] = b"%s/%d/" % (k, round_) + b"v" * rnd.randrange(0, 300)
                    db.put(k, model[k])
            snaps.append((db.snapshot(), dict(model)))
        db.compact_range()
        for snap, expected in snaps + [(db, model)]:
            targets = rnd.sample(keys, 60) + [b"key%04d" % i for i in rnd.sample(range(1, 1200, 2), 30)]
            targets += [b"", b"key", b"zzz"]
            for target in targets:
                it = snap.iterator()
                it.seek(target)
                got = [entry for _, entry in zip(range(7), it)]
                it.close()
                assert got == _model_after(expected, target, 7), target
    finally:
        for snap, _ in snaps:
            snap.release()
        db.close()


def test_the_chunks_of_a_fifty_entry_scan_stop_within_two_blocks_of_its_end(tmp_path):
    """Chunks grow with what the scan has had: the chunks a merged view
    hands out from a seek until 50 entries reach at most two blocks (13
    entries each here) past the 50th, where chunks sized for a long scan
    would read four blocks past it."""
    db = lsm.DB(str(tmp_path / "db"), **OPEN)
    try:
        entries = _load_compacted(db, 9)
        engine = db._engine
        for start in (3, 101, 5003, 7777, 12345, 15000, 19000):
            view, version, sequence = engine.new_view()
            try:
                chunk, bound = view.forward(entries[start][0], True)
                got = list(chunk)
                while len(got) < 50 and bound is not None:
                    chunk, bound = view.forward(bound, False)
                    got += chunk
            finally:
                engine.release_view(version, sequence)
            assert got == entries[start:start + len(got)]
            assert 50 <= len(got) <= 50 + 2 * 13
    finally:
        db.close()


def test_a_view_made_over_an_empty_memtable_ignores_later_writes(tmp_path):
    """A view leaves out a memtable that held nothing when it was made:
    writes after it, into that memtable, stay out of the iterator, and the
    tables' entries stay in."""
    db = lsm.DB(str(tmp_path / "db"), **OPEN)
    try:
        expected = [(b"t%03d" % i, b"table") for i in range(0, 200, 2)]
        for k, v in expected:
            db.put(k, v)
        db.compact_range()
        assert db._engine.memtables.mem.entries == 0
        it = db.iterator()
        snap = db.snapshot()
        for i in range(200):
            db.put(b"t%03d" % i, b"later")
        assert list(it) == expected
        assert list(snap.iterator()) == expected
        snap.release()
        assert [v for _, v in db.iterator()] == [b"later"] * 200
    finally:
        db.close()


def test_once_the_cache_is_pressed_a_scan_caches_blocks_raw_and_a_second_scan_decodes_them(tmp_path):
    """A database larger than its block cache: the blocks a short scan
    reads from the files are cached raw (cheap to evict unread), and the
    same scan run again decodes them into the cache, so a scan repeated
    keeps its blocks decoded; both runs give the model's entries."""
    db = lsm.DB(str(tmp_path / "db"), **OPEN, lru_cache_size=256 << 10)
    try:
        entries = _load_compacted(db, 4)
        cache = db._engine.block_cache
        assert sum(1 for _ in db.iterator(fill_cache=True)) == len(entries)
        assert cache.pressed

        def scan():
            it = db.iterator()
            it.seek(entries[7000][0])
            got = [entry for _, entry in zip(range(50), it)]
            it.close()
            return got

        before = set(cache._map)
        assert scan() == entries[7000:7050]
        added = set(cache._map) - before
        assert len(added) >= 4
        assert all(type(cache._map[key][0]) is bytes for key in added)
        assert scan() == entries[7000:7050]
        assert all(type(cache._map[key][0]) is tuple for key in added)
    finally:
        db.close()
