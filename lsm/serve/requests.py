"""Carrying out one client request against an open DB, and each client's
snapshots and iterators. Knows the DB's public methods and the WriteBatch
format; no sockets, no threads of its own.

Writes reach the engine's group commit as the client encoded them
(``engine.write(records, count, sync)``), after the records are checked to
be exactly `count` well-formed operations: a malformed batch would otherwise
be in the WAL, where recovery stops at it.
"""
import itertools
import os
import logging
import threading

from .. import batch as batch_codec
from ..errors import ClosedError, DecodeError
from ..ipc.client_errors import failure_of
from ..ipc.client_messages import Close, Get, Move, OpenIterator, OpenSnapshot, Ping, Reply, Step, Welcome, Write

log = logging.getLogger(__name__)

MAX_CHUNK_ENTRIES = 4096
MAX_CHUNK_BYTES = 1 << 20
_MAX_BATCH_COUNT = (1 << 32) - 1  # the batch header's count is a fixed32


class ClientState:
    """One connected client: what it holds open, and whether a request of
    its is being carried out (a client has one in flight at a time)."""

    def __init__(self, token: bytes):
        self.token = token
        self.lock = threading.Lock()
        self.busy = False
        self.gone = False
        self.remote = False  # a TCP client: gone at its disconnect notice
        self.resources = {}  # handle -> (kind, object, include_key, include_value)

    def release_all(self):
        """Close every snapshot and iterator the client left open."""
        with self.lock:
            self.gone = True
            resources, self.resources = self.resources, {}
        for _, obj, _, _ in resources.values():
            _close_quietly(obj)


def _close_quietly(obj):
    try:
        obj.close()
    except Exception:  # noqa: BLE001 - a closed DB has released it already
        log.debug("closing a client's %s failed", type(obj).__name__, exc_info=True)


class Requests:
    """Carries out requests against `db` for any number of clients."""

    def __init__(self, db, db_id, session):
        self.db = db
        self.db_id = db_id
        self.session = session
        self._handles = itertools.count(1)
        self._counters_lock = threading.Lock()  # several workers count at once
        self.counters = {"writes": 0, "operations": 0, "reads": 0}

    def carry_out(self, client: ClientState, msg):
        """The Reply or Failure answering `msg`; never raises."""
        request_id = msg.envelope.request_id
        try:
            with client.lock:
                if client.gone:
                    raise ClosedError("client disconnected")
                return self._carry_out(client, msg)
        except Exception as exc:  # noqa: BLE001 - every error goes back to the client, with its class
            if not isinstance(exc, (ValueError, TypeError, RuntimeError)) and type(exc).__module__ != "lsm.errors":
                log.warning("client request %s failed", type(msg).__name__, exc_info=True)
            return failure_of(exc, request_id)

    def _carry_out(self, client, msg):
        request_id = msg.envelope.request_id
        if isinstance(msg, Write):
            self._write(msg)
            return Reply(request_id)
        if isinstance(msg, Get):
            with self._counters_lock:
                self.counters["reads"] += 1
            source = self._resource(client, msg.snapshot, "snapshot")[1] if msg.snapshot else self.db
            return Reply(request_id, value=source.get(msg.key, fill_cache=msg.fill_cache))
        if isinstance(msg, OpenSnapshot):
            view = self.db if msg.prefix is None else self.db.prefixed_db(msg.prefix)
            return Reply(request_id, handle=self._keep(client, "snapshot", view.snapshot()))
        if isinstance(msg, OpenIterator):
            return Reply(request_id, handle=self._open_iterator(client, msg))
        if isinstance(msg, Step):
            return self._step(client, msg)
        if isinstance(msg, Close):
            entry = client.resources.pop(msg.handle, None)
            if entry is not None:
                entry[1].close()
            return Reply(request_id)
        if isinstance(msg, Ping):
            return Welcome(request_id, self.db_id, self.session, os.getpid())
        raise ValueError(f"{type(msg).__name__} is not a request")

    def _write(self, msg):
        count = msg.count
        if count > _MAX_BATCH_COUNT:
            raise ValueError(f"write batch of {count} operations: at most {_MAX_BATCH_COUNT}")
        if count == 0:
            if msg.records:
                raise ValueError(f"write batch of 0 operations carries {len(msg.records)} bytes")
            return
        try:
            batch_codec.decode_batch(batch_codec.encode_header(0, count) + msg.records)
        except DecodeError as exc:
            raise ValueError(f"malformed write batch: {exc}") from None
        self.db._live().write(msg.records, count, msg.sync)
        with self._counters_lock:
            self.counters["writes"] += 1
            self.counters["operations"] += count

    def _keep(self, client, kind, obj, include_key=True, include_value=True):
        handle = next(self._handles)
        client.resources[handle] = (kind, obj, include_key, include_value)
        return handle

    def _resource(self, client, handle, kind):
        entry = client.resources.get(handle)
        if entry is None or entry[0] != kind:
            raise RuntimeError(f"no open {kind} with handle {handle} (closed, or of an earlier server session)")
        return entry

    def _open_iterator(self, client, msg):
        if msg.snapshot:
            source = self._resource(client, msg.snapshot, "snapshot")[1]
        elif msg.db_prefix is not None:
            source = self.db.prefixed_db(msg.db_prefix)
        else:
            source = self.db
        if msg.raw:
            return self._keep(client, "raw", source.raw_iterator(fill_cache=msg.fill_cache))
        it = source.iterator(reverse=msg.reverse, start=msg.start, stop=msg.stop, include_start=msg.include_start,
                             include_stop=msg.include_stop, prefix=msg.prefix, include_key=msg.include_key,
                             include_value=msg.include_value, fill_cache=msg.fill_cache)
        return self._keep(client, "iterator", it, msg.include_key, msg.include_value)

    def _step(self, client, msg):
        entry = client.resources.get(msg.handle)
        if entry is None or entry[0] == "snapshot":
            raise RuntimeError("Database or iterator is closed")
        kind, it, include_key, include_value = entry
        want = min(max(msg.want, 1), MAX_CHUNK_ENTRIES)
        if kind == "raw":
            entries, ended = _step_raw(it, msg.move, msg.key, want)
        else:
            entries, ended = _step_iterator(it, msg.move, msg.key, want, msg.rewind, include_key, include_value)
        return Reply(msg.envelope.request_id, entries=entries, ended=ended)


