"""plyvel compatibility, checked against plyvel itself.

Each test runs one script of API calls on a plyvel.DB and on an lsm.DB and
compares the transcripts: every return value, and for every exception its
class name and whether it is the library's own Error. Where answers may
legitimately differ (sizes, statistics), the transcript records their shape
instead (type, monotonicity, header lines).
"""
import random

import plyvel
import pytest

import lsm

DATA = {b"a": b"1", b"ab": b"2", b"abc": b"3", b"b": b"4", b"ba": b"5", b"c": b"6", b"c\xff": b"7",
        b"d": b"", b"\xff": b"8", b"\xff\xff": b"9"}


class Transcript:
    def __init__(self, module):
        self.module = module
        self.lines = []

    def __call__(self, label, fn):
        try:
            result = fn()
        except StopIteration:
            self.lines.append((label, "StopIteration"))
            return None
        except Exception as exc:  # noqa: BLE001 - the class is what we compare
            own = isinstance(exc, self.module.Error)
            # lsm's ClosedError is a RuntimeError, which is what plyvel raises.
            name = "RuntimeError" if isinstance(exc, RuntimeError) else type(exc).__name__
            self.lines.append((label, "raises", name, "own Error" if own else "builtin"))
            return None
        if hasattr(result, "__next__"):
            result = list(result)
        self.lines.append((label, result))
        return result


def _open(module, path, **kw):
    extra = {"compactors": 0} if module is lsm else {}
    return module.DB(str(path), create_if_missing=True, **extra, **kw)


def _both(tmp_path, script, data=DATA, **open_kw):
    transcripts = []
    for module in (plyvel, lsm):
        db = _open(module, tmp_path / module.__name__, **open_kw)
        for k, v in data.items():
            db.put(k, v)
        t = Transcript(module)
        try:
            script(module, db, t)
        finally:
            db.close()
        transcripts.append(t.lines)
    p, l = transcripts
    diffs = [(a, b) for a, b in zip(p, l) if a != b]
    assert not diffs, "plyvel vs lsm:\n" + "\n".join(f"  {a}\n  {b}\n" for a, b in diffs[:10])
    assert len(p) == len(l)
    return p


class Boom(Exception):
    pass


# ------------------------------------------------------------ write batches
def test_write_batch_transaction_and_plain_behave_as_in_plyvel(tmp_path):
    def script(module, db, t):
        def failing(transaction):
            with db.write_batch(transaction=transaction) as wb:
                wb.put(b"new1", b"x")
                wb.delete(b"a")
                wb.put(b"b", b"overwritten")
                raise Boom()
        t("transaction raises", lambda: failing(True))
        t("after transaction", lambda: dict(db))
        t("plain raises", lambda: failing(False))
        t("after plain", lambda: dict(db))

        def ok_transaction():
            with db.write_batch(transaction=True, sync=True) as wb:
                wb.put(b"t", b"1")
                wb.delete(b"c")
        t("ok transaction", ok_transaction)
        t("after ok", lambda: dict(db))

        wb = db.write_batch()
        t("put", lambda: wb.put(b"w1", b"1"))
        t("delete", lambda: wb.delete(b"ab"))
        t("not yet written", lambda: db.get(b"w1"))
        t("write", wb.write)
        t("written", lambda: (db.get(b"w1"), db.get(b"ab")))
        t("put again", lambda: wb.put(b"w2", b"2"))
        t("write again (batch not cleared)", wb.write)
        t("state", lambda: dict(db))
        t("clear", wb.clear)
        t("approximate_size after clear", lambda: wb.approximate_size())
        t("write empty", wb.write)
        wb2 = db.write_batch()
        wb2.put(b"z1", b"z")
        wb.put(b"z0", b"z")
        t("append", lambda: wb.append(wb2))
        t("approximate_size grows", lambda: wb.approximate_size() > 12)
        t("write appended", wb.write)
        t("z0 z1", lambda: (db.get(b"z0"), db.get(b"z1")))

        def empty():
            with db.write_batch():
                pass
        t("empty with", empty)
        t("final", lambda: sorted(db))
    _both(tmp_path, script)


