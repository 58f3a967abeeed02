"""Iterators and snapshots keep their own version while compactions replace
the files underneath them; files are deleted exactly when nothing reads them.

Checked against the directory itself: pinned tables must still be on disk
while an iterator is open, and once everything is closed the directory holds
only what the MANIFEST names (every table live, one MANIFEST, no WAL older
than the log number), read with the format layer independently of the engine.
"""
import bisect
import gc
import os
import random
import re
import threading
import time

import plyvel
import pytest

import lsm
from lsm.fileio import FileSystem
from lsm.record import LogReader
from lsm.version_edit import VersionEdit

OPEN = dict(create_if_missing=True, compactors=0, write_buffer_size=64 << 10, max_file_size=1 << 20,
            block_size=1024)


# ------------------------------------------------------------------ helpers
def manifest_state(path):
    """(live table numbers, log_number, prev_log_number, manifest name) as the
    MANIFEST that CURRENT names records them."""
    with open(os.path.join(path, "CURRENT"), "rb") as f:
        current = f.read()
    assert current.endswith(b"\n") and current.startswith(b"MANIFEST-"), current
    name = current[:-1].decode()
    with open(os.path.join(path, name), "rb") as f:
        data = f.read()
    live = {}
    log_number = prev_log = None
    for _offset, payload in LogReader(data, strict=True):
        edit = VersionEdit.decode(payload)
        for level, number in edit.deleted_files:
            assert live.get(number) == level, f"deleting {number} at level {level}, not there"
            del live[number]
        for level, meta in edit.new_files:
            live[meta.number] = level
        if edit.log_number is not None:
            log_number = edit.log_number
        if edit.prev_log_number is not None:
            prev_log = edit.prev_log_number
    return set(live), log_number, prev_log or 0, name


def table_numbers(path):
    return {int(n.split(".")[0]) for n in os.listdir(path) if re.fullmatch(r"\d+\.(ldb|sst)", n)}


def live_numbers(db):
    """Numbers of the tables in the current version, from leveldb.sstables."""
    text = db.get_property(b"leveldb.sstables").decode()
    return {int(m) for m in re.findall(r"^ (\d+):", text, re.M)}


def assert_no_obsolete_files(path):
    """A closed database directory holds only what its MANIFEST names."""
    live, log_number, prev_log, manifest = manifest_state(path)
    names = os.listdir(path)
    assert [n for n in names if n.startswith("MANIFEST-")] == [manifest]
    tables = table_numbers(path)
    assert tables == live, f"orphans {sorted(tables - live)}, missing {sorted(live - tables)}"
    for n in names:
        if n.endswith(".log"):
            number = int(n[:-4])
            assert number >= log_number or number == prev_log, f"obsolete WAL {n} (log number {log_number})"
        assert not n.endswith(".dbtmp"), n
    staging = os.path.join(path, "lsm-staging")
    if os.path.isdir(staging):
        assert os.listdir(staging) == [], os.listdir(staging)


def _fill(db, model, rng, keys, tag):
    for i in range(0, len(keys), 500):
        with db.write_batch() as wb:
            for k in keys[i:i + 500]:
                v = b"%s-%s-" % (tag, k) + rng.randbytes(rng.randrange(20, 120))
                wb.put(k, v)
                model[k] = v


def _churn(db, model, rng, round_):
    """Overwrite everything, delete a third, add new keys, compact all."""
    keys = sorted(model)
    _fill(db, model, rng, keys, b"r%d" % round_)
    with db.write_batch() as wb:
        for k in keys[round_::3]:
            wb.delete(k)
            model.pop(k, None)
    _fill(db, model, rng, [b"new%d-%06d" % (round_, i) for i in range(1000)], b"n")
    db.compact_range()


def _key(i):
    return b"key%06d" % i


@pytest.fixture
def loaded(tmp_path):
    """A database with tables on several levels plus a memtable, and its model."""
    path = str(tmp_path / "db")
    rng = random.Random(3)
    model = {}
    db = lsm.DB(path, **OPEN)
    keys = [_key(i) for i in range(12_000)]
    rng.shuffle(keys)
    _fill(db, model, rng, keys, b"base")
    db.compact_range()
    _fill(db, model, rng, keys[:2000], b"mem")  # newest state partly in the memtable
    for k in keys[2000:2600]:
        db.delete(k)
        del model[k]
    yield path, db, model, rng
    db.close()


