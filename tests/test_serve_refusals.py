"""What a server refuses, and how a client fails: malformed, oversized or
foreign messages are answered with a refusal and never take the server
down; a client of another database or of an earlier session is refused; a
malformed write batch changes nothing; with no server, or one that stopped
answering, every call raises lsm.IOError within its timeout."""
import os
import shutil
import signal
import socket

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lsm
from lsm.ipc import announce
from lsm.ipc.client_codec import MAX_BODY_BYTES, decode, encode
from lsm.ipc.client_errors import RefusedError
from lsm.ipc.client_messages import Envelope, ErrorKind, Failure, Get, Reply
from serve_helpers import serving_process, wait_for


@pytest.fixture
def served(tmp_path):
    path = str(tmp_path / "db")
    with lsm.DB(path, create_if_missing=True, serve=True, compactors=0) as db:
        db.put(b"k", b"v")
        yield path, db


@pytest.fixture
def dealer(served):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10000)
    sock.connect(announce.read_announcement(served[0]).request_endpoint)
    yield sock
    sock.close(0)
    ctx.term()


def _ask(sock, frames):
    sock.send_multipart(frames)
    return decode(sock.recv_multipart())


def _envelope(path, **changes):
    fields = dict(db_id=announce.database_identity(path), session=announce.read_announcement(path).session,
                  client=b"c" * 16, request_id=7)
    fields.update(changes)
    return Envelope(**fields)


def _still_serving(path):
    with lsm.connect(path, timeout=10) as client:
        return client.get(b"k")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=60), min_size=1, max_size=4))
def test_malformed_messages_are_refused_and_the_server_goes_on(served, dealer, frames):
    reply = _ask(dealer, frames)
    # (frames that happen to decode are a request of no database's)
    assert isinstance(reply, Failure) and reply.kind is ErrorKind.REFUSED, reply


def test_after_fuzzing_a_normal_client_is_served(served, dealer):
    for frames in ([b"LC\x01\x00\x03", b"\xff" * 30], [b"\x80\x04"], [b"x", b"y", b"z"]):
        assert isinstance(_ask(dealer, frames), Failure)
    assert _still_serving(served[0]) == b"v"
    assert served[1]._server.status()["bad_messages"] == 3


def test_oversized_message_is_dropped_and_the_server_goes_on(served, dealer):
    header = encode(Get(_envelope(served[0]), b"k"))[0]
    dealer.send_multipart([header, b"\x00" * (MAX_BODY_BYTES + 8192)])
    assert _still_serving(served[0]) == b"v"


def test_request_of_an_earlier_session_is_refused(served, dealer):
    reply = _ask(dealer, encode(Get(_envelope(served[0], session=b"\x00" * 16), b"k")))
    assert reply.kind is ErrorKind.REFUSED and "session" in reply.message


def test_request_for_another_database_is_refused(served, dealer):
    reply = _ask(dealer, encode(Get(_envelope(served[0], db_id=b"\x01" * 16), b"k")))
    assert reply.kind is ErrorKind.REFUSED and "another database" in reply.message


def test_unregistered_client_is_refused(served, dealer):
    reply = _ask(dealer, encode(Get(_envelope(served[0]), b"k")))
    assert reply.kind is ErrorKind.REFUSED and "not registered" in reply.message
    assert not isinstance(reply, Reply)


def test_client_of_a_copied_database_is_refused_by_the_original_server(served, tmp_path):
    path, _ = served
    copy = str(tmp_path / "copy")
    shutil.copytree(path, copy, ignore=shutil.ignore_patterns("LOCK"))
    client = lsm.connect(copy, timeout=10)  # the copied SERVER file names the original's server
    with pytest.raises(RefusedError, match="another database"):
        client.get(b"k")
    assert isinstance(RefusedError("x"), lsm.Error)


def test_malformed_write_batch_is_refused_and_changes_nothing(served):
    path, db = served
    with lsm.connect(path) as client:
        conn = client._engine
        with pytest.raises(ValueError, match="malformed write batch"):
            conn.write(b"\x01\x01a\x01b" + b"\x01\x05ab", 2)  # the second put is truncated
        with pytest.raises(ValueError, match="wrong count"):
            conn.write(b"\x01\x01a\x01b", 2)
        with pytest.raises(ValueError, match="exceeds the limit"):
            client.put(b"huge", b"x" * (MAX_BODY_BYTES + 1))
        assert client.get(b"a") is None
        client.put(b"a", b"fine")
    assert db.get(b"a") == b"fine"


def test_errors_keep_their_class_across_the_boundary(served):
    with lsm.connect(served[0]) as client:
        with pytest.raises(TypeError, match="prefix"):
            client.iterator(prefix=b"a", start=b"b")
        raw = client.raw_iterator()
        with pytest.raises(lsm.IteratorInvalidError):
            raw.key()
        raw.close()
        with pytest.raises(RuntimeError):
            raw.seek_to_first()
    with pytest.raises(lsm.ClosedError):
        client.get(b"k")


def test_no_server_is_an_io_error_saying_so(tmp_path):
    path = str(tmp_path / "db")
    lsm.DB(path, create_if_missing=True, compactors=0).close()
    with pytest.raises(lsm.IOError, match="no server"):
        lsm.connect(path, timeout=1)
    with pytest.raises(lsm.IOError):
        lsm.connect(str(tmp_path / "absent"), timeout=1)


def _state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_stopped_server_makes_calls_raise_within_the_timeout_then_serve_again(tmp_path):
    path = str(tmp_path / "db")
    with serving_process(path) as server:
        client = lsm.connect(path, timeout=1)
        client.put(b"a", b"1")
        snapshot = client.snapshot()
        server.send_signal(signal.SIGSTOP)
        wait_for(lambda: _state(server.pid) == "T", what="the server stopping")
        with pytest.raises(lsm.IOError, match="did not answer within 1s"):
            client.get(b"a")
        with pytest.raises(lsm.IOError):
            client.put(b"b", b"2")
        server.send_signal(signal.SIGCONT)
        assert client.get(b"a") == b"1"
        with pytest.raises(lsm.IOError, match="open a new one"):
            snapshot.get(b"a")
        assert client.snapshot().get(b"a") == b"1"
        client.close()
    assert os.path.exists(os.path.join(path, "SERVER"))  # a killed server cannot withdraw it
    with pytest.raises(lsm.IOError, match="cannot be reached"):
        lsm.connect(path, timeout=1)


def test_clients_that_stall_or_never_read_block_no_other_client(served, dealer):
    path, db = served
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # connects, never sends its token
    silent.connect(announce.read_announcement(path).liveness_path)
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # sends half a token
    half.connect(announce.read_announcement(path).liveness_path)
    half.send(b"x" * 5)
    for i in range(200):  # requests whose replies it never reads
        dealer.send_multipart(encode(Get(_envelope(path, request_id=i), b"k")))
    with lsm.connect(path, timeout=10) as client:
        it = client.iterator()
        assert next(it) == (b"k", b"v")
        client.put(b"k2", b"v2")
        with lsm.connect(path, timeout=10) as other:  # while the first holds an open iterator
            assert other.get(b"k2") == b"v2"
    silent.close()
    half.close()
