"""Starting compactor processes. Knows processes only: no sockets, no jobs.

Workers are started as fresh interpreters (no inherited LOCK or WAL
descriptors, no copied locks or threads) and managed as ``multiprocess``
Process objects (pid, sentinel, exit code, join). Only the first lines the
child runs differ from multiprocess's 'spawn', all for the writer's sake:

* the child does not re-run the parent's ``__main__`` (stock spawn imports it
  as ``__mp_main__``, so a user script without an ``if __name__ ==
  "__main__"`` guard would open the database again inside every compactor);
  the target is an importable function (lsm.ipc.worker.main);
* no resource-tracker process is started: workers use no shared semaphores
  or memory, and the tracker would be one more child of the writer that
  outlives the pool;
* the child does not import multiprocess: its bootstrap (dill included) is a
  sizeable part of a compactor's start-up (docs/measurements.md), while the writer's first
  memtables wait for it. The parent sends the target's module and name, its
  plain arguments, sys.path and the working directory as one ``marshal``
  record down the bootstrap pipe; _CHILD_BOOTSTRAP reads it and calls the
  target, which never returns (it ends with os._exit).
"""
import marshal
import os
import sys

import multiprocess
from multiprocess import popen_spawn_posix, spawn, util

from .naming import split_name

_SPAWN = multiprocess.get_context("spawn")

# Run by the child with the bootstrap pipe's descriptor substituted: the
# only code that runs before sys.path is the parent's. It first caps
# OpenBLAS at one thread: a compactor does no BLAS work (its numpy is
# integer and byte arrays), and OpenBLAS would start a thread per core at
# numpy's import, a pool in every compactor for nothing, spending start-up
# CPU on it. An OPENBLAS_NUM_THREADS the writer's environment sets stands.
_CHILD_BOOTSTRAP = (
    "import marshal, os, sys\n"
    "os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')\n"
    "with open({fd}, 'rb') as f:\n"
    "    path, cwd, module, name, args = marshal.load(f)\n"
    "sys.path[:] = path\n"
    "os.chdir(cwd)\n"
    "import importlib\n"
    "getattr(importlib.import_module(module), name)(*args)\n"
)


class _Popen(popen_spawn_posix.Popen):
    """popen_spawn_posix.Popen with the child bootstrap above."""

    def _launch(self, process_obj):
        target = process_obj._target
        if process_obj._kwargs:
            raise TypeError("a compactor target takes positional arguments only")
        module, qualname = split_name(f"{target.__module__}:{target.__qualname__}")
        # marshal refuses anything but plain data (str, bytes, numbers, dicts...)
        path = [entry for entry in sys.path if isinstance(entry, str)]  # as import itself uses it
        payload = marshal.dumps((path, os.getcwd(), module, qualname, tuple(process_obj._args)))
        parent_r = child_w = child_r = parent_w = None
        try:
            parent_r, child_w = os.pipe()
            child_r, parent_w = os.pipe()
            exe = spawn.get_executable()
            cmd = [exe, *util._args_from_interpreter_flags(), "-c", _CHILD_BOOTSTRAP.format(fd=child_r)]
            # The child holds child_w until it exits: the sentinel (parent_r) reads EOF then.
            self._fds.extend([child_r, child_w])
            self.pid = util.spawnv_passfds(exe, cmd, self._fds)
            self.sentinel = parent_r
            with open(parent_w, "wb", closefd=False) as f:
                f.write(payload)
        finally:
            fds_to_close = [fd for fd in (parent_r, parent_w) if fd is not None]
            self.finalizer = util.Finalize(self, util.close_fds, fds_to_close)
            for fd in (child_r, child_w):
                if fd is not None:
                    os.close(fd)


class WorkerProcess(_SPAWN.Process):
    """A spawned process (see the module docstring). Daemonic by default, so
    multiprocess's own exit hook ends it if everything else failed to."""

    _start_method = "spawn"

    def __init__(self, *args, daemon=True, **kwargs):
        super().__init__(*args, daemon=daemon, **kwargs)

    @staticmethod
    def _Popen(process_obj):  # noqa: N802 - multiprocess's name
        return _Popen(process_obj)


def start_worker(target, args, name) -> WorkerProcess:
    proc = WorkerProcess(target=target, args=args, name=name)
    proc.start()
    return proc
