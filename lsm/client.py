"""A database served by another process, with plyvel's API: ``lsm.connect``.

Code written for ``lsm.DB`` works on a client after changing the open call.
Writes are encoded here (lsm.db.WriteBatch's pieces), so the encoding work
stays in the client's process; the server appends them to its WAL in its
group commit and answers once they are there (synced, with sync=True).
Iterators read one snapshot that the server pins until they are closed or
the client's process ends, fetched in chunks.

Every call raises ``lsm.IOError`` within the connection's timeout when the
server is gone; the next call connects to a server serving the database
again, if there is one. Snapshots and iterators of the old server raise
``lsm.IOError`` saying they must be opened again.

Knows lsm.db's argument checks and WriteBatch, the WriteBatch codec and the
client protocol (lsm.ipc.client_*); never the engine.
"""
import os
import weakref
from collections import deque

from . import batch as batch_codec
from .errors import IteratorInvalidError
from .db import (_BATCH_FLAGS, _ITERATOR_FLAGS, _READ_FLAGS, _SYNC, PrefixedDB, WriteBatch, _need_bools, _need_bytes,
                 _value_bytes)
from .errors import ClosedError
from .ipc.client_connection import Connection
from .ipc.client_messages import Close, Get, Move, OpenIterator, OpenSnapshot, Step

_CLOSED = "Database is closed"
_FIRST_CHUNK = 64
_MAX_CHUNK = 4096


def connect(name, *, timeout=10.0, server_key=None, keypair=None):
    """A client of the server serving the database at `name` (started with
    ``lsm.DB(name, serve=True)`` or ``python -m lsm serve name``), or of the
    server at ``tcp://HOST:PORT``, with the server's CURVE public key and
    this client's (public, secret) key pair (see lsm.ipc.curve_keys)."""
    return Client(name, timeout=timeout, server_key=server_key, keypair=keypair)


class _RemoteReads:
    """iterator() and raw_iterator() of a client, a prefixed view of one or a
    snapshot: `_source()` gives the client and what to read through."""

    def __iter__(self):
        return self.iterator()

    def iterator(self, *, reverse=False, start=None, stop=None, include_start=True, include_stop=False,
                 prefix=None, include_key=True, include_value=True, verify_checksums=None, fill_cache=None):
        _need_bools(_ITERATOR_FLAGS, verify_checksums, fill_cache, reverse, include_start, include_stop,
                    include_key, include_value)
        client, where = self._source()
        return RemoteIterator(client, dict(
            where, reverse=bool(reverse), start=start, stop=stop, include_start=bool(include_start),
            include_stop=bool(include_stop), prefix=prefix, include_key=bool(include_key),
            include_value=bool(include_value), fill_cache=fill_cache))

    def raw_iterator(self, *, verify_checksums=None, fill_cache=None):
        _need_bools(_READ_FLAGS, verify_checksums, fill_cache)
        client, where = self._source()
        return RemoteRawIterator(client, dict(where, raw=True, fill_cache=fill_cache))


class Client(_RemoteReads):
    """plyvel's DB API, served by the process that holds the database."""

    _engine = None  # the Connection; lsm.db.WriteBatch writes through it

    def __init__(self, name, *, timeout=10.0, server_key=None, keypair=None):
        if isinstance(name, bytes):
            name = os.fsdecode(name)
        if not isinstance(name, (str, os.PathLike)):
            raise TypeError("'name' arg must be a byte string or a unicode string")
        self._name = os.fspath(name)
        self._engine = Connection(self._name, timeout, server_key, keypair)

    # ------------------------------------------------------------ lifecycle
    @property
    def name(self):
        return self._name

    @property
    def closed(self):
        return self._engine is None

    def close(self):
        """Disconnect; the server releases every snapshot and iterator of ours."""
        conn, self._engine = self._engine, None
        if conn is not None:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter exit
            pass

    def __repr__(self):
        return f"<lsm.Client of {self._name!r}{' (closed)' if self.closed else ''} at {hex(id(self))}>"

    def _live(self):
        conn = self._engine
        if conn is None:
            raise ClosedError(_CLOSED)
        return conn

    # ------------------------------------------------------------ writes
    def put(self, key, value, *, sync=None):
        _need_bytes("key", key)
        if type(value) is not bytes:
            value = _value_bytes(value)
        _need_bools(_SYNC, sync)
        self._live().write(b"".join(batch_codec.put_pieces(key, value)), 1, bool(sync))

    def delete(self, key, *, sync=None):
        _need_bytes("key", key)
        _need_bools(_SYNC, sync)
        self._live().write(b"".join(batch_codec.delete_pieces(key)), 1, bool(sync))

    def write_batch(self, *, transaction=False, sync=None):
        _need_bools(_BATCH_FLAGS, transaction, sync)
        self._live()
        return WriteBatch(self, None, transaction, sync)

    # ------------------------------------------------------------ reads
    def get(self, key, default=None, *, verify_checksums=None, fill_cache=None):
        _need_bytes("key", key)
        _need_bools(_READ_FLAGS, verify_checksums, fill_cache)
        value = self._live().call(lambda env: Get(env, key, 0, fill_cache is not False)).value
        return default if value is None else value

    def _source(self):
        self._live()
        return self, {}

    def snapshot(self):
        return RemoteSnapshot(self, None)

    def prefixed_db(self, prefix):
        _need_bytes("prefix", prefix)
        return RemotePrefixedDB(self, prefix)


class RemotePrefixedDB(_RemoteReads, PrefixedDB):
    """A view of the keys that start with `prefix`; get, put, delete and
    write_batch are lsm.db.PrefixedDB's, reads of many keys the server's."""

    def _source(self):
        self._db._live()
        return self._db, {"db_prefix": self._prefix}

    def snapshot(self):
        return RemoteSnapshot(self._db, self._prefix)

    def prefixed_db(self, prefix):
        _need_bytes("prefix", prefix)
        return RemotePrefixedDB(self._db, self._prefix + prefix)


