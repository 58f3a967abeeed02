"""Running flush and compaction jobs against real WALs and tables on disk.

The compaction model here is deliberately naive (a dict of versions and LevelDB's
drop rules spelled out one key at a time) so that it shares nothing with
the chunked merge and drop loop it checks.
"""
import ast
import os
import pathlib
import random

import pytest

from lsm.jobs import ErrorKind, FlushJob
from lsm.compactor import columnar
from lsm.compactor.runner import TEST_SLEEP_ENV, run_job
from lsm.fileio import DEFAULT_FS, FileSystem
from lsm.filemeta import FileMetaData
from lsm.filenames import log_file_name, table_file_name
from lsm.keys import make_internal_key
from lsm.record import BLOCK_SIZE
from lsm.table import BlockCache

from job_helpers import (
    DEL, PUT, SMALL_TABLES, batch_entries, compaction, order, read_outputs, read_table, write_table, write_wal,
)


def visible(entries, ukey, snapshot):
    """What a reader at `snapshot` gets for ukey: the newest entry <= snapshot."""
    best = None
    for k, seq, kind, value in entries:
        if k == ukey and seq <= snapshot and (best is None or seq > best[0]):
            best = (seq, kind, value)
    if best is None or best[1] == DEL:
        return None
    return best[2]


def expected_survivors(entries, smallest_snapshot, deeper, lower=None, upper=None):
    """LevelDB's drop rules, one user key at a time, newest version first."""
    by_key = {}
    for e in entries:
        by_key.setdefault(e[0], []).append(e)
    out = []
    for ukey in sorted(by_key):
        if (lower is not None and ukey < lower) or (upper is not None and ukey >= upper):
            continue
        seen_at_or_below_snapshot = False
        for e in sorted(by_key[ukey], key=order):
            _, seq, kind, _ = e
            if seen_at_or_below_snapshot:
                continue  # rule 1: shadowed for every live reader
            if seq <= smallest_snapshot:
                seen_at_or_below_snapshot = True
                may_hide_below = any(lo <= ukey <= hi for lo, hi in deeper)
                if kind == DEL and not may_hide_below:
                    continue  # rule 2: nothing older left to hide
            out.append(e)
    return out


def staging_files(staging):
    return sorted(os.listdir(staging)) if os.path.isdir(staging) else []


