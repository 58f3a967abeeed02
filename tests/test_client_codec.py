"""The client protocol codec: every message round-trips; damaged, foreign,
oversized or pickled frames are refused with a ProtocolError saying what was
wrong, and nothing else ever escapes the decoder."""
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsm.ipc.client_codec import MAGIC, MAX_BODY_BYTES, decode, encode
from lsm.ipc.client_messages import (
    CLIENT_PROTOCOL_VERSION,
    MESSAGE_TYPES,
    Close,
    Envelope,
    ErrorKind,
    Failure,
    Get,
    Move,
    OpenIterator,
    OpenSnapshot,
    Ping,
    Reply,
    Step,
    Welcome,
    Write,
)
from lsm.ipc.messages import ProtocolError

u64 = st.integers(min_value=0, max_value=2**64 - 1)
blobs = st.binary(max_size=64)
maybe = st.none() | blobs
envelopes = st.builds(Envelope, db_id=blobs, session=blobs, client=blobs, request_id=u64)

messages = st.one_of(
    st.builds(Ping, envelope=envelopes),
    st.builds(Write, envelope=envelopes, records=blobs, count=u64, sync=st.booleans()),
    st.builds(Get, envelope=envelopes, key=blobs, snapshot=u64, fill_cache=st.booleans()),
    st.builds(OpenSnapshot, envelope=envelopes, prefix=maybe),
    st.builds(OpenIterator, envelope=envelopes, raw=st.booleans(), snapshot=u64, db_prefix=maybe,
              reverse=st.booleans(), start=maybe, stop=maybe, include_start=st.booleans(),
              include_stop=st.booleans(), prefix=maybe, include_key=st.booleans(),
              include_value=st.booleans(), fill_cache=st.none() | st.booleans()),
    st.builds(Step, envelope=envelopes, handle=u64, move=st.sampled_from(Move), key=maybe, want=u64, rewind=u64),
    st.builds(Close, envelope=envelopes, handle=u64),
    st.builds(Reply, request_id=u64, handle=u64, value=maybe, entries=st.lists(st.tuples(blobs, blobs), max_size=5),
              ended=st.booleans()),
    st.builds(Failure, request_id=u64, kind=st.sampled_from(ErrorKind), message=st.text(max_size=40),
              path=st.none() | st.text(max_size=20), offset=st.none() | u64),
    st.builds(Welcome, request_id=u64, db_id=blobs, session=blobs, pid=u64),
)


@given(messages)
def test_every_message_round_trips(msg):
    assert decode(encode(msg)) == msg


@settings(max_examples=400)
@given(messages, st.data())
def test_damaged_body_is_refused_or_decodes_to_a_message(msg, data):
    header, body = encode(msg)
    if body:
        at = data.draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([data.draw(st.integers(0, 255))]) + body[at + 1:]
    cut = data.draw(st.integers(0, len(body)))
    for frames in ([header, body], [header, body[:cut]], [header, body + b"\x00"]):
        try:
            decoded = decode(frames)
        except ProtocolError as exc:
            assert str(exc)
        else:
            assert type(decoded) in MESSAGE_TYPES


@settings(max_examples=400)
@given(st.lists(st.binary(max_size=80), max_size=4))
def test_arbitrary_frames_never_raise_anything_but_protocol_error(frames):
    try:
        decode(frames)
    except ProtocolError:
        pass


@given(st.integers(0, 255), st.binary(max_size=60))
def test_any_message_type_with_garbage_body_is_refused_cleanly(kind, body):
    header = MAGIC + CLIENT_PROTOCOL_VERSION.to_bytes(2, "little") + bytes([kind])
    try:
        decode([header, body])
    except ProtocolError:
        pass


def test_other_version_is_refused_naming_both_versions():
    header, body = encode(Ping(Envelope(b"d", b"s", b"c", 1)))
    other = header[:2] + (CLIENT_PROTOCOL_VERSION + 1).to_bytes(2, "little") + header[4:]
    with pytest.raises(ProtocolError, match=f"version {CLIENT_PROTOCOL_VERSION + 1}"):
        decode([other, body])


def test_compactor_message_is_refused_as_foreign_magic():
    from lsm.ipc.codec import encode as compactor_encode
    from lsm.ipc.messages import Ready
    with pytest.raises(ProtocolError, match="bad magic"):
        decode(compactor_encode(Ready(pid=1)))


def test_pickled_payload_is_refused():
    with pytest.raises(ProtocolError):
        decode([pickle.dumps(Ping(Envelope(b"d", b"s", b"c", 1)))[:5], b""])
    with pytest.raises(ProtocolError, match="frames"):
        decode([pickle.dumps("x")])


def test_oversized_body_is_refused_before_decoding():
    header, _ = encode(Ping(Envelope(b"d", b"s", b"c", 1)))
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        decode([header, b"\x00" * (MAX_BODY_BYTES + 1)])
    with pytest.raises(ValueError, match="exceeds the limit"):
        encode(Write(Envelope(b"d", b"s", b"c", 1), b"x" * (MAX_BODY_BYTES + 1), 1))


def test_unknown_move_is_refused_with_its_offset():
    header, body = encode(Step(Envelope(b"", b"", b"", 0), handle=1, move=Move.NEXT))
    # envelope: 3 empty byte strings + request_id 0, handle 1, then the move
    assert body[5] == Move.NEXT
    with pytest.raises(ProtocolError, match="unknown Move 99"):
        decode([header, body[:5] + bytes([99]) + body[6:]])


def test_list_count_beyond_the_body_is_refused_without_allocating():
    header, body = encode(Reply(request_id=1, entries=[]))
    huge = bytes.fromhex("ffffffffffffffff7f")
    with pytest.raises(ProtocolError, match="exceeds the bytes left"):
        decode([header, body[:3] + huge + b"\x00"])
