"""Options of an open database: validated once, with LevelDB's clipping.
Pure: no files."""
import os
from dataclasses import dataclass, replace

from ..keys import COMPARATOR_NAME
from ..order import comparator_reference, unreachable_reason
from ..table.options import TableOptions


def _int_option(name, value, default, low, high):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"'{name}' must be an integer, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"'{name}' must not be negative (got {value})")
    return min(max(value, low), high)


@dataclass
class Options:
    create_if_missing: bool = False
    error_if_exists: bool = False
    paranoid_checks: bool = False
    # 16 MiB, not LevelDB's 4: with a quarter as many level-0 files, each
    # level-0 compaction rewrites level 1 for four times the new data (the
    # README gives the measurements). Cost: up to ~40 MB of Python objects
    # per memtable once indexed (with max_frozen_memtables frozen ones).
    write_buffer_size: int = 16 << 20
    max_open_files: int = 1000
    # Decoded blocks are Python objects, about twice the bytes of LevelDB's
    # raw cached blocks, so the default is larger than LevelDB's 8 MiB.
    lru_cache_size: int = 64 << 20
    block_size: int = 4096
    block_restart_interval: int = 16
    max_file_size: int = 2 << 20
    compression: str | None = "snappy"
    # With compression, a flush of keys that arrived out of order (they land
    # among stored ones) writes its table, for level 0, uncompressed
    # (RocksDB's common advice for compression_per_level): the level-0
    # compaction soon rewrites it compressed, so snappy there would spend
    # CPU -- about a fifth of a flush's -- on disk space held for seconds.
    # Cost: level 0 takes about twice the bytes on disk. True compresses
    # every table, as LevelDB does.
    compress_level0: bool = False
    bloom_filter_bits: int = 10
    # Off: tables of fixed-width entries decode several times faster (see TableOptions).
    prefix_compression: bool = False
    compactors: int = 0
    manifest_limit: int = 64 << 20
    # Ingest-first limits (RocksDB's level-0 defaults, not LevelDB's 8 / 12
    # and one frozen memtable): with a compactor busy on a long level-0
    # compaction, writes go on longer before they stall. Readers pay with
    # more level-0 files to probe meanwhile, each behind a bloom filter.
    # A frozen memtable that nothing has read holds no batch bytes (they are
    # read back from its WAL), so the frozen limit bounds the flush backlog
    # -- WAL files to flush, and to replay after a crash -- more than memory.
    # A frozen memtable that is read is indexed: ~40 MB of objects.
    max_frozen_memtables: int = 8
    level0_slowdown_writes_trigger: int = 20
    level0_stop_writes_trigger: int = 36
    # Bytes allowed in level 1 (RocksDB's max_bytes_for_level_base); level L
    # holds ten times level L-1. LevelDB fixes it at 10 MiB.
    level_size_base: int = 10 << 20
    # Compactor pool: a compactor silent this long is killed and replaced;
    # extra environment for compactor processes (test hooks).
    compactor_heartbeat_timeout: float = 5.0
    compactor_env: dict | None = None
    # A custom comparator (plyvel's: cmp(a, b) -> int) and the name the
    # MANIFEST records; None: bytewise. comparator_reference is how
    # compactor processes import it ("module:qualname", lsm.order).
    comparator: object = None
    comparator_name: bytes = COMPARATOR_NAME
    comparator_reference: str | None = None

    @classmethod
    def from_kwargs(cls, **kw):
        o = cls()
        for name in ("create_if_missing", "error_if_exists", "paranoid_checks", "prefix_compression", "compress_level0"):
            value = kw.pop(name, None)
            if value is not None:
                setattr(o, name, bool(value))
        o.write_buffer_size = _int_option("write_buffer_size", kw.pop("write_buffer_size", None), o.write_buffer_size, 64 << 10, 1 << 30)
        o.max_open_files = _int_option("max_open_files", kw.pop("max_open_files", None), o.max_open_files, 74, 50000)
        o.lru_cache_size = _int_option("lru_cache_size", kw.pop("lru_cache_size", None), o.lru_cache_size, 0, 1 << 40)
        o.block_size = _int_option("block_size", kw.pop("block_size", None), o.block_size, 1 << 10, 4 << 20)
        o.block_restart_interval = _int_option("block_restart_interval", kw.pop("block_restart_interval", None), o.block_restart_interval, 1, 1 << 16)
        o.max_file_size = _int_option("max_file_size", kw.pop("max_file_size", None), o.max_file_size, 1 << 20, 1 << 30)
        o.bloom_filter_bits = _int_option("bloom_filter_bits", kw.pop("bloom_filter_bits", None), o.bloom_filter_bits, 0, 1000)
        o.manifest_limit = _int_option("manifest_limit", kw.pop("manifest_limit", None), o.manifest_limit, 1, 1 << 40)
        o.max_frozen_memtables = _int_option("max_frozen_memtables", kw.pop("max_frozen_memtables", None), o.max_frozen_memtables, 1, 64)
        o.level0_slowdown_writes_trigger = _int_option(
            "level0_slowdown_writes_trigger", kw.pop("level0_slowdown_writes_trigger", None),
            o.level0_slowdown_writes_trigger, 1, 1 << 16)
        o.level0_stop_writes_trigger = _int_option(
            "level0_stop_writes_trigger", kw.pop("level0_stop_writes_trigger", None),
            max(o.level0_stop_writes_trigger, o.level0_slowdown_writes_trigger), o.level0_slowdown_writes_trigger, 1 << 16)
        o.level_size_base = _int_option("level_size_base", kw.pop("level_size_base", None), o.level_size_base, 1 << 10, 1 << 40)
        timeout = kw.pop("compactor_heartbeat_timeout", None)
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
                raise ValueError(f"'compactor_heartbeat_timeout' must be a positive number (got {timeout!r})")
            o.compactor_heartbeat_timeout = float(timeout)
        env = kw.pop("compactor_env", None)
        if env is not None:
            if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
                raise TypeError("'compactor_env' must be a dict of str to str")
            o.compactor_env = dict(env)
        compactors = kw.pop("compactors", None)
        o.compactors = _int_option("compactors", compactors, max(1, (os.cpu_count() or 2) - 1), 0, 256)
        if "compression" in kw:
            compression = kw.pop("compression")
            if isinstance(compression, bytes):
                compression = compression.decode("utf-8", "replace")
            if compression is not None and not isinstance(compression, str):
                raise TypeError("'compression' must be None or a string")
            if compression not in (None, "snappy"):
                raise ValueError("'compression' must be None or 'snappy'")
            o.compression = compression
        if kw:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(kw))}")
        return o

    @property
    def level0_uncompressed(self) -> bool:
        """Whether flushes of keys out of order store their level-0 tables
        uncompressed (see compress_level0). A level-0 table then never
        moves down unrewritten (a trivial move): it may be one of those."""
        return not self.compress_level0 and self.compression is not None

    def use_comparator(self, compare, name: bytes, compactors_given: bool) -> None:
        """Order keys by `compare` under `name`. Compactor processes import
        the function by name; one they cannot import leaves every job to the
        writer when `compactors` was left to its default, and is a TypeError
        when compactors were asked for."""
        reference = comparator_reference(compare)
        if reference is None and self.compactors:
            if compactors_given:
                raise TypeError(f"{unreachable_reason(compare)}: define it at module level "
                                "or pass compactors=0 to run every job in this process")
            self.compactors = 0
        self.comparator = compare
        self.comparator_name = name
        self.comparator_reference = reference

    def unsorted_flush_table_options(self) -> TableOptions | None:
        """How a flush builds its table when the WAL's keys arrived out of
        order (they land among stored ones; the table stays at level 0):
        uncompressed unless compress_level0; None: as table_options()."""
        if not self.level0_uncompressed:
            return None
        return replace(self.table_options(), compression=None)

    def table_options(self) -> TableOptions:
        return TableOptions(
            block_size=self.block_size,
            block_restart_interval=self.block_restart_interval,
            compression=self.compression,
            bloom_bits_per_key=self.bloom_filter_bits,
            prefix_compression=self.prefix_compression,
        )
