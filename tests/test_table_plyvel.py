"""Interop with LevelDB 1.22 (plyvel) in both directions.

LevelDB -> us: every table plyvel writes opens with our Table, its newest
versions agree with plyvel's contents, and rebuilding it with our TableBuilder
gives the same bytes (whole file without compression; with Snappy, whose
compressor differs from ours, the same uncompressed blocks and filter).
us -> LevelDB: a directory holding one table of ours plus a MANIFEST opens in
plyvel with paranoid checks and answers every key.
"""
import os
import random

import pytest

from lsm import filenames
from lsm.table.options import TableOptions
from lsm.fileio import DEFAULT_FS
from lsm.filemeta import FileMetaData
from lsm.keys import COMPARATOR_NAME, TYPE_DELETION, TYPE_VALUE, make_internal_key, sort_key
from lsm.record import LogReader, LogWriter
from lsm.table import Table, TableBuilder
from lsm.table.block import decode_block
from lsm.table.filter import BloomFilterPolicy, FilterBlockBuilder
from lsm.table.format import BLOCK_TRAILER_SIZE, unpack_block
from lsm.version_edit import VersionEdit
from table_helpers import MemFile

plyvel = pytest.importorskip("plyvel")


def write_plyvel_db(path, compression, bloom_bits):
    """Several tables: a small write buffer, overwrites and deletions, then a
    reopen so the last memtable (recovered from the WAL) is flushed too."""
    opts = dict(write_buffer_size=32 * 1024, compression=compression, bloom_filter_bits=bloom_bits)
    rng = random.Random(5)
    db = plyvel.DB(str(path), create_if_missing=True, **opts)
    for i in range(9000):
        key = b"key%06d" % rng.randrange(4000)
        if rng.random() < 0.15:
            db.delete(key)
        else:
            # values half random, half repeated: Snappy compresses them
            half = rng.randbytes(rng.randrange(0, 40))
            db.put(key, half + half)
    db.put(b"", b"empty key")
    db.put(b"\xff" * 30, b"")
    db.close()
    db = plyvel.DB(str(path), **opts)
    db.close()
    return opts


def table_files(path):
    """The live tables, as the MANIFEST names them. A compaction cut short by
    close() leaves a partial, unreferenced table behind until the next open."""
    manifest = os.path.join(path, filenames.read_current(DEFAULT_FS, str(path)))
    live = set()
    for _, payload in LogReader(DEFAULT_FS.read_file(manifest), strict=True):
        edit = VersionEdit.decode(payload)
        live -= {number for _, number in edit.deleted_files}
        live |= {meta.number for _, meta in edit.new_files}
    return [filenames.table_file_name(str(path), n) for n in sorted(live)]


def rebuild(entries, compression, bloom_bits):
    out = []
    # LevelDB prefix-compresses every key and has no filter of lsm's: with
    # that, our bytes are its bytes.
    options = TableOptions(
        compression=compression, bloom_bits_per_key=bloom_bits, prefix_compression=True, lsm_filter=False
    )
    builder = TableBuilder(options, out.append)
    for k, v in entries:
        builder.add(k, v)
    builder.finish()
    return b"".join(out)


def raw_block(data, offset, size):
    return unpack_block(data[offset : offset + size + BLOCK_TRAILER_SIZE], size)


@pytest.mark.parametrize("compression", [None, "snappy"])
@pytest.mark.parametrize("bloom_bits", [10, 0])
def test_plyvel_tables_read_and_rebuild_identically(tmp_path, compression, bloom_bits):
    opts = write_plyvel_db(tmp_path, compression, bloom_bits)
    paths = table_files(tmp_path)
    assert len(paths) >= 2  # how many survive its compactions depends on timing
    newest = {}  # user key -> (tag, value) of the newest version in any table
    for path in paths:
        f = DEFAULT_FS.open_random(path)
        table = Table.open(f, path=path)
        entries = list(table.iter_entries())
        assert entries == sorted(entries, key=lambda e: sort_key(e[0]))
        for ikey, value in entries:
            tag = int.from_bytes(ikey[-8:], "little")
            if ikey[:-8] not in newest or newest[ikey[:-8]][0] < tag:
                newest[ikey[:-8]] = (tag, value)
            assert table.get(ikey[:-8], tag >> 8)[0] == tag & 0xFF
        theirs = open(path, "rb").read()
        mine = rebuild(entries, compression, bloom_bits)
        if compression is None:
            assert mine == theirs, path
        else:
            assert_same_blocks(theirs, mine, bloom_bits)
        f.close()

    db = plyvel.DB(str(tmp_path), **opts)
    try:
        live = dict(db.iterator())
        for ukey, (tag, value) in newest.items():
            if tag & 0xFF == TYPE_VALUE:
                assert live.get(ukey) == value, ukey
            else:
                assert ukey not in live, ukey
        assert set(live) <= set(newest)
    finally:
        db.close()


