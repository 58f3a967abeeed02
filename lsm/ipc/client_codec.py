"""Wire encoding of lsm.ipc.client_messages. Pure: no sockets, no files, no pickle.

A message is exactly two ZeroMQ frames:

    frame 0, header (5 bytes):  b"LC"  u16le CLIENT_PROTOCOL_VERSION  u8 ClientMsgType
    frame 1, body:              the message's fields, in declaration order

Fields are encoded as in lsm.ipc.codec (varint integers, length-prefixed
bytes, one-byte bools and presence markers); a request's body starts with its
envelope (db_id, session, client, request_id). An entry list is a count and
then key and value of each entry.

``encode(msg) -> [header, body]`` raises ValueError for a field it cannot
encode or a body over MAX_BODY_BYTES; ``decode(frames) -> msg`` raises
ProtocolError saying what was wrong: frame count, size, magic, version, type,
truncation (field and byte offset), a bad enum value, trailing bytes.
"""

from .client_messages import (
    CLIENT_PROTOCOL_VERSION,
    MESSAGE_TYPES,
    ClientMsgType,
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
from .codec import HEADER, BodyReader, BodyWriter, read_frames
from .messages import ProtocolError

MAGIC = b"LC"
# One write batch, or one chunk of an iterator, per message: larger ones are
# refused before they are read (the server also caps frames at this size).
MAX_BODY_BYTES = 64 << 20


def _put_envelope(out, e):
    out.bytes(e.db_id, "db_id")
    out.bytes(e.session, "session")
    out.bytes(e.client, "client")
    out.uint(e.request_id, "request_id")


def _get_envelope(inp):
    return Envelope(db_id=inp.bytes("db_id"), session=inp.bytes("session"), client=inp.bytes("client"),
                    request_id=inp.uint("request_id"))


def _put_entry(out, entry, name):
    key, value = entry
    out.bytes(key, f"{name}.key")
    out.bytes(value, f"{name}.value")


def _get_entry(inp, name):
    return (inp.bytes(f"{name}.key"), inp.bytes(f"{name}.value"))


def _enum(inp, cls, name):
    start = inp.pos
    value = inp.uint(name)
    try:
        return cls(value)
    except ValueError:
        inp.fail(f"{name}: unknown {cls.__name__} {value}", start)


def encode(msg) -> list:
    """The two frames of `msg`."""
    try:
        kind = MESSAGE_TYPES[type(msg)]
    except KeyError:
        raise ValueError(f"not a client protocol message: {type(msg).__name__}") from None
    out = BodyWriter()
    if kind is ClientMsgType.REPLY:
        out.uint(msg.request_id, "request_id")
        out.uint(msg.handle, "handle")
        out.opt(out.bytes, msg.value, "value")
        out.list(_put_entry, msg.entries, "entries")
        out.flag(msg.ended, "ended")
    elif kind is ClientMsgType.FAILURE:
        out.uint(msg.request_id, "request_id")
        out.uint(ErrorKind(msg.kind), "kind")
        out.str(msg.message, "message")
        out.opt(out.str, msg.path, "path")
        out.opt(out.uint, msg.offset, "offset")
    elif kind is ClientMsgType.WELCOME:
        out.uint(msg.request_id, "request_id")
        out.bytes(msg.db_id, "db_id")
        out.bytes(msg.session, "session")
        out.uint(msg.pid, "pid")
    else:
        _put_envelope(out, msg.envelope)
        if kind is ClientMsgType.WRITE:
            out.bytes(msg.records, "records")
            out.uint(msg.count, "count")
            out.flag(msg.sync, "sync")
        elif kind is ClientMsgType.GET:
            out.bytes(msg.key, "key")
            out.uint(msg.snapshot, "snapshot")
            out.flag(msg.fill_cache, "fill_cache")
        elif kind is ClientMsgType.OPEN_SNAPSHOT:
            out.opt(out.bytes, msg.prefix, "prefix")
        elif kind is ClientMsgType.OPEN_ITERATOR:
            out.flag(msg.raw, "raw")
            out.uint(msg.snapshot, "snapshot")
            out.opt(out.bytes, msg.db_prefix, "db_prefix")
            out.flag(msg.reverse, "reverse")
            out.opt(out.bytes, msg.start, "start")
            out.opt(out.bytes, msg.stop, "stop")
            out.flag(msg.include_start, "include_start")
            out.flag(msg.include_stop, "include_stop")
            out.opt(out.bytes, msg.prefix, "prefix")
            out.flag(msg.include_key, "include_key")
            out.flag(msg.include_value, "include_value")
            out.opt(out.flag, msg.fill_cache, "fill_cache")
        elif kind is ClientMsgType.STEP:
            out.uint(msg.handle, "handle")
            out.uint(Move(msg.move), "move")
            out.opt(out.bytes, msg.key, "key")
            out.uint(msg.want, "want")
            out.uint(msg.rewind, "rewind")
        elif kind is ClientMsgType.CLOSE:
            out.uint(msg.handle, "handle")
    body = b"".join(out.parts)
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"{kind.name} message of {len(body)} bytes exceeds the limit of {MAX_BODY_BYTES}")
    return [HEADER.pack(MAGIC, CLIENT_PROTOCOL_VERSION, kind), body]


