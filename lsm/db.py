"""The public database object, with plyvel's API call for call.

Knows the engine's entry points and the WriteBatch codec; no files of its own.
"""
import os
import threading
import weakref

from . import batch as batch_codec
from .cursor import Iterator, RawIterator
from .errors import ClosedError
from .keys import TYPE_DELETION, TYPE_VALUE
from .writer.engine import Engine
from .writer.options import Options

_CLOSED = "Database is closed"
_PUT_HEADERS = batch_codec.PUT_HEADERS
_LENGTHS = batch_codec.LENGTHS


def _need_bytes(name, value):
    if not isinstance(value, bytes):
        raise TypeError(f"Argument '{name}' has incorrect type (expected bytes, got {type(value).__name__})")


def _need_bools(names, *values):
    """plyvel declares these flags `bool`: None is the default, and any
    other non-bool (1, "yes") is refused rather than read for its truth."""
    for name, value in zip(names, values):
        if value is not None and value.__class__ is not bool:
            raise TypeError(f"Argument '{name}' has incorrect type (expected bool, got {type(value).__name__})")


_OPEN_FLAGS = ("create_if_missing", "error_if_exists")
_SYNC = ("sync",)
_READ_FLAGS = ("verify_checksums", "fill_cache")
_BATCH_FLAGS = ("transaction", "sync")
_ITERATOR_FLAGS = ("verify_checksums", "fill_cache", "reverse", "include_start", "include_stop", "include_key",
                   "include_value")


def _check_comparator(comparator, comparator_name):
    """plyvel's checks of a custom comparator's arguments."""
    if (comparator is None) != (comparator_name is None):
        raise ValueError("'comparator' and 'comparator_name' must be specified together")
    if comparator is not None and not callable(comparator):
        raise TypeError("custom comparator object must be callable")


def _value_bytes(value):
    """A value as bytes. Like plyvel, any buffer (bytearray, memoryview, ...)
    is accepted as a value, copied; keys must be bytes."""
    try:
        return bytes(memoryview(value))
    except TypeError:
        raise TypeError(f"Argument 'value' has incorrect type (expected bytes, got {type(value).__name__})") \
            from None


def _visible(entry, default):
    """A lookup's (kind, value), or None, as get() answers it."""
    if entry is None or entry[0] == TYPE_DELETION:
        return default
    return entry[1]