# -------------------------------------------------------------------- tests
def test_iterators_and_snapshot_see_their_version_after_compactions_replace_every_file(loaded):
    path, db, model, rng = loaded
    old = dict(model)
    old_items = sorted(old.items())

    it_fresh = db.iterator()
    it_mid = db.iterator()
    head = [next(it_mid) for _ in range(100)]
    it_rev = db.iterator(reverse=True)
    it_range = db.iterator(start=_key(3000), stop=_key(7000), include_value=False)
    raw = db.raw_iterator()
    raw.seek_to_first()
    snap = db.snapshot()
    snap_it = snap.iterator()  # made before the churn
    pinned = table_numbers(path)
    assert pinned == live_numbers(db)

    for round_ in range(3):
        _churn(db, model, rng, round_)
        on_disk = table_numbers(path)
        assert pinned <= on_disk, f"round {round_}: files read by open iterators deleted: {sorted(pinned - on_disk)}"
    now_live = live_numbers(db)
    assert not (pinned & now_live), "compaction should have replaced every old table"
    assert dict(db.iterator()) == model  # the present is right too

    assert head + list(it_mid) == old_items
    assert list(it_fresh) == old_items
    assert list(it_rev) == old_items[::-1]
    assert list(it_range) == [k for k, _ in old_items if _key(3000) <= k < _key(7000)]
    walked = []
    while raw.valid():
        walked.append(raw.item())
        raw.next()
    assert walked == old_items
    raw.seek_to_last()
    assert raw.item() == old_items[-1]
    raw.prev()
    assert raw.item() == old_items[-2]
    raw.seek(_key(1234) + b"!")
    assert raw.key() == min(k for k in old if k > _key(1234) + b"!")
    assert list(snap_it) == old_items

    # Reads through the snapshot, including iterators made after the churn.
    assert list(snap.iterator()) == old_items
    assert list(snap.iterator(reverse=True, include_value=False)) == [k for k, _ in old_items][::-1]
    for k in rng.sample(sorted(set(old) | set(model)), 3000) + [_key(2100), b"new0-000001"]:
        assert snap.get(k) == old.get(k), k
    assert db.get(b"new0-000001") == model.get(b"new0-000001")

    # Close the iterators: their tables go, the snapshot alone pins no file.
    for it in (it_fresh, it_mid, it_rev, it_range, raw, snap_it):
        it.close()
    assert table_numbers(path) == live_numbers(db), "tables of released versions must be deleted"
    for k in rng.sample(sorted(old), 500):
        assert snap.get(k) == old[k]
    snap.release()
    db.compact_range()
    assert dict(db.iterator()) == model
    db.close()
    assert_no_obsolete_files(path)

    pdb = plyvel.DB(path, paranoid_checks=True)
    try:
        assert dict(pdb.iterator(verify_checksums=True)) == model
    finally:
        pdb.close()


