"""Running one job: reads input tables and a frozen WAL by number, writes only
into its staging directory. Never touches metadata (MANIFEST, CURRENT, file
numbers, deletions) and never imports lsm.writer: a job is plain data and the
result is plain data, so this runs the same inline or in a compactor process.

Jobs take lsm.compactor.columnar (numpy, whole blocks at a time); the
row-by-row merge (merge.py) writes prefix-compressed tables, and replays a
damaged WAL.

``run_job`` never raises for a failed job: the result says ok=False with the
error text and its kind (lsm.jobs.ErrorKind: CORRUPTION when the inputs were
damaged, so retrying will not help; IO, with the errno, when the operating
system refused), and the partial outputs are removed (any that could not be
are listed in ``outputs`` so the writer deletes them).

Test hooks, read from the environment of the process running the job:
``LSM_TEST_JOB_SLEEP`` holding a number makes every job first sleep that many
seconds, so tests can make a compactor look hung; ``LSM_TEST_FAULTS`` holding
a lsm.testing.faultfs spec runs every job on a FaultFS over its staging
directory with those faults (counted per job), so tests can fail a
compactor's disk.
"""
import os
import time
from dataclasses import replace
from operator import itemgetter

from ..batch import HEADER_SIZE as BATCH_HEADER_SIZE
from ..batch import decode_batch
from ..batch import decode_header as decode_batch_header
from ..errors import CorruptionError, DecodeError
from ..fileio import DEFAULT_FS
from ..filemeta import FileMetaData
from ..filenames import log_file_name, sst_table_file_name, table_file_name
from ..keys import sort_key
from ..order import load_comparator, ordered_key_type
from ..record import LogReader, physical_end, skip_block_tail
from ..table import Table
from ..table.ordered import OrderedTable
from ..jobs import CompactionJob, FlushJob, JobResult, OutputTable
from .merge import DropRules, clip_rows, merge_runs, rows_from_block
from .output import OutputSet
from .columnar import ColumnarMerge, flush_windows
from .wal_rows import batch_rows, clean_wal_rows

TEST_SLEEP_ENV = "LSM_TEST_JOB_SLEEP"
TEST_FAULTS_ENV = "LSM_TEST_FAULTS"

_key_of_row = itemgetter(0)


def run_job(job, db_dir, staging_dir, fs=DEFAULT_FS, block_cache=None, rows=None, columnar=True,
            compare=None) -> JobResult:
    """Run a FlushJob or CompactionJob; see the module docstring. A flush
    given `rows`, a callable returning sorted rows (as MemTable.flush_rows
    makes them: the writer flushing its own frozen memtable), writes those
    instead of decoding the WAL's records one by one; the columnar path,
    when the WAL is clean, costs less than either. columnar=False keeps a
    job off it (lsm.compactor.columnar): tests compare the two.

    A job of a database with a custom comparator orders keys by `compare`,
    or else by the function its `comparator` names, and takes the row path
    (the columnar one sorts bytewise), its keys ordered keys (lsm.order)."""
    started = time.perf_counter()
    _test_sleep()
    result = JobResult(job_id=getattr(job, "job_id", 0), ok=False)
    outputs = None
    try:
        fs = _test_faults(fs, staging_dir)
        if compare is None and getattr(job, "comparator", None) is not None:
            compare = load_comparator(job.comparator)
        ordered = None
        if compare is not None:
            ordered = ordered_key_type(compare)
            columnar = False
        if isinstance(job, FlushJob):
            fs.mkdir(staging_dir)
            # One table, whatever its size: a flush is one level-0 file.
            outputs = OutputSet(fs, staging_dir, job.table, shorten_index_keys=ordered is None)
            _run_flush(job, db_dir, fs, outputs, result, columnar, rows, ordered)
        elif isinstance(job, CompactionJob):
            fs.mkdir(staging_dir)
            outputs = OutputSet(
                fs,
                staging_dir,
                job.table,
                max_file_size=job.max_output_file_size,
                grandparents=job.grandparents,
                max_grandparent_overlap=job.max_grandparent_overlap,
                shorten_index_keys=ordered is None,
            )
            if ordered is not None:
                job = _ordered_compaction(job, ordered)
            _run_compaction(job, db_dir, fs, block_cache, outputs, result, columnar, ordered)
        else:
            raise TypeError(f"not a job: {type(job).__name__}")
        result.outputs = outputs.finish()
        fs.sync_dir(staging_dir)
        result.bytes_written = outputs.bytes_written
        result.ok = True
    except Exception as exc:  # noqa: BLE001 - a failed job is a result, not a crash
        failed = JobResult.failure(result.job_id, exc)
        result.error, result.error_kind, result.os_errno = failed.error, failed.error_kind, failed.os_errno
    finally:
        if not result.ok and outputs is not None:
            left = outputs.abandon()
            result.outputs = [OutputTable(name=n, size=0, smallest=b"", largest=b"") for n in left]
            result.bytes_written = 0
        result.seconds = time.perf_counter() - started
    return result


