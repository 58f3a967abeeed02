"""``python -m lsm bench``: LevelDB's db_bench workloads on lsm, LevelDB (plyvel)
and RocksDB (rocksdict) in one process, with the same keys and values, and the
speed ratios in one table.

Knows the three engines' public APIs only (for lsm: ``lsm.DB`` and
``db.stats()``); plyvel, rocksdict, psutil and tqdm are imported when a run
starts, so ``--help`` works without them.

How a run goes (as db_bench, adapted to three engines):
- keys are zero-padded numbers (``%016d``), values ~50% compressible bytes;
  both generated once from a seeded ``random.Random``; "random order" is one
  shuffled permutation, shared by every engine;
- workloads run in the order given, and each workload runs on every engine
  before the next one starts (lsm, plyvel, rocksdict, then the next workload);
- fill workloads start from a fresh database; the others run on the database
  the preceding fill left (an untimed fillrandom makes one when there is none);
- between workloads a database is closed (untimed) and reopened, so one
  engine's background work never runs while another engine is timed;
- bloom filters of 10 bits per key everywhere; no sync except fillsync.
"""
import argparse
import functools
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time

ENGINES = ("lsm", "plyvel", "rocksdict")

# Workload -> what it needs: "fresh" (a new, empty database), "existing" (the
# database the preceding fill left), or "self" (opens, fills and closes its own).
WORKLOADS = {
    "fillseq": "fresh",
    "fillbatch": "fresh",
    "fillsync": "fresh",
    "fillrandom": "fresh",
    "overwrite": "existing",
    "readrandom": "existing",
    "readmissing": "existing",
    "readseq": "existing",
    "readreverse": "existing",
    "seekrandom": "existing",
    "readwhilewriting": "existing",
    "deleterandom": "existing",
    "load": "self",
}
DEFAULT_WORKLOADS = tuple(WORKLOADS)
# Read-only workloads: by default they run on a compacted database (the
# engine's own compact_range, untimed), so every engine is measured on its
# settled layout rather than on whatever its last fill left mid-compaction.
READ_ONLY = ("readrandom", "readmissing", "readseq", "readreverse", "seekrandom")
BATCH = 1000          # entries per write batch (fillbatch, load)
CHUNK = 2000          # ops between progress-bar updates
SEED = 301
MB = 1048576.0


class UsageError(Exception):
    """Bad command-line input: the CLI prints it and exits 2."""


# --------------------------------------------------------------- arguments
def add_arguments(parser):
    parser.add_argument("--num", type=int, default=1_000_000, help="number of keys (default 1000000)")
    parser.add_argument("--key-size", type=int, default=16, help="key size in bytes (default 16)")
    parser.add_argument("--value-size", type=int, default=100, help="value size in bytes (default 100)")
    parser.add_argument("--reads", type=int, default=None,
                        help="operations of readrandom, readmissing, seekrandom and readwhilewriting "
                             "(default: --num)")
    parser.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS),
                        help="comma-separated workloads, run in this order (default: %(default)s)")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="comma-separated engines among lsm,plyvel,rocksdict (default: all three)")
    parser.add_argument("--compactors", default=None,
                        help="lsm compactor processes: a number, or 'inline' (= 0: jobs run in the "
                             "writer process); a comma-separated list (e.g. inline,1,2) runs lsm once "
                             "per item, as columns lsm[inline], lsm[1], lsm[2] of the same run; "
                             "default: lsm's own default")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each workload this many times per engine, the engines taking turns, "
                             "and summarise each engine by its median run (default 1)")
    parser.add_argument("--no-compact", action="store_true",
                        help="read workloads use the database as the last fill left it, instead of "
                             "compacting it first (untimed, every engine)")
    parser.add_argument("--dir", default=None,
                        help="where to create the databases (default: a temporary directory, removed at the end)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per (engine, workload) on stdout instead of text")
    parser.add_argument("--quiet", action="store_true", help="no progress bars and no per-workload lines")
    parser.add_argument("--seed", type=int, default=SEED, help=argparse.SUPPRESS)
    return parser


def _parse_list(text, allowed, what):
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UsageError(f"--{what}: empty list")
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise UsageError(f"--{what}: unknown {what[:-1]} {unknown[0]!r} (choose from {', '.join(allowed)})")
    return items


def _parse_compactors(text):
    """--compactors as a list of lsm configurations, one engine column each:
    [None] (lsm's default) when not given, else compactor counts (0 = inline)."""
    if text is None:
        return [None]
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise UsageError("--compactors: empty list")
    values = []
    for item in items:
        if not item:
            raise UsageError(f"--compactors: empty item in {text!r}")
        if item.lower() == "inline":
            value = 0
        else:
            try:
                value = int(item)
            except ValueError:
                raise UsageError(f"--compactors: bad item {item!r}: expected a number or 'inline'") from None
            if value < 0:
                raise UsageError(f"--compactors: bad item {item!r}: must not be negative")
        if value in values:
            raise UsageError(f"--compactors: item {item!r} repeats an earlier one ('inline' is 0)")
        values.append(value)
    return values


def lsm_label(compactors, several):
    """The engine column of one lsm configuration: plain "lsm" when the run
    has only one, else "lsm[inline]", "lsm[1]", ..."""
    if not several:
        return "lsm"
    return f"lsm[{'inline' if compactors == 0 else 'default' if compactors is None else compactors}]"


