"""Flushes and compactions on columns (lsm.compactor.columnar) against a
simple reference merge: on random LSMs of keys and values of any size,
deletions, snapshots, size cuts, grandparent cuts and subcompactions, every
job keeps exactly the entries LevelDB's drop rules keep, in tables plyvel
reads with paranoid checks."""
import os
import random
import shutil
from itertools import groupby
from operator import itemgetter

import plyvel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsm import filenames
from lsm.compactor import columnar
from lsm.compactor.columnar import sort_entries
from lsm.compactor.runner import run_job
from lsm.fileio import DEFAULT_FS
from lsm.filemeta import FileMetaData
from lsm.filenames import log_file_name, table_file_name
from lsm.jobs import ErrorKind, FlushJob
from lsm.keys import COMPARATOR_NAME, make_internal_key
from lsm.record import LogWriter
from lsm.table import Table
from lsm.table.block import BlockBuilder
from lsm.table.bulk import decode_blocks, encode_entries
from lsm.table.options import TableOptions
from lsm.version_edit import VersionEdit


from job_helpers import DEL, PUT, batch_entries, compaction, order, read_outputs, write_table, write_wal
from table_helpers import MemFile

OUTPUT_TABLES = TableOptions(block_size=512, block_restart_interval=1, compression="snappy", bloom_bits_per_key=10)
# Keys that sort next to each other only by length or trailing zeros, and
# the empty key.
TRICKY_KEYS = [b"", b"\x00", b"\x00\x00", b"a", b"a\x00", b"a\x00\x00", b"a\x01", b"ab", b"\xff", b"\xff\xff"]


def reference_merge(entries, smallest_snapshot, deeper_ranges=()):
    """LevelDB's DoCompactionWork drop rules, one entry at a time."""
    out = []
    for key, versions in groupby(sorted(entries, key=order), key=itemgetter(0)):
        last_sequence = None
        for e in versions:
            if last_sequence is not None and last_sequence <= smallest_snapshot:
                pass  # a newer version every snapshot sees hides it
            elif e[2] == DEL and e[1] <= smallest_snapshot and not any(lo <= key <= hi for lo, hi in deeper_ranges):
                pass  # nothing deeper for the marker to hide
            else:
                out.append(e)
            last_sequence = e[1]
    return out


def random_keys(rng, count):
    keys = set(TRICKY_KEYS)
    while len(keys) < count:
        size = rng.choice((1, 5, 12, 23, 23, 40)) if rng.random() < 0.97 else rng.randint(300, 3000)
        keys.add(b"user" + rng.randbytes(rng.randint(0, size)))
    return sorted(keys)


def random_value(rng):
    roll = rng.random()
    if roll < 0.1:
        return b""
    if roll < 0.995:
        return rng.randbytes(rng.randint(0, 40)) * rng.randint(1, 8)
    return rng.randbytes(70_000)  # a value over 64 KiB: a three-byte length


def input_options(rng):
    """Tables as lsm writes them (every entry a restart) or as LevelDB does."""
    prefix = rng.random() < 0.3
    return TableOptions(block_size=rng.choice((256, 512, 2048)), compression=rng.choice(("snappy", None)),
                        block_restart_interval=1 if not prefix and rng.random() < 0.7 else 16,
                        prefix_compression=prefix, bloom_bits_per_key=rng.choice((0, 10)))


def random_lsm(tmp_path, rng, n_keys=400, n_l0=3):
    """(level-0 files, level-1 files, every entry, keys, max sequence)."""
    keys = random_keys(rng, n_keys)
    seq = 0
    level1_entries = []
    for key in keys:
        if rng.random() < 0.6:
            for _ in range(rng.choice((1, 1, 2, 3))):
                seq += 1
                kind = DEL if rng.random() < 0.15 else PUT
                level1_entries.append((key, seq, kind, random_value(rng) if kind == PUT else b""))
    level1_entries.sort(key=order)
    level1, number, start = [], 10, 0
    while start < len(level1_entries):
        end = min(start + rng.randint(50, 300), len(level1_entries))
        while end < len(level1_entries) and level1_entries[end][0] == level1_entries[end - 1][0]:
            end += 1
        level1.append(write_table(tmp_path, number, level1_entries[start:end], input_options(rng)))
        number += 1
        start = end
    level0, level0_entries = [], []
    for _ in range(n_l0):
        group = []
        for _ in range(rng.randint(1, 300)):
            seq += 1
            kind = DEL if rng.random() < 0.2 else PUT
            group.append((rng.choice(keys), seq, kind, random_value(rng) if kind == PUT else b""))
        level0.append(write_table(tmp_path, number, group, input_options(rng)))
        number += 1
        level0_entries += group
    return level0, level1, level0_entries + level1_entries, keys, seq


