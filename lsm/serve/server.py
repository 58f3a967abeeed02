"""The server: a ROUTER socket for client requests and a Unix socket that
tells the server when a client is gone, on background threads of the process
that holds the DB. Knows ZeroMQ, sockets and threads; what a request does is
lsm.serve.requests'.

Threads:
  - the I/O thread owns both sockets. It decodes each request, refuses it if
    it is malformed, of another database, of an earlier session, or from a
    client with a request already in flight, and queues it; it sends the
    replies the workers leave it.
  - write workers hand batches to the engine's group commit (several waiting
    at once are merged into one WAL record there) and read workers serve
    gets and iterators, so reads go on while writes wait in a stall.

A client has at most one request in flight, so each queue holds at most one
request per client (max_clients bounds both): a client that stops reading
its replies, or never sends the rest of a message, holds no thread and no
queue slot beyond its own. Backpressure is the engine's: a write waits in
the stall as a local write would, and its client waits for the reply.

A client connects to the liveness socket first and sends its token; the
kernel closes that connection when the client's process ends, however it
ends, and the server then closes the client's snapshots and iterators, which
releases the versions they pinned.
"""
import collections
import logging
import os
import queue
import secrets
import shutil
import socket
import threading

import zmq

from ..ipc import announce as announcement
from ..ipc.client_codec import MAX_BODY_BYTES, decode, encode
from ..ipc.client_errors import failure_of
from ..ipc.client_messages import ErrorKind, Failure, Ping, Write
from ..ipc.curve_keys import allowed_clients, server_keys
from ..ipc.endpoint import make_endpoint_dir
from ..ipc.messages import ProtocolError
from .requests import ClientState, Requests

log = logging.getLogger(__name__)

TOKEN_BYTES = 16
HEARTBEAT_MS = 1000  # TCP peers: a peer silent for 5 heartbeats is disconnected
_POLL_MS = 200
_FRAME_LIMIT = MAX_BODY_BYTES + 4096  # a larger frame ends its sender's connection