class DB:
    """A LevelDB-format database, opened by exactly one process at a time."""

    # Until __init__ sets them, so that a DB whose __init__ failed still
    # answers closed, repr() and close().
    _engine = None
    _name = None
    _server = None

    def __init__(self, name, *, create_if_missing=False, error_if_exists=False, paranoid_checks=None,
                 write_buffer_size=None, max_open_files=None, lru_cache_size=None, block_size=None,
                 block_restart_interval=None, max_file_size=None, compression="snappy", bloom_filter_bits=10,
                 comparator=None, comparator_name=None, compactors=None, fs=None, serve=False, **extra):
        # plyvel's order: its typed arguments first, then the name, the
        # options, and last the comparator's pairing and callability.
        _need_bools(_OPEN_FLAGS, create_if_missing, error_if_exists)
        if comparator_name is not None and not isinstance(comparator_name, bytes):
            raise TypeError("Argument 'comparator_name' has incorrect type "
                            f"(expected bytes, got {type(comparator_name).__name__})")
        if isinstance(name, bytes):
            name = os.fsdecode(name)
        if not isinstance(name, (str, os.PathLike)):
            raise TypeError("'name' arg must be a byte string or a unicode string")
        self._name = os.fspath(name)
        self._iterators = weakref.WeakSet()
        self._iter_lock = threading.Lock()
        self.options = Options.from_kwargs(
            create_if_missing=create_if_missing, error_if_exists=error_if_exists, paranoid_checks=paranoid_checks,
            write_buffer_size=write_buffer_size, max_open_files=max_open_files, lru_cache_size=lru_cache_size,
            block_size=block_size, block_restart_interval=block_restart_interval, max_file_size=max_file_size,
            compression=compression, bloom_filter_bits=bloom_filter_bits, compactors=compactors, **extra)
        _check_comparator(comparator, comparator_name)
        if comparator is not None:
            self.options.use_comparator(comparator, comparator_name, compactors_given=compactors is not None)
        kwargs = {} if fs is None else {"fs": fs}
        self._engine = Engine(self._name, self.options, **kwargs)
        if serve:  # other processes' lsm.connect(name) clients, on background threads; "HOST:PORT": TCP too
            from .serve.server import Server
            try:
                self._server = Server(self, tcp=None if serve is True else serve).start()
            except BaseException:
                self.close()
                raise

    # ------------------------------------------------------------ lifecycle
    def close(self):
        engine = self._engine
        if engine is None:
            return
        server, self._server = self._server, None
        if server is not None:
            server.close()
        with self._iter_lock:
            iterators = list(self._iterators)
            self._iterators.clear()
        for it in iterators:
            it.close()
        self._engine = None
        engine.close()

    @property
    def closed(self):
        return self._engine is None

    @property
    def name(self):
        """The path the database was opened with; read-only, as in plyvel."""
        return self._name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        engine = getattr(self, "_engine", None)  # None too when __init__ failed
        if engine is None:
            return
        try:
            if engine.can_close_on_this_thread():
                self.close()
            else:
                # Collected on a thread where close() would wait for itself.
                threading.Thread(target=self.close, name="lsm-close-collected").start()
        except Exception:  # noqa: BLE001 - nothing useful to do at interpreter exit
            pass

    def __repr__(self):
        return f"<lsm.DB with name {self._name!r}{' (closed)' if self.closed else ''} at {hex(id(self))}>"

    def _live(self):
        engine = self._engine
        if engine is None:
            raise ClosedError(_CLOSED)
        return engine

    def _register_iterator(self, it):
        with self._iter_lock:
            self._iterators.add(it)

    # ---------------------------------------------------------------- writes
    def put(self, key, value, *, sync=None):
        if type(key) is not bytes:
            _need_bytes("key", key)
        if type(value) is not bytes:
            value = _value_bytes(value)
        if sync is not None and sync is not True and sync is not False:
            _need_bools(_SYNC, sync)
        engine = self._engine
        if engine is None:
            raise ClosedError(_CLOSED)
        engine.write_one(TYPE_VALUE, key, value, sync)

    def delete(self, key, *, sync=None):
        if type(key) is not bytes:
            _need_bytes("key", key)
        if sync is not None and sync is not True and sync is not False:
            _need_bools(_SYNC, sync)
        engine = self._engine
        if engine is None:
            raise ClosedError(_CLOSED)
        engine.write_one(TYPE_DELETION, key, b"", sync)

    def write_batch(self, *, transaction=False, sync=None):
        _need_bools(_BATCH_FLAGS, transaction, sync)
        self._live()
        return WriteBatch(self, None, transaction, sync)

    # ----------------------------------------------------------------- reads
    def get(self, key, default=None, *, verify_checksums=None, fill_cache=None):
        if type(key) is not bytes:
            _need_bytes("key", key)
        if verify_checksums is not None or fill_cache is not None:
            _need_bools(_READ_FLAGS, verify_checksums, fill_cache)
        engine = self._engine  # _live() and _visible() inlined: the hottest read call
        if engine is None:
            raise ClosedError(_CLOSED)
        entry = engine.get(key, None, fill_cache is not False)
        if entry is None or entry[0] == TYPE_DELETION:
            return default
        return entry[1]

    def __iter__(self):
        return self.iterator()

    def iterator(self, *, reverse=False, start=None, stop=None, include_start=True, include_stop=False,
                 prefix=None, include_key=True, include_value=True, verify_checksums=None, fill_cache=None):
        _need_bools(_ITERATOR_FLAGS, verify_checksums, fill_cache, reverse, include_start, include_stop,
                    include_key, include_value)
        self._live()
        return Iterator(self, None, reverse, start, stop, include_start, include_stop, prefix,
                        include_key, include_value, None, fill_cache)

    def raw_iterator(self, *, verify_checksums=None, fill_cache=None):
        _need_bools(_READ_FLAGS, verify_checksums, fill_cache)
        self._live()
        return RawIterator(self, None, None, fill_cache)

    def snapshot(self):
        return Snapshot(self, None)

    def prefixed_db(self, prefix):
        _need_bytes("prefix", prefix)
        return PrefixedDB(self, prefix)

    # ------------------------------------------------------- maintenance
    def compact_range(self, *, start=None, stop=None):
        for name, value in (("start", start), ("stop", stop)):
            if value is not None:
                _need_bytes(name, value)
        self._live().compact_range(start, stop)

    def wait_for_compactions(self, timeout=None) -> bool:
        """Wait until no flush or compaction runs or waits and no level needs
        one (RocksDB's WaitForCompact). Returns False if `timeout` seconds
        pass first; raises the background error that stopped the work."""
        return self._live().wait_for_compactions(timeout)

    def approximate_size(self, start, stop):
        _need_bytes("start", start)
        _need_bytes("stop", stop)
        return self.approximate_sizes((start, stop))[0]

    def approximate_sizes(self, *ranges):
        engine = self._live()
        for r in ranges:
            start, stop = r
            if not isinstance(start, bytes) or not isinstance(stop, bytes):
                raise TypeError("Start and stop of range must be byte strings")
        out = []
        with engine.pinned_version() as version:
            for start, stop in ranges:
                a = engine.approximate_offset(version, start)
                b = engine.approximate_offset(version, stop)
                out.append(b - a if b >= a else 0)
        return out

    def get_property(self, name):
        _need_bytes("name", name)
        from .properties import get_property
        return get_property(self._live(), name)

    def stats(self):
        from .properties import stats_dict
        return stats_dict(self._live())