class _Handle:
    """A snapshot or iterator the server keeps for us under a handle."""

    def __init__(self, client, open_request):
        conn = client._live()
        self._client = client
        self._conn = conn
        self._handle = conn.call(open_request).handle
        self._generation = conn.generation  # read after the call, which may have reconnected first
        self._finalizer = weakref.finalize(self, conn.forget, self._generation, self._handle)

    def _call(self, make):
        if self._client._engine is not self._conn:
            raise ClosedError(_CLOSED)
        return self._conn.call(make, self._generation)

    def _release(self):
        if self._finalizer.detach() is not None and not self._conn.closed:
            handle = self._handle
            try:
                self._conn.call(lambda env: Close(env, handle), self._generation)
            except Exception:  # noqa: BLE001 - a dead server or client has released it already
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class RemoteSnapshot(_RemoteReads, _Handle):
    def __init__(self, client, prefix):
        super().__init__(client, lambda env: OpenSnapshot(env, prefix))

    def _check(self):
        if self._client._engine is None:
            raise ClosedError("Cannot operate on closed LevelDB database")
        if not self._finalizer.alive:
            raise ClosedError("Cannot operate on a released snapshot")

    def get(self, key, default=None, *, verify_checksums=None, fill_cache=None):
        _need_bytes("key", key)
        _need_bools(_READ_FLAGS, verify_checksums, fill_cache)
        self._check()
        handle = self._handle
        value = self._call(lambda env: Get(env, key, handle, fill_cache is not False)).value
        return default if value is None else value

    def _source(self):
        self._check()
        return self._client, {"snapshot": self._handle}

    def release(self):
        self._release()

    close = release


class _RemoteCursor(_Handle):
    def __init__(self, client, fields):
        super().__init__(client, lambda env: OpenIterator(env, **fields))

    def _step(self, move, key=None, want=1, rewind=0):
        if not self._finalizer.alive:
            raise RuntimeError("Database or iterator is closed")
        handle = self._handle
        try:
            return self._call(lambda env: Step(env, handle, move, key, want, rewind))
        except ClosedError:
            raise RuntimeError("Database or iterator is closed") from None

    def close(self):
        self._release()


class RemoteIterator(_RemoteCursor):
    """plyvel's iterator; the server's runs ahead by the entries buffered
    here, and is stepped back over them before any move but the next."""

    def __init__(self, client, fields):
        super().__init__(client, fields)
        self._include_key = fields["include_key"]
        self._include_value = fields["include_value"]
        self._buffer = deque()
        self._ended = False
        self._chunk = _FIRST_CHUNK

    def _shape(self, pair):
        if self._include_key:
            return pair if self._include_value else pair[0]
        return pair[1] if self._include_value else None

    def __iter__(self):
        return self

    def __next__(self):
        if not self._buffer:
            if not self._finalizer.alive:
                raise RuntimeError("Database or iterator is closed")
            if self._ended:
                raise StopIteration
            reply = self._step(Move.NEXT, want=self._chunk)
            self._chunk = min(self._chunk * 2, _MAX_CHUNK)
            self._buffer.extend(reply.entries)
            self._ended = reply.ended
            if not self._buffer:
                raise StopIteration
        return self._shape(self._buffer.popleft())

    def _reposition(self, move, key=None):
        reply = self._step(move, key, rewind=len(self._buffer))
        self._buffer.clear()
        self._ended = False
        self._chunk = _FIRST_CHUNK
        return reply

    def prev(self):
        reply = self._reposition(Move.PREV)
        if reply.ended:
            raise StopIteration
        return self._shape(reply.entries[0])

    def seek_to_start(self):
        self._reposition(Move.TO_START)

    def seek_to_stop(self):
        self._reposition(Move.TO_STOP)

    def seek(self, target):
        self._reposition(Move.SEEK, target)


class RemoteRawIterator(_RemoteCursor):
    """LevelDB's raw iterator: holds the entries from its position forward
    that the server sent, and asks for more by key."""

    def __init__(self, client, fields):
        super().__init__(client, fields)
        self._entries = []
        self._at = 0
        self._ended = True

    def _load(self, move, key=None):
        reply = self._step(move, key, want=_MAX_CHUNK if move is Move.AFTER else _FIRST_CHUNK)
        self._entries = reply.entries
        self._at = 0
        self._ended = reply.ended

    def _check_live(self):
        if not self._finalizer.alive or self._client._engine is not self._conn:
            raise RuntimeError("Database or iterator is closed")

    def valid(self):
        self._check_live()
        return self._at < len(self._entries)

    def _require_valid(self):
        if not self.valid():
            raise IteratorInvalidError("iterator is not positioned on an entry")
        return self._entries[self._at]

    def seek_to_first(self):
        self._load(Move.TO_START)

    def seek_to_last(self):
        self._load(Move.TO_STOP)

    def seek(self, target):
        if not isinstance(target, bytes):
            raise TypeError(f"'target' must be bytes, not {type(target).__name__}")
        self._load(Move.SEEK, target)

    def next(self):
        key = self._require_valid()[0]
        self._at += 1
        if self._at == len(self._entries) and not self._ended:
            self._load(Move.AFTER, key)

    def prev(self):
        key = self._require_valid()[0]
        if self._at > 0:
            self._at -= 1
        else:
            self._load(Move.BEFORE, key)

    def key(self):
        return self._require_valid()[0]

    def value(self):
        return self._require_valid()[1]

    def item(self):
        return self._require_valid()