class Server:
    """tcp: "HOST:PORT" to serve remote clients as well, over TCP with CURVE
    (lsm.ipc.curve_keys): the server's key pair and the client allow-list
    are the database directory's; clear traffic and unlisted keys fail the
    handshake. A TCP client's routing id is its token; it is registered by
    its first request (a Ping) under the descriptor that request came in on,
    and is gone when the socket monitor reports that descriptor
    disconnected (heartbeats make a vanished host count as disconnected):
    this stands in for the liveness socket."""

    def __init__(self, db, *, tcp=None, write_threads=4, read_threads=2, max_clients=256):
        self.db = db
        self.db_path = db.name
        self.db_id = announcement.database_identity(self.db_path)
        self.session = secrets.token_bytes(16)
        self.requests = Requests(db, self.db_id, self.session)
        self.tcp = tcp
        self.tcp_endpoint = None
        self.public_key = None
        self._tcp_router = None
        self._tcp_monitor = None
        self._tcp_peers = {}  # descriptor -> token of the TCP client on it
        self._auth = None
        self.max_clients = max_clients
        self.counters = collections.Counter()
        self._clients = {}  # token -> ClientState
        self._writes = queue.Queue(max_clients)
        self._reads = queue.Queue(max_clients)
        self._outbox = collections.deque()
        self._stopping = threading.Event()
        self._threads = []
        self._n_write, self._n_read = write_threads, read_threads
        self._dir = None

    @property
    def clients(self) -> int:
        return len(self._clients)

    # ------------------------------------------------------------ lifecycle
    def start(self):
        self._dir = make_endpoint_dir()
        ann = announcement.Announcement(self._dir, self.session, os.getpid())
        self._ctx = zmq.Context()
        self._router = self._ctx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.setsockopt(zmq.MAXMSGSIZE, _FRAME_LIMIT)
        self._router.bind(ann.request_endpoint)
        if self.tcp is not None:
            self._bind_tcp()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(ann.liveness_path)
        self._listener.listen(64)
        self._listener.setblocking(False)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        announcement.announce(self.db_path, ann)
        self._spawn("lsm-serve-io", self._io_loop)
        for i in range(self._n_write):
            self._spawn(f"lsm-serve-write-{i}", self._work, self._writes)
        for i in range(self._n_read):
            self._spawn(f"lsm-serve-read-{i}", self._work, self._reads)
        return self

    def _bind_tcp(self):
        from zmq.auth.thread import ThreadAuthenticator
        public, secret = server_keys(self.db_path)
        self.public_key = public
        # The authenticator first: a CURVE socket with no ZAP handler lets every key in.
        self._auth = ThreadAuthenticator(self._ctx)
        self._auth.start()
        self._auth.configure_curve_callback("*", _AllowList(allowed_clients(self.db_path), self.counters))
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, _FRAME_LIMIT)
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
        sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5 * HEARTBEAT_MS)
        endpoint = self.tcp if self.tcp.startswith("tcp://") else f"tcp://{self.tcp}"
        sock.bind(endpoint)
        self.tcp_endpoint = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self._tcp_monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._tcp_router = sock

    def _spawn(self, name, target, *args):
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def close(self):
        """Stop serving: withdraw the announcement, end the threads, release
        every client's snapshots and iterators. The DB stays open."""
        if self._dir is None or self._stopping.is_set():
            return
        announcement.withdraw(self.db_path, self.session)
        if self._auth is not None:
            self._auth.stop()  # before the I/O thread ends the context its sockets belong to
        self._stopping.set()
        for q, n in ((self._writes, self._n_write), (self._reads, self._n_read)):
            for _ in range(n):
                q.put(None)
        self._wake()
        for t in self._threads:
            t.join()
        for client in list(self._clients.values()):
            client.release_all()
        self._clients.clear()
        os.close(self._wake_r)
        os.close(self._wake_w)
        shutil.rmtree(self._dir, ignore_errors=True)

    def status(self) -> dict:
        return {"clients": self.clients, **self.requests.counters, **self.counters}

    # ------------------------------------------------------------ the I/O thread
    def _io_loop(self):
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        if self._tcp_router is not None:
            poller.register(self._tcp_router, zmq.POLLIN)
            poller.register(self._tcp_monitor, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        poller.register(self._listener.fileno(), zmq.POLLIN)  # raw descriptors come back as ints
        pending = {}  # fd -> socket that has not sent its token yet
        live = {}  # fd -> (socket, ClientState)
        try:
            while not self._stopping.is_set():
                events = dict(poller.poll(_POLL_MS))
                if self._router in events:
                    self._receive(self._router)
                if self._tcp_router is not None and self._tcp_router in events:
                    self._receive(self._tcp_router)
                if self._tcp_monitor is not None and self._tcp_monitor in events:
                    self._tcp_disconnected()
                if self._listener.fileno() in events:
                    self._accept(poller, pending)
                for fd in events:
                    if fd in pending:
                        self._register(poller, pending, live, fd)
                    elif fd in live:
                        self._check_alive(poller, live, fd)
                self._send_replies()
        except Exception:  # noqa: BLE001 - serving ends; the DB itself goes on
            log.exception("server I/O thread failed; no longer serving %s", self.db_path)
        finally:
            for sock in list(pending.values()) + [s for s, _ in live.values()]:
                sock.close()
            self._listener.close()
            self._router.close(0)
            if self._tcp_router is not None:
                self._tcp_router.disable_monitor()
                self._tcp_monitor.close(0)
                self._tcp_router.close(0)
            self._ctx.term()

    def _accept(self, poller, pending):
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            pending[sock.fileno()] = sock
            poller.register(sock.fileno(), zmq.POLLIN)

    def _register(self, poller, pending, live, fd):
        sock = pending.pop(fd)
        try:
            token = sock.recv(TOKEN_BYTES + 1)
        except BlockingIOError:
            pending[fd] = sock
            return
        except OSError:
            token = b""
        if len(token) != TOKEN_BYTES or token in self._clients or len(self._clients) >= self.max_clients:
            if token:
                log.warning("server: refused a client connection (%s)",
                            "too many clients" if len(self._clients) >= self.max_clients else "bad token")
            self.counters["clients_refused"] += 1
            poller.unregister(fd)
            sock.close()
            return
        client = ClientState(token)
        self._clients[token] = client
        live[fd] = (sock, client)
        self.counters["clients_connected"] += 1
        try:
            sock.send(b"\x01")
        except OSError:
            self._check_alive(poller, live, fd)

    def _check_alive(self, poller, live, fd):
        sock, client = live[fd]
        try:
            data = sock.recv(64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            return  # a client never sends more than its token; ignore
        del live[fd]
        poller.unregister(fd)
        sock.close()
        self._clients.pop(client.token, None)
        # Closing waits for a request of the client's still in a worker.
        threading.Thread(target=client.release_all, name="lsm-serve-release", daemon=True).start()

    def _receive(self, router):
        for _ in range(1024):
            try:
                frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity = frames[0].bytes
            try:
                msg = decode([f.buffer for f in frames[1:]])
            except ProtocolError as exc:
                self.counters["bad_messages"] += 1
                log.warning("server: refused a malformed request: %s", exc)
                self._reply(router, identity, Failure(0, ErrorKind.REFUSED, f"malformed request: {exc}"))
                continue
            if router is self._tcp_router and isinstance(msg, Ping):
                self._tcp_register(identity, frames[1].get(zmq.SRCFD))
            self._dispatch(router, identity, msg)

    def _tcp_register(self, token, fd):
        if token in self._clients or len(token) != TOKEN_BYTES or len(self._clients) >= self.max_clients:
            return  # its requests are refused as unregistered
        client = ClientState(token)
        client.remote = True
        self._clients[token] = client
        self._tcp_peers[fd] = token
        self.counters["clients_connected"] += 1

    def _tcp_disconnected(self):
        from zmq.utils.monitor import recv_monitor_message
        while self._tcp_monitor.poll(0):
            event = recv_monitor_message(self._tcp_monitor)
            token = self._tcp_peers.pop(int(event["value"]), None)
            client = self._clients.pop(token, None) if token is not None else None
            if client is not None:
                threading.Thread(target=client.release_all, name="lsm-serve-release", daemon=True).start()

    def _dispatch(self, router, identity, msg):
        env = getattr(msg, "envelope", None)
        if env is None:
            self.counters["bad_messages"] += 1
            self._reply(router, identity, Failure(0, ErrorKind.REFUSED, f"{type(msg).__name__} is not a request"))
            return
        refusal = None
        client = self._clients.get(env.client)
        if router is self._tcp_router and env.client != identity:
            refusal = "a TCP client's token must be its routing id"
        elif isinstance(msg, Ping):
            pass  # how a TCP client learns the database's identity and the session
        elif env.db_id != self.db_id:
            refusal = f"this server serves another database than the client's (not the one at {self.db_path})"
        elif env.session != self.session:
            refusal = "the client's server session has ended: the database is served by a new session"
        elif client is None and not isinstance(msg, Ping):
            refusal = "the client is not registered (liveness socket, or a TCP client's first Ping)"
        elif client is not None and client.busy:
            refusal = "the client has a request in flight already"
        if refusal is not None:
            self.counters["refused"] += 1
            self._reply(router, identity, Failure(env.request_id, ErrorKind.REFUSED, refusal))
            return
        if client is None:  # a Ping from an unregistered client
            client = ClientState(env.client)
        client.busy = True
        try:
            (self._writes if isinstance(msg, Write) else self._reads).put_nowait((router, identity, client, msg))
        except queue.Full:  # more clients than max_clients at once: cannot happen, but never block here
            client.busy = False
            self._reply(router, identity, Failure(env.request_id, ErrorKind.IO_ERROR, "server busy"))

    def _send_replies(self):
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        outbox = self._outbox
        while outbox:
            router, identity, frames = outbox.popleft()
            try:
                router.send_multipart([identity] + frames, zmq.NOBLOCK)
            except zmq.ZMQError:  # the client is gone or not reading: its reply is dropped
                self.counters["replies_dropped"] += 1

    # ------------------------------------------------------------ workers
    def _reply(self, router, identity, msg):
        try:
            frames = encode(msg)
        except ValueError as exc:  # e.g. a value too large for one message
            frames = encode(failure_of(exc, msg.request_id))
        self._outbox.append((router, identity, frames))
        self._wake()

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # a wake-up is pending already, or we are closing

    def _work(self, q):
        while True:
            item = q.get()
            if item is None:
                return
            router, identity, client, msg = item
            reply = self.requests.carry_out(client, msg)
            client.busy = False
            self._reply(router, identity, reply)


class _AllowList:
    """The ZAP credentials provider: a client's CURVE key must be listed."""

    def __init__(self, keys, counters):
        self.keys = keys
        self.counters = counters

    def callback(self, domain, key):
        if key in self.keys:
            return True
        self.counters["keys_refused"] += 1
        log.warning("server: refused a TCP client whose key %s is not on the allow-list", key.decode())
        return False