def random_grandparents(rng, keys, max_seq):
    grandparents = []
    i = rng.randint(0, 20)
    while i < len(keys) - 1:
        j = min(len(keys) - 1, i + rng.randint(0, 40))
        seq = rng.randint(1, max_seq)  # some end on a key the job holds, with any tag
        grandparents.append(FileMetaData(900 + len(grandparents), rng.randint(200, 5000),
                                         make_internal_key(keys[i], seq, PUT), make_internal_key(keys[j], seq, PUT)))
        i = j + rng.randint(1, 30)
    return grandparents


def entries_of(staging, result):
    return [e for t in read_outputs(staging, result) for e in t]


def assert_sound_tables(staging, result, job):
    tables = read_outputs(staging, result)
    for a, b in zip(tables, tables[1:]):
        assert a[-1][0] < b[0][0]  # a user key's versions never split between tables
    for o, t in zip(result.outputs, tables):
        assert t and o.entries == len(t) and o.size == os.path.getsize(os.path.join(staging, o.name))
        assert o.smallest == make_internal_key(*t[0][:3]) and o.largest == make_internal_key(*t[-1][:3])
        with open(os.path.join(staging, o.name), "rb") as f:
            table = Table.open(MemFile(f.read()), path=o.name)
        for ukey, seq, _kind, _value in t:
            assert table.get(ukey, seq) is not None, (o.name, ukey)  # the filter holds every key


def run_columnar(tmp_path, job, name):
    staging = str(tmp_path / name)
    result = run_job(job, str(tmp_path), staging)
    assert result.ok, result.error
    return result, staging


def plyvel_reads(tmp_path, staging, result, expected_entries, max_seq):
    """Output tables as the level-1 files of a database: plyvel with
    paranoid checks reads the newest version of every key from them."""
    db_dir = str(tmp_path / "plyvel-db")
    shutil.rmtree(db_dir, ignore_errors=True)
    os.makedirs(db_dir)
    files = []
    for number, o in enumerate(result.outputs, 5):
        shutil.copy(os.path.join(staging, o.name), table_file_name(db_dir, number))
        files.append((1, FileMetaData(number, o.size, o.smallest, o.largest)))
    edit = VersionEdit(comparator=COMPARATOR_NAME, log_number=0, prev_log_number=0,
                       next_file_number=len(files) + 10, last_sequence=max_seq, new_files=files)
    DEFAULT_FS.write_file(filenames.descriptor_file_name(db_dir, 2), LogWriter().encode(edit.encode()))
    filenames.set_current_file(DEFAULT_FS, db_dir, 2)
    newest = {}
    for key, _seq, kind, value in expected_entries:  # sorted: the newest version first
        newest.setdefault(key, value if kind == PUT else None)
    db = plyvel.DB(db_dir, paranoid_checks=True, bloom_filter_bits=10)
    try:
        for key, value in newest.items():
            assert db.get(key, verify_checksums=True) == value, key
        assert dict(db.iterator(verify_checksums=True)) == {k: v for k, v in newest.items() if v is not None}
    finally:
        db.close()