def assert_same_blocks(theirs, mine, bloom_bits):
    """Same data blocks and index keys before compression; and a filter that our
    FilterBlockBuilder reproduces from their keys at their block offsets."""
    t_theirs = Table.open(MemFile(theirs), path="theirs")
    t_mine = Table.open(MemFile(mine), path="mine")
    assert t_theirs._index_ukeys == t_mine._index_ukeys
    assert t_theirs._index_tags == t_mine._index_tags
    builder = FilterBlockBuilder(BloomFilterPolicy(bloom_bits)) if bloom_bits else None
    for i in range(t_theirs.num_blocks):
        a = raw_block(theirs, t_theirs._offsets[i], t_theirs._sizes[i])
        b = raw_block(mine, t_mine._offsets[i], t_mine._sizes[i])
        assert a == b
        if builder is not None:
            builder.add_keys([k[:-8] for k in decode_block(a)[0]])
            builder.start_block(t_theirs._offsets[i] + t_theirs._sizes[i] + BLOCK_TRAILER_SIZE)
    # The filter block sits right before the metaindex; its handle is in the metaindex.
    meta_off = t_theirs._meta_offset
    if builder is not None:
        filter_off = t_theirs._offsets[-1] + t_theirs._sizes[-1] + BLOCK_TRAILER_SIZE
        filter_bytes = builder.finish()
        assert raw_block(theirs, filter_off, len(filter_bytes)) == filter_bytes
        assert filter_off + len(filter_bytes) + BLOCK_TRAILER_SIZE == meta_off
    else:
        assert t_theirs._offsets[-1] + t_theirs._sizes[-1] + BLOCK_TRAILER_SIZE == meta_off


# ---------------------------------------------------------------- us -> LevelDB


def write_db_of_one_table(db_dir, entries, last_sequence, options):
    """A database directory whose only file is a table of ours holding the
    sorted internal-key `entries`, at level 1. Returns the table's path."""
    number = 5
    path = filenames.table_file_name(db_dir, number)
    f = DEFAULT_FS.create(path)
    builder = TableBuilder(options, f.append)
    for k, v in entries:
        builder.add(k, v)
    size = builder.finish()
    f.sync()
    f.close()

    edit = VersionEdit(
        comparator=COMPARATOR_NAME,
        log_number=0,
        prev_log_number=0,
        next_file_number=number + 1,
        last_sequence=last_sequence,
        new_files=[(1, FileMetaData(number, size, builder.smallest, builder.largest))],
    )
    DEFAULT_FS.write_file(filenames.descriptor_file_name(db_dir, 2), LogWriter().encode(edit.encode()))
    filenames.set_current_file(DEFAULT_FS, db_dir, 2)
    return path


def test_plyvel_opens_a_database_made_of_our_table(tmp_path):
    db_dir = str(tmp_path)
    rng = random.Random(11)
    entries = []
    expected = {}
    seq = 0
    for i in range(4000):
        ukey = b"user%05d" % i
        versions = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            seq += 1
            kind = TYPE_DELETION if rng.random() < 0.1 else TYPE_VALUE
            half = rng.randbytes(rng.randrange(0, 50))
            value = b"" if kind == TYPE_DELETION else half + half
            versions.append((make_internal_key(ukey, seq, kind), value))
            expected[ukey] = value if kind == TYPE_VALUE else None
        entries += reversed(versions)  # newest first within a user key
    entries.sort(key=lambda e: sort_key(e[0]))

    write_db_of_one_table(db_dir, entries, seq, TableOptions(compression="snappy", bloom_bits_per_key=10))
    db = plyvel.DB(db_dir, paranoid_checks=True, bloom_filter_bits=10)
    try:
        for ukey, value in expected.items():
            assert db.get(ukey, verify_checksums=True) == value, ukey
            assert db.get(ukey + b"!", verify_checksums=True) is None
        assert db.get(b"") is None and db.get(b"zzz") is None
        live = {k: v for k, v in expected.items() if v is not None}
        assert dict(db.iterator(verify_checksums=True)) == live
    finally:
        db.close()
