"""Argument checks, read-only attributes and module metadata, against plyvel.

Each bad call is made on plyvel and on lsm; both must refuse it with the
same exception class, in the order plyvel checks its arguments.
"""
import importlib.metadata
import re

import plyvel
import pytest

import lsm


def _outcome(fn):
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - the class is what we compare
        return "RuntimeError" if isinstance(exc, RuntimeError) else type(exc).__name__
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return "ok"


def _open(module, path):
    extra = {"compactors": 0} if module is lsm else {}
    return module.DB(str(path), create_if_missing=True, **extra)


CALLS = {
    "put sync=1": lambda db: db.put(b"k", b"v", sync=1),
    "delete sync='yes'": lambda db: db.delete(b"k", sync="yes"),
    "get fill_cache=1": lambda db: db.get(b"k", fill_cache=1),
    "get verify_checksums=0": lambda db: db.get(b"k", verify_checksums=0),
    "write_batch transaction=1": lambda db: db.write_batch(transaction=1),
    "write_batch sync=1": lambda db: db.write_batch(sync=1),
    "iterator reverse=1": lambda db: db.iterator(reverse=1),
    "iterator include_start=0": lambda db: db.iterator(include_start=0),
    "iterator include_stop=1": lambda db: db.iterator(include_stop=1),
    "iterator include_key=0": lambda db: db.iterator(include_key=0),
    "iterator include_value=0": lambda db: db.iterator(include_value=0),
    "iterator fill_cache=1": lambda db: db.iterator(fill_cache=1),
    "raw_iterator verify_checksums=1": lambda db: db.raw_iterator(verify_checksums=1),
    "prefixed put sync=1": lambda db: db.prefixed_db(b"p").put(b"k", b"v", sync=1),
    "prefixed get verify_checksums=1": lambda db: db.prefixed_db(b"p").get(b"k", verify_checksums=1),
    "prefixed write_batch transaction=1": lambda db: db.prefixed_db(b"p").write_batch(transaction=1),
    "prefixed iterator reverse=1": lambda db: db.prefixed_db(b"p").iterator(reverse=1),
    "approximate_size of ints": lambda db: db.approximate_size(1, 2),
}