def decode(frames):
    """The message in `frames` (as encode returns them); ProtocolError otherwise."""
    kind, body = read_frames(frames, MAGIC, CLIENT_PROTOCOL_VERSION, ClientMsgType, "client")
    if len(body) > MAX_BODY_BYTES:
        raise ProtocolError(f"{kind.name} body of {len(body)} bytes exceeds the limit of {MAX_BODY_BYTES}")
    inp = BodyReader(bytes(body), kind.name)
    if kind is ClientMsgType.REPLY:
        msg = Reply(request_id=inp.uint("request_id"), handle=inp.uint("handle"), value=inp.opt(inp.bytes, "value"),
                    entries=inp.list(_get_entry, "entries"), ended=inp.flag("ended"))
    elif kind is ClientMsgType.FAILURE:
        msg = Failure(request_id=inp.uint("request_id"), kind=_enum(inp, ErrorKind, "kind"),
                      message=inp.str("message"), path=inp.opt(inp.str, "path"), offset=inp.opt(inp.uint, "offset"))
    elif kind is ClientMsgType.WELCOME:
        msg = Welcome(request_id=inp.uint("request_id"), db_id=inp.bytes("db_id"), session=inp.bytes("session"),
                      pid=inp.uint("pid"))
    else:
        envelope = _get_envelope(inp)
        if kind is ClientMsgType.PING:
            msg = Ping(envelope)
        elif kind is ClientMsgType.WRITE:
            msg = Write(envelope, records=inp.bytes("records"), count=inp.uint("count"), sync=inp.flag("sync"))
        elif kind is ClientMsgType.GET:
            msg = Get(envelope, key=inp.bytes("key"), snapshot=inp.uint("snapshot"),
                      fill_cache=inp.flag("fill_cache"))
        elif kind is ClientMsgType.OPEN_SNAPSHOT:
            msg = OpenSnapshot(envelope, prefix=inp.opt(inp.bytes, "prefix"))
        elif kind is ClientMsgType.OPEN_ITERATOR:
            msg = OpenIterator(
                envelope, raw=inp.flag("raw"), snapshot=inp.uint("snapshot"),
                db_prefix=inp.opt(inp.bytes, "db_prefix"), reverse=inp.flag("reverse"),
                start=inp.opt(inp.bytes, "start"), stop=inp.opt(inp.bytes, "stop"),
                include_start=inp.flag("include_start"), include_stop=inp.flag("include_stop"),
                prefix=inp.opt(inp.bytes, "prefix"), include_key=inp.flag("include_key"),
                include_value=inp.flag("include_value"), fill_cache=inp.opt(inp.flag, "fill_cache"))
        elif kind is ClientMsgType.STEP:
            msg = Step(envelope, handle=inp.uint("handle"), move=_enum(inp, Move, "move"),
                       key=inp.opt(inp.bytes, "key"), want=inp.uint("want"), rewind=inp.uint("rewind"))
        else:  # CLOSE
            msg = Close(envelope, handle=inp.uint("handle"))
    if inp.pos != len(inp.data):
        inp.fail(f"{len(inp.data) - inp.pos} trailing bytes after the last field")
    return msg
