"""Where a writer's ``ipc://`` endpoint lives, and the removal of endpoints
that dead writers left behind. Knows directories and Unix sockets; never
ZeroMQ, jobs or the database.

Each writer binds ``{dir}/writer`` in a fresh private (0700) directory named
``lsm-ipc-*`` in the temporary directory: a Unix socket path must fit in
sun_path's 108 bytes, which a database directory may not. A writer that
closes removes its directory; one that dies (SIGKILL, ``os._exit``) cannot,
so every new pool first sweeps the directories whose writer is gone.

"Gone" is decided by the socket itself, not by a process id (which may be
reused, or belong to another PID namespace sharing /tmp): connecting to a
socket nobody listens on is refused. A directory with no socket yet is left
alone while young, since a pool may be between creating it and binding.
"""
import errno
import os
import shutil
import socket
import tempfile
import time

PREFIX = "lsm-ipc-"
SOCKET_NAME = "writer"
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes
# A directory this old without a socket is a leftover, not a pool mid-start.
UNBOUND_GRACE_SECONDS = 60.0


def make_endpoint_dir() -> str:
    """A new private directory for one writer's socket, after sweeping the
    ones dead writers left."""
    parent = tempfile.gettempdir()
    if len(os.path.join(parent, PREFIX + "x" * 8, SOCKET_NAME)) > _MAX_SOCKET_PATH:
        parent = "/tmp"  # a long TMPDIR
    sweep_dead_endpoint_dirs(parent)
    path = tempfile.mkdtemp(prefix=PREFIX, dir=parent)  # mode 0700
    os.chmod(path, 0o700)
    return path


def endpoint_of(directory: str) -> str:
    return f"ipc://{os.path.join(directory, SOCKET_NAME)}"


def sweep_dead_endpoint_dirs(parent: str, now: float | None = None) -> list:
    """Remove this user's endpoint directories under `parent` whose writer is
    gone; return their paths. Never raises: a sweep is housekeeping."""
    now = time.time() if now is None else now
    removed = []
    try:
        names = [n for n in os.listdir(parent) if n.startswith(PREFIX)]
    except OSError:
        return removed
    uid = os.getuid()
    for name in names:
        path = os.path.join(parent, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if st.st_uid != uid or not os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            gone = _writer_is_gone(os.path.join(path, SOCKET_NAME), st.st_mtime, now)
        except OSError:
            continue  # no socket to probe with (out of descriptors): keep it
        if gone:
            shutil.rmtree(path, ignore_errors=True)
            if not os.path.exists(path):
                removed.append(path)
    return removed


def _writer_is_gone(socket_path: str, dir_mtime: float, now: float) -> bool:
    if not os.path.exists(socket_path):
        return now - dir_mtime > UNBOUND_GRACE_SECONDS
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(socket_path)
    except OSError as exc:
        # Refused: the socket file outlived its listener. Anything else
        # (a full backlog, a timeout) may be a live writer: keep it.
        return exc.errno == errno.ECONNREFUSED
    finally:
        probe.close()
    return False
