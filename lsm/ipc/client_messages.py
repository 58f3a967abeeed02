"""The client protocol's messages: what a process using ``lsm.connect`` asks
the serving writer, and what it hears back. Pure data: no sockets, no files,
no encoding (lsm.ipc.client_codec is the wire format).

Every request carries, besides its own fields:

    db_id       the identity of the database the client opened (its
                directory's device and inode), so a client of another
                database is refused
    session     the server session the client found announced, so a client
                of an earlier server session is refused
    client      the client's random token, under which the server keeps its
                snapshots and iterators (released when the client is gone)
    request_id  echoed in the reply; a late reply to an abandoned request is
                recognised and dropped

A client has one request in flight at a time. Replies are ``Reply`` (success)
or ``Failure`` (an exception, with the class it must be raised as).
"""
from dataclasses import dataclass, field
from enum import IntEnum

CLIENT_PROTOCOL_VERSION = 1


class ClientMsgType(IntEnum):
    # Wire numbers: never renumber; retired numbers stay listed here.
    PING = 1
    WRITE = 2
    GET = 3
    OPEN_SNAPSHOT = 4
    OPEN_ITERATOR = 5
    STEP = 6
    CLOSE = 7
    REPLY = 16
    FAILURE = 17
    WELCOME = 18


class Move(IntEnum):
    """How a STEP moves an iterator. Iterator (plyvel's bounded one): NEXT
    reads up to `want` entries, PREV one, SEEK/TO_START/TO_STOP reposition.
    Raw iterator: every move but NEXT/PREV repositions and then reads up to
    `want` entries forward; AFTER/BEFORE go to the entry after / before `key`."""

    NEXT = 1
    PREV = 2
    SEEK = 3
    TO_START = 4
    TO_STOP = 5
    AFTER = 6
    BEFORE = 7


class ErrorKind(IntEnum):
    """The class a Failure is raised as on the client side."""

    ERROR = 1
    IO_ERROR = 2
    CORRUPTION = 3
    LOCK = 4
    CLOSED = 5
    ITERATOR_INVALID = 6
    TYPE_ERROR = 7
    VALUE_ERROR = 8
    RUNTIME_ERROR = 9
    REFUSED = 10  # protocol: another database, another session, a malformed message


@dataclass
class Envelope:
    db_id: bytes
    session: bytes
    client: bytes
    request_id: int


@dataclass
class Ping:
    """Answered with a Welcome. The one request a server takes whatever its
    envelope's db_id and session: a TCP client learns them from the answer."""

    envelope: Envelope


@dataclass
class Write:
    """`count` encoded WriteBatch records, without the batch header."""

    envelope: Envelope
    records: bytes
    count: int
    sync: bool = False


@dataclass
class Get:
    """snapshot 0: the latest state; else a handle from OPEN_SNAPSHOT (whose
    prefix the server adds to `key`)."""

    envelope: Envelope
    key: bytes
    snapshot: int = 0
    fill_cache: bool = True


@dataclass
class OpenSnapshot:
    envelope: Envelope
    prefix: bytes | None = None


@dataclass
class OpenIterator:
    """A plyvel iterator (raw=False) or raw iterator over `snapshot` (0: a
    fresh one the iterator pins) within `db_prefix` (a prefixed view's)."""

    envelope: Envelope
    raw: bool = False
    snapshot: int = 0
    db_prefix: bytes | None = None
    reverse: bool = False
    start: bytes | None = None
    stop: bytes | None = None
    include_start: bool = True
    include_stop: bool = False
    prefix: bytes | None = None
    include_key: bool = True
    include_value: bool = True
    fill_cache: bool | None = None


@dataclass
class Step:
    """Move iterator `handle`: first undo `rewind` entries the server sent and
    the client never used (plyvel iterators), then `move`."""

    envelope: Envelope
    handle: int
    move: Move
    key: bytes | None = None
    want: int = 1
    rewind: int = 0


@dataclass
class Close:
    """Release a snapshot or iterator handle."""

    envelope: Envelope
    handle: int


@dataclass
class Reply:
    """handle: a new snapshot or iterator (or the server's pid for PING);
    value: a GET's value (None: absent); entries: (key, value) pairs an
    iterator read; ended: the iterator reached its end while reading."""

    request_id: int
    handle: int = 0
    value: bytes | None = None
    entries: list = field(default_factory=list)
    ended: bool = False


@dataclass
class Failure:
    request_id: int
    kind: ErrorKind
    message: str
    path: str | None = None
    offset: int | None = None


@dataclass
class Welcome:
    request_id: int
    db_id: bytes
    session: bytes
    pid: int


REQUEST_TYPES = {
    Ping: ClientMsgType.PING,
    Write: ClientMsgType.WRITE,
    Get: ClientMsgType.GET,
    OpenSnapshot: ClientMsgType.OPEN_SNAPSHOT,
    OpenIterator: ClientMsgType.OPEN_ITERATOR,
    Step: ClientMsgType.STEP,
    Close: ClientMsgType.CLOSE,
}
MESSAGE_TYPES = {**REQUEST_TYPES, Reply: ClientMsgType.REPLY, Failure: ClientMsgType.FAILURE,
                 Welcome: ClientMsgType.WELCOME}
