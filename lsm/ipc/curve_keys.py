"""CURVE keys of a database served over TCP: the server's key pair and the
allow-list of client public keys, in the database directory. Knows files and
ZeroMQ's key generation; never sockets.

    <db>/SERVER.curve    {"public": Z85, "secret": Z85}, mode 0600, made on
                         the first TCP serve and kept (clients pin the public key)
    <db>/CLIENTS.curve   one client public key (Z85, 40 characters) per line; no
                         comments, since Z85 uses '#' and the like

Both are the owner's alone: a key file others can read is refused.
"""
import json
import os
import stat

import zmq

from ..errors import IOError
from .announce import write_private

SERVER_KEYS = "SERVER.curve"
ALLOWED_CLIENTS = "CLIENTS.curve"


def _check_private(path):
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise IOError(f"{path}: readable by others (mode {stat.S_IMODE(mode):o}); it must be 0600")


def server_keys(db_path) -> tuple:
    """(public, secret) of the database's server, made the first time."""
    path = os.path.join(db_path, SERVER_KEYS)
    if not os.path.exists(path):
        public, secret = zmq.curve_keypair()
        write_private(path, json.dumps({"public": public.decode(), "secret": secret.decode()}))
    _check_private(path)
    try:
        with open(path) as f:
            fields = json.load(f)
        return fields["public"].encode(), fields["secret"].encode()
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IOError(f"{path}: not a CURVE key pair ({exc})") from None


def allowed_clients(db_path) -> frozenset:
    """The client public keys allowed to connect (none if there is no list)."""
    path = os.path.join(db_path, ALLOWED_CLIENTS)
    if not os.path.exists(path):
        return frozenset()
    _check_private(path)
    with open(path) as f:
        keys = [line.strip() for line in f]
    return frozenset(k.encode() for k in keys if k)


def allow_client(db_path, public: bytes):
    """Add a client's public key to the allow-list (read at each serve)."""
    keys = sorted(allowed_clients(db_path) | {bytes(public)})
    write_private(os.path.join(db_path, ALLOWED_CLIENTS), "".join(k.decode() + "\n" for k in keys))
