"""Client and server processes for the serving tests: each runs a short
script with this interpreter and reports on its stdout, one line per event."""
import contextlib
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A process serving the database at argv[1] until killed.
SERVER = r"""
import sys, time
import lsm
db = lsm.DB(sys.argv[1], create_if_missing=True, serve=True, compactors=0)
print("serving", flush=True)
time.sleep(600)
"""


def spawn(script, *args, stdin=False):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.PIPE if stdin else None, text=True, env=env)


def read_until(proc, predicate, timeout=60.0):
    """Lines of proc's stdout up to and including the first one predicate
    accepts; AssertionError (with stderr) if the process ends first."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            proc.wait(10)
            raise AssertionError(f"process ended ({proc.returncode}) before the expected line; "
                                 f"got {lines[-5:]}, stderr: {proc.stderr.read()[-3000:]}")
        lines.append(line.rstrip("\n"))
        if predicate(lines[-1]):
            return lines
    raise AssertionError(f"no expected line within {timeout}s; got {lines[-5:]}")


def finish(proc, timeout=60.0):
    """All remaining stdout lines of a process that must exit with status 0."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}: {err[-3000:]}"
    return out.splitlines()


def wait_for(condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.02)


@contextlib.contextmanager
def serving_process(path):
    """A process serving the database at `path` (made if missing), killed at the end."""
    server = spawn(SERVER, path)
    try:
        read_until(server, lambda line: line == "serving")
        yield server
    finally:
        server.send_signal(signal.SIGCONT)  # a stopped process dies of SIGKILL all the same; be explicit
        server.kill()
        server.wait(10)