def random_lsm(rng, db_dir, n_keys=300, n_l0=4, n_l1=3, value_max=120):
    """Level-1 files (older, disjoint) and level-0 files (newer, overlapping),
    with overwrites, deletions and several versions per key in every file."""
    keys = [b"k%04d" % i for i in range(n_keys)]
    seq = 0
    entries_l1 = []
    for ukey in sorted(rng.sample(keys, n_keys * 2 // 3)):
        for _ in range(rng.randint(1, 3)):
            seq += 1
            kind = DEL if rng.random() < 0.2 else PUT
            value = rng.randbytes(rng.randint(0, value_max)) if kind == PUT else b""
            entries_l1.append((ukey, seq, kind, value))
    # Split level 1 into disjoint files at user-key boundaries.
    l1_keys = sorted({e[0] for e in entries_l1})
    cuts = sorted(rng.sample(range(1, len(l1_keys)), n_l1 - 1))
    bounds = [l1_keys[c] for c in cuts]
    groups = [[] for _ in range(n_l1)]
    for e in entries_l1:
        groups[sum(e[0] >= b for b in bounds)].append(e)
    number = 10
    level1 = []
    for group in groups:
        level1.append(write_table(db_dir, number, group))
        number += 1
    level0 = []
    entries_l0 = []
    for _ in range(n_l0):
        group = []
        lo = rng.randrange(n_keys)
        hi = min(n_keys, lo + rng.randint(20, n_keys))
        for _ in range(rng.randint(50, 250)):
            seq += 1
            ukey = keys[rng.randrange(lo, hi)]
            kind = DEL if rng.random() < 0.3 else PUT
            value = rng.randbytes(rng.randint(0, value_max)) if kind == PUT else b""
            group.append((ukey, seq, kind, value))
        level0.append(write_table(db_dir, number, group))
        number += 1
        entries_l0 += group
    return level0, level1, entries_l0 + entries_l1, seq, keys


# ---------------------------------------------------------------- flush


def test_flush_table_holds_every_batch_entry_in_internal_order(tmp_path):
    rng = random.Random(1)
    batches = [
        (1, [(PUT, b"b", b"2"), (PUT, b"a", b"1")]),
        (3, [(DEL, b"a", None), (PUT, b"c", b"3")]),
        (5, [(PUT, b"a", b"4"), (PUT, b"a", b"5"), (DEL, b"zz", None)]),
        # Bigger than a log block: stored as FIRST/MIDDLE/LAST fragments.
        (8, [(PUT, b"huge", rng.randbytes(70000))]),
    ]
    seq = 9
    for _ in range(40):
        ops = [(rng.choice((PUT, PUT, DEL)), b"r%03d" % rng.randrange(60), rng.randbytes(30))
               for _ in range(rng.randint(1, 8))]
        batches.append((seq, ops))
        seq += len(ops)
    write_wal(tmp_path, 5, batches)
    staging = str(tmp_path / "stage")
    result = run_job(FlushJob(job_id=3, wal_number=5), str(tmp_path), staging)
    assert result.ok, result.error
    assert result.job_id == 3
    assert result.max_sequence == seq - 1
    assert len(result.outputs) == 1
    out = result.outputs[0]
    assert staging_files(staging) == [out.name] == ["out-000001.ldb"]
    assert out.size == os.path.getsize(os.path.join(staging, out.name))
    assert result.bytes_written == out.size
    assert result.bytes_read == os.path.getsize(log_file_name(str(tmp_path), 5))
    entries = read_table(os.path.join(staging, out.name))
    expected = batch_entries(batches)
    assert entries == expected
    assert out.entries == len(expected)
    assert out.smallest == make_internal_key(*expected[0][:3])
    assert out.largest == make_internal_key(*expected[-1][:3])


def test_flush_orders_versions_by_sequence_even_when_wal_batches_are_not(tmp_path):
    # The fast path relies on batches appearing oldest first; a WAL where they
    # don't (never written by us, but possible from elsewhere) must still
    # give newest-first versions.
    batches = [(10, [(PUT, b"a", b"ten"), (PUT, b"b", b"eleven")]), (3, [(PUT, b"a", b"three")])]
    write_wal(tmp_path, 8, batches)
    staging = str(tmp_path / "stage")
    result = run_job(FlushJob(job_id=1, wal_number=8), str(tmp_path), staging)
    assert result.ok, result.error
    assert read_table(os.path.join(staging, result.outputs[0].name)) == batch_entries(batches)
    assert result.max_sequence == 11


def test_flush_of_empty_wal_writes_no_table(tmp_path):
    DEFAULT_FS.write_file(log_file_name(str(tmp_path), 4), b"")
    staging = str(tmp_path / "stage")
    result = run_job(FlushJob(job_id=1, wal_number=4), str(tmp_path), staging)
    assert result.ok and result.outputs == [] and result.max_sequence == 0
    assert staging_files(staging) == []


def _wal_over_several_blocks(tmp_path):
    rng = random.Random(2)
    batches = []
    seq = 1
    for i in range(120):
        ops = [(PUT, b"key%05d" % (i * 10 + j), rng.randbytes(100)) for j in range(10)]
        batches.append((seq, ops))
        seq += len(ops)
    offsets = write_wal(tmp_path, 9, batches)
    assert offsets[-1] > 3 * BLOCK_SIZE
    path = log_file_name(str(tmp_path), 9)
    data = bytearray(DEFAULT_FS.read_file(path))
    data[100] ^= 0xFF  # inside the first record's payload
    DEFAULT_FS.write_file(path, bytes(data))
    return batches, offsets


def test_flush_of_wal_damaged_mid_log_is_corruption_when_paranoid(tmp_path):
    _wal_over_several_blocks(tmp_path)
    staging = str(tmp_path / "stage")
    result = run_job(FlushJob(job_id=1, wal_number=9, paranoid=True), str(tmp_path), staging)
    assert not result.ok and result.error_kind is ErrorKind.CORRUPTION
    assert "000009.log" in result.error
    assert staging_files(staging) == []


def test_recovery_flush_stops_at_damaged_wal_block_leaving_a_prefix(tmp_path):
    """Point-in-time: nothing after the first damage, so no hole in history."""
    batches, offsets = _wal_over_several_blocks(tmp_path)
    staging = str(tmp_path / "stage")
    result = run_job(FlushJob(job_id=1, wal_number=9, paranoid=False), str(tmp_path), staging)
    assert result.ok and result.error.startswith("stopped at offset"), result.error
    got = read_table(os.path.join(staging, result.outputs[0].name)) if result.outputs else []
    prefixes = [batch_entries(batches[:k]) for k in range(len(batches) + 1)]
    assert got in prefixes, "recovery kept records after the damage"
    assert got != batch_entries(batches), "the damaged record was replayed"


def test_salvage_flush_skips_damaged_wal_block(tmp_path):
    batches, offsets = _wal_over_several_blocks(tmp_path)
    staging = str(tmp_path / "stage")
    result = run_job(FlushJob(job_id=1, wal_number=9, paranoid=False, salvage=True), str(tmp_path), staging)
    assert result.ok, result.error
    # LevelDB drops the rest of the damaged block; a record that started in it
    # and continues into the next block is lost too.
    survivors = [b for b, off in zip(batches, offsets) if off >= BLOCK_SIZE]
    assert read_table(os.path.join(staging, result.outputs[0].name)) == batch_entries(survivors)
    assert result.max_sequence == batches[-1][0] + len(batches[-1][1]) - 1


def test_flush_ignores_torn_wal_tail_even_when_paranoid(tmp_path):
    batches = [(1, [(PUT, b"a", b"1")]), (2, [(PUT, b"b", b"2")])]
    write_wal(tmp_path, 6, batches)
    path = log_file_name(str(tmp_path), 6)
    data = DEFAULT_FS.read_file(path)
    DEFAULT_FS.write_file(path, data[:-3])
    staging = str(tmp_path / "stage")
    result = run_job(FlushJob(job_id=1, wal_number=6, paranoid=True), str(tmp_path), staging)
    assert result.ok
    assert read_table(os.path.join(staging, result.outputs[0].name)) == batch_entries(batches[:1])
    assert result.max_sequence == 1


def test_flush_of_missing_wal_fails_without_corruption(tmp_path):
    result = run_job(FlushJob(job_id=1, wal_number=77), str(tmp_path), str(tmp_path / "s"))
    assert not result.ok and result.error_kind is ErrorKind.IO
    assert "000077.log" in result.error


# ---------------------------------------------------------------- compaction rules


def test_version_below_a_snapshot_visible_version_is_dropped(tmp_path):
    # a@9 put, a@5 put, a@3 del against snapshot 6: a@9 is the newest, a@5 is
    # what snapshot 6 reads, and a@3 is hidden from every reader by a@5.
    l0 = [write_table(tmp_path, 1, [(b"a", 9, PUT, b"v9"), (b"a", 5, PUT, b"v5")])]
    l1 = [write_table(tmp_path, 2, [(b"a", 3, DEL, b"")])]
    staging = str(tmp_path / "stage")
    result = run_job(compaction(0, l0, l1, smallest_snapshot=6), str(tmp_path), staging)
    assert result.ok, result.error
    assert read_outputs(staging, result) == [[(b"a", 9, PUT, b"v9"), (b"a", 5, PUT, b"v5")]]


def test_deletion_marker_dropped_only_where_no_deeper_file_may_hold_the_key(tmp_path):
    entries = [(b"a", 5, DEL, b""), (b"a", 2, PUT, b"old"), (b"m", 5, DEL, b""), (b"m", 2, PUT, b"x")]
    l0 = [write_table(tmp_path, 1, [e for e in entries if e[1] == 5])]
    l1 = [write_table(tmp_path, 2, [e for e in entries if e[1] == 2])]
    staging = str(tmp_path / "stage")
    # Level 3 may hold an older m: dropping m@5 would resurrect it.
    job = compaction(0, l0, l1, smallest_snapshot=10, deeper_ranges=[(b"k", b"n")])
    result = run_job(job, str(tmp_path), staging)
    assert result.ok, result.error
    assert read_outputs(staging, result) == [[(b"m", 5, DEL, b"")]]


def test_deletion_newer_than_smallest_snapshot_is_kept(tmp_path):
    l0 = [write_table(tmp_path, 1, [(b"a", 8, DEL, b""), (b"a", 4, PUT, b"v4")])]
    staging = str(tmp_path / "stage")
    result = run_job(compaction(0, l0, [], smallest_snapshot=6), str(tmp_path), staging)
    assert read_outputs(staging, result) == [[(b"a", 8, DEL, b""), (b"a", 4, PUT, b"v4")]]


def test_everything_dropped_gives_no_output(tmp_path):
    l0 = [write_table(tmp_path, 1, [(b"a", 8, DEL, b""), (b"a", 4, PUT, b"v4")])]
    staging = str(tmp_path / "stage")
    result = run_job(compaction(0, l0, [], smallest_snapshot=100), str(tmp_path), staging)
    assert result.ok and result.outputs == [] and staging_files(staging) == []


@pytest.mark.parametrize("seed", range(8))
def test_compaction_keeps_exactly_what_the_drop_rules_allow(tmp_path, seed):
    rng = random.Random(seed)
    level0, level1, entries, max_seq, keys = random_lsm(rng, tmp_path)
    snapshot = rng.randint(0, max_seq)
    deeper = sorted(
        (keys[i], keys[min(len(keys) - 1, i + rng.randint(0, 30))])
        for i in rng.sample(range(len(keys)), 4)
    )
    max_out = rng.choice((2048, 4096, 1 << 20))
    job = compaction(0, level0, level1, snapshot, deeper_ranges=deeper, max_output_file_size=max_out)
    staging = str(tmp_path / "stage")
    result = run_job(job, str(tmp_path), staging)
    assert result.ok, result.error
    tables = read_outputs(staging, result)
    got = [e for t in tables for e in t]
    assert got == expected_survivors(entries, snapshot, deeper)

    # Every reader at or above the smallest snapshot sees what it saw before.
    snapshots = {snapshot, max_seq} | {rng.randint(snapshot, max_seq) for _ in range(6)}
    for s in snapshots:
        for ukey in keys:
            assert visible(got, ukey, s) == visible(entries, ukey, s), (ukey, s)

    # Outputs: sorted, disjoint by user key, each near the size cap, and
    # their metadata matches the files.
    assert staging_files(staging) == sorted(o.name for o in result.outputs)
    for o, t in zip(result.outputs, tables):
        assert o.size == os.path.getsize(os.path.join(staging, o.name))
        assert o.entries == len(t)
        assert o.smallest == make_internal_key(*t[0][:3])
        assert o.largest == make_internal_key(*t[-1][:3])
        assert t == sorted(t, key=order)
        # Cut once the size reached the cap: over by at most the last block
        # and one group of versions of a key (never split) plus index/filter/footer.
        groups = {}
        for ukey, _seq, _kind, value in t:
            groups[ukey] = groups.get(ukey, 0) + len(ukey) + 8 + 3 + len(value)
        assert o.size <= max_out + 2 * SMALL_TABLES.block_size + max(groups.values()) + 600
    for a, b in zip(tables, tables[1:]):
        assert a[-1][0] < b[0][0]
    if max_out == 2048:
        assert len(result.outputs) > 1
    assert result.bytes_read == sum(m.size for m in level0 + level1)
    assert result.bytes_written == sum(o.size for o in result.outputs)


def test_level1_compaction_merges_disjoint_runs(tmp_path):
    rng = random.Random(11)
    _, level1, entries, max_seq, keys = random_lsm(rng, tmp_path, n_l0=0, n_l1=4)
    # Move two level-1 files "up" as the inputs of a level-1 -> level-2 job.
    job = compaction(1, level1[:2], level1[2:], smallest_snapshot=max_seq // 2)
    staging = str(tmp_path / "stage")
    result = run_job(job, str(tmp_path), staging)
    assert result.ok, result.error
    got = [e for t in read_outputs(staging, result) for e in t]
    assert got == expected_survivors(entries, max_seq // 2, [])


def test_many_versions_of_one_key_stay_in_one_table(tmp_path):
    # 200 versions of "hot", all newer than the smallest snapshot: all kept,
    # and never split across two tables, however large the group gets.
    hot = [(b"hot", s, PUT, b"x" * 100) for s in range(1, 201)]
    tail = [(b"k%03d" % i, 300 + i, PUT, b"y" * 100) for i in range(100)]
    l0 = [write_table(tmp_path, 1, hot + tail)]
    staging = str(tmp_path / "stage")
    job = compaction(0, l0, [], smallest_snapshot=0, max_output_file_size=4096)
    result = run_job(job, str(tmp_path), staging)
    assert result.ok, result.error
    tables = read_outputs(staging, result)
    holders = [i for i, t in enumerate(tables) if any(e[0] == b"hot" for e in t)]
    assert len(holders) == 1
    assert sum(1 for e in tables[holders[0]] if e[0] == b"hot") == 200
    assert result.outputs[holders[0]].size > 4096 * 4
    assert [e for t in tables for e in t] == sorted(hot + tail, key=order)


def test_output_is_cut_where_grandparent_overlap_grows_too_large(tmp_path):
    entries = [(b"k%04d" % i, i + 1, PUT, b"v" * 20) for i in range(400)]
    l0 = [write_table(tmp_path, 1, entries)]
    # Ten grandparent files of 1000 bytes, 40 keys apart; allow 2500 bytes of overlap.
    grandparents = [
        FileMetaData(100 + g, 1000, make_internal_key(b"k%04d" % (g * 40), 1, PUT),
                     make_internal_key(b"k%04d" % (g * 40 + 39), 1, PUT))
        for g in range(10)
    ]
    job = compaction(0, l0, [], smallest_snapshot=0, grandparents=grandparents,
                     max_grandparent_overlap=2500)
    staging = str(tmp_path / "stage")
    result = run_job(job, str(tmp_path), staging)
    assert result.ok, result.error
    tables = read_outputs(staging, result)
    assert [e for t in tables for e in t] == sorted(entries, key=order)
    # Each output starts in one grandparent and may pass three boundaries
    # (2 x 1000 counted, the third makes 3000 > 2500): a cut every 3 files.
    firsts = [t[0][0] for t in tables]
    assert firsts == [b"k0000", b"k0120", b"k0240", b"k0360"]


def test_compaction_that_drops_every_entry_writes_no_table(tmp_path):
    # Only deletions at the base level: every chunk comes out of the drop
    # rules empty, with grandparents to check against (an empty first chunk
    # once crashed the output set).
    entries = [(b"k%04d" % i, i + 1, DEL, b"") for i in range(300)]
    l0 = [write_table(tmp_path, 1, entries)]
    grandparents = [FileMetaData(100, 1000, make_internal_key(b"k0100", 1, PUT),
                                 make_internal_key(b"k0200", 1, PUT))]
    job = compaction(0, l0, [], smallest_snapshot=10**6, grandparents=grandparents,
                     max_grandparent_overlap=2500)
    staging = str(tmp_path / "stage")
    result = run_job(job, str(tmp_path), staging)
    assert result.ok, result.error
    assert result.outputs == []
    assert os.listdir(staging) == []


def test_subcompaction_bounds_split_the_work_exactly(tmp_path):
    rng = random.Random(5)
    level0, level1, entries, max_seq, keys = random_lsm(rng, tmp_path)
    snapshot = max_seq // 2
    whole = run_job(compaction(0, level0, level1, snapshot), str(tmp_path), str(tmp_path / "all"))
    everything = [e for t in read_outputs(str(tmp_path / "all"), whole) for e in t]
    pieces = []
    bounds = [None, keys[70], keys[71], keys[200], None]
    for i, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        staging = str(tmp_path / f"sub{i}")
        job = compaction(0, level0, level1, snapshot, lower=lo, upper=hi)
        result = run_job(job, str(tmp_path), staging)
        assert result.ok, result.error
        got = [e for t in read_outputs(staging, result) for e in t]
        assert all((lo is None or e[0] >= lo) and (hi is None or e[0] < hi) for e in got)
        assert got == expected_survivors(entries, snapshot, [], lo, hi)
        pieces += got
    assert pieces == everything


def test_sst_named_input_is_read(tmp_path):
    l0 = [write_table(tmp_path, 1, [(b"a", 2, PUT, b"new")], sst=True)]
    l1 = [write_table(tmp_path, 2, [(b"a", 1, PUT, b"old"), (b"b", 1, PUT, b"b")])]
    staging = str(tmp_path / "stage")
    result = run_job(compaction(0, l0, l1, smallest_snapshot=5), str(tmp_path), staging)
    assert result.ok, result.error
    assert read_outputs(staging, result) == [[(b"a", 2, PUT, b"new"), (b"b", 1, PUT, b"b")]]


def test_compaction_does_not_fill_the_shared_block_cache(tmp_path):
    rng = random.Random(3)
    level0, level1, entries, max_seq, _ = random_lsm(rng, tmp_path)
    cache = BlockCache(8 << 20)
    job = compaction(0, level0, level1, max_seq)
    result = run_job(job, str(tmp_path), str(tmp_path / "stage"), block_cache=cache)
    assert result.ok, result.error
    assert cache.usage == 0


# ---------------------------------------------------------------- failures


class RecordingFS(FileSystem):
    """The real file system, remembering what it created."""

    def __init__(self):
        self.created = []

    def create(self, path, exclusive=True):
        self.created.append(path)
        return super().create(path, exclusive)


def test_corrupt_input_block_fails_as_corruption_and_leaves_no_outputs(tmp_path, monkeypatch):
    # Runs read a few blocks at a time: outputs are written before the damage is read.
    monkeypatch.setattr(columnar, "CHUNK_BYTES", 4096)
    big = [(b"k%05d" % i, 1, PUT, b"v" * 60) for i in range(6000)]
    l1 = [write_table(tmp_path, 10, big[:3000]), write_table(tmp_path, 11, big[3000:])]
    path = table_file_name(str(tmp_path), 11)
    data = bytearray(DEFAULT_FS.read_file(path))
    data[l1[1].size // 2] ^= 0x55  # inside a data block near the middle
    DEFAULT_FS.write_file(path, bytes(data))
    l0 = [write_table(tmp_path, 20, [(b"k00001", 5, PUT, b"new")])]
    fs = RecordingFS()
    staging = str(tmp_path / "stage")
    job = compaction(0, l0, l1, smallest_snapshot=5, max_output_file_size=8192)
    result = run_job(job, str(tmp_path), staging, fs=fs)
    assert not result.ok and result.error_kind is ErrorKind.CORRUPTION
    assert "000011.ldb" in result.error
    assert len(fs.created) > 1  # outputs were under way when the damage was met
    assert staging_files(staging) == []
    assert result.outputs == []


def test_input_size_disagreeing_with_metadata_is_corruption(tmp_path):
    meta = write_table(tmp_path, 1, [(b"a", 1, PUT, b"v")])
    meta.size += 1
    staging = str(tmp_path / "stage")
    result = run_job(compaction(0, [meta], [], 1), str(tmp_path), staging)
    assert not result.ok and result.error_kind is ErrorKind.CORRUPTION
    assert staging_files(staging) == []


def test_missing_input_fails_without_corruption_flag(tmp_path):
    l0 = [write_table(tmp_path, 1, [(b"a", 1, PUT, b"v")])]
    ghost = FileMetaData(99, 1000, make_internal_key(b"a", 1, PUT), make_internal_key(b"z", 1, PUT))
    staging = str(tmp_path / "stage")
    result = run_job(compaction(0, l0, [ghost], 1), str(tmp_path), staging)
    assert not result.ok and result.error_kind is ErrorKind.IO
    assert "000099" in result.error
    assert staging_files(staging) == []


def test_unknown_job_type_is_a_failed_result(tmp_path):
    result = run_job(object(), str(tmp_path), str(tmp_path / "s"))
    assert not result.ok and "not a job" in result.error


def test_sleep_hook_delays_every_job(tmp_path, monkeypatch):
    DEFAULT_FS.write_file(log_file_name(str(tmp_path), 4), b"")
    monkeypatch.setenv(TEST_SLEEP_ENV, "0.2")
    result = run_job(FlushJob(job_id=1, wal_number=4), str(tmp_path), str(tmp_path / "s"))
    assert result.ok and result.seconds >= 0.2


def test_compactor_package_never_imports_the_writer():
    root = pathlib.Path(__file__).resolve().parent.parent / "lsm" / "compactor"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                assert "writer" not in name.split("."), (path.name, name)


def test_compactor_process_job_leaves_the_collector_running_and_its_table_as_runner_makes_it(tmp_path):
    """lsm.compactor.process pauses the cyclic collector for a job and sets
    the C allocator for the whole process: it runs in a process of its own,
    as in a compactor. Its table is the plain runner's, byte for byte, and
    the collector is back on after a job that works and one that fails."""
    import subprocess
    import sys

    rng = random.Random(7)
    write_wal(tmp_path, 5, [(1 + 10 * i, [(PUT, b"k%05d" % rng.randrange(10**5), rng.randbytes(rng.randint(0, 900)))
                                          for _ in range(10)]) for i in range(300)])
    plain = run_job(FlushJob(job_id=1, wal_number=5), str(tmp_path), str(tmp_path / "plain"))
    assert plain.ok, plain.error
    script = (
        "import gc, sys\n"
        "from lsm.compactor.process import run_job\n"
        "from lsm.jobs import FlushJob\n"
        "db = sys.argv[1]\n"
        "ok = run_job(FlushJob(job_id=1, wal_number=5), db, db + '/process')\n"
        "failed = run_job(FlushJob(job_id=2, wal_number=77), db, db + '/missing')\n"
        "print(ok.ok, [o.name for o in ok.outputs], failed.ok, gc.isenabled())\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "['out-000001.ldb']", "False", "True"]
    assert (tmp_path / "process" / "out-000001.ldb").read_bytes() == (tmp_path / "plain" / "out-000001.ldb").read_bytes()