def test_iterator_consumed_between_compactions_never_skips_or_repeats(loaded):
    path, db, model, rng = loaded
    expected = sorted(model.items())
    it = db.iterator()
    rit = db.iterator(reverse=True)
    got, rgot = [], []
    for step, (item, ritem) in enumerate(zip(it, rit)):
        got.append(item)
        rgot.append(ritem)
        if step % 3000 == 2999:
            _churn(db, model, rng, step // 3000)
            assert table_numbers(path) >= live_numbers(db)
    got.extend(it)
    rgot.extend(rit)
    assert got == expected
    assert rgot == expected[::-1]
    it.close()
    rit.close()
    assert table_numbers(path) == live_numbers(db)


def test_files_of_an_iterator_dropped_without_close_are_deleted_when_collected(loaded):
    path, db, model, rng = loaded
    it = db.iterator()
    next(it)
    pinned = table_numbers(path)
    _churn(db, model, rng, 0)
    assert pinned <= table_numbers(path)
    del it
    gc.collect()
    assert table_numbers(path) == live_numbers(db)
    db.close()
    assert_no_obsolete_files(path)


def test_close_with_open_iterators_and_snapshot_leaves_no_obsolete_files(loaded):
    path, db, model, rng = loaded
    its = [db.iterator(), db.raw_iterator(), db.snapshot().iterator()]
    snap = db.snapshot()
    next(its[0])
    its[1].seek_to_last()
    pinned = table_numbers(path)
    _churn(db, model, rng, 1)
    assert pinned <= table_numbers(path)
    db.close()
    assert_no_obsolete_files(path)
    with pytest.raises(RuntimeError):
        next(its[0])
    with pytest.raises(RuntimeError):
        its[1].valid()
    with pytest.raises(RuntimeError):
        snap.get(_key(1))
    db2 = lsm.DB(path, compactors=0)
    try:
        assert dict(db2.iterator()) == model
    finally:
        db2.close()
    assert_no_obsolete_files(path)


def test_reopen_after_compactions_keeps_one_manifest_and_only_live_wals(tmp_path):
    """Several open/write/close cycles with flushes and compactions in each."""
    path = str(tmp_path / "db")
    rng = random.Random(9)
    model = {}
    for cycle in range(4):
        db = lsm.DB(path, **OPEN)
        try:
            keys = [_key(rng.randrange(20_000)) for _ in range(4000)]
            _fill(db, model, rng, keys, b"c%d" % cycle)
            if cycle % 2:
                db.compact_range(start=_key(5000), stop=_key(15000))
            assert dict(db.iterator()) == model
        finally:
            db.close()
        assert_no_obsolete_files(path)


# ------------------------------------------------- concurrent readers/writers
# LevelDB (and so plyvel) lets one thread read while another writes; a reader
# taking a snapshot or an iterator must get one consistent version.
def _run_beside(writer, reader):
    """Call reader() in a loop while writer() runs in a thread; returns the
    number of reader() calls that returned something true (a bad read)."""
    import threading
    errors = []

    def guarded():
        try:
            writer()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
    t = threading.Thread(target=guarded)
    t.start()
    bad = 0
    while t.is_alive():
        bad += bool(reader())
    t.join()
    if errors:
        raise errors[0]
    return bad


def test_snapshot_taken_while_another_thread_writes_reads_one_batch_exactly(tmp_path):
    """Each batch overwrites every key, so a snapshot sees all keys with one
    batch's value. Damage seen: a snapshot taken while a batch is in flight
    (its snapshot list already captured, its memtable insert not yet done)
    is not protected, and reads None or values of an *older* batch."""
    db = lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=0, write_buffer_size=1 << 30)
    keys = [_key(i) for i in range(200)]
    try:
        with db.write_batch() as wb:
            for k in keys:
                wb.put(k, b"0:" + bytes(2000))

        def writer():
            for r in range(1, 120):
                with db.write_batch() as wb:
                    for k in keys:
                        wb.put(k, b"%d:" % r + bytes(2000))

        mixed = []

        def reader():
            with db.snapshot() as snap:
                values = {snap.get(k, b"None:")[:6].split(b":")[0] for k in keys}
            if len(values) != 1:
                mixed.append(sorted(values))
            return len(values) != 1
        bad = _run_beside(writer, reader)
        assert bad == 0, f"{bad} snapshots mixed batches, e.g. {mixed[:3]}"
    finally:
        db.close()


def test_iterator_created_while_another_thread_writes_does_not_lose_keys(tmp_path):
    """Damage seen: creating iterators while another thread inserts into the
    memtable drops keys from the memtable's sorted index for good; every
    later iterator misses them (get still finds them) until the memtable is
    flushed."""
    db = lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=0, write_buffer_size=1 << 30)
    written = []
    try:
        def writer():
            for r in range(8):
                batch = [b"n%02d-%06d" % (r, i) for i in range(20_000)]
                with db.write_batch() as wb:
                    for k in batch:
                        wb.put(k, b"x")
                written.extend(batch)
                for i in range(0, 2000, 1):  # single puts too
                    db.put(b"s%02d-%06d" % (r, i), b"y")
                    written.append(b"s%02d-%06d" % (r, i))

        def reader():
            with db.iterator(include_value=False) as it:
                next(it, None)
        _run_beside(writer, reader)
        got = list(db.iterator(include_value=False))
        missing = sorted(set(written) - set(got))
        assert not missing, (f"{len(missing)} of {len(written)} keys missing from iteration, e.g. {missing[:3]}; "
                             f"get finds them: {[db.get(k) for k in missing[:3]]}")
        assert got == sorted(written)
    finally:
        db.close()


