"""The job runner as a compactor process imports it (PROCESS_RUNNER): run_job,
with numpy loaded up front. Every job builds its filters with numpy and most
merge with it; a compactor imports this while it announces itself, not inside
its first job, where a writer filling its first memtables would wait for the
import. The writer's own process never imports this module.

A job allocates containers by the hundred thousand (views and slices of its
blocks' bytes), each of which counts towards the cyclic collector's next
pass, and a pass walks every object the process holds. So what is loaded
now is frozen out of the collector's sight, and a job runs with the
collector paused: its objects are freed by their reference counts, and
whatever cycles it leaves are collected once, when it ends."""
import gc

import numpy  # noqa: F401 - loaded for the jobs to come

from .runner import run_job as _run_job

__all__ = ["run_job"]

gc.freeze()


def run_job(*args, **kwargs):
    """runner.run_job, with the cyclic collector paused while it runs."""
    gc.disable()
    try:
        return _run_job(*args, **kwargs)
    finally:
        gc.enable()
        gc.collect()
