"""The three engines behind one set of calls the workloads make: lsm and
LevelDB (plyvel) through plyvel's API, RocksDB through rocksdict's.

Knows each engine's public API only (for lsm: ``lsm.DB``, ``db.stats()``,
``db.wait_for_compactions()``). The engines are imported when an adapter is
made, so ``--help`` works without them.
"""
import functools
import itertools
import re
import time

ENGINES = ("lsm", "plyvel", "rocksdict")
MB = 1048576.0
# Every engine: bloom filters of 10 bits per key, its other defaults.
BLOOM_BITS = 10


class Adapter:
    """One engine behind the calls the workloads make. After open(), put/get/
    delete are the engine's own bound methods (no wrapper per operation)."""

    name = "?"   # the engine column: "lsm", "lsm[2]", "plyvel", ...
    kind = "?"   # the engine itself: one of ENGINES
    db = None
    path = None
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
        """Wait until the engine has no flush or compaction running or due
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


def _add_ops(batch, keys, values):
    """Puts into a write batch, and deletes where the value is None."""
    put, delete = batch.put, batch.delete
    for k, v in zip(keys, values):
        if v is None:
            delete(k)
        else:
            put(k, v)


class PlyvelApiAdapter(Adapter):
    """Engines with plyvel's API (lsm and plyvel itself) are driven the same way."""

    def _bind(self, db, path=None):
        self.db = db
        self.path = path
        self.put, self.get, self.delete = db.put, db.get, db.delete
        self.put_sync = functools.partial(db.put, sync=True)

    def write_batch(self, keys, values):
        with self.db.write_batch() as wb:
            put = wb.put
            for k, v in zip(keys, values):
                put(k, v)

    def write_ops(self, keys, values):
        """One batch of puts, and deletes where the value is None."""
        with self.db.write_batch() as wb:
            _add_ops(wb, keys, values)

    def seek(self, key):
        it = self.db.iterator()
        it.seek(key)
        found = next(it, None) is not None
        it.close()
        return found

    def scan_from(self, key, count):
        """Entries read by a forward scan of up to ``count`` from ``key``."""
        it = self.db.iterator()
        it.seek(key)
        n = sum(1 for _ in itertools.islice(it, count))
        it.close()
        return n

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
        self._bind(self.lsm.DB(path, create_if_missing=True, bloom_filter_bits=BLOOM_BITS, **kwargs), path)

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
        if not self.db.wait_for_compactions(timeout=timeout):
            raise TimeoutError(f"{self.name}: compactions still running after {timeout:.0f} s")

    def compactor_pids(self):
        stats = self.stats() or {}
        return _pids(stats.get("compactors") or [])

    def version(self):
        try:
            from importlib.metadata import version
            text = version("lsm-leveldb")
        except Exception:  # noqa: BLE001 - running from a checkout without installing
            text = "checkout"
        mode = "default compactors" if self.compactors is None else \
            ("inline" if self.compactors == 0 else f"{self.compactors} compactors")
        return f"lsm {text} ({mode})"


def _pids(compactors):
    pids = []
    for c in compactors:
        pid = c.get("pid") if isinstance(c, dict) else c
        if isinstance(pid, int) and not isinstance(pid, bool):
            pids.append(pid)
    return pids


# LevelDB's compaction scores (version_set.cc, Finalize): level 0 by its file
# count against kL0_CompactionTrigger, level L >= 1 by its bytes against
# MaxBytesForLevel (10 MiB times 10^(L-1)); the last level is never scored.
LEVELDB_L0_COMPACTION_TRIGGER = 4
LEVELDB_LEVELS = 7
_SSTABLES_LEVEL = re.compile(rb"^--- level (\d+) ---$")
_SSTABLES_FILE = re.compile(rb"^ *\d+:(\d+)\[")
# How long plyvel's levels must stay unchanged, no compaction due, to count
# as quiet: a flush of a memtable LevelDB has frozen runs meanwhile.
QUIET_SECONDS = 0.05


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


def leveldb_compaction_due(sstables: bytes) -> bool:
    """Whether LevelDB would start a size compaction (see leveldb_levels)."""
    files, sizes = leveldb_levels(sstables)
    if files[0] >= LEVELDB_L0_COMPACTION_TRIGGER:
        return True
    return any(sizes[level] >= 10 * MB * 10 ** (level - 1) for level in range(1, LEVELDB_LEVELS - 1))


WHOLE_RANGE_STOP = b"\xff" * 1024


class PlyvelAdapter(PlyvelApiAdapter):
    name = kind = "plyvel"

    def __init__(self):
        import plyvel
        self.plyvel = plyvel

    def open(self, path):
        self._bind(self.plyvel.DB(path, create_if_missing=True, bloom_filter_bits=BLOOM_BITS), path)

    def compact(self):
        # plyvel's compact_range() without arguments hands LevelDB empty
        # slices, not NULL: that compacts nothing but the memtable. The whole
        # database is the range from the empty key to one above every key
        # the bench makes (none is near this long).
        self.db.compact_range(start=b"", stop=WHOLE_RANGE_STOP)

    def quiesce(self, timeout=600.0):
        # LevelDB's close() abandons its compaction work (it checks
        # shutting_down_ in DoCompactionWork and schedules nothing more), so
        # "all compaction done" is read from its levels. A flush of the last
        # memtable shows in no property until its table is in, and that table
        # may make a compaction due: the levels must stay unchanged and not
        # due for QUIET_SECONDS.
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
        raise TimeoutError(f"plyvel: compactions still due after {timeout:.0f} s")

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
        table.set_bloom_filter(BLOOM_BITS, False)
        options.set_block_based_table_factory(table)
        db = self.db = rd.Rdict(path, options)
        self.path = path
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

    def write_ops(self, keys, values):
        wb = self.rocksdict.WriteBatch(raw_mode=True)
        _add_ops(wb, keys, values)
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

    def scan_from(self, key, count):
        it = self.db.iter()
        it.seek(key)
        n = 0
        valid, step, read_key, read_value = it.valid, it.next, it.key, it.value
        while n < count and valid():
            read_key()
            read_value()
            n += 1
            step()
        del it
        return n

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
        raise TimeoutError(f"rocksdict: compactions still running after {timeout:.0f} s")

    def version(self):
        try:
            from importlib.metadata import version
            return f"rocksdict {version('rocksdict')}"
        except Exception:  # noqa: BLE001
            return "rocksdict"


def make_adapter(name, compactors, label=None):
    if name == "lsm":
        return LsmAdapter(compactors, label or "lsm")
    if name == "plyvel":
        return PlyvelAdapter()
    return RocksdictAdapter()


def lsm_label(compactors, several):
    """The engine column of one lsm configuration: plain "lsm" when the run
    has only one, else "lsm[inline]", "lsm[1]", ..."""
    if not several:
        return "lsm"
    return f"lsm[{'inline' if compactors == 0 else 'default' if compactors is None else compactors}]"