def test_versions_spanning_blocks_are_not_lost_to_a_seek_or_a_reverse_scan(tmp_path):
    """A key with enough versions to fill several blocks: each snapshot must
    see its own version whether it scans forward, backward or seeks, even
    when the block holding the newest versions has none visible to it (the
    iterator must then read on into the next block)."""
    db = lsm.DB(str(tmp_path / "db"), **OPEN)
    for k in (b"a", b"b", b"y", b"z"):
        db.put(k, k * 10)
    snaps = []
    for i in range(120):
        db.put(b"m", b"%03d" % i + b"v" * 97)
        if i % 17 == 0:
            snaps.append((db.snapshot(), b"%03d" % i + b"v" * 97))
    db.compact_range()
    assert int(db.get_property(b"leveldb.num-files-at-level0")) == 0  # all in tables, none in memory
    try:
        for snap, m_value in snaps + [(db, b"119" + b"v" * 97)]:
            expected = [(b"a", b"a" * 10), (b"b", b"b" * 10), (b"m", m_value), (b"y", b"y" * 10),
                        (b"z", b"z" * 10)]
            assert list(snap.iterator()) == expected
            assert list(snap.iterator(reverse=True)) == expected[::-1]
            it = snap.iterator()
            it.seek(b"m")
            assert next(it) == (b"m", m_value)
            assert next(it) == (b"y", b"y" * 10)
            it = snap.iterator(start=b"c", reverse=True)
            assert next(it) == (b"z", b"z" * 10)
            # A reverse seek to m lands in the first of m's blocks, whose
            # versions may all be too new for this snapshot.
            it = snap.iterator(stop=b"m", include_stop=True, reverse=True)
            assert next(it) == (b"m", m_value)
            assert next(it) == (b"b", b"b" * 10)
            it = snap.iterator()
            it.seek_to_stop()
            assert it.prev() == (b"z", b"z" * 10)
            assert snap.get(b"m") == m_value
        # The merged view's own contract, which the cursor does not reach
        # today: entries <= m, inclusive, end with m's visible version.
        engine = db._engine
        for snap, m_value in snaps:
            view, version, sequence = engine.new_view(snap._sequence)
            try:
                chunk, _bound = view.backward(b"m", True)
                assert chunk[-1] == (b"m", m_value)
                chunk, _bound = view.forward(b"m", True)
                assert chunk[0] == (b"m", m_value)
            finally:
                engine.release_view(version, sequence)
    finally:
        for snap, _ in snaps:
            snap.release()
        db.close()


def test_long_scans_keep_each_snapshots_version_of_keys_spanning_blocks(tmp_path):
    """Keys whose versions fill several blocks, met by scans long enough to
    take the scan path (blocks resolved one at a time, the last one kept for
    the next chunk): every snapshot reads its own version of each, forward,
    backward, when a long forward run turns back, and when the merged view
    turns back at a chunk's bound (where a kept block is reused)."""
    db = lsm.DB(str(tmp_path / "db"), **OPEN)
    rnd = random.Random(7)
    model = {}
    snaps = []
    hot = [b"k%05d" % i for i in range(7, 3000, 61)]
    try:
        for i in range(3000):
            model[b"k%05d" % i] = b"%05d" % i + b"p" * 95
            db.put(b"k%05d" % i, model[b"k%05d" % i])
        for round_ in range(40):
            for k in hot:
                model[k] = b"%s-%03d" % (k, round_) + b"h" * rnd.randrange(80, 120)
                db.put(k, model[k])
            if round_ % 13 == 5:
                gone = b"k%05d" % rnd.randrange(3000)
                model.pop(gone, None)
                db.delete(gone)
                snaps.append((db.snapshot(), sorted(model.items())))
        snaps.append((db, sorted(model.items())))
        db.compact_range()
        engine = db._engine
        for snap, expected in snaps:
            assert list(snap.iterator()) == expected
            assert list(snap.iterator(reverse=True)) == expected[::-1]
            it = snap.iterator()
            for i in range(1710):
                assert next(it) == expected[i]
            # plyvel's cursor lies between entries: prev() after next() returns the same one.
            for i in range(1709, 1100, -1):
                assert it.prev() == expected[i]
            assert [next(it) for _ in range(900)] == expected[1101:2001]

            view, version, sequence = engine.new_view(getattr(snap, "_sequence", None))
            try:
                position = {k: i for i, (k, _) in enumerate(expected)}
                bound, done, chunks = None, 0, 0
                while True:
                    chunk, bound = view.forward(bound, False) if chunks else view.forward(None, True)
                    assert chunk == expected[done:done + len(chunk)]
                    done += len(chunk)
                    chunks += 1
                    if bound is None:
                        break
                    back, _ = view.backward(bound, True)
                    upto = position[bound] + 1 if bound in position else done
                    assert back == expected[upto - len(back):upto]
                assert done == len(expected) and chunks > 10
            finally:
                engine.release_view(version, sequence)
    finally:
        for snap, _ in snaps[:-1]:
            snap.release()
        db.close()


