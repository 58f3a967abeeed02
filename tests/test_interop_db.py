"""Whole databases cross between lsm and LevelDB (plyvel) in both directions.

Each test builds a database big enough to have tables beyond level 0, with
overwrites and deletions, and with its newest writes only in the WAL (closed
without a flush), then opens it with the other implementation in its strictest
mode (paranoid_checks, verify_checksums) and compares every key with a dict
model: full iteration both ways plus point lookups of present, deleted and
never-written keys (the latter exercise the bloom filters).
"""
import os
import random

import plyvel
import pytest

import lsm
from table_helpers import block_shapes

KEY_SPACE = 300_000


def _key(n):
    return b"k%015d" % n  # 16 bytes


def _value(rng):
    return rng.randbytes(rng.randrange(50, 101))


def _levels(db):
    return [int(db.get_property(b"leveldb.num-files-at-level%d" % level)) for level in range(7)]


def _wal_bytes(path):
    return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path) if n.endswith(".log"))


def _load(db, model, rng, ops, key_space=KEY_SPACE):
    """`ops` random operations: single puts, deletes and write batches, plus
    values spanning several WAL and table blocks, an empty value, the empty key."""
    for _ in range(3):
        k, v = _key(rng.randrange(key_space)), rng.randbytes(rng.randrange(33_000, 140_000))
        db.put(k, v)
        model[k] = v
    db.put(b"", b"empty key")
    model[b""] = b"empty key"
    db.put(b"zz-empty-value", b"")
    model[b"zz-empty-value"] = b""
    done = 0
    while done < ops:
        r = rng.random()
        if r < 0.6:
            with db.write_batch() as wb:
                for _ in range(100):
                    k, v = _key(rng.randrange(key_space)), _value(rng)
                    if rng.random() < 0.1:
                        wb.delete(k)
                        model.pop(k, None)
                    else:
                        wb.put(k, v)
                        model[k] = v
            done += 100
        elif r < 0.9:
            k, v = _key(rng.randrange(key_space)), _value(rng)
            db.put(k, v)
            model[k] = v
            done += 1
        else:
            k = _key(rng.randrange(key_space))
            db.delete(k)
            model.pop(k, None)
            done += 1


def _assert_same(db, model, rng, **read_kw):
    expected = sorted(model.items())
    got = list(db.iterator(**read_kw))
    assert len(got) == len(expected)
    assert got == expected
    assert list(db.iterator(reverse=True, **read_kw)) == expected[::-1]
    probes = rng.sample(list(model), min(3000, len(model)))
    probes += [_key(rng.randrange(KEY_SPACE)) for _ in range(3000)]  # mostly absent or deleted
    probes += [b"", b"k", b"k" + b"9" * 16, b"\xff" * 16]
    assert any(len(v) > 32_768 for v in model.values()) and b"" in model.values()
    for k in probes:
        assert db.get(k, **read_kw) == model.get(k), k


def _mid_range(model):
    keys = sorted(model)
    return keys[len(keys) // 4], keys[3 * len(keys) // 4]


@pytest.mark.parametrize("compression, prefix_compression", [("snappy", False), (None, False), ("snappy", True)])
def test_lsm_database_with_several_levels_and_wal_tail_reads_identically_in_leveldb(
        tmp_path, compression, prefix_compression):
    path = str(tmp_path / "db")
    rng = random.Random(11)
    model = {}
    db = lsm.DB(path, create_if_missing=True, compactors=0, write_buffer_size=256 << 10,
                max_file_size=1 << 20, compression=compression, bloom_filter_bits=10,
                prefix_compression=prefix_compression)
    order = list(range(210_000))
    rng.shuffle(order)
    for i in range(0, len(order), 500):
        with db.write_batch() as wb:
            for n in order[i:i + 500]:
                # Values of one length: without prefix compression, blocks of
                # them are uniform (lsm.table.block); _load's are not.
                k, v = _key(n), rng.randbytes(100)
                wb.put(k, v)
                model[k] = v
    _load(db, model, rng, 40_000, key_space=220_000)  # overwrites and deletions
    levels = _levels(db)
    assert sum(levels[1:]) >= 2 and sum(1 for n in levels[1:] if n) >= 2, levels
    uniform, other = block_shapes(path)
    # Overwrites of other lengths leave most blocks mixed; with prefix
    # compression only a block of one huge value could be uniform.
    assert other > 0 and (uniform <= 3 if prefix_compression else uniform > 100), (uniform, other)
    # A few thousand writes after the last flush: they exist only in the WAL.
    _load(db, model, rng, 3_000)
    db.close()
    assert _wal_bytes(path) > 0, "the newest writes should still be in the WAL"
    assert len(model) >= 200_000

    pdb = plyvel.DB(path, paranoid_checks=True, bloom_filter_bits=10)
    try:
        _assert_same(pdb, model, rng, verify_checksums=True)
        start, stop = _mid_range(model)
        expected = [(k, v) for k, v in sorted(model.items()) if start <= k < stop]
        assert list(pdb.iterator(start=start, stop=stop, verify_checksums=True)) == expected
    finally:
        pdb.close()


def _plyvel_then_lsm_then_plyvel(tmp_path, compression):
    path = str(tmp_path / "db")
    rng = random.Random(22 if compression else 23)
    model = {}
    pdb = plyvel.DB(path, create_if_missing=True, compression=compression, bloom_filter_bits=10,
                    write_buffer_size=64 << 10, max_file_size=1 << 20, block_size=1024)
    _load(pdb, model, rng, 60_000, key_space=80_000)
    pdb.close()  # LevelDB leaves its last WAL unflushed until the next open
    assert _wal_bytes(path) > 0
    tables = [n for n in os.listdir(path) if n.endswith(".ldb")]
    assert len(tables) >= 3, tables

    db = lsm.DB(path, compactors=0, paranoid_checks=True, compression=compression, bloom_filter_bits=10,
                write_buffer_size=128 << 10, max_file_size=1 << 20)
    try:
        _assert_same(db, model, rng)
        # More writes on top of LevelDB's tables: overwrites, deletions of
        # keys that live in LevelDB's files, new keys; some compaction.
        for k in rng.sample(sorted(model), 2000):
            db.delete(k)
            del model[k]
        _load(db, model, rng, 30_000, key_space=100_000)
        start, stop = _mid_range(model)
        db.compact_range(start=start, stop=stop)
        _load(db, model, rng, 2_000, key_space=100_000)  # left in the WAL
        _assert_same(db, model, rng)
    finally:
        db.close()
    assert _wal_bytes(path) > 0

    pdb = plyvel.DB(path, paranoid_checks=True, bloom_filter_bits=10)
    try:
        _assert_same(pdb, model, rng, verify_checksums=True)
        # and LevelDB may keep writing to what lsm left behind
        pdb.put(_key(1), b"from leveldb")
        model[_key(1)] = b"from leveldb"
        pdb.compact_range()
        _assert_same(pdb, model, rng, verify_checksums=True)
    finally:
        pdb.close()

    db = lsm.DB(path, compactors=0, paranoid_checks=True)
    try:
        _assert_same(db, model, rng)
    finally:
        db.close()


def test_leveldb_snappy_database_with_wal_tail_reads_in_lsm_and_back(tmp_path):
    _plyvel_then_lsm_then_plyvel(tmp_path, "snappy")


def test_leveldb_uncompressed_database_with_wal_tail_reads_in_lsm_and_back(tmp_path):
    _plyvel_then_lsm_then_plyvel(tmp_path, None)
