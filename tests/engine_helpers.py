"""Shared by the engine tests: a plyvel-semantics model of iterator ranges,
and a database that owes compactions."""
from functools import cmp_to_key

import lsm
from lsm import filenames
from lsm.cursor import bytes_increment
from lsm.fileio import DEFAULT_FS
from lsm.keys import COMPARATOR_NAME
from lsm.record import LogWriter
from lsm.version_edit import VersionEdit


def model_range(items, reverse=False, start=None, stop=None, include_start=True, include_stop=False,
                prefix=None, include_key=True, include_value=True, compare=None):
    """What plyvel's iterator yields over a sorted list of (key, value);
    compare: the database's custom comparator (the items sorted by it)."""
    if prefix is not None:
        start, stop, include_start, include_stop = prefix, bytes_increment(prefix), True, False
    order = (lambda k: k) if compare is None else cmp_to_key(compare)
    start_key = None if start is None else order(start)
    stop_key = None if stop is None else order(stop)
    out = []
    for k, v in items:
        key = order(k)
        if start is not None and (key < start_key or (k == start and not include_start)):
            continue
        if stop is not None and (key > stop_key or (k == stop and not include_stop)):
            continue
        out.append((k, v))
    if reverse:
        out.reverse()
        # plyvel quirk (kept by lsm for compatibility): when the last key in
        # range equals an inclusive start, reverse iteration yields nothing.
        if start is not None and out and out[0][0] == start:
            out = []
    if include_key and include_value:
        return out
    if include_key:
        return [k for k, _ in out]
    if include_value:
        return [v for _, v in out]
    return [None for _ in out]


def database_owing_compactions(path, tables=6):
    """A database whose `tables` tables all sit in level 0, past the
    compaction trigger, as a pool that closed behind fast writes leaves one:
    written with disjoint keys per flush (each table placed deeper, no
    compaction), then given a MANIFEST that lists them all in level 0.
    Returns every key and its value."""
    with lsm.DB(path, create_if_missing=True, compactors=0) as db:
        for t in range(tables):
            for i in range(100):
                db.put(b"k%d-%03d" % (t, i), b"v%d" % t)
            db._engine.flush()
        versions = db._engine.versions
        files = [meta for level in versions.current.levels for meta in level]
        last_sequence, next_file = versions.last_sequence, versions.next_file_number
    assert len(files) == tables
    edit = VersionEdit(comparator=COMPARATOR_NAME, log_number=0, prev_log_number=0,
                       next_file_number=next_file + 1, last_sequence=last_sequence,
                       new_files=[(0, meta) for meta in files])
    DEFAULT_FS.write_file(filenames.descriptor_file_name(path, next_file), LogWriter().encode(edit.encode()))
    filenames.set_current_file(DEFAULT_FS, path, next_file)
    return {b"k%d-%03d" % (t, i): b"v%d" % t for t in range(tables) for i in range(100)}
