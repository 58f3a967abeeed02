"""Run one step of the benchmark in a forked child process, so that each
engine's memory is its own: the child starts from the parent's state (the
generated data, no engine ever opened), and its RSS high-water mark is that
engine's alone on top of the data.

Knows processes and pickle only.
"""
import os
import pickle
import sys
import traceback


class ChildFailed(RuntimeError):
    """A step raised in its child process: the child's exception, as text."""

    def __init__(self, what, description, child_traceback):
        super().__init__(f"{what}: {description}")
        self.child_traceback = child_traceback


def run_in_child(what, step):
    """``step()`` in a forked child; returns what it returned (picklable).
    Raises ChildFailed (naming ``what``) if it raised or the child died."""
    # Unflushed output would be written twice: by the child and by us.
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns, never runs the parent's cleanup
        code = 0
        try:
            os.close(read_end)
            try:
                payload = ("ok", step())
            except BaseException as exc:  # noqa: BLE001 - carried to the parent
                payload = ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())
                code = 1
            with os.fdopen(write_end, "wb") as pipe:
                pickle.dump(payload, pipe)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        raw = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not raw:
        raise ChildFailed(what, f"the child process died ({_status_text(status)})", "")
    payload = pickle.loads(raw)
    if payload[0] == "ok":
        return payload[1]
    raise ChildFailed(what, payload[1], payload[2])


def _status_text(status):
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"