class WriteBatch:
    """Collects puts and deletes; written atomically as one WAL record.

    Each operation is kept as the four pieces of its encoded record
    (batch.put_pieces), so writing is one join: no second pass encodes it."""

    def __init__(self, db, prefix, transaction, sync):
        self._db = db
        self._prefix = prefix
        self._transaction = transaction
        self._sync = bool(sync)
        self._pieces = []

    def put(self, key, value):
        if type(key) is not bytes:
            _need_bytes("key", key)
        if type(value) is not bytes:
            value = _value_bytes(value)
        if self._db._engine is None:
            raise ClosedError(_CLOSED)
        if self._prefix is not None:
            key = self._prefix + key
        key_len = len(key)
        value_len = len(value)
        if key_len < 128 and value_len < 128:
            self._pieces += (_PUT_HEADERS[key_len], key, _LENGTHS[value_len], value)
        else:
            self._pieces += batch_codec.put_pieces(key, value)

    def delete(self, key):
        if type(key) is not bytes:
            _need_bytes("key", key)
        if self._db._engine is None:
            raise ClosedError(_CLOSED)
        if self._prefix is not None:
            key = self._prefix + key
        self._pieces += batch_codec.delete_pieces(key)

    def clear(self):
        self._db._live()
        self._pieces = []

    def append(self, other):
        if not isinstance(other, WriteBatch):
            raise TypeError("can only append another WriteBatch")
        self._pieces += other._pieces

    def approximate_size(self):
        return batch_codec.HEADER_SIZE + sum(map(len, self._pieces))

    def write(self):
        engine = self._db._live()
        if self._pieces:
            engine.write(b"".join(self._pieces), len(self._pieces) >> 2, self._sync)

    def __enter__(self):
        self._db._live()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self._db._live()
        if self._transaction and exc_type is not None:
            self.clear()
            return False
        self.write()
        self.clear()
        return False


