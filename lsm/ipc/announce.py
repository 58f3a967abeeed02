"""Where a database's server can be found: the ``SERVER`` file in the
database directory, and the database's identity. Knows files; never ZeroMQ.

A serving writer binds its sockets in a private (0700) endpoint directory
(lsm.ipc.endpoint) and announces it in ``<db>/SERVER`` (0600), so only a
process of the owner that can enter the database directory finds and reaches
it. The file is replaced atomically and removed by the server that wrote it
when it closes; one left by a dead server names a directory whose sockets
refuse connections.

The database's identity is its directory's device and inode: a copy of the
directory, SERVER file included, is another database, and its clients are
refused by the server of the original.
"""
import json
import os
import struct
from dataclasses import dataclass

from ..errors import IOError

ANNOUNCE_NAME = "SERVER"
REQUEST_SOCKET = "writer"  # the name lsm.ipc.endpoint's sweep probes
LIVENESS_SOCKET = "clients"
_FORMAT = "lsm-server 1"


def database_identity(db_path) -> bytes:
    st = os.stat(db_path)
    return struct.pack("<QQ", st.st_dev, st.st_ino)


@dataclass(frozen=True)
class Announcement:
    endpoint_dir: str
    session: bytes
    pid: int

    @property
    def request_endpoint(self) -> str:
        return f"ipc://{os.path.join(self.endpoint_dir, REQUEST_SOCKET)}"

    @property
    def liveness_path(self) -> str:
        return os.path.join(self.endpoint_dir, LIVENESS_SOCKET)


def announce(db_path, announcement: Announcement):
    path = os.path.join(db_path, ANNOUNCE_NAME)
    write_private(path, json.dumps({"format": _FORMAT, "endpoint_dir": announcement.endpoint_dir,
                                    "session": announcement.session.hex(), "pid": announcement.pid}))


def write_private(path, text: str):
    """Replace `path` atomically with `text`, readable by its owner only."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_announcement(db_path) -> Announcement:
    """The announcement in `db_path`; lsm.IOError saying why there is none."""
    path = os.path.join(db_path, ANNOUNCE_NAME)
    try:
        with open(path, "rb") as f:
            raw = f.read(4096)
    except FileNotFoundError:
        raise IOError(f"{db_path}: no server is serving this database (no {ANNOUNCE_NAME} file); "
                      "open it with lsm.DB(path, serve=True) or python -m lsm serve PATH") from None
    except OSError as exc:
        raise IOError(f"{path}: cannot read the server announcement: {exc}") from None
    try:
        fields = json.loads(raw)
        if fields.get("format") != _FORMAT:
            raise ValueError(f"format {fields.get('format')!r}, expected {_FORMAT!r}")
        return Announcement(str(fields["endpoint_dir"]), bytes.fromhex(fields["session"]), int(fields["pid"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IOError(f"{path}: not a server announcement ({exc})") from None


def withdraw(db_path, session: bytes):
    """Remove the announcement if it is still `session`'s."""
    try:
        if read_announcement(db_path).session == session:
            os.remove(os.path.join(db_path, ANNOUNCE_NAME))
    except (IOError, OSError):
        pass