def _pair(item, include_key, include_value):
    if include_key and include_value:
        return item
    if include_key:
        return (item, b"")
    return (b"", item if include_value else b"")


def _step_iterator(it, move, key, want, rewind, include_key, include_value):
    """plyvel's iterator: undo the `rewind` entries the client did not use,
    then move. NEXT reads up to `want` entries (fewer once a chunk reaches
    MAX_CHUNK_BYTES); ended: the iterator raised StopIteration."""
    for _ in range(rewind):
        try:
            it.prev()
        except StopIteration:
            break
    if move is Move.NEXT:
        entries, size = [], 0
        for _ in range(want):
            try:
                item = next(it)
            except StopIteration:
                return entries, True
            pair = _pair(item, include_key, include_value)
            entries.append(pair)
            size += len(pair[0]) + len(pair[1])
            if size >= MAX_CHUNK_BYTES:
                break
        return entries, False
    if move is Move.PREV:
        try:
            return [_pair(it.prev(), include_key, include_value)], False
        except StopIteration:
            return [], True
    if move is Move.SEEK:
        it.seek(_need_key(key))
    elif move is Move.TO_START:
        it.seek_to_start()
    elif move is Move.TO_STOP:
        it.seek_to_stop()
    else:
        raise ValueError(f"{move.name} is not a move of an iterator")
    return [], False


def _step_raw(it, move, key, want):
    """A raw iterator: reposition, then read up to `want` entries forward;
    ended: the iterator ran off the end while reading."""
    if move is Move.TO_START:
        it.seek_to_first()
    elif move is Move.TO_STOP:
        it.seek_to_last()
    elif move is Move.SEEK:
        it.seek(_need_key(key))
    elif move is Move.AFTER:
        it.seek(_need_key(key))
        if it.valid() and it.key() == key:
            it.next()
    elif move is Move.BEFORE:
        it.seek(_need_key(key))
        if it.valid():
            it.prev()
        else:
            it.seek_to_last()
    else:
        raise ValueError(f"{move.name} is not a move of a raw iterator")
    entries, size = [], 0
    while len(entries) < want and size < MAX_CHUNK_BYTES and it.valid():
        pair = it.item()
        entries.append(pair)
        size += len(pair[0]) + len(pair[1])
        it.next()
    return entries, not it.valid()


def _need_key(key):
    if key is None:
        raise ValueError("this move needs a key")
    return key