# ---------------------------------------------------------------- snapshots
def test_snapshot_reads_match_plyvel(tmp_path):
    def script(module, db, t):
        snap = db.snapshot()
        db.put(b"a", b"changed")
        db.delete(b"b")
        db.put(b"new", b"n")
        t("db get", lambda: (db.get(b"a"), db.get(b"b"), db.get(b"new")))
        t("snap get", lambda: (snap.get(b"a"), snap.get(b"b"), snap.get(b"new")))
        t("snap get default", lambda: snap.get(b"new", b"dflt"))
        t("snap get default kw", lambda: snap.get(b"new", default=b"dflt"))
        t("snap iter", lambda: list(snap))
        t("snap iterator reverse", lambda: snap.iterator(reverse=True))
        t("snap iterator range", lambda: snap.iterator(start=b"ab", stop=b"c", include_stop=True))
        t("snap iterator prefix", lambda: snap.iterator(prefix=b"a", include_value=False))
        t("snap iterator keys off", lambda: snap.iterator(include_key=False, reverse=True))
        raw = snap.raw_iterator()
        raw.seek(b"b")
        t("snap raw seek b", raw.item)
        raw.next()
        t("snap raw next", raw.item)
        raw.seek_to_last()
        t("snap raw last", raw.item)
        with db.snapshot() as s2:
            db.put(b"later", b"l")
            t("with snapshot", lambda: (s2.get(b"later"), s2.get(b"new")))
        t("used after with", lambda: s2.get(b"a"))
        snap.release()
        t("released get", lambda: snap.get(b"a"))
        t("released iterator", lambda: snap.iterator())
        t("release twice", snap.release)
    _both(tmp_path, script)


# ------------------------------------------------------------- raw iterator
def test_raw_iterator_protocol_matches_plyvel(tmp_path):
    def script(module, db, t):
        raw = db.raw_iterator()
        t("fresh valid", raw.valid)
        for name in ("key", "value", "item", "next", "prev"):
            t(f"fresh {name}", getattr(raw, name))
        t("seek_to_first", raw.seek_to_first)
        walked = []
        while raw.valid():
            walked.append(raw.item())
            raw.next()
        t("walk forward", lambda: walked)
        t("past end valid", raw.valid)
        t("past end key", raw.key)
        t("past end next", raw.next)
        t("past end prev", raw.prev)
        raw.seek_to_last()
        back = []
        while raw.valid():
            back.append((raw.key(), raw.value()))
            raw.prev()
        t("walk backward", lambda: back)
        for target in (b"", b"a", b"aa", b"abd", b"c\xff", b"c\xff\x00", b"\xff\xff", b"\xff\xff\x00"):
            raw.seek(target)
            t(f"seek {target!r}", lambda: raw.item() if raw.valid() else "invalid")
        raw.seek(b"b")
        raw.prev()
        t("seek then prev", raw.key)
        raw.seek_to_first()
        raw.prev()
        t("prev off start", raw.valid)
        t("prev off start item", raw.item)
        raw.seek_to_last()
        raw.next()
        t("next off end", raw.valid)
        db.put(b"bb", b"added later")
        raw.seek(b"b")
        raw.next()
        t("iterator does not see later writes", raw.key)
        with db.raw_iterator() as r2:
            r2.seek(b"bb")
            t("new raw sees it", r2.item)
        t("closed raw valid", r2.valid)
        t("closed raw seek", lambda: r2.seek(b"a"))
        try:
            raw.seek(b"\xff\xff\x01")
            raw.key()
        except Exception as exc:  # noqa: BLE001
            t("IteratorInvalidError is module attribute",
              lambda: (type(exc) is module.IteratorInvalidError, isinstance(exc, module.Error)))
    _both(tmp_path, script)


def test_raw_iterator_on_empty_database_matches_plyvel(tmp_path):
    def script(module, db, t):
        raw = db.raw_iterator()
        for step in ("seek_to_first", "valid", "key", "seek_to_last", "valid", "next", "prev"):
            t(step, getattr(raw, step))
        t("seek", lambda: raw.seek(b"x"))
        t("valid after seek", raw.valid)
        t("list", lambda: list(db))
        t("reverse", lambda: db.iterator(reverse=True))
    _both(tmp_path, script, data={})


# ---------------------------------------------------------------- iterators
def test_iterator_include_key_and_value_combinations_match_plyvel(tmp_path):
    def script(module, db, t):
        for reverse in (False, True):
            for include_key in (False, True):
                for include_value in (False, True):
                    kw = dict(reverse=reverse, include_key=include_key, include_value=include_value)
                    t(f"all {kw}", lambda: db.iterator(**kw))
                    t(f"range {kw}", lambda: db.iterator(start=b"ab", stop=b"c\xff", **kw))
                    t(f"prefix {kw}", lambda: db.iterator(prefix=b"\xff", **kw))
                    it = db.iterator(**kw)
                    t(f"next {kw}", lambda: next(it))
                    t(f"prev {kw}", it.prev)
                    it.seek(b"b")
                    t(f"seek next {kw}", lambda: next(it))
                    t(f"then prev {kw}", it.prev)
                    it.seek_to_stop()
                    t(f"stop prev {kw}", it.prev)
                    it.seek_to_start()
                    t(f"start next {kw}", lambda: next(it))
        with db.iterator() as it:
            t("with iterator", lambda: next(it))
        t("closed iterator next", lambda: next(it))
        it = db.iterator(prefix=b"a")
        t("iterator is its own iter", lambda: iter(it) is it)
        t("bounds exclusive/inclusive", lambda: db.iterator(start=b"ab", include_start=False, stop=b"ba",
                                                            include_stop=True))
        t("prefix with start", lambda: db.iterator(prefix=b"a", start=b"a"))
        t("empty prefix", lambda: db.iterator(prefix=b""))
        t("start > stop", lambda: db.iterator(start=b"c", stop=b"a"))
    _both(tmp_path, script)