def _test_sleep():
    value = os.environ.get(TEST_SLEEP_ENV)
    if value:
        try:
            seconds = float(value)
        except ValueError:
            return
        if seconds > 0:
            time.sleep(seconds)


def _test_faults(fs, staging_dir):
    spec = os.environ.get(TEST_FAULTS_ENV)
    if not spec:
        return fs
    from ..testing.faultfs import fault_fs_from_spec  # tests only: never loaded otherwise
    return fault_fs_from_spec(staging_dir, spec)


# ---------------------------------------------------------------- flush


class _StopReading(Exception):
    """Raised from the reader's report callback to end a tolerant replay."""


def _ordered_compaction(job, ordered):
    """A copy of the job whose keys are ordered keys (lsm.order)."""
    def meta(m):
        return FileMetaData(m.number, m.size, ordered(m.smallest), ordered(m.largest))

    return replace(
        job,
        inputs=list(map(meta, job.inputs)),
        next_inputs=list(map(meta, job.next_inputs)),
        grandparents=list(map(meta, job.grandparents)),
        deeper_ranges=[(ordered(lo), ordered(hi)) for lo, hi in job.deeper_ranges],
        lower=None if job.lower is None else ordered(job.lower),
        upper=None if job.upper is None else ordered(job.upper),
    )


def _run_flush(job, db_dir, fs, outputs, result, columnar, memtable_rows, ordered=None):
    """All entries of the frozen WAL, sorted, into one level-0 table. Nothing
    is dropped: older versions may still be read through snapshots, and a
    deletion must shadow older tables. On the columnar path, a WAL whose
    keys arrived out of order is built with job.unsorted_table, if given
    (result.for_level0); the row paths build with job.table."""
    path = log_file_name(db_dir, job.wal_number)
    data = None
    if columnar and not job.salvage and not job.table.prefix_compression:
        data = fs.read_file(path)
        found = flush_windows(data)
        if found is not None:
            windows, result.max_sequence, arrived_sorted = found
            if job.unsorted_table is not None and not arrived_sorted:
                outputs.build_with(job.unsorted_table)
                result.for_level0 = True
            result.bytes_read = len(data)
            for window in windows:
                outputs.add_entries(window)
            return
    if memtable_rows is not None:
        outputs.add(memtable_rows())
        return
    if data is None:
        data = fs.read_file(path)
    result.bytes_read = len(data)
    clean = None if job.salvage else clean_wal_rows(data)
    if clean is not None:
        rows, max_sequence, in_order = clean
        stopped = []
    else:
        rows, max_sequence, in_order, stopped = _replay_wal(job, path, data)
    if stopped:
        # ok, but not whole: the writer replays no later WAL (see engine recovery).
        result.error = stopped[0]
    if ordered is not None:
        rows = [(ordered(key), nt, value) for key, nt, value in rows]
    if in_order:
        # Rows were appended oldest first: reversed, a stable sort on the user
        # key alone leaves each key's versions newest first -- internal order,
        # at the price of bytes comparisons instead of tuple comparisons.
        rows.reverse()
        rows.sort(key=_key_of_row)
    else:
        rows.sort()
    outputs.add(rows)
    result.max_sequence = max_sequence


