"""Databases with a custom comparator (plyvel's comparator= and
comparator_name=): their order through flushes, compactions, reopening and
every read, the MANIFEST's name checked at open, compactor processes that
import the function by name, and databases crossing to and from LevelDB
(plyvel) with the same comparator."""
import os
import random

import plyvel
import pytest

import lsm
from comparators import REVERSE_NAME, reverse_bytewise

OPTIONS = dict(create_if_missing=True, write_buffer_size=64 << 10, max_file_size=1 << 20, block_size=1024)


def _fill(db, rng, n=6000, key_space=3000):
    """Puts and deletes of keys of several lengths, in several memtables."""
    model = {}
    for i in range(n):
        key = b"k%d" % rng.randrange(key_space)
        if rng.random() < 0.1:
            db.delete(key)
            model.pop(key, None)
        else:
            value = rng.randbytes(rng.randrange(0, 120))
            db.put(key, value)
            model[key] = value
    return model


def _reverse_items(model):
    return sorted(model.items(), reverse=True)


@pytest.mark.parametrize("compactors", [0, 2])
def test_reverse_order_holds_through_flushes_compactions_and_reopen(tmp_path, compactors):
    path = str(tmp_path / "db")
    options = dict(OPTIONS, comparator=reverse_bytewise, comparator_name=REVERSE_NAME, compactors=compactors)
    db = lsm.DB(path, **options)
    model = _fill(db, random.Random(7))
    db.compact_range()
    assert int(db.get_property(b"leveldb.num-files-at-level0")) == 0
    items = _reverse_items(model)
    assert list(db.iterator()) == items
    assert list(db.iterator(reverse=True)) == items[::-1]
    # Bounds in the comparator's order: start is the larger key bytewise.
    assert list(db.iterator(start=b"k5", stop=b"k4", include_value=False)) == \
        [k for k, _ in items if b"k4" < k <= b"k5"]
    assert all(db.get(k) == v for k, v in items)
    assert db.get(b"k-never") is None
    it = db.raw_iterator()
    it.seek(b"k5")
    assert it.key() == next(k for k, _ in items if k <= b"k5")
    it.prev()
    assert it.key() == next(k for k, _ in reversed(items) if k > b"k5")
    it.close()
    # Sizes grow along the comparator's order: from k9 down to k1 covers more.
    small, large = db.approximate_sizes((b"k9", b"k8"), (b"k9", b"k1"))
    assert 0 < small < large
    db.close()
    db = lsm.DB(path, **options)
    assert list(db.iterator()) == items
    db.close()


def test_opening_with_another_comparator_or_none_is_an_error(tmp_path):
    path = str(tmp_path / "db")
    lsm.DB(path, comparator=reverse_bytewise, comparator_name=REVERSE_NAME, compactors=0, **OPTIONS).close()
    with pytest.raises(lsm.Error, match="does not match existing comparator"):
        lsm.DB(path, compactors=0, comparator=reverse_bytewise, comparator_name=b"other")
    with pytest.raises(lsm.Error, match="does not match existing comparator leveldb.BytewiseComparator"):
        lsm.DB(path, compactors=0)
    bytewise = str(tmp_path / "bytewise")
    lsm.DB(bytewise, compactors=0, create_if_missing=True).close()
    with pytest.raises(lsm.Error, match="leveldb.BytewiseComparator does not match existing comparator"):
        lsm.DB(bytewise, compactors=0, comparator=reverse_bytewise, comparator_name=REVERSE_NAME)


def test_closure_comparator_runs_jobs_in_the_writer_unless_compactors_are_asked_for(tmp_path):
    def by_length_then_bytes(a, b):
        return (len(a), a) > (len(b), b) or -((len(a), a) < (len(b), b))

    db = lsm.DB(str(tmp_path / "db"), comparator=by_length_then_bytes, comparator_name=b"length", **OPTIONS)
    assert db.options.compactors == 0
    model = _fill(db, random.Random(3))
    db.compact_range()
    assert list(db.iterator(include_value=False)) == sorted(model, key=lambda k: (len(k), k))
    db.close()
    with pytest.raises(TypeError, match="nested function"):
        lsm.DB(str(tmp_path / "db"), comparator=by_length_then_bytes, comparator_name=b"length", compactors=1)


def test_lsm_database_with_a_comparator_reads_in_plyvel(tmp_path):
    path = str(tmp_path / "db")
    db = lsm.DB(path, comparator=reverse_bytewise, comparator_name=REVERSE_NAME, compactors=0, **OPTIONS)
    model = _fill(db, random.Random(11))
    db.compact_range()
    db.put(b"k-wal-only", b"v")  # the newest write in the WAL alone
    model[b"k-wal-only"] = b"v"
    db.close()
    pdb = plyvel.DB(path, comparator=reverse_bytewise, comparator_name=REVERSE_NAME, paranoid_checks=True)
    try:
        items = _reverse_items(model)
        assert list(pdb.iterator(verify_checksums=True)) == items
        assert all(pdb.get(k) == v for k, v in items)  # index keys lead plyvel to every block
        assert pdb.get(b"k-never") is None
    finally:
        pdb.close()


def test_plyvel_database_with_a_comparator_reads_in_lsm(tmp_path):
    path = str(tmp_path / "db")
    pdb = plyvel.DB(path, create_if_missing=True, comparator=reverse_bytewise, comparator_name=REVERSE_NAME,
                    write_buffer_size=64 << 10, block_size=1024)
    model = _fill(pdb, random.Random(5))
    pdb.compact_range()
    pdb.put(b"k-wal-only", b"v")
    model[b"k-wal-only"] = b"v"
    pdb.close()
    db = lsm.DB(path, comparator=reverse_bytewise, comparator_name=REVERSE_NAME, compactors=0, paranoid_checks=True)
    try:
        items = _reverse_items(model)
        assert list(db.iterator()) == items
        assert all(db.get(k) == v for k, v in items)
        db.compact_range()
        assert list(db.iterator(reverse=True)) == items[::-1]
    finally:
        db.close()


def test_repair_keeps_a_custom_order_database_readable_in_its_order(tmp_path):
    path = str(tmp_path / "db")
    options = dict(comparator=reverse_bytewise, comparator_name=REVERSE_NAME)
    db = lsm.DB(path, compactors=0, **options, **OPTIONS)
    model = _fill(db, random.Random(13))
    db.close()  # the newest writes in the WAL alone: repair converts it into a table
    for name in os.listdir(path):
        if name.startswith("MANIFEST-"):
            os.remove(os.path.join(path, name))
    lsm.repair_db(path, **options)
    db = lsm.DB(path, compactors=0, **options)
    try:
        items = _reverse_items(model)
        assert list(db.iterator()) == items
        assert all(db.get(k) == v for k, v in items)
    finally:
        db.close()
