"""Differential test: one random operation sequence on plyvel.DB and lsm.DB
gives the same result for every call, cursor moves included."""
import random

import plyvel
import pytest

import lsm

OPEN = dict(create_if_missing=True, write_buffer_size=64 << 10, block_size=1024, bloom_filter_bits=10)


def _key(rng):
    return rng.choice([b"", b"a", b"b", b"\xff"]) + bytes(rng.randrange(256) for _ in range(rng.randrange(3)))


def _outcome(fn):
    try:
        return ("ok", fn())
    except StopIteration:
        return ("stop", None)


def _run(seed, tmp_path, compactors, through_client=False):
    """through_client: the lsm side is an lsm.connect client of a served DB."""
    rng = random.Random(seed)
    pdb = plyvel.DB(str(tmp_path / "p"), **OPEN)
    served = ldb = lsm.DB(str(tmp_path / "l"), compactors=compactors, serve=through_client, **OPEN)
    if through_client:
        ldb = lsm.connect(str(tmp_path / "l"), timeout=30)
    iters = []
    try:
        for step in range(1500):
            op = rng.random()
            if op < 0.35:
                k, v = _key(rng), bytes(rng.randrange(256) for _ in range(rng.choice([0, 5, 300, 2000])))
                pdb.put(k, v)
                ldb.put(k, v)
            elif op < 0.45:
                k = _key(rng)
                pdb.delete(k)
                ldb.delete(k)
            elif op < 0.5:
                ops = [(rng.random() < 0.7, _key(rng), bytes([rng.randrange(256)]) * rng.randrange(1500))
                       for _ in range(rng.randrange(40))]
                for db in (pdb, ldb):
                    with db.write_batch() as wb:
                        for is_put, k, v in ops:
                            wb.put(k, v) if is_put else wb.delete(k)
            elif op < 0.6:
                k = _key(rng)
                assert pdb.get(k) == ldb.get(k), (step, k)
            elif op < 0.65:
                kw = dict(reverse=rng.random() < 0.5, include_start=rng.random() < 0.5,
                          include_stop=rng.random() < 0.5, include_value=rng.random() < 0.8)
                if rng.random() < 0.3:
                    kw["prefix"] = _key(rng)[:1]
                else:
                    if rng.random() < 0.5:
                        kw["start"] = _key(rng)
                    if rng.random() < 0.5:
                        kw["stop"] = _key(rng)
                iters.append((pdb.iterator(**kw), ldb.iterator(**kw), kw))
                if len(iters) > 5:
                    for it in iters.pop(0)[:2]:
                        it.close()
            elif op < 0.9 and iters:
                pit, lit, kw = rng.choice(iters)
                move = rng.choice(["next", "next", "next", "prev", "seek", "seek_to_start", "seek_to_stop"])
                if move == "next":
                    assert _outcome(lambda: next(pit)) == _outcome(lambda: next(lit)), (step, kw, move)
                elif move == "prev":
                    assert _outcome(pit.prev) == _outcome(lit.prev), (step, kw, move)
                elif move == "seek":
                    target = _key(rng)
                    pit.seek(target)
                    lit.seek(target)
                else:
                    getattr(pit, move)()
                    getattr(lit, move)()
            elif op < 0.93:
                r = rng.choice([None, (b"a", b"b")])
                kw = {} if r is None else {"start": r[0], "stop": r[1]}
                pdb.compact_range(**kw)
                served.compact_range(**kw)
            elif op < 0.95:
                assert list(pdb) == list(ldb), step
        assert list(pdb) == list(ldb)
        assert list(pdb.iterator(reverse=True)) == list(ldb.iterator(reverse=True))
    finally:
        for pit, lit, _ in iters:
            pit.close()
            lit.close()
        pdb.close()
        ldb.close()
        served.close()


@pytest.mark.parametrize("seed", range(4))
def test_same_answers_as_plyvel_inline(seed, tmp_path):
    _run(seed, tmp_path, compactors=0)


@pytest.mark.parametrize("seed", [0])
def test_same_answers_as_plyvel_through_a_client(seed, tmp_path):
    _run(seed, tmp_path, compactors=0, through_client=True)


@pytest.mark.parametrize("seed", range(2))
def test_same_answers_as_plyvel_with_compactor_pool(seed, tmp_path):
    _run(seed, tmp_path, compactors=2)


@pytest.mark.parametrize("seed", [1, 2])
def test_long_forward_runs_broken_by_cursor_moves_match_plyvel(seed, tmp_path):
    """A plain forward iteration hands out a chunk's entries in runs; every
    cursor move in the middle of a run, and every bound, must leave the
    iterator exactly where plyvel's is."""
    rng = random.Random(seed)
    pdb = plyvel.DB(str(tmp_path / "p"), **OPEN)
    ldb = lsm.DB(str(tmp_path / "l"), compactors=0, **OPEN)
    try:
        keys = sorted({b"%06d" % rng.randrange(100000) for _ in range(6000)})
        for db in (pdb, ldb):
            with db.write_batch() as wb:
                for k in keys:
                    wb.put(k, k[::-1])
        ldb.compact_range()  # tables as well as memtable chunks
        for db in (pdb, ldb):
            db.put(b"%06d" % 50001, b"fresh")
        for _ in range(12):
            kw = {}
            if rng.random() < 0.5:
                kw["start"] = rng.choice(keys)
                kw["include_start"] = rng.random() < 0.5
            if rng.random() < 0.5:
                kw["stop"] = rng.choice(keys)
                kw["include_stop"] = rng.random() < 0.5
            pit, lit = pdb.iterator(**kw), ldb.iterator(**kw)
            for step in range(60):
                for _ in range(rng.choice([1, 3, 50, 700, 3000])):
                    outcome = _outcome(lambda: next(pit))
                    assert outcome == _outcome(lambda: next(lit)), (kw, step)
                    if outcome[0] == "stop":
                        break
                move = rng.choice(["prev", "prev", "seek", "seek_to_start", "seek_to_stop"])
                if move == "prev":
                    assert _outcome(pit.prev) == _outcome(lit.prev), (kw, step, move)
                elif move == "seek":
                    target = rng.choice(keys)
                    pit.seek(target)
                    lit.seek(target)
                else:
                    getattr(pit, move)()
                    getattr(lit, move)()
            pit.close()
            lit.close()
            assert list(ldb.iterator(**kw)) == list(pdb.iterator(**kw))
    finally:
        pdb.close()
        ldb.close()