def test_scan_goes_on_after_the_table_cache_dropped_its_table(tmp_path):
    """A scan keeps its block reader from chunk to chunk; when gets between
    two chunks make the table cache drop the scan's table (and open other
    tables), the scan reads on correctly rather than from a closed or
    foreign descriptor."""
    db = lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=0, write_buffer_size=1 << 20)
    try:
        rnd = random.Random(3)
        expected = [(b"k%05d" % i, rnd.randbytes(1000)) for i in range(5000)]  # incompressible
        for start in range(0, len(expected), 500):
            with db.write_batch() as wb:
                for k, v in expected[start:start + 500]:
                    wb.put(k, v)
        db.compact_range()
        tables = sum(int(db.get_property(b"leveldb.num-files-at-level%d" % level)) for level in range(1, 7))
        assert tables >= 4
        db.close()
        db = lsm.DB(str(tmp_path / "db"), compactors=0)  # nothing cached
        db._engine.table_cache.capacity = 2  # so every get below evicts a table
        got = []
        for n, entry in enumerate(db.iterator()):
            got.append(entry)
            if n % 150 == 0:
                for k, v in rnd.sample(expected[::1000], 3):  # in three other tables, mostly
                    assert db.get(k) == v
        assert got == expected
    finally:
        db.close()


