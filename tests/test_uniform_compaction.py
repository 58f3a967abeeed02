"""The numpy flushes and compactions of fixed-size entries
(lsm.compactor.uniform) against the row-by-row paths they stand in for: the
same entries kept, the same tables where their cut rules agree, and the row
path whenever they do not apply."""
import os
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsm.jobs import ErrorKind, FlushJob
from lsm.table.options import TableOptions
from lsm.compactor.runner import run_job
from lsm.compactor import uniform
from lsm.compactor.uniform import UniformMerge, flush_uniform
from lsm.fileio import DEFAULT_FS
from lsm.filemeta import FileMetaData
from lsm.filenames import log_file_name, table_file_name
from lsm.keys import make_internal_key
from lsm.table import Table, TableBuilder
from lsm.table.filter import hash_rows

from table_helpers import MemFile
from job_helpers import DEL, PUT, batch_entries, compaction, order, read_outputs, write_table, write_wal

KEY_LEN = 12
UNIFORM_TABLES = TableOptions(block_size=1024, compression="snappy", bloom_bits_per_key=10)


def uniform_lsm(tmp_path, rng, value_len=40, n_l0=3, n_l1=3, options=UNIFORM_TABLES):
    """Level-1 files (disjoint) and overlapping level-0 files of puts with
    keys of KEY_LEN bytes and values of value_len: every block uniform."""
    keys = sorted({rng.randbytes(KEY_LEN) for _ in range(1500)})
    seq = 0
    level1_entries = []
    for key in keys[::2]:
        for _ in range(rng.choice((1, 1, 2))):
            seq += 1
            level1_entries.append((key, seq, PUT, rng.randbytes(value_len)))
    per_file = -(-len(level1_entries) // n_l1)
    level1_entries.sort(key=order)
    # Cut level 1 between user keys, so its files are disjoint.
    level1, number, start = [], 10, 0
    while start < len(level1_entries):
        end = min(start + per_file, len(level1_entries))
        while end < len(level1_entries) and level1_entries[end][0] == level1_entries[end - 1][0]:
            end += 1
        level1.append(write_table(tmp_path, number, level1_entries[start:end], options))
        number += 1
        start = end
    level0, level0_entries = [], []
    for _ in range(n_l0):
        group = []
        for _ in range(rng.randint(200, 600)):
            seq += 1
            group.append((rng.choice(keys), seq, PUT, rng.randbytes(value_len)))
        level0.append(write_table(tmp_path, number, group, options))
        number += 1
        level0_entries += group
    return level0, level1, level0_entries + level1_entries, seq


def uniform_path_completes(tmp_path, level0, level1, smallest_snapshot) -> bool:
    """Whether the uniform merge takes the whole of a level-0 compaction."""
    files = [DEFAULT_FS.open_random(table_file_name(str(tmp_path), m.number)) for m in level0 + level1]
    try:
        tables = [Table.open(f, path=f"{m.number}", number=m.number) for f, m in zip(files, level0 + level1)]
        merge = UniformMerge([[t] for t in tables[: len(level0)]] + [tables[len(level0):]], None, None,
                             smallest_snapshot)
        for _ in merge.windows():
            pass
        return merge.complete
    finally:
        for f in files:
            f.close()


def run_both(tmp_path, job, name="stage"):
    """(result, staging directory) of the job on the uniform path and on the row path."""
    got = []
    for uniform in (True, False):
        staging = str(tmp_path / f"{name}-{uniform}")
        result = run_job(job, str(tmp_path), staging, uniform=uniform)
        assert result.ok, result.error
        got.append((result, staging))
    return got


def assert_filters_hold_every_key(result, staging):
    """Each output table's bloom filter passes every key it holds (a
    filter built from the wrong hashes would hide some)."""
    for o in result.outputs:
        with open(os.path.join(staging, o.name), "rb") as f:
            data = f.read()
        table = Table.open(MemFile(data), path=o.name)
        for ukey, seq, _kind, _value in read_outputs(staging, type(result)(job_id=0, ok=True, outputs=[o]))[0]:
            assert table.get(ukey, seq) is not None, (o.name, ukey)


def output_bytes(result, staging):
    return [DEFAULT_FS.read_file(os.path.join(staging, o.name)) for o in result.outputs]


def kept_entries(entries, smallest_snapshot):
    """The drop rules for puts, spelled out one user key at a time."""
    out = []
    by_key = {}
    for e in sorted(entries, key=order):
        by_key.setdefault(e[0], []).append(e)
    for key in sorted(by_key):
        shadowing = False
        for e in by_key[key]:
            if not shadowing:
                out.append(e)
            shadowing = shadowing or e[1] <= smallest_snapshot
    return out


# ---------------------------------------------------------------- the builder


@pytest.mark.parametrize("compression", ["snappy", None])
@pytest.mark.parametrize("value_len", [0, 30, 200])  # 200: a two-byte varint in every header
@pytest.mark.parametrize("count", [1, 7, 40, 3000])
def test_add_uniform_writes_the_bytes_add_many_writes(compression, value_len, count):
    rng = random.Random(count * 1000 + value_len)
    keys = sorted(make_internal_key(rng.randbytes(KEY_LEN), 1000 + i, PUT) for i in range(count))
    values = [rng.randbytes(value_len) for _ in range(count)]
    for options in (
        TableOptions(block_size=512, block_restart_interval=3, compression=compression),
        TableOptions(compression=compression, bloom_bits_per_key=0),
    ):
        expected = []
        builder = TableBuilder(options, expected.append)
        builder.add_many(keys, values)
        builder.finish()

        header = bytes([0, len(keys[0])]) + (bytes([value_len]) if value_len < 128 else bytes([value_len & 0x7F | 0x80, value_len >> 7]))
        entries = b"".join(header + k + v for k, v in zip(keys, values))
        stride = len(entries) // count
        rows = np.frombuffer(entries, dtype=np.uint8).reshape(count, stride)
        hashes = hash_rows(rows[:, len(header):len(header) + KEY_LEN], KEY_LEN) if options.bloom_bits_per_key else None
        got = []
        uniform = TableBuilder(options, got.append)
        assert uniform.add_uniform(entries, stride, len(header), len(keys[0]), hashes) == count
        uniform.finish()
        assert b"".join(got) == b"".join(expected)
        assert (uniform.smallest, uniform.largest, uniform.num_entries) == (keys[0], keys[-1], count)


def test_add_uniform_stops_after_the_block_that_reaches_the_size_limit():
    keys = [make_internal_key(b"k%07d" % i, 1, PUT) for i in range(2000)]
    entries = b"".join(bytes([0, 16, 50]) + k + b"v" * 50 for k in keys)
    builder = TableBuilder(TableOptions(compression=None, bloom_bits_per_key=0), [].append)
    added = builder.add_uniform(entries, 69, 3, 16, size_limit=10_000)
    # 57 entries of 69 bytes and their restart array (every entry a restart
    # point) reach 4096 bytes; three such blocks (with their trailers) are
    # the first to pass 10_000.
    assert added == 3 * 57 and builder.file_size == 3 * (57 * 69 + 57 * 4 + 4 + 5)
    assert builder.num_entries == added and builder.largest == keys[added - 1]


def test_add_uniform_refuses_a_prefix_compressing_builder():
    builder = TableBuilder(TableOptions(prefix_compression=True, bloom_bits_per_key=0), [].append)
    with pytest.raises(Exception, match="prefix compression"):
        builder.add_uniform(bytes([0, 9, 1]) + b"k" + bytes(8) + b"v", 12, 3, 9)


# ---------------------------------------------------------------- compactions


@pytest.mark.parametrize("seed", range(6))
def test_uniform_compaction_keeps_what_the_row_merge_keeps(tmp_path, seed):
    rng = random.Random(seed)
    level0, level1, entries, max_seq = uniform_lsm(tmp_path, rng)
    snapshot = rng.choice((0, max_seq // 2, max_seq))
    assert uniform_path_completes(tmp_path, level0, level1, snapshot)
    job = compaction(0, level0, level1, snapshot, table=UNIFORM_TABLES,
                     max_output_file_size=rng.choice((3000, 20_000, 1 << 30)))
    (fast, fast_dir), (rows, rows_dir) = run_both(tmp_path, job)
    got = [e for t in read_outputs(fast_dir, fast) for e in t]
    assert got == [e for t in read_outputs(rows_dir, rows) for e in t]
    assert got == kept_entries(entries, snapshot)
    tables = read_outputs(fast_dir, fast)
    for a, b in zip(tables, tables[1:]):
        assert a[-1][0] < b[0][0]  # a user key's versions never split between tables
    for o, t in zip(fast.outputs, tables):
        assert o.entries == len(t) and o.size == os.path.getsize(os.path.join(fast_dir, o.name))
        assert o.smallest == make_internal_key(*t[0][:3]) and o.largest == make_internal_key(*t[-1][:3])
        assert o.size <= job.max_output_file_size + 2 * UNIFORM_TABLES.block_size + 2000
    assert fast.bytes_read == rows.bytes_read
    assert fast.bytes_written == sum(o.size for o in fast.outputs)


def test_grandparent_cuts_give_the_row_merges_tables_byte_for_byte(tmp_path):
    rng = random.Random(42)
    level0, level1, entries, max_seq = uniform_lsm(tmp_path, rng)
    keys = sorted({e[0] for e in entries})
    grandparents = []
    for g, i in enumerate(range(0, len(keys) - 60, 60)):
        seq = rng.randint(1, max_seq)  # some end on a key the job holds, with any tag
        grandparents.append(FileMetaData(900 + g, rng.randint(500, 3000), make_internal_key(keys[i], seq, PUT),
                                         make_internal_key(keys[i + rng.randint(0, 59)], seq, PUT)))
    job = compaction(0, level0, level1, max_seq // 3, table=UNIFORM_TABLES, grandparents=grandparents,
                     max_grandparent_overlap=4000, max_output_file_size=1 << 30)
    (fast, fast_dir), (rows, rows_dir) = run_both(tmp_path, job)
    assert len(fast.outputs) > 3
    assert output_bytes(fast, fast_dir) == output_bytes(rows, rows_dir)
    assert fast.outputs == rows.outputs


def test_subcompactions_on_the_uniform_path_split_the_work_exactly(tmp_path):
    rng = random.Random(9)
    level0, level1, entries, max_seq = uniform_lsm(tmp_path, rng)
    keys = sorted({e[0] for e in entries})
    bounds = [None, keys[300], keys[301], keys[900], None]
    whole = kept_entries(entries, max_seq)
    pieces = []
    for i, (lower, upper) in enumerate(zip(bounds, bounds[1:])):
        job = compaction(0, level0, level1, max_seq, table=UNIFORM_TABLES, lower=lower, upper=upper)
        (fast, fast_dir), (rows, rows_dir) = run_both(tmp_path, job, f"piece{i}")
        got = [e for t in read_outputs(fast_dir, fast) for e in t]
        assert got == [e for t in read_outputs(rows_dir, rows) for e in t]
        assert all((lower is None or e[0] >= lower) and (upper is None or e[0] < upper) for e in got)
        pieces += got
    assert pieces == whole


@pytest.mark.parametrize("odd_one", ["deletion", "other value length", "other key length"])
def test_a_deletion_or_a_second_layout_takes_the_row_path(tmp_path, odd_one):
    rng = random.Random(3)
    level0, level1, entries, max_seq = uniform_lsm(tmp_path, rng)
    key = entries[0][0]
    odd = {
        "deletion": (key, max_seq + 1, DEL, b""),
        "other value length": (key, max_seq + 1, PUT, b"short"),
        "other key length": (key + b"!", max_seq + 1, PUT, bytes(40)),
    }[odd_one]
    level0.append(write_table(tmp_path, 99, [odd], UNIFORM_TABLES))
    assert not uniform_path_completes(tmp_path, level0, level1, max_seq + 1)
    job = compaction(0, level0, level1, max_seq + 1, table=UNIFORM_TABLES)
    result = run_job(job, str(tmp_path), str(tmp_path / "stage"))
    assert result.ok, result.error
    got = [e for t in read_outputs(str(tmp_path / "stage"), result) for e in t]
    if odd_one == "deletion":
        assert key not in {e[0] for e in got}  # no deeper level: the marker and the key are gone
        assert got == [e for e in kept_entries(entries, max_seq + 1) if e[0] != key]
    else:
        assert got == kept_entries(entries + [odd], max_seq + 1)


def test_damaged_block_on_the_uniform_path_fails_as_corruption_naming_the_file(tmp_path):
    rng = random.Random(4)
    level0, level1, _entries, max_seq = uniform_lsm(tmp_path, rng)
    path = table_file_name(str(tmp_path), level1[1].number)
    data = bytearray(DEFAULT_FS.read_file(path))
    data[level1[1].size // 3] ^= 0x20
    DEFAULT_FS.write_file(path, bytes(data))
    staging = str(tmp_path / "stage")
    result = run_job(compaction(0, level0, level1, max_seq, table=UNIFORM_TABLES), str(tmp_path), staging)
    assert not result.ok and result.error_kind is ErrorKind.CORRUPTION
    assert os.path.basename(path) in result.error
    assert not os.listdir(staging)


# ---------------------------------------------------------------- flushes


def uniform_batches(rng, count, size, first_sequence=1, key_len=KEY_LEN, value_len=60):
    """Write batches of `size` puts of fresh and repeated keys."""
    keys = [rng.randbytes(key_len) for _ in range(count * size // 2)]
    batches, sequence = [], first_sequence
    for _ in range(count):
        ops = [(PUT, rng.choice(keys), rng.randbytes(value_len)) for _ in range(size)]
        batches.append((sequence, ops))
        sequence += size
    return batches


def takes_uniform_flush(tmp_path, wal_number) -> bool:
    return flush_uniform(DEFAULT_FS.read_file(log_file_name(str(tmp_path), wal_number))) is not None


def flush_both(tmp_path, wal_number, options=UNIFORM_TABLES):
    """(result, entries) of a flush on the uniform path, then on the row path."""
    got = []
    for uniform in (True, False):
        staging = str(tmp_path / f"flush{wal_number}-{uniform}")
        result = run_job(FlushJob(job_id=1, wal_number=wal_number, table=options), str(tmp_path), staging,
                         uniform=uniform)
        assert result.ok, result.error
        got.append((result, [e for t in read_outputs(staging, result) for e in t], output_bytes(result, staging)))
    return got


def test_uniform_flush_writes_the_table_the_row_flush_writes(tmp_path):
    rng = random.Random(1)
    # Batches of 400 puts of 72 bytes span log blocks (FIRST/MIDDLE/LAST
    # fragments); an empty batch and batches out of sequence order too.
    batches = uniform_batches(rng, 40, 400, first_sequence=100)
    batches[5], batches[9] = batches[9], batches[5]
    batches.insert(3, (5, []))
    write_wal(tmp_path, 7, batches)
    assert takes_uniform_flush(tmp_path, 7)
    (fast, fast_entries, fast_bytes), (rows, rows_entries, rows_bytes) = flush_both(tmp_path, 7)
    assert fast_entries == batch_entries(batches)
    assert fast_bytes == rows_bytes
    assert fast.max_sequence == rows.max_sequence == 100 + 40 * 400 - 1
    assert fast.outputs == rows.outputs


@pytest.mark.parametrize("odd_one", ["another key length", "a deletion", "another value length", "a long value"])
def test_a_wal_the_uniform_flush_cannot_take_is_flushed_by_rows(tmp_path, odd_one):
    rng = random.Random(2)
    batches = uniform_batches(rng, 6, 50)
    odd = {
        "another key length": [(PUT, b"k" * (KEY_LEN + 1), bytes(60))],
        "a deletion": [(PUT, b"k" * KEY_LEN, bytes(60)), (DEL, b"d" * KEY_LEN, b"")],
        "another value length": [(PUT, b"k" * KEY_LEN, bytes(61))],
        "a long value": [(PUT, b"k" * KEY_LEN, bytes(300))],
    }[odd_one]
    batches.append((6 * 50 + 1, odd))
    write_wal(tmp_path, 8, batches)
    assert not takes_uniform_flush(tmp_path, 8)
    (fast, fast_entries, _), (rows, rows_entries, _) = flush_both(tmp_path, 8)
    assert fast_entries == rows_entries == batch_entries(batches)
    assert fast.max_sequence == rows.max_sequence


# ---------------------------------------------------------------- windows


@pytest.fixture
def small_chunks(monkeypatch):
    """Runs read two 1 KiB blocks at a time: a job of many windows."""
    monkeypatch.setattr(uniform, "CHUNK_BYTES", 2048)


def test_windows_of_a_few_blocks_write_the_tables_one_window_writes(tmp_path, small_chunks):
    rng = random.Random(8)
    level0, level1, entries, max_seq = uniform_lsm(tmp_path, rng)
    keys = sorted({e[0] for e in entries})
    grandparents = [FileMetaData(900 + g, 2500, make_internal_key(keys[i], 1, PUT), make_internal_key(keys[i + 40], 1, PUT))
                    for g, i in enumerate(range(0, len(keys) - 41, 45))]
    job = compaction(0, level0, level1, max_seq // 2, table=UNIFORM_TABLES, grandparents=grandparents,
                     max_grandparent_overlap=6000, max_output_file_size=1 << 30)
    (fast, fast_dir), (rows, rows_dir) = run_both(tmp_path, job)
    assert len(fast.outputs) > 3
    assert output_bytes(fast, fast_dir) == output_bytes(rows, rows_dir)

    sized = compaction(0, level0, level1, max_seq // 2, table=UNIFORM_TABLES, max_output_file_size=5000)
    (fast, fast_dir), (rows, rows_dir) = run_both(tmp_path, sized, "sized")
    got = [e for t in read_outputs(fast_dir, fast) for e in t]
    assert got == [e for t in read_outputs(rows_dir, rows) for e in t] == kept_entries(entries, max_seq // 2)
    assert len(fast.outputs) > 5


def test_a_hot_key_longer_than_a_chunk_is_merged_whole(tmp_path, small_chunks):
    hot = b"h" * KEY_LEN
    versions = [(hot, s, PUT, bytes([s % 256]) * 40) for s in range(1, 601)]
    others = [(b"k%011d" % i, 1000 + i, PUT, bytes(40)) for i in range(300)]
    level0 = [write_table(tmp_path, 1, versions + others[::2], UNIFORM_TABLES),
              write_table(tmp_path, 2, others[1::2] + [(hot, 700, PUT, bytes(40))], UNIFORM_TABLES)]
    for snapshot in (0, 300, 10_000):
        job = compaction(0, level0, [], snapshot, table=UNIFORM_TABLES, max_output_file_size=4000)
        (fast, fast_dir), (rows, rows_dir) = run_both(tmp_path, job, f"snap{snapshot}")
        tables = read_outputs(fast_dir, fast)
        got = [e for t in tables for e in t]
        assert got == [e for t in read_outputs(rows_dir, rows) for e in t]
        assert got == kept_entries(versions + others + [(hot, 700, PUT, bytes(40))], snapshot)
        assert sum(any(e[0] == hot for e in t) for t in tables) == 1


def test_a_misfit_block_midway_hands_the_rest_to_the_row_path(tmp_path, small_chunks):
    rng = random.Random(12)
    level0, level1, entries, max_seq = uniform_lsm(tmp_path, rng)
    # A last level-1 file, past every other key, with a deletion among its puts.
    tail = [(b"\xff" * 11 + bytes([i]), i + 1, PUT, bytes(40)) for i in range(60) if i != 30]
    level1.append(write_table(tmp_path, 98, tail + [(b"\xff" * 11 + bytes([30]), 31, DEL, b"")], UNIFORM_TABLES))
    files = [DEFAULT_FS.open_random(table_file_name(str(tmp_path), m.number)) for m in level0 + level1]
    try:
        tables = [Table.open(f, path=str(m.number), number=m.number) for f, m in zip(files, level0 + level1)]
        runs = [[t] for t in tables[: len(level0)]] + [tables[len(level0):-1]] + [tables[-1:]]
        merge = UniformMerge(runs, None, None, max_seq)
        assert sum(1 for _ in merge.windows()) == 0  # a run of the deletion's file alone is read first
        assert not merge.complete and merge.resume_at is None
        runs = [[t] for t in tables[: len(level0)]] + [tables[len(level0):]]
        merge = UniformMerge(runs, None, None, max_seq)
        assert sum(1 for _ in merge.windows()) > 3
        assert not merge.complete and merge.resume_at is not None
    finally:
        for f in files:
            f.close()
    job = compaction(0, level0, level1, max_seq, table=UNIFORM_TABLES, max_output_file_size=6000)
    (fast, fast_dir), (rows, rows_dir) = run_both(tmp_path, job)
    got = [e for t in read_outputs(fast_dir, fast) for e in t]
    assert got == [e for t in read_outputs(rows_dir, rows) for e in t]
    # The deletion, at the base level and seen by every snapshot, is dropped.
    assert got == kept_entries(entries + tail, max_seq)
    assert_filters_hold_every_key(fast, fast_dir)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 24), st.data())
def test_rows_sort_into_internal_key_order_whatever_words_they_share(key_len, data):
    """_internal_order against sorted(): keys of one length with a fixed
    prefix (words equal on every row), fresh keys (one argsort), and repeated
    keys (the lexsort), each with tags in any order."""
    prefix = data.draw(st.binary(max_size=key_len, min_size=0))
    pool = data.draw(st.lists(st.binary(min_size=key_len - len(prefix), max_size=key_len - len(prefix)),
                              min_size=1, max_size=8))
    keys = data.draw(st.lists(st.sampled_from(pool).map(lambda k: prefix + k), min_size=1, max_size=40))
    tags = data.draw(st.lists(st.integers(0, 2**56 - 1), min_size=len(keys), max_size=len(keys), unique=True))
    words = np.zeros((len(keys), -(-key_len // 8) * 8), dtype=np.uint8)
    if key_len:
        words[:, :key_len] = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), key_len)
    order = uniform._internal_order(words.view(">u8").astype(np.uint64), np.array(tags, dtype=np.uint64))
    expected = sorted(range(len(keys)), key=lambda i: (keys[i], -tags[i]))
    assert [(keys[i], tags[i]) for i in order] == [(keys[i], tags[i]) for i in expected]


def test_fresh_sequential_keys_flush_in_order(tmp_path):
    """Keys like the bench's (%016d): the first word is the same on every
    row, the second tells them apart, so one argsort orders the flush."""
    ops = [(PUT, b"%016d" % i, bytes([i % 256]) * 20) for i in random.Random(6).sample(range(5000), 5000)]
    batches = [(1 + i, ops[i:i + 500]) for i in range(0, 5000, 500)]
    write_wal(tmp_path, 9, batches)
    assert takes_uniform_flush(tmp_path, 9)
    (fast, fast_entries, fast_bytes), (_rows, rows_entries, rows_bytes) = flush_both(tmp_path, 9)
    assert fast_entries == rows_entries == batch_entries(batches)
    assert fast_bytes == rows_bytes