SNAPSHOT_CALLS = {
    "snapshot get fill_cache=1": lambda snap: snap.get(b"k", fill_cache=1),
    "snapshot iterator include_key=0": lambda snap: snap.iterator(include_key=0),
    "snapshot raw_iterator verify_checksums=1": lambda snap: snap.raw_iterator(verify_checksums=1),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_flag_that_is_not_a_bool_is_a_type_error_as_in_plyvel(tmp_path, call):
    outcomes = []
    for module in (plyvel, lsm):
        db = _open(module, tmp_path / module.__name__)
        outcomes.append(_outcome(lambda: call(db)))
        db.close()
        # plyvel checks argument types before it looks at the database.
        outcomes.append(_outcome(lambda: call(db)))
    assert outcomes == ["TypeError"] * 4


@pytest.mark.parametrize("call", SNAPSHOT_CALLS.values(), ids=SNAPSHOT_CALLS.keys())
def test_snapshot_flag_that_is_not_a_bool_is_a_type_error_as_in_plyvel(tmp_path, call):
    outcomes = []
    for module in (plyvel, lsm):
        db = _open(module, tmp_path / module.__name__)
        snap = db.snapshot()
        outcomes.append(_outcome(lambda: call(snap)))
        snap.close()
        db.close()
    assert outcomes == ["TypeError"] * 2


def test_flags_given_as_bools_or_none_are_accepted(tmp_path):
    db = _open(lsm, tmp_path / "db")
    db.put(b"k", b"v", sync=False)
    db.put(b"j", b"w", sync=None)
    assert db.get(b"k", verify_checksums=None, fill_cache=False) == b"v"
    assert list(db.iterator(reverse=True, include_start=None, include_value=False)) == [b"k", b"j"]
    with db.write_batch(transaction=True, sync=True) as wb:
        wb.delete(b"j")
    assert list(db.prefixed_db(b"k").iterator(include_key=True)) == [(b"", b"v")]
    db.close()


OPEN_CASES = {
    "create_if_missing=1": dict(create_if_missing=1),
    "error_if_exists='x'": dict(error_if_exists="x"),
    "comparator_name str": dict(comparator=lambda a, b: 0, comparator_name="name"),
    "comparator_name bytearray": dict(comparator=lambda a, b: 0, comparator_name=bytearray(b"n")),
    "comparator without name": dict(comparator=lambda a, b: 0),
    "name without comparator": dict(comparator_name=b"name"),
    "comparator not callable": dict(comparator=b"not-a-callable", comparator_name=b"name"),
    # Which check comes first, where the two would raise different classes:
    "comparator_name str before a bad name": dict(name=123, comparator_name="name"),
    "comparator_name str before bad compression": dict(comparator_name="name", compression="zlib"),
    "bad name before a lone comparator_name": dict(name=123, comparator_name=b"name"),
    "bad compression before a lone comparator": dict(comparator=lambda a, b: 0, compression="zlib"),
    "bad compression before a non-callable comparator": dict(comparator=1, comparator_name=b"n",
                                                             compression="zlib"),
    "create_if_missing=1 before a bad compression": dict(create_if_missing=1, compression="zlib"),
}


@pytest.mark.parametrize("kwargs", OPEN_CASES.values(), ids=OPEN_CASES.keys())
def test_bad_open_arguments_raise_what_plyvel_raises_in_its_order(tmp_path, kwargs):
    outcomes = []
    for module in (plyvel, lsm):
        kw = dict(kwargs)
        name = kw.pop("name", str(tmp_path / module.__name__))
        kw.setdefault("create_if_missing", True)
        if module is lsm:
            kw["compactors"] = 0
        outcomes.append(_outcome(lambda: module.DB(name, **kw)))
    assert outcomes[0] != "ok"
    assert outcomes[1] == outcomes[0]
    assert not (tmp_path / "lsm").exists(), "a refused open must not create the database"


def test_lambda_comparator_with_compactors_is_a_type_error_before_anything_is_created(tmp_path):
    with pytest.raises(TypeError, match="lambda or a nested function"):
        lsm.DB(str(tmp_path / "db"), create_if_missing=True, compactors=1,
               comparator=lambda a, b: 0, comparator_name=b"Reverse")
    assert not (tmp_path / "db").exists()


def test_name_db_and_prefix_cannot_be_reassigned(tmp_path):
    db = _open(lsm, tmp_path / "db")
    with pytest.raises(AttributeError):
        db.name = "elsewhere"
    assert db.name == str(tmp_path / "db")
    view = db.prefixed_db(b"x")
    with pytest.raises(AttributeError):
        view.prefix = b"y"
    with pytest.raises(AttributeError):
        view.db = None
    view.put(b"1", b"one")
    assert view.prefix == b"x" and view.db is db
    assert list(db.iterator()) == [(b"x1", b"one")]
    db.close()


def test_repr_of_a_db_whose_open_failed_does_not_raise(tmp_path):
    half_made = []

    class Recording(lsm.DB):
        def __init__(self, *args, **kwargs):
            half_made.append(self)
            super().__init__(*args, **kwargs)

    missing = str(tmp_path / "missing")
    with pytest.raises(lsm.Error):
        Recording(missing, compactors=0)
    with pytest.raises(TypeError):
        Recording(123)
    with pytest.raises(TypeError):
        Recording(missing, create_if_missing=1)
    assert repr(half_made[0]).startswith(f"<lsm.DB with name {missing!r} (closed)")
    assert all("(closed)" in repr(db) and db.closed for db in half_made)


def test_version_names_match_plyvels_shape():
    assert lsm.__version__ == importlib.metadata.version("lsm-leveldb")
    assert isinstance(plyvel.__leveldb_version__, str)
    assert re.fullmatch(r"1\.\d+", plyvel.__leveldb_version__)
    assert re.fullmatch(r"1\.\d+", lsm.__leveldb_version__)
    assert "__version__" in dir(lsm) and "__leveldb_version__" in dir(lsm)