def test_a_scan_over_overlapping_sources_sees_each_key_once_and_newest(tmp_path):
    """A memtable, level-0 tables and a compacted base that all hold versions
    of the same keys: every source's chunks end at different keys, so each
    chunk of the merged view takes part of the others' (held over for the
    next). A scan must see each key once with its newest value, also when
    it turns back and forth, and every chunk must match the model."""
    db = lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=0, write_buffer_size=4 << 20)
    rnd = random.Random(11)
    keys = [b"k%05d" % i for i in range(4000)]
    model = {}
    try:
        for k in keys:
            model[k] = k + b"-base" + b"b" * 80
            db.put(k, model[k])
        db.compact_range()
        for round_ in range(3):
            for k in rnd.sample(keys, 2000):
                model[k] = k + b"-%d" % round_ + b"r" * rnd.randrange(60, 100)
                db.put(k, model[k])
            for k in rnd.sample(keys, 50):
                model.pop(k, None)
                db.delete(k)
            db._engine.flush()
        for k in rnd.sample(keys, 300):  # and some left in the memtable
            model[k] = k + b"-mem"
            db.put(k, model[k])
        assert int(db.get_property(b"leveldb.num-files-at-level0")) >= 2
        expected = sorted(model.items())
        assert list(db.iterator()) == expected
        assert list(db.iterator(reverse=True)) == expected[::-1]
        it = db.iterator()
        assert [next(it) for _ in range(2500)] == expected[:2500]
        for i in range(2499, 2100, -1):
            assert it.prev() == expected[i]
        assert [next(it) for _ in range(1000)] == expected[2101:3101]

        engine = db._engine
        view, version, sequence = engine.new_view()
        try:
            chunk, bound = view.forward(None, True)
            done = len(chunk)
            chunks = 1
            assert chunk == expected[:done]
            while bound is not None:
                chunk, bound = view.forward(bound, False)
                assert chunk == expected[done:done + len(chunk)]
                done += len(chunk)
                chunks += 1
            assert done == len(expected) and chunks > 10
            # Any move, from any key: forward and backward, on from the last
            # bound or jumping back into chunks already handed out.
            ukeys = [k for k, _ in expected]
            bound, ascending = None, True
            for step in range(600):
                if rnd.random() < 0.6 and bound is not None:
                    key, inclusive = bound, False  # on from the last chunk, the same way
                else:
                    key, inclusive = rnd.choice(keys) + rnd.choice((b"", b"\x00")), rnd.random() < 0.3
                    ascending = rnd.random() < 0.6
                if ascending:
                    chunk, bound = view.forward(key, inclusive)
                    first = bisect.bisect_left(ukeys, key) if inclusive else bisect.bisect_right(ukeys, key)
                    assert chunk == expected[first:first + len(chunk)], (step, key, inclusive)
                    end = len(expected) if bound is None else bisect.bisect_right(ukeys, bound)
                    assert first + len(chunk) == end, (step, key, inclusive)
                else:
                    chunk, bound = view.backward(key, inclusive)
                    end = bisect.bisect_right(ukeys, key) if inclusive else bisect.bisect_left(ukeys, key)
                    assert chunk == expected[end - len(chunk):end], (step, key, inclusive)
                    first = 0 if bound is None else bisect.bisect_left(ukeys, bound)
                    assert end - len(chunk) == first, (step, key, inclusive)
        finally:
            engine.release_view(version, sequence)
    finally:
        db.close()


class _CompactBeforeFirstTableOpen(FileSystem):
    """Runs db.compact_range() just before the first open of a table file:
    the compaction deletes that very table, as one committed by another
    thread between a get's look at the version and its open of the table
    would (a get takes no lock and pins no version)."""

    def __init__(self):
        self.db = None
        self.fired = False

    def open_random(self, path):
        if self.db is not None and not self.fired and path.endswith(".ldb"):
            self.fired = True
            self.db.compact_range()
        return super().open_random(path)


def _old_tables_and_new_level0_table(path):
    """Keys written as b"old-" + key into compacted tables, every third one
    then overwritten with b"new-" + key, which the reopen that follows
    flushes into one level-0 table. Returns the keys."""
    db = lsm.DB(path, **OPEN)
    keys = [_key(i) for i in range(3000)]
    for i in range(0, len(keys), 500):
        with db.write_batch() as wb:
            for k in keys[i:i + 500]:
                wb.put(k, b"old-" + k)
    db.compact_range()
    for k in keys[::3]:
        db.put(k, b"new-" + k)
    db.close()
    return keys


@pytest.mark.parametrize("reader", ["db", "snapshot"])
def test_a_get_whose_table_a_compaction_deletes_midway_reads_the_new_version(tmp_path, reader):
    path = str(tmp_path / "db")
    keys = _old_tables_and_new_level0_table(path)
    fs = _CompactBeforeFirstTableOpen()
    db = lsm.DB(path, compactors=0, fs=fs)
    try:
        assert db.get_property(b"leveldb.num-files-at-level0") == b"1"
        fs.db = db
        source = db.snapshot() if reader == "snapshot" else db
        assert source.get(keys[3]) == b"new-" + keys[3]
        assert fs.fired and db.get_property(b"leveldb.num-files-at-level0") == b"0"
        assert [source.get(k) for k in keys[:9]] == [(b"new-" if i % 3 == 0 else b"old-") + k
                                                     for i, k in enumerate(keys[:9])]
    finally:
        db.close()


