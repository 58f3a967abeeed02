"""A dedicated serving process (``python -m lsm serve PATH``): open the
database, serve it until SIGTERM or SIGINT, then close it cleanly, printing a
status line every few seconds. Knows signals and the terminal; serving is
lsm.serve.server's."""
import os
import signal
import sys
import threading
import time

from ..tools.database import open_database
from .server import Server


def status_line(status, stats, previous, seconds):
    """clients, write ops/s and batches/s since `previous`, stall seconds so far."""
    ops = (status["operations"] - previous["operations"]) / seconds
    batches = (status["writes"] - previous["writes"]) / seconds
    return (f"clients {status['clients']}  writes {ops:,.0f} ops/s in {batches:,.0f} batches/s  "
            f"reads {(status['reads'] - previous['reads']) / seconds:,.0f}/s  "
            f"stalled {stats['stall_seconds']:.1f}s  refused {status.get('refused', 0) + status.get('bad_messages', 0)}")


def serve_until_signalled(path, *, create=False, compactors=None, interval=5.0, tcp=None, out=None):
    out = sys.stdout if out is None else out
    stop = threading.Event()
    previous_handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with open_database(path, create=create, compactors=compactors) as db:
            server = Server(db, tcp=tcp).start()
            try:
                print(f"serving {path} (pid {os.getpid()}); clients call lsm.connect({path!r})", file=out, flush=True)
                if server.tcp_endpoint is not None:
                    print(f"and lsm.connect({server.tcp_endpoint!r}, server_key={server.public_key!r}, keypair=...) "
                          "with a key listed in CLIENTS.curve", file=out, flush=True)
                previous, since = server.status(), time.monotonic()
                while not stop.wait(interval):
                    now, status = time.monotonic(), server.status()
                    print(status_line(status, db.stats(), previous, now - since), file=out, flush=True)
                    previous, since = status, now
            finally:
                server.close()
        print(f"closed {path}", file=out, flush=True)
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