# ---------------------------------------------------------------- compactions


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), chunk_bytes=st.sampled_from((600, 4096, 256 << 10)))
def test_compaction_keeps_what_the_reference_merge_keeps(tmp_path_factory, seed, chunk_bytes):
    tmp_path = tmp_path_factory.mktemp("lsm")
    rng = random.Random(seed)
    level0, level1, entries, keys, max_seq = random_lsm(tmp_path, rng)
    snapshot = rng.choice((0, rng.randint(0, max_seq), max_seq))
    deeper = sorted((keys[i], keys[min(len(keys) - 1, i + rng.randint(0, 30))])
                    for i in rng.sample(range(len(keys)), rng.randint(0, 4)))
    job = compaction(0, level0, level1, snapshot, deeper_ranges=deeper, table=OUTPUT_TABLES,
                     max_output_file_size=rng.choice((2000, 20_000, 1 << 30)),
                     grandparents=random_grandparents(rng, keys, max_seq) if rng.random() < 0.5 else [],
                     max_grandparent_overlap=rng.choice((3000, 20_000)))
    saved, columnar.CHUNK_BYTES = columnar.CHUNK_BYTES, chunk_bytes
    try:
        result, staging = run_columnar(tmp_path, job, "stage")
    finally:
        columnar.CHUNK_BYTES = saved
    expected = reference_merge(entries, snapshot, deeper)
    assert entries_of(staging, result) == expected
    assert_sound_tables(staging, result, job)
    rows = run_job(job, str(tmp_path), str(tmp_path / "rows"), columnar=False)
    assert entries_of(str(tmp_path / "rows"), rows) == expected


@pytest.mark.parametrize("seed", range(3))
def test_plyvel_reads_every_table_a_compaction_writes(tmp_path, seed):
    rng = random.Random(100 + seed)
    level0, level1, entries, keys, max_seq = random_lsm(tmp_path, rng, n_keys=800, n_l0=4)
    job = compaction(0, level0, level1, max_seq, table=OUTPUT_TABLES, max_output_file_size=8000,
                     grandparents=random_grandparents(rng, keys, max_seq), max_grandparent_overlap=6000)
    result, staging = run_columnar(tmp_path, job, "stage")
    expected = reference_merge(entries, max_seq)
    assert entries_of(staging, result) == expected
    assert len(result.outputs) > 3
    plyvel_reads(tmp_path, staging, result, expected, max_seq)


def test_grandparent_cuts_give_the_row_paths_tables_byte_for_byte(tmp_path):
    rng = random.Random(42)
    level0, level1, entries, keys, max_seq = random_lsm(tmp_path, rng)
    job = compaction(0, level0, level1, max_seq // 3, table=OUTPUT_TABLES,
                     grandparents=random_grandparents(rng, keys, max_seq), max_grandparent_overlap=4000,
                     max_output_file_size=1 << 30)
    result, staging = run_columnar(tmp_path, job, "stage")
    rows = run_job(job, str(tmp_path), str(tmp_path / "rows"), columnar=False)
    assert len(result.outputs) > 3
    assert result.outputs == rows.outputs
    for o in result.outputs:
        assert (DEFAULT_FS.read_file(os.path.join(staging, o.name))
                == DEFAULT_FS.read_file(os.path.join(str(tmp_path / "rows"), o.name)))


def test_subcompactions_split_the_work_exactly(tmp_path):
    rng = random.Random(9)
    level0, level1, entries, keys, max_seq = random_lsm(tmp_path, rng)
    bounds = [None, keys[100], keys[101], keys[250], None]
    pieces = []
    for i, (lower, upper) in enumerate(zip(bounds, bounds[1:])):
        job = compaction(0, level0, level1, max_seq, table=OUTPUT_TABLES, lower=lower, upper=upper)
        result, staging = run_columnar(tmp_path, job, f"piece{i}")
        got = entries_of(staging, result)
        assert all((lower is None or e[0] >= lower) and (upper is None or e[0] < upper) for e in got)
        pieces += got
    assert pieces == reference_merge(entries, max_seq)


def test_a_hot_key_longer_than_a_chunk_stays_in_one_table(tmp_path, monkeypatch):
    monkeypatch.setattr(columnar, "CHUNK_BYTES", 2048)
    hot = b"hot"
    versions = [(hot, s, PUT if s % 7 else DEL, bytes([s % 256]) * 40 if s % 7 else b"") for s in range(1, 601)]
    others = [(b"k%d" % i, 1000 + i, PUT, bytes(i % 50)) for i in range(300)]
    level0 = [write_table(tmp_path, 1, versions + others[::2], OUTPUT_TABLES),
              write_table(tmp_path, 2, others[1::2] + [(hot, 700, PUT, bytes(40))], OUTPUT_TABLES)]
    for snapshot in (0, 300, 10_000):
        job = compaction(0, level0, [], snapshot, table=OUTPUT_TABLES, max_output_file_size=4000)
        result, staging = run_columnar(tmp_path, job, f"snap{snapshot}")
        tables = read_outputs(staging, result)
        assert [e for t in tables for e in t] == reference_merge(versions + others + [(hot, 700, PUT, bytes(40))],
                                                                  snapshot)
        assert sum(any(e[0] == hot for e in t) for t in tables) == 1