# --------------------------------------------------------------- prefixed db
def test_prefixed_db_and_nested_prefixed_db_match_plyvel(tmp_path):
    def script(module, db, t):
        p = db.prefixed_db(b"a")
        t("prefix attr", lambda: p.prefix)
        t("db attr", lambda: p.db is db)
        t("get", lambda: (p.get(b""), p.get(b"b"), p.get(b"bc"), p.get(b"x"), p.get(b"x", b"d")))
        t("put", lambda: p.put(b"zz", b"pz"))
        t("seen from db", lambda: db.get(b"azz"))
        t("delete", lambda: p.delete(b"b"))
        t("deleted from db", lambda: db.get(b"ab"))
        t("iter", lambda: list(p))
        t("iterator reverse", lambda: p.iterator(reverse=True))
        t("iterator start stop", lambda: p.iterator(start=b"b", stop=b"z", include_value=False))
        t("iterator prefix", lambda: p.iterator(prefix=b"b"))
        it = p.iterator()
        it.seek(b"bc")
        t("seek", lambda: next(it))
        t("prev", it.prev)
        with p.write_batch() as wb:
            wb.put(b"w", b"pw")
            wb.delete(b"bc")
        t("write_batch", lambda: (db.get(b"aw"), db.get(b"abc")))

        def failing():
            with p.write_batch(transaction=True) as wb:
                wb.put(b"never", b"x")
                raise Boom()
        t("transaction", failing)
        t("nothing written", lambda: db.get(b"anever"))
        snap = p.snapshot()
        p.put(b"later", b"l")
        t("snapshot get", lambda: (snap.get(b"later"), snap.get(b"zz"), p.get(b"later")))
        t("snapshot iter", lambda: list(snap.iterator()))
        t("snapshot iter prefixed", lambda: snap.iterator(prefix=b"l"))
        q = p.prefixed_db(b"z")
        t("nested prefix", lambda: q.prefix)
        t("nested db attr", lambda: q.db is db)
        t("nested get", lambda: q.get(b"z"))
        q.put(b"q", b"nested")
        t("nested put lands", lambda: db.get(b"azq"))
        t("nested iter", lambda: list(q))
        t("outer iter", lambda: list(p))
        ff = db.prefixed_db(b"\xff")
        t("0xff prefix iter", lambda: list(ff))
        t("0xff prefix reverse", lambda: ff.iterator(reverse=True))
        t("empty prefix", lambda: len(list(db.prefixed_db(b""))))
    _both(tmp_path, script)


# ----------------------------------------------------- sizes and properties
def _bulk(db):
    rng = random.Random(1)
    for i in range(3000):
        db.put(b"k%05d" % i, rng.randbytes(200))  # incompressible
    db.compact_range()


def test_approximate_sizes_are_ints_and_monotonic(tmp_path):
    def script(module, db, t):
        _bulk(db)
        small = db.approximate_size(b"k01000", b"k01100")
        big = db.approximate_size(b"k00000", b"k02000")
        whole = db.approximate_size(b"", b"\xff")
        t("types", lambda: [type(x).__name__ for x in (small, big, whole)])
        t("monotonic", lambda: 0 <= small <= big <= whole)
        t("whole is most of the data", lambda: whole > 3000 * 100)
        sizes = db.approximate_sizes((b"k01000", b"k01100"), (b"k00000", b"k02000"), (b"a", b"b"))
        t("sizes", lambda: [type(x).__name__ for x in sizes])
        t("sizes agree", lambda: sizes[:2] == [small, big] and sizes[2] == 0)
        t("no ranges", lambda: db.approximate_sizes())
        t("reversed range", lambda: db.approximate_size(b"k02000", b"k00000"))
        t("empty range", lambda: db.approximate_size(b"k01000", b"k01000"))
        t("bad range arity", lambda: db.approximate_sizes((b"a",)))
    _both(tmp_path, script, data={})


