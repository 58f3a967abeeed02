"""Endpoint directories: a writer that dies cannot remove its ipc:// directory,
so the next pool sweeps it -- and never one whose writer still listens."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest
import zmq

import lsm
from lsm.ipc.endpoint import PREFIX, SOCKET_NAME, UNBOUND_GRACE_SECONDS, endpoint_of, sweep_dead_endpoint_dirs


@pytest.fixture
def short_tmp():
    # Unix socket paths are limited to ~100 bytes: pytest's tmp_path may be too long.
    path = tempfile.mkdtemp(prefix="ep-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def endpoint_dir(parent, name):
    path = os.path.join(parent, PREFIX + name)
    os.mkdir(path, 0o700)
    return path


def test_socket_left_by_a_dead_listener_is_swept(short_tmp):
    dead = endpoint_dir(short_tmp, "dead")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(dead, SOCKET_NAME))
    s.listen()
    s.close()  # the file stays, as after a SIGKILL
    assert os.path.exists(os.path.join(dead, SOCKET_NAME))
    assert sweep_dead_endpoint_dirs(short_tmp) == [dead]
    assert not os.path.exists(dead)


def test_live_writer_keeps_its_endpoint_and_still_takes_connections(short_tmp):
    live = endpoint_dir(short_tmp, "live")
    ctx = zmq.Context()
    try:
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.bind(endpoint_of(live))
        assert sweep_dead_endpoint_dirs(short_tmp) == []
        assert os.path.exists(os.path.join(live, SOCKET_NAME))
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(endpoint_of(live))
        dealer.send(b"hello")
        assert router.poll(5000)
        assert router.recv_multipart()[1] == b"hello"
        dealer.close()
        router.close()
    finally:
        ctx.destroy(0)


def test_directory_without_a_socket_is_swept_only_once_old(short_tmp):
    young = endpoint_dir(short_tmp, "young")
    old = endpoint_dir(short_tmp, "old")
    past = time.time() - UNBOUND_GRACE_SECONDS - 10
    os.utime(old, (past, past))
    unrelated = os.path.join(short_tmp, "not-an-endpoint")
    os.mkdir(unrelated)
    os.utime(unrelated, (past, past))
    assert sweep_dead_endpoint_dirs(short_tmp) == [old]
    assert os.path.isdir(young) and os.path.isdir(unrelated)


def test_pool_of_a_killed_writer_leaves_a_directory_the_next_pool_removes(short_tmp, tmp_path, monkeypatch):
    db_path = str(tmp_path / "db")
    child = textwrap.dedent(f"""
        import os, lsm
        db = lsm.DB({db_path!r}, create_if_missing=True, compactors=1)
        db.put(b"k", b"v")
        os._exit(0)
    """)
    env = dict(os.environ, TMPDIR=short_tmp)
    subprocess.run([sys.executable, "-c", child], env=env, check=True, timeout=60)
    left = [n for n in os.listdir(short_tmp) if n.startswith(PREFIX)]
    assert len(left) == 1, left  # the killed writer could not clean up

    monkeypatch.setattr(tempfile, "tempdir", short_tmp)
    db = lsm.DB(db_path, compactors=1)
    try:
        assert db.get(b"k") == b"v"
        mine = [n for n in os.listdir(short_tmp) if n.startswith(PREFIX)]
        assert left[0] not in mine and len(mine) == 1
    finally:
        db.close()
    assert [n for n in os.listdir(short_tmp) if n.startswith(PREFIX)] == []