# -------------------------------------------------------------------- data
class Data:
    """Keys and values of a run, generated once and shared by every engine."""

    def __init__(self, num, key_size, value_size, seed=SEED, reads=None):
        rng = random.Random(seed)
        self.num = num
        self.reads = num if reads is None else reads
        self.key_size = key_size
        self.value_size = value_size
        fmt = b"%0" + str(key_size).encode() + b"d"
        self.keys = [fmt % i for i in range(num)]
        order = list(range(num))
        rng.shuffle(order)
        self.random_keys = [self.keys[i] for i in order]
        rng.shuffle(order)
        read_keys = [self.keys[i] for i in order]  # readrandom, seekrandom: another order
        self.read_keys = (read_keys * (self.reads // num + 1))[:self.reads]
        self.values = _values(rng, num, value_size)
        self.entry_bytes = key_size + value_size

    def missing_keys(self):
        # As db_bench: an existing key with "." appended is never present.
        return [k + b"." for k in self.read_keys]


def _values(rng, num, value_size):
    """num values (references into a ~1 MiB pool of distinct ones), each half
    random bytes and half repetition, so snappy halves them as in db_bench."""
    if value_size == 0:
        return [b""] * num
    pool_size = max(1 << 20, 4 * value_size)
    distinct = []
    for _ in range(max(1, pool_size // value_size)):
        raw = rng.randbytes((value_size + 1) // 2)
        distinct.append((raw * 2)[:value_size])
    reps = num // len(distinct) + 1
    return (distinct * reps)[:num]


# ----------------------------------------------------------------- engines
class Adapter:
    """One engine behind the calls the workloads make. After open(), put/get/
    delete are the engine's own bound methods (no wrapper per operation)."""

    name = "?"   # the engine column: "lsm", "lsm[2]", "plyvel", ...
    kind = "?"   # the engine itself: one of ENGINES
    db = None
    stats_error = None  # the first failure of stats() since the bench last looked

    def open(self, path):
        raise NotImplementedError

    def close(self):
        # Drop the bound methods too: they would keep the closed handle alive.
        for name in ("put", "get", "delete", "put_sync"):
            self.__dict__.pop(name, None)
        if self.db is not None:
            db, self.db = self.db, None
            db.close()

    def quiesce(self, timeout=600.0):
        """Wait until the engine has no flush or compaction running or pending
        (engines whose close() waits for that themselves do nothing here)."""

    def compact(self):
        self.db.compact_range()

    def compactor_pids(self):
        return []

    def stats(self):
        """The engine's own counters (lsm's db.stats()), or None."""
        return None

    def version(self):
        return ""


class PlyvelApiAdapter(Adapter):
    """Engines with plyvel's API (lsm and plyvel itself) are driven the same way."""

    def _bind(self, db):
        self.db = db
        self.put, self.get, self.delete = db.put, db.get, db.delete
        self.put_sync = functools.partial(db.put, sync=True)

    def write_batch(self, keys, values):
        with self.db.write_batch() as wb:
            put = wb.put
            for k, v in zip(keys, values):
                put(k, v)

    def seek(self, key):
        it = self.db.iterator()
        it.seek(key)
        found = next(it, None) is not None
        it.close()
        return found

    def scan(self, reverse):
        return self.db.iterator(reverse=reverse)


class LsmAdapter(PlyvelApiAdapter):
    name = kind = "lsm"

    def __init__(self, compactors, name="lsm"):
        import lsm
        self.lsm = lsm
        self.compactors = compactors
        self.name = name

    def open(self, path):
        kwargs = {} if self.compactors is None else {"compactors": self.compactors}
        self._bind(self.lsm.DB(path, create_if_missing=True, bloom_filter_bits=10, **kwargs))

    def stats(self):
        db = self.db
        if db is None:
            return None
        try:
            return db.stats()
        except Exception as exc:  # noqa: BLE001 - not a benchmark failure, but the run says so
            if self.stats_error is None:
                self.stats_error = f"{type(exc).__name__}: {exc}"
            return None

    def quiesce(self, timeout=600.0):
        # Quiet: no job running or queued for a few polls in a row. A level
        # whose score says "compact me" while no job runs for 2 s means the
        # engine chose not to: quiet as well (never wait for ever).
        started = time.monotonic()
        idle_since = None
        while time.monotonic() - started < timeout:
            state = _lsm_state(self.stats())
            now = time.monotonic()
            if state == "busy":
                idle_since = None
            else:
                if idle_since is None:
                    idle_since = now
                if now - idle_since >= (2.0 if state == "due" else 0.03):
                    return
            time.sleep(0.01)

    def compactor_pids(self):
        stats = self.stats() or {}
        return _pids(stats.get("compactors") or [])

    def version(self):
        try:
            from importlib.metadata import version
            text = version("lsm")
        except Exception:  # noqa: BLE001 - running from a checkout without installing
            text = "checkout"
        mode = "default compactors" if self.compactors is None else \
            ("inline" if self.compactors == 0 else f"{self.compactors} compactors")
        return f"lsm {text} ({mode})"


# Names a stats() dict may use for background work not yet done; a level
# score >= 1 also means a compaction is due (LevelDB's rule).
_BUSY_FIELDS = ("pending_jobs", "running_jobs", "jobs_pending", "jobs_running", "queued_jobs",
                "inflight_jobs", "jobs_in_flight", "pending_compactions", "running_compactions",
                "pending_flushes", "running_flushes", "frozen_memtables", "immutable_memtables")


def _lsm_state(stats):
    """"busy" (a job runs or waits), "due" (a level's score is >= 1, so a
    compaction should start) or None (nothing to do), from a stats() dict."""
    if not stats:
        return None
    for field in _BUSY_FIELDS:
        value = stats.get(field)
        if isinstance(value, (list, tuple, set, dict)):
            value = len(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return "busy"
    for c in stats.get("compactors") or []:
        if isinstance(c, dict) and (c.get("busy") or c.get("job") is not None):
            return "busy"
    for level in stats.get("levels") or []:
        if isinstance(level, dict) and (level.get("score") or 0) >= 1:
            return "due"
    return None


# LevelDB's compaction scores (version_set.cc, Finalize): level 0 by its file
# count against kL0_CompactionTrigger, level L >= 1 by its bytes against
# MaxBytesForLevel (10 MiB times 10^(L-1)); the last level is never scored.
LEVELDB_L0_COMPACTION_TRIGGER = 4
LEVELDB_LEVELS = 7
_SSTABLES_LEVEL = re.compile(rb"^--- level (\d+) ---$")
_SSTABLES_FILE = re.compile(rb"^ *\d+:(\d+)\[")


def leveldb_levels(sstables: bytes):
    """(files, bytes) per level from LevelDB's ``leveldb.sstables`` property:
    one ``number:size[...]`` line per file under a ``--- level N ---`` line."""
    files = [0] * LEVELDB_LEVELS
    sizes = [0] * LEVELDB_LEVELS
    level = None
    for line in (sstables or b"").splitlines():
        m = _SSTABLES_LEVEL.match(line)
        if m:
            level = int(m.group(1))
            continue
        m = _SSTABLES_FILE.match(line)
        if m and level is not None and level < LEVELDB_LEVELS:
            files[level] += 1
            sizes[level] += int(m.group(1))
    return files, sizes


# How long plyvel's levels must stay unchanged, no compaction due, to count
# as quiet: a flush of a memtable LevelDB has frozen runs meanwhile.
QUIET_SECONDS = 0.05


def leveldb_compaction_due(sstables: bytes) -> bool:
    """Whether LevelDB would start a size compaction (see leveldb_levels)."""
    files, sizes = leveldb_levels(sstables)
    if files[0] >= LEVELDB_L0_COMPACTION_TRIGGER:
        return True
    return any(sizes[level] >= 10 * MB * 10 ** (level - 1) for level in range(1, LEVELDB_LEVELS - 1))


def _pids(compactors):
    pids = []
    for c in compactors:
        pid = c.get("pid") if isinstance(c, dict) else c
        if isinstance(pid, int) and not isinstance(pid, bool):
            pids.append(pid)
    return pids


class PlyvelAdapter(PlyvelApiAdapter):
    name = kind = "plyvel"

    def __init__(self):
        import plyvel
        self.plyvel = plyvel

    def open(self, path):
        self._bind(self.plyvel.DB(path, create_if_missing=True, bloom_filter_bits=10))

    def quiesce(self, timeout=600.0):
        # LevelDB's close() abandons its compaction work (it checks
        # shutting_down_ in DoCompactionWork and schedules nothing more), so
        # "all compaction done" is read from its levels, as lsm's is. A
        # flush of the last memtable shows in no property until its table
        # is in, and that table may make a compaction due: the levels must
        # stay unchanged and not due for QUIET_SECONDS (as lsm's idle wait).
        deadline = time.monotonic() + timeout
        seen, quiet_since = None, None
        while time.monotonic() < deadline:
            text = self.db.get_property(b"leveldb.sstables")
            now = time.monotonic()
            if text != seen or leveldb_compaction_due(text):
                seen = text
                quiet_since = None if leveldb_compaction_due(text) else now
            elif now - quiet_since >= QUIET_SECONDS:
                return
            time.sleep(0.01)

    def version(self):
        return f"plyvel {self.plyvel.__version__} (LevelDB {self.plyvel.__leveldb_version__})"


class RocksdictAdapter(Adapter):
    name = kind = "rocksdict"

    def __init__(self):
        import rocksdict
        self.rocksdict = rocksdict

    def open(self, path):
        rd = self.rocksdict
        options = rd.Options(raw_mode=True)  # bytes in, bytes out (no pickling)
        options.create_if_missing(True)
        table = rd.BlockBasedOptions()
        table.set_bloom_filter(10, False)
        options.set_block_based_table_factory(table)
        db = self.db = rd.Rdict(path, options)
        self.put, self.get, self.delete = db.put, db.get, db.delete
        sync = rd.WriteOptions()
        sync.sync = True
        self.put_sync = lambda k, v: db.put(k, v, sync)

    def write_batch(self, keys, values):
        wb = self.rocksdict.WriteBatch(raw_mode=True)
        put = wb.put
        for k, v in zip(keys, values):
            put(k, v)
        self.db.write(wb)

    def seek(self, key):
        it = self.db.iter()
        it.seek(key)
        found = it.valid()
        if found:
            it.key()
            it.value()
        del it
        return found

    def scan(self, reverse):
        return self.db.items(backwards=reverse)

    def compact(self):
        self.db.compact_range(None, None)

    def quiesce(self, timeout=600.0):
        # RocksDB's close() abandons running compactions; wait for them instead.
        props = ("rocksdb.compaction-pending", "rocksdb.num-running-compactions",
                 "rocksdb.num-running-flushes", "rocksdb.mem-table-flush-pending")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(self.db.property_int_value(p) for p in props):
                return
            time.sleep(0.01)

    def version(self):
        try:
            from importlib.metadata import version
            return f"rocksdict {version('rocksdict')}"
        except Exception:  # noqa: BLE001
            return "rocksdict"


def _make_adapter(name, compactors, label=None):
    if name == "lsm":
        return LsmAdapter(compactors, label or "lsm")
    if name == "plyvel":
        return PlyvelAdapter()
    return RocksdictAdapter()


# ----------------------------------------------------------- measurement
class Sampler(threading.Thread):
    """Watches this process and its child processes (lsm's compactors) while
    a workload runs: peak RSS of each, sampled every 50 ms, and I/O
    counters from /proc/<pid>/io.

    Bytes written by the run are counted from the kernel's per-process I/O
    accounting, which has one trap: when a child exits and is reaped (as a
    compactor is when lsm closes), the kernel adds every counter of its whole
    life to the parent's. Adding the parent's delta to the children's deltas
    would count each compactor twice. So the total is (this process's delta,
    reaped children included) + (the delta of each child still alive at the
    end) - (what each reaped child had already done when first seen: 0 for a
    child started during the run). That is exact whatever the sampling
    interval, and whether or not a compactor was replaced mid-run."""

    def __init__(self, adapter, interval=0.05):
        super().__init__(daemon=True, name="bench-rss-sampler")
        import psutil
        self.psutil = psutil
        self.adapter = adapter
        self.interval = interval
        self.me = psutil.Process()
        self.peak_rss = 0
        self.peak_compactor_rss = None  # peak of the compactors' summed RSS
        self.children = {}              # pid -> _Child, every child seen
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._io0 = _proc_io(self.me.pid)
        self._io1 = None
        self._refresh_children(initial=True)
        self._sample()

    def _refresh_children(self, initial=False):
        """Start watching children not seen yet. Those alive when the sampler
        starts are measured from now on; later ones from their birth (a new
        process's counters start at 0)."""
        try:
            found = self.me.children()
        except self.psutil.Error:
            return
        with self._lock:
            for proc in found:
                if proc.pid in self.children:
                    continue
                child = _Child(proc)
                if initial:
                    child.base_io = _proc_io(proc.pid)
                    try:
                        times = proc.cpu_times()
                        child.base_cpu = times.user + times.system
                    except self.psutil.Error:
                        pass
                self.children[proc.pid] = child

    def _sample(self):
        try:
            rss = self.me.memory_info().rss
        except self.psutil.Error:
            rss = 0
        with self._lock:
            self.peak_rss = max(self.peak_rss, rss)
            total = 0
            alive = 0
            for child in self.children.values():
                if child.gone:
                    continue
                if not child.is_ours(self.me.pid):
                    child.gone = True
                    continue
                io = _proc_io(child.pid)
                if io is not None:
                    child.last_io = io
                try:
                    with child.proc.oneshot():
                        child_rss = child.proc.memory_info().rss
                        times = child.proc.cpu_times()
                except self.psutil.Error:
                    continue
                if child_rss:  # 0 once it is a zombie
                    alive += 1
                    total += child_rss
                    child.peak_rss = max(child.peak_rss, child_rss)
                    child.last_cpu = times.user + times.system
            if alive:
                self.peak_compactor_rss = max(self.peak_compactor_rss or 0, total)

    def sample_now(self):
        """Look for new children and sample at once (e.g. just before close,
        while the compactors still run)."""
        self._refresh_children()
        self._sample()

    def run(self):
        n = 0
        while not self._halt.wait(self.interval):
            n += 1
            if n % 10 == 0:
                self._refresh_children()
            self._sample()

    def stop(self):
        self._halt.set()
        if self.is_alive():
            self.join()
        self._refresh_children()
        self._sample()
        self._io1 = _proc_io(self.me.pid)

    def io_delta(self, field):
        """Bytes of one /proc/<pid>/io counter this process and its children
        added since the sampler started (see the class docstring); None where
        /proc does not say. Call after stop()."""
        end = self._io1 if self._io1 is not None else _proc_io(self.me.pid)
        if end is None or self._io0 is None:
            return None
        total = end[field] - self._io0[field]
        with self._lock:
            for child in self.children.values():
                base = child.base_io[field] if child.base_io else 0
                if child.reaped(self.me.pid):
                    total -= base   # its whole life is in this process's counters now
                elif child.last_io is not None:
                    total += child.last_io[field] - base
        return total

    def bytes_written(self):
        """Bytes handed to write() (and pwrite(), writev()...) by this process
        and its children since the sampler started: /proc's wchar."""
        return self.io_delta("wchar")

    def disk_bytes_written(self):
        """Bytes the processes caused to be sent to the block layer (page-cache
        pages dirtied, /proc's write_bytes), minus those cancelled because the
        file was deleted or truncated before writeback."""
        written = self.io_delta("write_bytes")
        cancelled = self.io_delta("cancelled_write_bytes")
        if written is None or cancelled is None:
            return None
        return written - cancelled

    def child_report(self):
        """One dict per child process seen (lsm: each compactor, replaced ones
        too): peak RSS, and CPU seconds, bytes read and bytes written during
        the run (since its start, for one started during the run: its start-up
        included), as of its last sample."""
        rows = []
        with self._lock:
            for child in self.children.values():
                base, last = child.base_io or {}, child.last_io

                def delta(field):
                    return (last[field] - base.get(field, 0)) / MB if last else None

                rows.append({
                    "pid": child.pid,
                    "peak_rss_mb": child.peak_rss / MB if child.peak_rss else None,
                    "cpu_seconds": (round(child.last_cpu - child.base_cpu, 3)
                                    if child.last_cpu is not None else None),
                    "read_mb": delta("rchar"),
                    "written_mb": delta("wchar"),
                })
        return rows


class _Child:
    """A child process the Sampler watches."""

    def __init__(self, proc):
        self.proc = proc
        self.pid = proc.pid
        # Counters when the sampler started (None, 0: born later, so all 0).
        self.base_io = None
        self.base_cpu = 0.0
        self.last_io = None   # the last /proc/<pid>/io reading (a zombie's: its final one)
        self.last_cpu = None
        self.peak_rss = 0
        self.gone = False

    def is_ours(self, my_pid):
        """Still this process's child (not a recycled pid)? True for a zombie."""
        try:
            return self.proc.is_running() and self.proc.ppid() == my_pid
        except Exception:  # noqa: BLE001 - psutil.NoSuchProcess: reaped
            return False

    def reaped(self, my_pid):
        """Gone for good: waited for by this process, so the kernel has added
        its counters to ours. A zombie is not reaped yet."""
        return not os.path.exists(f"/proc/{self.pid}") or not self.is_ours(my_pid)


def _proc_io(pid):
    """/proc/<pid>/io as a dict of ints (None where unreadable: not Linux, or
    the process is gone)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            fields = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        return {k.strip(): int(v) for k, v in fields.items()}
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------- workloads
# Each takes (adapter, data, progress) and returns (ops, seconds, bytes, extra),
# timing only the work itself.

def _chunks(seq, size=CHUNK):
    for lo in range(0, len(seq), size):
        yield seq[lo:lo + size]


def _fill(adapter, keys, values, progress, put=None):
    put = put or adapter.put
    start = time.perf_counter()
    for lo in range(0, len(keys), CHUNK):
        for k, v in zip(keys[lo:lo + CHUNK], values[lo:lo + CHUNK]):
            put(k, v)
        progress(min(CHUNK, len(keys) - lo))
    return time.perf_counter() - start


def w_fillseq(a, d, progress):
    return d.num, _fill(a, d.keys, d.values, progress), d.num * d.entry_bytes, {}


def w_fillrandom(a, d, progress):
    return d.num, _fill(a, d.random_keys, d.values, progress), d.num * d.entry_bytes, {}


def w_overwrite(a, d, progress):
    return w_fillrandom(a, d, progress)


def fillsync_ops(num):
    return min(num, max(100, num // 100))


def w_fillsync(a, d, progress):
    n = fillsync_ops(d.num)
    seconds = _fill(a, d.random_keys[:n], d.values[:n], progress, put=a.put_sync)
    return n, seconds, n * d.entry_bytes, {}


def _batches(adapter, keys, values, progress):
    write_batch = adapter.write_batch
    start = time.perf_counter()
    for lo in range(0, len(keys), BATCH):
        write_batch(keys[lo:lo + BATCH], values[lo:lo + BATCH])
        progress(min(BATCH, len(keys) - lo))
    return time.perf_counter() - start


def w_fillbatch(a, d, progress):
    return d.num, _batches(a, d.keys, d.values, progress), d.num * d.entry_bytes, {}


def _read(adapter, keys, progress):
    get = adapter.get
    found = 0
    start = time.perf_counter()
    for chunk in _chunks(keys):
        for k in chunk:
            if get(k) is not None:
                found += 1
        progress(len(chunk))
    return time.perf_counter() - start, found


def w_readrandom(a, d, progress):
    seconds, found = _read(a, d.read_keys, progress)
    return d.reads, seconds, found * d.entry_bytes, {"found": found}


def w_readmissing(a, d, progress):
    keys = d.missing_keys()
    seconds, found = _read(a, keys, progress)
    return d.reads, seconds, d.reads * (d.key_size + 1), {"found": found}


def _scan(adapter, reverse, progress):
    n = 0
    nbytes = 0
    start = time.perf_counter()
    it = adapter.scan(reverse)
    for k, v in it:
        n += 1
        nbytes += len(k) + len(v)
        if n % CHUNK == 0:
            progress(CHUNK)
    seconds = time.perf_counter() - start
    progress(n % CHUNK)
    return n, seconds, nbytes, {}


def w_readseq(a, d, progress):
    return _scan(a, False, progress)


def w_readreverse(a, d, progress):
    return _scan(a, True, progress)


def w_seekrandom(a, d, progress):
    seek = a.seek
    found = 0
    start = time.perf_counter()
    for chunk in _chunks(d.read_keys):
        for k in chunk:
            if seek(k):
                found += 1
        progress(len(chunk))
    return d.reads, time.perf_counter() - start, found * d.entry_bytes, {"found": found}


def w_deleterandom(a, d, progress):
    delete = a.delete
    start = time.perf_counter()
    for chunk in _chunks(d.random_keys):
        for k in chunk:
            delete(k)
        progress(len(chunk))
    return d.num, time.perf_counter() - start, d.num * d.key_size, {}


def w_readwhilewriting(a, d, progress):
    """One thread reads --reads keys in random order (timed, reported);
    another overwrites random keys until the reader is done."""
    stop = threading.Event()
    writes = [0]
    errors = []

    def writer():
        put = a.put
        keys, values, n = d.random_keys, d.values, d.num
        lo = 0
        try:
            while not stop.is_set():
                hi = min(lo + 100, n)
                for k, v in zip(keys[lo:hi], values[lo:hi]):
                    put(k, v)
                writes[0] += hi - lo
                lo = hi % n
        except BaseException as exc:  # noqa: BLE001 - reported by the reader thread
            errors.append(exc)

    thread = threading.Thread(target=writer, name="bench-writer", daemon=True)
    thread.start()
    try:
        seconds, found = _read(a, d.read_keys, progress)
    finally:
        stop.set()
        thread.join()
    if errors:
        raise errors[0]
    return d.reads, seconds, found * d.entry_bytes, {
        "found": found, "writes": writes[0], "writes_per_sec": writes[0] / seconds if seconds else None}


def w_load(a, d, progress, path, sampler):
    """Sustained ingest into a fresh database: batches of BATCH entries in
    random key order, timed until every flush and compaction is done and the
    database is closed (LevelDB's close() waits for its compaction)."""
    a.open(path)
    start = time.perf_counter()
    extra = {}
    try:
        write_batch = a.write_batch
        keys, values = d.random_keys, d.values
        for lo in range(0, d.num, BATCH):
            write_batch(keys[lo:lo + BATCH], values[lo:lo + BATCH])
            progress(min(BATCH, d.num - lo))
        extra["write_seconds"] = round(time.perf_counter() - start, 6)
        a.quiesce()
        extra["quiet_seconds"] = round(time.perf_counter() - start, 6)
        # Before close: the engine's counters, and a last look at the
        # compactors while they still run.
        stats = a.stats()
        pids = a.compactor_pids()
        sampler.sample_now()
    finally:
        a.close()
    seconds = time.perf_counter() - start
    extra.update(_load_stats(stats, pids))
    return d.num, seconds, d.num * d.entry_bytes, extra


def _load_stats(stats, compactor_pids):
    """The fields of a load result that come from lsm's stats() (None for
    engines that have no such counters)."""
    stats = stats or {}

    def get(field):
        value = stats.get(field)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    read, secs = get("compaction_bytes_read"), get("compaction_seconds")
    jobs = {c["pid"]: c.get("jobs_done") for c in stats.get("compactors") or []
            if isinstance(c, dict) and c.get("pid")}
    return {
        "write_amplification": get("write_amplification"),
        "stall_seconds": get("stall_seconds"),
        "flushes": get("flushes"),
        "flushes_in_writer": get("flushes_in_writer"),  # run by a stalled writer itself
        "compactions": get("compactions"),
        "compaction_bytes_read": read,
        "compaction_bytes_written": get("compaction_bytes_written"),
        "compaction_seconds": secs,
        "compaction_mb_per_sec": read / MB / secs if read is not None and secs else None,
        "engine_user_bytes": get("user_bytes"),
        # Small WAL appends are copies into a mapping, not write() calls.
        "_wal_mapped_bytes": get("wal_mapped_bytes") or 0,
        "_jobs_done": jobs,
        "_compactor_pids": list(compactor_pids or ()),
    }


RUNNERS = {name: globals()[f"w_{name}"] for name in WORKLOADS}


# ---------------------------------------------------------------- the run
class Bench:
    def __init__(self, args, out=sys.stdout, err=sys.stderr):
        self.args = args
        self.out = out
        self.err = err
        self.workloads = _parse_list(args.workloads, tuple(WORKLOADS), "workloads")
        self.engines = list(dict.fromkeys(_parse_list(args.engines, ENGINES, "engines")))
        self.compactors = _parse_compactors(args.compactors)  # one lsm column per item
        if args.num < 1:
            raise UsageError("--num: must be at least 1")
        if args.value_size < 0:
            raise UsageError("--value-size: must not be negative")
        if args.reads is not None and args.reads < 1:
            raise UsageError("--reads: must be at least 1")
        if args.repeat < 1:
            raise UsageError("--repeat: must be at least 1")
        if args.key_size < len(str(args.num - 1)):
            raise UsageError(f"--key-size {args.key_size} is too small for {args.num} zero-padded keys "
                             f"(needs {len(str(args.num - 1))})")
        self.show_progress = not args.quiet and _isatty(out)
        self.results = []
        self.kinds = {}      # engine column ("lsm[2]") -> engine ("lsm")
        self.paths = {}      # engine -> path of the database its last fill left
        self.compacted = {}  # engine -> path, while that database is unchanged since compaction
        self.serial = 0

    # ---------------------------------------------------------------- output
    def _say(self, text):
        if not self.args.quiet and not self.args.json:
            print(text, file=self.out, flush=True)

    def _progress(self, engine, workload, total):
        if not self.show_progress:
            return _NoBar()
        try:
            from tqdm import tqdm
        except ImportError:
            return _NoBar()
        return tqdm(total=total, desc=f"{workload:<16} {engine:<11}", unit="op", unit_scale=True,
                    leave=False, file=self.err, mininterval=0.5, dynamic_ncols=True)

    # ------------------------------------------------------------------- run
    def run(self):
        args = self.args
        adapters = {}
        several = len(self.compactors) > 1
        for name in self.engines:
            for compactors in (self.compactors if name == "lsm" else [None]):
                label = lsm_label(compactors, several) if name == "lsm" else name
                try:
                    adapters[label] = _make_adapter(name, compactors, label)
                except ImportError as exc:
                    print(f"bench: skipping {name}: cannot import it ({exc}); "
                          f"install it with: pip install 'lsm[bench]'", file=self.err)
                    break
                self.kinds[label] = name
        if not adapters:
            raise RuntimeError("no engine could be loaded")
        root = args.dir
        made_temp = root is None
        if made_temp:
            root = tempfile.mkdtemp(prefix="lsm-bench-")
        else:
            os.makedirs(root, exist_ok=True)
        try:
            started = time.perf_counter()
            data = Data(args.num, args.key_size, args.value_size, args.seed, args.reads)
            self._say(self._header(adapters, root, time.perf_counter() - started))
            for workload in self.workloads:
                # Engines take turns, so a slow spell of the machine falls on each alike.
                for run in range(1, args.repeat + 1):
                    for name, adapter in adapters.items():
                        self._run_one(adapter, workload, data, root, run)
            self._say("")
            if not args.json or not args.quiet:
                table = self.summary()
                print(table, file=self.err if args.json else self.out, flush=True)
        finally:
            for adapter in adapters.values():
                try:
                    adapter.close()
                except Exception:  # noqa: BLE001 - cleanup
                    pass
            if made_temp:
                shutil.rmtree(root, ignore_errors=True)
        return 0

    def _header(self, adapters, root, gen_seconds):
        args = self.args
        lines = [
            f"Keys:       {args.key_size} bytes each",
            f"Values:     {args.value_size} bytes each (about half compressible)",
            f"Entries:    {args.num:,} (fillsync: {fillsync_ops(args.num):,}; random reads and seeks: "
            f"{(args.reads or args.num):,}); generated in {gen_seconds:.1f} s",
            f"Engines:    {'; '.join(a.version() for a in adapters.values())}",
            *([f"Columns:    {', '.join(adapters)}"] if len(adapters) > len(set(self.kinds.values())) else []),
            f"CPUs:       {os.cpu_count()}",
            f"Databases:  {root}",
            "-" * 72,
        ]
        return "\n".join(lines)

    def _fresh_path(self, root, engine, workload):
        self.serial += 1
        safe = engine.replace("[", "-").replace("]", "")
        path = os.path.join(root, f"{safe}-{self.serial:02d}-{workload}")
        shutil.rmtree(path, ignore_errors=True)
        return path

    def _drop(self, engine):
        # A new fill supersedes the engine's previous database: free the disk.
        old = self.paths.pop(engine, None)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _run_one(self, adapter, workload, data, root, run=1):
        engine = adapter.name
        need = WORKLOADS[workload]
        if need in ("fresh", "self"):
            self._drop(engine)
            self.paths[engine] = path = self._fresh_path(root, engine, workload)
        else:
            path = self.paths.get(engine)
            if path is None:  # nothing to read yet: make the database db_bench would expect
                self._say(f"{'(preparing)':<16} {engine:<11}: untimed fillrandom for {workload}")
                self.paths[engine] = path = self._fresh_path(root, engine, "fillrandom")
                adapter.open(path)
                try:
                    with self._progress(engine, "(fillrandom)", data.num) as bar:
                        w_fillrandom(adapter, data, bar.update)
                finally:
                    adapter.close()
        if workload in READ_ONLY and not self.args.no_compact and self.compacted.get(engine) != path:
            self._say(f"{'(compacting)':<16} {engine:<11}: untimed compact_range before reads")
            adapter.open(path)
            try:
                adapter.compact()
                adapter.quiesce()
            finally:
                adapter.close()
            self.compacted[engine] = path
        elif workload not in READ_ONLY:
            self.compacted.pop(engine, None)
        total = {"fillsync": fillsync_ops(data.num), "readrandom": data.reads, "readmissing": data.reads,
                 "seekrandom": data.reads, "readwhilewriting": data.reads}.get(workload, data.num)
        # Earlier workloads leave dirty pages the kernel writes back ~30 s
        # later, into whichever engine is timed then: written now, each engine
        # is timed on its own I/O. (One full run in three had lsm's 0.3 s
        # fillbatch slowed to 0.45 s; with this, none in eight.)
        os.sync()
        sampler = Sampler(adapter)
        with self._progress(engine, workload, total) as bar:
            if need == "self":
                sampler.start()
                try:
                    ops, seconds, nbytes, extra = w_load(adapter, data, bar.update, path, sampler)
                finally:
                    sampler.stop()
            else:
                adapter.open(path)
                try:
                    sampler._refresh_children()
                    sampler.start()
                    try:
                        ops, seconds, nbytes, extra = RUNNERS[workload](adapter, data, bar.update)
                    finally:
                        sampler.stop()
                finally:
                    adapter.close()
        result = {
            "engine": engine,
            "workload": workload,
            "ops": ops,
            "seconds": round(seconds, 6),
            "ops_per_sec": ops / seconds if seconds > 0 else None,
            "micros_per_op": seconds * 1e6 / ops if ops else None,
            "mb_per_sec": nbytes / MB / seconds if seconds > 0 else None,
            "key_size": data.key_size,
            "value_size": data.value_size,
            "write_amplification": extra.pop("write_amplification", None),
            "peak_rss_mb": sampler.peak_rss / MB if sampler.peak_rss else None,
        }
        if self.args.repeat > 1:
            result["run"] = run
        if sampler.peak_compactor_rss is not None:
            result["compactor_peak_rss_mb"] = sampler.peak_compactor_rss / MB
        if adapter.stats_error is not None:
            # Without stats() the bench can neither wait for quiescence nor
            # report lsm's counters: the figures would mislead silently.
            result["stats_error"] = adapter.stats_error
            adapter.stats_error = None
            print(f"bench: {engine} {workload}: db.stats() failed ({result['stats_error']}); compactions "
                  f"were not waited for and lsm's counters are missing", file=self.err, flush=True)
        if workload == "load":
            result.update(self._load_io(sampler, data, extra))
        if adapter.kind == "lsm" and getattr(adapter, "compactors", None) is not None:
            result["compactors"] = adapter.compactors
        result.update(extra)
        self.results.append(result)
        if self.args.json:
            print(json.dumps(result), file=self.out, flush=True)
        else:
            self._say(_result_line(result))

    @staticmethod
    def _load_io(sampler, data, extra):
        """The load result's fields from /proc: write amplification from
        write() bytes (and lsm's WAL bytes copied into a mapping instead)
        and from block-layer bytes, and one row per compactor."""
        user = data.num * data.entry_bytes
        written = sampler.bytes_written()
        wal = extra.pop("_wal_mapped_bytes", 0)
        if written is not None:
            written += wal
        disk = sampler.disk_bytes_written()
        jobs = extra.pop("_jobs_done", {})
        named = set(extra.pop("_compactor_pids", ())) | set(jobs)
        procs = []
        for row in sampler.child_report():
            if row["peak_rss_mb"] is None:
                continue  # never seen running (e.g. a previous engine's, exiting)
            row["compactor"] = row["pid"] in named  # lsm's stats() named it (replaced ones are not)
            row["jobs_done"] = jobs.get(row["pid"])
            cpu, read = row["cpu_seconds"], row["read_mb"]
            row["input_mb_per_cpu_sec"] = read / cpu if cpu and read is not None else None
            procs.append(row)
        return {
            "user_bytes": user,
            "io_bytes_written": written,
            "io_write_amplification": written / user if written is not None else None,
            "io_disk_bytes_written": disk,
            "io_disk_write_amplification": disk / user if disk is not None else None,
            "compactor_processes": procs,
        }

    # --------------------------------------------------------------- summary
    def summary(self):
        engines = list(dict.fromkeys(r["engine"] for r in self.results))
        by = _medians(self.results)
        workloads = list(dict.fromkeys(r["workload"] for r in self.results))
        kind = {e: self.kinds.get(e, e) for e in engines}
        lsm_cols = [e for e in engines if kind[e] == "lsm"]
        ratio_cols = [(l, e) for l in lsm_cols for e in engines if kind[e] in ("plyvel", "rocksdict")]
        width = max([16] + [len(e) + 6 for e in engines])
        head = [f"{'workload':<16}"]
        for e in engines:
            head.append(f"{e + ' ops/s':>{width}} {'MB/s':>7}")
        ratio_names = [f"{l}/{e}" for l, e in ratio_cols]
        for name in ratio_names:
            head.append(f"{name:>{max(14, len(name))}}")
        runs = f", the median of {self.args.repeat} runs" if self.args.repeat > 1 else ""
        lines = [f"Summary (ops/s and MB/s{runs}; ratio = lsm ops/s / other ops/s, above 1 means lsm is faster)",
                 " ".join(head), "-" * len(" ".join(head))]
        for w in workloads:
            row = [f"{w:<16}"]
            for e in engines:
                r = by.get((w, e))
                if r is None:
                    row.append(f"{'-':>{width}} {'-':>7}")
                else:
                    row.append(f"{_num(r['ops_per_sec']):>{width}} {_mb(r['mb_per_sec']):>7}")
            for (l, e), name in zip(ratio_cols, ratio_names):
                mine, other = by.get((w, l)), by.get((w, e))
                cell = max(14, len(name))
                if mine and other and mine["ops_per_sec"] and other["ops_per_sec"]:
                    row.append(f"{mine['ops_per_sec'] / other['ops_per_sec']:>{cell - 1}.2f}x")
                else:
                    row.append(f"{'-':>{cell}}")
            lines.append(" ".join(row))
        loads = [r for r in self.results if r["workload"] == "load"]
        if loads:
            lines += ["", *_load_table(loads)]
        return "\n".join(lines)


def _medians(results):
    """(workload, engine) -> its median run's ops/s and MB/s (the mean of
    the middle two for an even count of runs)."""
    runs = {}
    for r in results:
        runs.setdefault((r["workload"], r["engine"]), []).append(r)
    by = {}
    for key, rows in runs.items():
        by[key] = {field: _median([r[field] for r in rows]) for field in ("ops_per_sec", "mb_per_sec")}
    return by


def _median(values):
    if any(v is None for v in values):
        return None
    return statistics.median(values)


def _load_table(loads):
    """The load workload's own table: one row per engine column, then one
    row per compactor process."""
    name_w = max([11] + [len(_run_label(r)) for r in loads])
    lines = ["load (sustained ingest in batches of 1000; timed until compactions finish and the DB is closed)",
             f"{'engine':<{name_w}} {'writes s':>8} {'total s':>8} {'ops/s':>9} {'stall s':>8} "
             f"{'amp stats':>9} {'amp write()':>11} {'amp disk':>8} {'writer RSS':>10} "
             f"{'compactor RSS MB':>17} {'compact MB/s':>12}"]
    for r in loads:
        procs = r.get("compactor_processes") or []
        each = "+".join(f"{p['peak_rss_mb']:.0f}" for p in procs) or "-"
        lines.append(
            f"{_run_label(r):<{name_w}} {_opt(r.get('write_seconds'), '{:.1f}'):>8} {r['seconds']:>8.1f} "
            f"{_num(r['ops_per_sec']):>9} {_opt(r.get('stall_seconds'), '{:.1f}'):>8} "
            f"{_opt(r.get('write_amplification'), '{:.2f}'):>9} "
            f"{_opt(r.get('io_write_amplification'), '{:.2f}'):>11} "
            f"{_opt(r.get('io_disk_write_amplification'), '{:.2f}'):>8} "
            f"{_opt(r.get('peak_rss_mb'), '{:.0f}'):>10} {each:>17} "
            f"{_opt(r.get('compaction_mb_per_sec'), '{:.1f}'):>12}")
    procs = [(_run_label(r), p) for r in loads for p in r.get("compactor_processes") or []]
    if procs:
        lines += ["", "compactor processes (during the run, start-up included)",
                  f"{'engine':<{name_w}} {'pid':>8} {'jobs':>5} {'peak RSS MB':>11} {'CPU s':>7} "
                  f"{'read MB':>8} {'written MB':>10} {'input MB/CPU-s':>14}"]
        for engine, p in procs:
            lines.append(
                f"{engine:<{name_w}} {p['pid']:>8} {_opt(p.get('jobs_done'), '{}'):>5} "
                f"{_opt(p.get('peak_rss_mb'), '{:.0f}'):>11} {_opt(p.get('cpu_seconds'), '{:.1f}'):>7} "
                f"{_opt(p.get('read_mb'), '{:.0f}'):>8} {_opt(p.get('written_mb'), '{:.0f}'):>10} "
                f"{_opt(p.get('input_mb_per_cpu_sec'), '{:.1f}'):>14}")
    lines += [
        "",
        "writes s: until the last batch returned; total s: until compactions finished and the DB closed.",
        "stall s: time writers waited for room, from lsm's stats(), including flushes a stalled writer ran",
        "  itself (inline compaction runs inside the writes and is not a stall). compact MB/s: compaction",
        "  input bytes / compaction seconds (each compaction's running time in its compactor; the longest",
        "  piece of a split one), stats().",
        "amp stats: (table bytes written + user bytes) / user bytes, from lsm's stats(); its user bytes",
        "  are WriteBatch records (key + value + 3 bytes), which also stand in for the WAL.",
        "amp write(): bytes passed to write() by this process and its compactors / (key + value bytes),",
        "  from /proc/<pid>/io wchar, plus lsm's small WAL appends (copied into a mapping, not",
        "  written with write()); amp disk: the same from write_bytes - cancelled_write_bytes (bytes",
        "  bound for the disk: pages of a file deleted before writeback, e.g. an unsynced WAL, are not).",
        "input MB/CPU-s: bytes a compactor read (WALs for flushes, tables for compactions) per CPU second.",
    ]
    return lines


def _run_label(r):
    """The engine column, and which run of it when the bench repeats."""
    return f"{r['engine']} #{r['run']}" if "run" in r else r["engine"]


def _result_line(r):
    text = (f"{r['workload']:<16} {_run_label(r):<11}: {_opt(r['micros_per_op'], '{:10.3f}')} micros/op; "
            f"{_num(r['ops_per_sec']):>10} ops/s; {_mb(r['mb_per_sec']):>7} MB/s")
    notes = []
    if "found" in r:
        notes.append(f"{r['found']:,} of {r['ops']:,} found")
    if "writes" in r:
        notes.append(f"{r['writes']:,} writes meanwhile")
    if r.get("stall_seconds") is not None:
        notes.append(f"stalled {r['stall_seconds']:.1f} s")
    if r.get("write_amplification") is not None:
        notes.append(f"write amp {r['write_amplification']:.2f}")
    if r.get("io_write_amplification") is not None:
        notes.append(f"write() amp {r['io_write_amplification']:.2f}")
    if r["workload"] == "load" and r.get("peak_rss_mb") is not None:
        notes.append(f"peak RSS {r['peak_rss_mb']:.0f} MB")
    if r["workload"] == "load" and r.get("compactor_processes"):
        notes.append("compactors RSS " + "+".join(f"{p['peak_rss_mb']:.0f}" for p in r["compactor_processes"])
                     + " MB")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _num(x):
    return "-" if x is None else f"{x:,.0f}"


def _mb(x):
    return "-" if x is None else f"{x:.1f}"


def _opt(x, fmt):
    return "-" if x is None else fmt.format(x)


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        pass


def run(args):
    """Run a parsed ``bench`` command line; returns the exit code."""
    return Bench(args).run()


def main(argv=None):
    """Stand-alone entry (scripts/bench.py): same options as ``python -m lsm bench``."""
    from .cli import main as cli_main
    return cli_main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
