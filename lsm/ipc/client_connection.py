"""A client's connection to the server of one database: the DEALER socket
its requests go through, and the liveness connection whose closing tells the
server the client is gone (and tells the client the server is). Knows ZeroMQ
and sockets; the objects a user holds are lsm.client's.

Every call returns a reply or raises within `timeout` seconds: an
``lsm.IOError`` when the server does not answer, is gone, or was never
there. The connection is then dropped; the next call reads the database's
announcement again and connects to whatever server serves it now, under a
new token. The server released what the old token held when its liveness
connection closed, so snapshots and iterators opened before belong to the
old connection: ``generation`` tells them apart.

A remote client (``tcp://HOST:PORT``) authenticates with CURVE: it pins the
server's public key and presents its own key pair, which must be on the
server's allow-list; it learns the database's identity and the session from
the server's Welcome. ZeroMQ heartbeats stand in for the liveness socket.
"""
import itertools
import os
import secrets
import socket
import threading
import time

import zmq

from ..errors import ClosedError, IOError
from . import announce
from .client_codec import decode, encode
from .client_errors import exception_of
from .client_messages import Close, Envelope, ErrorKind, Failure, Ping, Welcome, Write
from .messages import ProtocolError

TOKEN_BYTES = 16
HEARTBEAT_MS = 1000


class Connection:
    def __init__(self, path, timeout, server_key=None, keypair=None):
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.path = path
        self.timeout = float(timeout)
        self.remote = path.startswith("tcp://")
        if self.remote:
            if server_key is None or keypair is None:
                raise ValueError("a tcp:// server needs server_key= (its CURVE public key) and "
                                 "keypair= (this client's (public, secret), on the server's allow-list)")
            self._curve = (bytes(server_key), bytes(keypair[0]), bytes(keypair[1]))
            self.db_id = None  # the server's Welcome says
        else:
            try:
                self.db_id = announce.database_identity(path)
            except OSError as exc:
                raise IOError(f"{path}: cannot connect: {exc.strerror}") from None
        self.token = None
        self.generation = 0
        self._session = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._ctx = zmq.Context()
        self._sock = None
        self._alive = None
        self._orphans = []  # (generation, handle) collected unclosed: closed at the next call
        self.closed = False
        with self._lock:
            self._connect()

    # ------------------------------------------------------------ connecting
    def _connect(self):
        if self.remote:
            self._connect_tcp()
            return
        ann = announce.read_announcement(self.path)
        self.token = secrets.token_bytes(TOKEN_BYTES)
        alive = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        alive.settimeout(self.timeout)
        try:
            alive.connect(ann.liveness_path)
            alive.sendall(self.token)
            ack = alive.recv(1)
        except OSError as exc:
            alive.close()
            raise IOError(f"{self.path}: the server announced there (pid {ann.pid}) cannot be reached: "
                          f"{exc.strerror or exc}") from None
        if ack != b"\x01":
            alive.close()
            raise IOError(f"{self.path}: the server (pid {ann.pid}) refused the connection "
                          "(too many clients, or it is closing)")
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(ann.request_endpoint)
        self._sock, self._alive = sock, alive
        self._session = ann.session
        self.generation += 1
        self._orphans.clear()

    def _connect_tcp(self):
        self.token = secrets.token_bytes(TOKEN_BYTES)
        server_key, public, secret = self._curve
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, self.token)
        sock.setsockopt(zmq.CURVE_SERVERKEY, server_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
        sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5 * HEARTBEAT_MS)
        sock.connect(self.path)
        self._sock, self._alive, self._session = sock, None, b""
        welcome = self._exchange(lambda env: Ping(env))
        if not isinstance(welcome, Welcome):
            self._drop()
            raise IOError(f"{self.path}: the server answered a Ping with {type(welcome).__name__}")
        self.db_id, self._session = welcome.db_id, welcome.session
        self.generation += 1
        self._orphans.clear()

    def _drop(self):
        if self._sock is not None:
            self._sock.close(0)
            if self._alive is not None:
                self._alive.close()
            self._sock = self._alive = None

    def close(self):
        with self._lock:
            self.closed = True
            self._drop()
            self._ctx.term()

    # ------------------------------------------------------------ calls
    def write(self, records, count, sync=False):
        """engine.write's signature, so lsm.db.WriteBatch writes through it."""
        self.call(lambda env: Write(env, records, count, bool(sync)))

    def call(self, make, generation=None):
        """Send make(envelope) and return its Reply; raise the Failure's
        exception, or IOError. `generation`: the handle's, refused with
        IOError if the server has been replaced since."""
        with self._lock:
            if self.closed:
                raise ClosedError("Database is closed")
            if self._sock is None:
                self._connect()
            if generation is not None and generation != self.generation:
                raise IOError(f"{self.path}: the connection to the server was lost (server restarted, or it "
                              "did not answer) since this snapshot or iterator was opened; open a new one")
            while self._orphans:
                gen, handle = self._orphans.pop()
                if gen == self.generation:
                    self._exchange(lambda env: Close(env, handle))
            return self._exchange(make)

    def forget(self, generation, handle):
        """A handle collected unclosed: closed at the next call (the collector
        may run while this thread holds the lock)."""
        self._orphans.append((generation, handle))

    def _exchange(self, make):
        request_id = next(self._ids)
        env = Envelope(self.db_id or b"", self._session, self.token, request_id)
        self._sock.send_multipart(encode(make(env)))
        deadline = time.monotonic() + self.timeout
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        if self._alive is not None:
            poller.register(self._alive, zmq.POLLIN)
        while True:
            remaining = deadline - time.monotonic()
            events = dict(poller.poll(max(0, int(remaining * 1000)))) if remaining > 0 else {}
            if not events:
                self._drop()
                refused = " (or refused this client's key)" if self.remote else ""
                raise IOError(f"{self.path}: the server did not answer within {self.timeout:g}s{refused}")
            if self._sock in events:
                try:
                    reply = decode(self._sock.recv_multipart())
                except ProtocolError as exc:
                    self._drop()
                    raise IOError(f"{self.path}: unreadable reply from the server: {exc}") from None
                if reply.request_id not in (request_id, 0):
                    continue  # the answer to a call that timed out
                if isinstance(reply, Failure):
                    if reply.kind is ErrorKind.REFUSED:
                        self._drop()
                    raise exception_of(reply)
                return reply
            if self._alive is not None and self._alive.fileno() in events and not self._peek_alive():
                self._drop()
                raise IOError(f"{self.path}: the server closed or died; "
                              "the next call connects to a new server if one is serving")

    def _peek_alive(self):
        try:
            return self._alive.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False