def _replay_wal(job, path, data):
    """Rows of a WAL through the full log reader, which finds and reports
    damage: (rows oldest first, max_sequence, in_order, [why it stopped])."""
    rows = []
    extend = rows.extend
    max_sequence = 0
    next_sequence = 0
    in_order = True  # every batch's sequences follow the previous batch's
    stopped = []

    def stop_at_damage(offset, _dropped, reason):
        # Point-in-time recovery: nothing after the first damage is replayed,
        # so the result is a prefix of the history, never one with a hole.
        stopped.append(f"stopped at offset {offset}: {reason}")
        raise _StopReading

    expected = 0
    try:
        tolerant_stop = not job.paranoid and not job.salvage
        reader = LogReader(data, strict=job.paranoid, report=stop_at_damage if tolerant_stop else None)
        for offset, payload in reader:
            if offset > skip_block_tail(expected) and not job.salvage:
                # The reader skipped a zeroed region silently (LevelDB reads it as
                # preallocation); valid records after it mean a lost block.
                reason = f"gap of {offset - expected} bytes before the record"
                if job.paranoid:
                    raise CorruptionError(path, expected, reason)
                stopped.append(f"stopped at offset {expected}: {reason}")
                break
            expected = physical_end(offset, len(payload))
            if len(payload) < BATCH_HEADER_SIZE:
                if job.paranoid:
                    raise CorruptionError(path, offset, "log record too small")
                if job.salvage:
                    continue
                stopped.append(f"stopped at offset {offset}: log record too small")
                break
            try:
                sequence, ops = decode_batch(payload)
            except DecodeError as exc:
                if job.paranoid:
                    raise CorruptionError(path, offset, exc.reason) from exc
                if not job.salvage:
                    stopped.append(f"stopped at offset {offset}: {exc.reason}")
                    break
                # Salvage keeps the records parsed before the damage, as LevelDB does.
                sequence, ops = getattr(exc, "partial", (0, []))
            # A damaged batch may hold more records than its header says:
            # the sequences handed out must cover every entry kept.
            count = max(decode_batch_header(payload)[1], len(ops))
            if count:
                max_sequence = max(max_sequence, sequence + count - 1)
            if sequence < next_sequence:
                in_order = False
            next_sequence = sequence + count
            if ops:
                extend(batch_rows(sequence, ops))
    except _StopReading:
        pass
    except DecodeError as exc:
        raise CorruptionError(path, exc.offset, exc.reason) from exc
    return rows, max_sequence, in_order, stopped


# ---------------------------------------------------------------- compaction


class _NoFillCache:
    """Reads through the shared block cache without filling it (LevelDB's
    fill_cache=false for compactions): every input block is read once, and
    caching it would evict the blocks readers actually reuse."""

    __slots__ = ("_shared",)

    def __init__(self, shared):
        self._shared = shared

    def get(self, key):
        return self._shared.get(key) if self._shared is not None else None

    def put(self, key, value, charge):
        pass


def _open_table(fs, db_dir, meta, block_cache, opened, ordered=None):
    path = table_file_name(db_dir, meta.number)
    if not fs.exists(path):
        legacy = sst_table_file_name(db_dir, meta.number)
        if fs.exists(legacy):
            path = legacy
    f = fs.open_random(path)
    opened.append(f)
    if f.size != meta.size:
        raise CorruptionError(path, None, f"file is {f.size} bytes, metadata says {meta.size}")
    table = Table.open(f, path=path, number=meta.number, block_cache=_NoFillCache(block_cache), ordered=ordered)
    return table if ordered is None else OrderedTable(table, ordered)


def _table_run(tables, lower, upper):
    """Rows of tables laid end to end (disjoint, in key order), clipped to
    [lower, upper)."""
    for table in tables:
        start = 0 if lower is None else table.find_block(lower)
        for i in range(start, table.num_blocks):
            ukeys, tags, values = table.block(i)
            if not ukeys:
                continue
            if upper is not None and ukeys[0] >= upper:
                return
            rows = rows_from_block(ukeys, tags, values)
            if (lower is not None and ukeys[0] < lower) or (
                upper is not None and ukeys[-1] >= upper
            ):
                rows = clip_rows(rows, lower, upper)
            yield rows


def _within(meta, lower, upper) -> bool:
    if lower is not None and meta.largest[:-8] < lower:
        return False
    if upper is not None and meta.smallest[:-8] >= upper:
        return False
    return True


def _run_compaction(job, db_dir, fs, block_cache, outputs, result, columnar, ordered=None):
    lower, upper = job.lower, job.upper
    inputs = [m for m in job.inputs if _within(m, lower, upper)]
    next_inputs = [m for m in job.next_inputs if _within(m, lower, upper)]
    by_key = lambda m: sort_key(m.smallest)  # noqa: E731
    # Level-0 files overlap each other: each is its own run. Files of a level
    # >= 1 are disjoint, so the whole level is one run.
    if job.level == 0:
        groups = [[m] for m in inputs]
    else:
        groups = [sorted(inputs, key=by_key)] if inputs else []
    if next_inputs:
        groups.append(sorted(next_inputs, key=by_key))

    opened = []
    try:
        table_runs = []
        for group in groups:
            table_runs.append([_open_table(fs, db_dir, m, block_cache, opened, ordered) for m in group])
            result.bytes_read += sum(m.size for m in group)
        if columnar and not job.table.prefix_compression:
            merge = ColumnarMerge(table_runs, lower, upper, job.smallest_snapshot, job.deeper_ranges)
            for window in merge.windows():
                outputs.add_entries(window)
            return
        runs = [_table_run(tables, lower, upper) for tables in table_runs]
        drop = DropRules(job.smallest_snapshot, job.deeper_ranges)
        add = outputs.add
        apply = drop.apply
        for chunk in merge_runs(runs):
            add(apply(chunk))
    finally:
        for f in opened:
            f.close()