def test_get_property_shapes_match_plyvel(tmp_path):
    def script(module, db, t):
        _bulk(db)
        for level in range(8):
            t(f"num-files-at-level{level} is digits",
              lambda: (lambda v: v if v is None else v.isdigit())(
                  db.get_property(b"leveldb.num-files-at-level%d" % level)))
        t("tables below level 0", lambda: sum(int(db.get_property(b"leveldb.num-files-at-level%d" % n))
                                              for n in range(1, 7)) > 0)
        stats = db.get_property(b"leveldb.stats")
        t("stats type", lambda: type(stats).__name__)
        t("stats header", lambda: stats.decode().split("\n")[:3])
        t("stats level rows", lambda: [line.split()[0] for line in stats.decode().split("\n")[3:] if line.strip()])
        sst = db.get_property(b"leveldb.sstables").decode()
        t("sstables headers", lambda: [line for line in sst.split("\n") if line.startswith("---")])
        t("sstables file lines", lambda: all(line.startswith(" ") and ":" in line and "[" in line
                                             for line in sst.split("\n") if line and not line.startswith("---")))
        t("sstables ends with newline", lambda: sst.endswith("\n"))
        t("memory usage digits", lambda: db.get_property(b"leveldb.approximate-memory-usage").isdigit())
        for name in (b"leveldb.nonsense", b"", b"leveldb.num-files-at-level", b"leveldb.num-files-at-levelx",
                     b"rocksdb.stats", b"leveldb.stats2"):
            t(f"unknown {name!r}", lambda: db.get_property(name))
    _both(tmp_path, script, data={})


# ------------------------------------------------------------- life cycle
def test_closed_property_and_context_manager_match_plyvel(tmp_path):
    for module in (plyvel, lsm):
        extra = {"compactors": 0} if module is lsm else {}
        path = str(tmp_path / module.__name__)
        with module.DB(path, create_if_missing=True, **extra) as db:
            assert db.closed is False
            assert db.name == path
            db.put(b"k", b"v")
        assert db.closed is True
        with pytest.raises(RuntimeError):
            db.get(b"k")
        db.close()
        with pytest.raises(Boom):
            with module.DB(path, **extra) as db2:
                raise Boom()
        assert db2.closed
        db3 = module.DB(path, **extra)  # the with-block released the lock
        assert db3.get(b"k") == b"v"
        db3.close()


def test_module_surface_has_plyvel_names():
    for name in ("DB", "Error", "IOError", "CorruptionError", "IteratorInvalidError", "destroy_db", "repair_db"):
        assert hasattr(plyvel, name)
        assert hasattr(lsm, name), name
    for name in ("IOError", "CorruptionError", "IteratorInvalidError"):
        assert issubclass(getattr(plyvel, name), plyvel.Error)
        assert issubclass(getattr(lsm, name), lsm.Error), name


def test_get_default_and_keyword_arguments_match_plyvel(tmp_path):
    def script(module, db, t):
        t("get missing", lambda: db.get(b"missing"))
        t("get default positional", lambda: db.get(b"missing", b"d"))
        t("get default keyword", lambda: db.get(b"missing", default=b"d"))
        t("get present with default", lambda: db.get(b"a", b"d"))
        t("get options", lambda: db.get(b"a", verify_checksums=True, fill_cache=False))
        t("put sync", lambda: db.put(b"s", b"synced", sync=True))
        t("delete missing", lambda: db.delete(b"never"))
        t("delete sync", lambda: db.delete(b"s", sync=True))
        t("empty key", lambda: db.put(b"", b"empty key"))
        t("get empty key", lambda: db.get(b""))
        t("empty value", lambda: (db.put(b"e", b""), db.get(b"e")))
        t("iterator options", lambda: db.iterator(verify_checksums=True, fill_cache=False, prefix=b"a"))
        t("raw options", lambda: db.raw_iterator(verify_checksums=True, fill_cache=False).valid())
        t("compact_range all", db.compact_range)
        t("compact_range start only", lambda: db.compact_range(start=b"b"))
        t("compact_range stop only", lambda: db.compact_range(stop=b"b"))
        t("after compactions", lambda: list(db))
        t("get_property positional bad", lambda: db.get_property())
        t("put positional sync", lambda: db.put(b"x", b"y", True))
    _both(tmp_path, script)


def test_destroy_db_and_repair_db_match_plyvel(tmp_path):
    for module in (plyvel, lsm):
        extra = {"compactors": 0} if module is lsm else {}
        path = str(tmp_path / module.__name__)
        db = module.DB(path, create_if_missing=True, **extra)
        db.put(b"k", b"v")
        db.close()
        module.repair_db(path)
        db = module.DB(path, **extra)
        assert db.get(b"k") == b"v"
        db.close()
        module.destroy_db(path)
        with pytest.raises(module.Error):
            module.DB(path, **extra)