def test_approximate_size_keeps_the_tables_it_measures_while_a_compaction_deletes_them(tmp_path):
    path = str(tmp_path / "db")
    keys = _old_tables_and_new_level0_table(path)
    fs = _CompactBeforeFirstTableOpen()
    db = lsm.DB(path, compactors=0, fs=fs)
    try:
        level0 = {f.number for f in db._engine.versions.current.levels[0]}
        assert len(level0) == 1
        fs.db = db
        assert db.approximate_size(keys[100], keys[2000]) > 0  # measured inside the level-0 table
        assert fs.fired and db.get_property(b"leveldb.num-files-at-level0") == b"0"
        assert not level0 & table_numbers(path), "the compacted level-0 table outlived its last reader"
    finally:
        db.close()


def test_a_table_the_cache_drops_stays_readable_by_whoever_holds_it(tmp_path):
    """Another thread may be reading a table when the table cache drops it
    (for room, or because it was deleted): its descriptor must stay its own
    until that reader lets go, never closed under the read and reused by
    the next file opened."""
    path = str(tmp_path / "db")
    db = lsm.DB(path, **OPEN)
    try:
        for i in range(0, 6000, 500):
            with db.write_batch() as wb:
                for j in range(i, i + 500):
                    wb.put(_key(j), b"v" * 100 + _key(j))
        db.compact_range()
        engine = db._engine
        files = [f for level in engine.versions.current.levels for f in level]
        assert len(files) >= 3
        cache = engine.table_cache
        cache.close()
        cache.capacity = 1
        held = cache.get(files[0].number)
        cache.get(files[1].number)  # room for it: the held table leaves the cache
        cache.evict(files[1].number)  # as a deleted table does
        opened = [open(os.path.join(path, "CURRENT"), "rb") for _ in range(4)]  # the lowest free descriptors
        try:
            key = files[0].smallest[:-8]
            kind, value = held.get(key, engine.versions.last_sequence)
            assert value == b"v" * 100 + key
            held.file.close()  # once closed, a read says so
            with pytest.raises(lsm.errors.Error, match=r"\.ldb: read after close"):
                held.get(files[0].largest[:-8], engine.versions.last_sequence)  # a block not cached
        finally:
            for f in opened:
                f.close()
    finally:
        db.close()


def _collect_holding_the_engine_lock(engine, timeout=10.0) -> bool:
    """gc.collect() on a thread that holds the engine's lock, as a
    collection started by any allocation inside the engine would; returns
    whether it finished (a finalizer waiting for the lock never does)."""
    def collect():
        with engine.state.cv:
            gc.collect()

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


@pytest.mark.parametrize("kind", ["iterator", "snapshot"])
def test_an_unclosed_reader_collected_inside_the_engine_lock_does_not_hang_it(tmp_path, kind):
    path = str(tmp_path / "db")
    db = lsm.DB(path, **OPEN)
    gc.disable()
    try:
        for i in range(3000):
            db.put(_key(i), b"v" * 50)
        db.compact_range()
        reader = db.iterator() if kind == "iterator" else db.snapshot()
        next(iter(reader)) if kind == "iterator" else reader.get(_key(1))
        pinned_tables = table_numbers(path)
        reader.cycle = reader  # only the cyclic collector frees it
        del reader
        engine = db._engine
        if not _collect_holding_the_engine_lock(engine):
            db = None  # its lock stays taken by the stuck thread: closing would hang too
            pytest.fail("the collected reader's release waited for its own lock")
        for i in range(3000):
            db.put(_key(i), b"w" * 50)
        db.compact_range()  # commits delete obsolete files: the queued release is done by then
        assert not engine.snapshots
        assert not pinned_tables & table_numbers(path) and table_numbers(path) == live_numbers(db)
    finally:
        gc.enable()
        if db is not None:
            db.close()


def test_an_unclosed_db_collected_inside_its_engine_lock_closes_without_hanging(tmp_path):
    path = str(tmp_path / "db")
    db = lsm.DB(path, **OPEN)
    gc.disable()
    try:
        db.put(b"k", b"v")
        engine = db._engine
        holder = [db]
        holder.append(holder)  # only the cyclic collector frees the DB
        del db, holder
        assert _collect_holding_the_engine_lock(engine), "the collected DB's close waited for its own lock"
    finally:
        gc.enable()
    deadline = time.monotonic() + 10
    while True:  # closed on another thread: its LOCK goes soon
        try:
            again = lsm.DB(path)
            break
        except lsm.LockError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    with again:
        assert again.get(b"k") == b"v"