def test_keys_too_wide_for_a_column_are_sorted_by_python(tmp_path, monkeypatch):
    monkeypatch.setattr(columnar, "_MAX_COLUMN_KEY", 8)
    rng = random.Random(5)
    level0, level1, entries, keys, max_seq = random_lsm(tmp_path, rng)
    job = compaction(0, level0, level1, max_seq // 2, table=OUTPUT_TABLES, max_output_file_size=5000)
    result, staging = run_columnar(tmp_path, job, "stage")
    assert entries_of(staging, result) == reference_merge(entries, max_seq // 2)


def test_damaged_block_fails_as_corruption_naming_the_file(tmp_path):
    rng = random.Random(4)
    level0, level1, _entries, _keys, max_seq = random_lsm(tmp_path, rng)
    path = table_file_name(str(tmp_path), level1[1].number)
    data = bytearray(DEFAULT_FS.read_file(path))
    data[level1[1].size // 3] ^= 0x20
    DEFAULT_FS.write_file(path, bytes(data))
    staging = str(tmp_path / "stage")
    result = run_job(compaction(0, level0, level1, max_seq, table=OUTPUT_TABLES), str(tmp_path), staging)
    assert not result.ok and result.error_kind == ErrorKind.CORRUPTION
    assert os.path.basename(path) in result.error
    assert not os.listdir(staging)


# ---------------------------------------------------------------- flushes


def random_batches(rng, count, first_sequence=1):
    keys = random_keys(rng, 200)
    batches, seq = [], first_sequence
    for _ in range(count):
        ops = []
        for _ in range(rng.randint(0, 60)):
            if rng.random() < 0.2:
                ops.append((DEL, rng.choice(keys), b""))
            else:
                ops.append((PUT, rng.choice(keys), random_value(rng)))
        batches.append((seq, ops))
        seq += len(ops)
    return batches


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32))
def test_flush_writes_every_entry_of_the_wal(tmp_path_factory, seed):
    tmp_path = tmp_path_factory.mktemp("wal")
    rng = random.Random(seed)
    batches = random_batches(rng, rng.randint(1, 40), first_sequence=rng.randint(1, 1000))
    write_wal(tmp_path, 7, batches)
    assert columnar.flush_windows(DEFAULT_FS.read_file(log_file_name(str(tmp_path), 7))) is not None
    job = FlushJob(job_id=1, wal_number=7, table=OUTPUT_TABLES)
    result, staging = run_columnar(tmp_path, job, "stage")
    assert entries_of(staging, result) == batch_entries(batches)
    assert result.max_sequence == max((s + len(ops) - 1 for s, ops in batches if ops), default=0)
    assert_sound_tables(staging, result, job)
    rows = run_job(job, str(tmp_path), str(tmp_path / "rows"), columnar=False)
    assert entries_of(str(tmp_path / "rows"), rows) == batch_entries(batches)


def test_a_torn_wal_takes_the_replay_path(tmp_path):
    batches = random_batches(random.Random(2), 10)
    write_wal(tmp_path, 8, batches)
    path = log_file_name(str(tmp_path), 8)
    DEFAULT_FS.write_file(path, DEFAULT_FS.read_file(path)[:-3])
    assert columnar.flush_windows(DEFAULT_FS.read_file(path)) is None
    job = FlushJob(job_id=1, wal_number=8, table=OUTPUT_TABLES, paranoid=False)
    result, staging = run_columnar(tmp_path, job, "stage")
    assert entries_of(staging, result) == batch_entries(batches[:-1])


def test_a_flush_of_many_windows_makes_full_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(columnar, "WINDOW_BYTES", 3000)
    rng = random.Random(3)
    batches = random_batches(rng, 60)
    write_wal(tmp_path, 9, batches)
    small = FlushJob(job_id=1, wal_number=9, table=OUTPUT_TABLES)
    result, staging = run_columnar(tmp_path, small, "small")
    monkeypatch.setattr(columnar, "WINDOW_BYTES", 1 << 30)
    whole, whole_staging = run_columnar(tmp_path, small, "whole")
    assert entries_of(staging, result) == batch_entries(batches)
    assert (DEFAULT_FS.read_file(os.path.join(staging, result.outputs[0].name))
            == DEFAULT_FS.read_file(os.path.join(whole_staging, whole.outputs[0].name)))


# ---------------------------------------------------------------- columns


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(TRICKY_KEYS) | st.binary(max_size=12), st.integers(0, 2**56 - 1)),
                min_size=1, max_size=60, unique_by=itemgetter(1)))