class Snapshot:
    """A consistent read view as of its creation."""

    def __init__(self, db, prefix):
        engine = db._live()
        self._db = db
        self._prefix = prefix
        self._engine = engine
        self._sequence = engine.new_snapshot()
        # Collected unreleased: released without waiting for the engine's
        # lock (the collector may run inside it); released: at once.
        self._finalizer = weakref.finalize(self, engine.release_soon, None, self._sequence)

    def _check(self):
        if self._db._engine is None:
            raise ClosedError("Cannot operate on closed LevelDB database")
        if not self._finalizer.alive:
            raise ClosedError("Cannot operate on a released snapshot")

    def get(self, key, default=None, *, verify_checksums=None, fill_cache=None):
        _need_bytes("key", key)
        _need_bools(_READ_FLAGS, verify_checksums, fill_cache)
        self._check()
        if self._prefix is not None:
            key = self._prefix + key
        return _visible(self._db._engine.get(key, self._sequence, fill_cache is not False), default)

    def __iter__(self):
        return self.iterator()

    def iterator(self, *, reverse=False, start=None, stop=None, include_start=True, include_stop=False,
                 prefix=None, include_key=True, include_value=True, verify_checksums=None, fill_cache=None):
        _need_bools(_ITERATOR_FLAGS, verify_checksums, fill_cache, reverse, include_start, include_stop,
                    include_key, include_value)
        self._check()
        return Iterator(self._db, self._prefix, reverse, start, stop, include_start, include_stop, prefix,
                        include_key, include_value, self._sequence, fill_cache)

    def raw_iterator(self, *, verify_checksums=None, fill_cache=None):
        _need_bools(_READ_FLAGS, verify_checksums, fill_cache)
        self._check()
        return RawIterator(self._db, self._prefix, self._sequence, fill_cache)

    def release(self):
        if self._finalizer.detach() is not None:
            self._engine.release_snapshot(self._sequence)

    close = release

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


class PrefixedDB:
    """A view of the keys that start with `prefix`, with the prefix stripped."""

    def __init__(self, db, prefix):
        self._db = db
        self._prefix = prefix

    # Read-only, as in plyvel: a view moved to another prefix would quietly
    # send its reads and writes elsewhere.
    @property
    def db(self):
        return self._db

    @property
    def prefix(self):
        return self._prefix

    def __repr__(self):
        return f"<lsm.PrefixedDB with prefix {self._prefix!r} at {hex(id(self))}>"

    def get(self, key, default=None, *, verify_checksums=None, fill_cache=None):
        _need_bytes("key", key)
        return self._db.get(self._prefix + key, default, verify_checksums=verify_checksums, fill_cache=fill_cache)

    def put(self, key, value, *, sync=None):
        _need_bytes("key", key)
        return self._db.put(self._prefix + key, value, sync=sync)

    def delete(self, key, *, sync=None):
        _need_bytes("key", key)
        return self._db.delete(self._prefix + key, sync=sync)

    def write_batch(self, *, transaction=False, sync=None):
        _need_bools(_BATCH_FLAGS, transaction, sync)
        self._db._live()
        return WriteBatch(self._db, self._prefix, transaction, sync)

    def __iter__(self):
        return self.iterator()

    def iterator(self, *, reverse=False, start=None, stop=None, include_start=True, include_stop=False,
                 prefix=None, include_key=True, include_value=True, verify_checksums=None, fill_cache=None):
        _need_bools(_ITERATOR_FLAGS, verify_checksums, fill_cache, reverse, include_start, include_stop,
                    include_key, include_value)
        self._db._live()
        return Iterator(self._db, self._prefix, reverse, start, stop, include_start, include_stop, prefix,
                        include_key, include_value, None, fill_cache)

    def raw_iterator(self, *, verify_checksums=None, fill_cache=None):
        _need_bools(_READ_FLAGS, verify_checksums, fill_cache)
        self._db._live()
        return RawIterator(self._db, self._prefix, None, fill_cache)

    def snapshot(self):
        return Snapshot(self._db, self._prefix)

    def prefixed_db(self, prefix):
        _need_bytes("prefix", prefix)
        return PrefixedDB(self._db, self._prefix + prefix)
