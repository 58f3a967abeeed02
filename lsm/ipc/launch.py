"""Starting compactor processes. Knows processes only: no sockets, no jobs.

Workers are started with the ``multiprocess`` library's 'spawn' method (a
fresh interpreter: no inherited LOCK or WAL descriptors, no copied locks or
threads), with two differences from its stock spawn Popen, both about not
touching the writer's program:

* the child does not re-run the parent's ``__main__`` (stock spawn imports it
  as ``__mp_main__``, so a user script without an ``if __name__ ==
  "__main__"`` guard would open the database again inside every compactor);
  the target is an importable function (lsm.compactor.worker.main), so the
  child needs nothing from ``__main__``;
* no resource-tracker process is started: workers use no shared semaphores
  or memory, and the tracker would be one more child of the writer that
  outlives the pool.

The process object itself still reaches the child through multiprocess's
bootstrap pipe (a dill pickle of a function reference and plain arguments);
that is process start-up, not the compactor protocol, which never pickles.
"""
import io
import os

import multiprocess
from multiprocess import popen_spawn_posix, reduction, spawn, util
from multiprocess.context import set_spawning_popen

_SPAWN = multiprocess.get_context("spawn")


class _Popen(popen_spawn_posix.Popen):
    """popen_spawn_posix.Popen._launch without the resource tracker and
    without the parent's __main__."""

    def _launch(self, process_obj):
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_name", None)
        prep_data.pop("init_main_from_path", None)
        fp = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, fp)
            reduction.dump(process_obj, fp)
        finally:
            set_spawning_popen(None)

        parent_r = child_w = child_r = parent_w = None
        try:
            parent_r, child_w = os.pipe()
            child_r, parent_w = os.pipe()
            cmd = spawn.get_command_line(tracker_fd=None, pipe_handle=child_r)
            self._fds.extend([child_r, child_w])
            self.pid = util.spawnv_passfds(spawn.get_executable(), cmd, self._fds)
            self.sentinel = parent_r
            with open(parent_w, "wb", closefd=False) as f:
                f.write(fp.getbuffer())
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