def test_entries_sort_into_internal_key_order(pairs):
    """Keys equal but for trailing zeros pad alike in the key column."""
    keys = [k for k, _ in pairs]
    tags = [t for _, t in pairs]
    entries = encode_entries(keys, tags, [b"v"] * len(keys))
    for runs in (None, 1 + len(keys) // 10):  # any order; a few runs (sorted as byte strings)
        order, same_key = sort_entries(entries, presorted=False, runs=runs)
        check_order(keys, tags, order, same_key)


def check_order(keys, tags, order, same_key):
    order = range(len(keys)) if order is None else order  # None: in order already
    expected = sorted(range(len(keys)), key=lambda i: (keys[i], -tags[i]))
    assert [(keys[i], tags[i]) for i in order] == [(keys[i], tags[i]) for i in expected]
    ranked = [keys[i] for i in expected]
    assert same_key.tolist() == [a == b for a, b in zip(ranked, ranked[1:])]


# Lengths whose varints take one, two and three bytes (keys with their
# 8-byte tag): the bulk decoder reads the first two kinds in a few steps
# over all entries, longer ones a byte at a time.
_ANY_LENGTH_KEYS = st.one_of(st.binary(max_size=20), st.binary(min_size=120, max_size=200))
_ANY_LENGTH_VALUES = st.one_of(st.binary(max_size=300),
                               st.builds(bytes.__mul__, st.binary(min_size=1, max_size=1), st.integers(16_377, 70_000)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(_ANY_LENGTH_KEYS, st.integers(0, 2**56 - 1), _ANY_LENGTH_VALUES),
                max_size=40), st.sampled_from((1, 2, 16)), st.booleans())
def test_blocks_decode_to_their_entries_in_any_layout(entries, interval, prefix_compression):
    entries = sorted({(u, t & ~0xFE, v) for u, t, v in entries}, key=lambda e: (e[0], -e[1]))  # kinds 0 and 1
    block = BlockBuilder(interval)
    last = None
    for ukey, tag, value in entries:
        ikey = ukey + tag.to_bytes(8, "little")
        if not prefix_compression:  # every key whole, as lsm writes them
            block.last_key = b""
        block.add(ikey, value)
        last = ikey
    contents = block.finish()
    decoded = decode_blocks([contents, contents])
    expected = entries * 2
    assert [(decoded.user_key(i), int(decoded.tag[i]), decoded.data[int(decoded.key[i]) + len(decoded.user_key(i)) + 8:int(decoded.end[i])])
            for i in range(len(decoded))] == expected
    assert last is None or decoded.internal_key(len(decoded) - 1) == last


def test_entries_of_one_size_cut_into_the_blocks_the_row_path_cuts(tmp_path):
    """db_bench's shape: keys and values of one size each, so every full
    block holds as many entries."""
    rng = random.Random(21)
    keys = sorted({rng.randbytes(16) for _ in range(3000)})
    level1 = [write_table(tmp_path, 10, [(k, 1, PUT, rng.randbytes(100)) for k in keys[::2]], OUTPUT_TABLES)]
    level0 = [write_table(tmp_path, 11 + i, [(k, 10 + i, PUT, rng.randbytes(100)) for k in keys[i::3]], OUTPUT_TABLES)
              for i in range(3)]
    job = compaction(0, level0, level1, 0, table=OUTPUT_TABLES, max_output_file_size=1 << 30,
                     grandparents=random_grandparents(rng, keys, 20), max_grandparent_overlap=20_000)
    result, staging = run_columnar(tmp_path, job, "stage")
    rows = run_job(job, str(tmp_path), str(tmp_path / "rows"), columnar=False)
    assert len(result.outputs) > 2 and result.outputs == rows.outputs
    for o in result.outputs:
        assert (DEFAULT_FS.read_file(os.path.join(staging, o.name))
                == DEFAULT_FS.read_file(os.path.join(str(tmp_path / "rows"), o.name)))
