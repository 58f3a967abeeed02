"""Serving over TCP with CURVE, across network namespaces on this machine:
a client whose key is on the database's allow-list reads and writes; one
with another key, and one speaking in clear, get no answer and raise
lsm.IOError within their timeout; the refusals are counted."""
import os
import subprocess
import sys
import uuid

import pytest
import zmq

from lsm.ipc import curve_keys
from serve_helpers import ROOT, read_until

SERVER_ADDRESS, CLIENT_ADDRESS, PORT = "10.231.0.1", "10.231.0.2", 7411

TCP_SERVER = r"""
import sys, time
import lsm
db = lsm.DB(sys.argv[1], create_if_missing=True, serve=sys.argv[2], compactors=0)
print("serving", db._server.tcp_endpoint, db._server.public_key.decode(), flush=True)
sys.stdin.readline()
print(db.get(b"remote").decode(), db._server.status().get("keys_refused", 0), flush=True)
db.close()
"""

TCP_CLIENT = r"""
import sys, time
import zmq
import lsm
from lsm.ipc.client_codec import encode
from lsm.ipc.client_messages import Envelope, Ping
endpoint, server_key, public, secret, stranger_public, stranger_secret = sys.argv[1:]
with lsm.connect(endpoint, timeout=10, server_key=server_key.encode(), keypair=(public.encode(), secret.encode())) as c:
    c.put(b"remote", b"written")
    with c.write_batch() as wb:
        wb.put(b"r1", b"1")
        wb.put(b"r2", b"2")
    print("listed", c.get(b"remote").decode(), list(c.iterator(prefix=b"r", include_value=False)), flush=True)
try:
    lsm.connect(endpoint, timeout=1, server_key=server_key.encode(),
                keypair=(stranger_public.encode(), stranger_secret.encode()))
    print("stranger connected", flush=True)
except lsm.IOError as exc:
    print("stranger refused", flush=True)
ctx = zmq.Context()
clear = ctx.socket(zmq.DEALER)
clear.setsockopt(zmq.LINGER, 0)
clear.connect(endpoint)
clear.send_multipart(encode(Ping(Envelope(b"", b"", b"c" * 16, 1))))
print("clear", "answered" if clear.poll(1000) else "unanswered", flush=True)
"""


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def namespaces():
    """Two network namespaces joined by a veth pair: the server's and the client's."""
    tag = uuid.uuid4().hex[:6]
    server_ns, client_ns = f"lsm-srv-{tag}", f"lsm-cli-{tag}"
    _ip("netns", "add", server_ns)
    try:
        _ip("netns", "add", client_ns)
        _ip("-n", server_ns, "link", "add", "veth-srv", "type", "veth", "peer", "name", "veth-cli", "netns", client_ns)
        for ns, dev, address in ((server_ns, "veth-srv", SERVER_ADDRESS), (client_ns, "veth-cli", CLIENT_ADDRESS)):
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield server_ns, client_ns
    finally:
        for ns in (client_ns, server_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _in_namespace(ns, script, *args, stdin=False):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", script, *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.PIPE if stdin else None)


def test_listed_key_is_served_and_strangers_and_clear_traffic_are_refused(tmp_path, namespaces):
    server_ns, client_ns = namespaces
    path = str(tmp_path / "db")
    os.makedirs(path)
    listed, stranger = zmq.curve_keypair(), zmq.curve_keypair()
    curve_keys.allow_client(path, listed[0])
    server = _in_namespace(server_ns, TCP_SERVER, path, f"{SERVER_ADDRESS}:{PORT}", stdin=True)
    try:
        _, endpoint, server_key = read_until(server, lambda line: line.startswith("serving"))[-1].split()
        assert os.stat(os.path.join(path, curve_keys.SERVER_KEYS)).st_mode & 0o077 == 0
        client = _in_namespace(client_ns, TCP_CLIENT, endpoint, server_key, listed[0].decode(), listed[1].decode(),
                               stranger[0].decode(), stranger[1].decode())
        out, err = client.communicate(timeout=60)
        assert client.returncode == 0, err[-3000:]
        assert out.splitlines() == ["listed written [b'r1', b'r2', b'remote']", "stranger refused", "clear unanswered"]
        out, err = server.communicate("done\n", timeout=30)
        assert server.returncode == 0, err[-3000:]
        value, keys_refused = out.split()
        assert value == "written" and int(keys_refused) >= 1
    finally:
        server.kill()
        server.wait(10)


def test_key_files_readable_by_others_are_refused(tmp_path):
    curve_keys.server_keys(str(tmp_path))
    os.chmod(tmp_path / curve_keys.SERVER_KEYS, 0o644)
    with pytest.raises(OSError, match="readable by others"):
        curve_keys.server_keys(str(tmp_path))
