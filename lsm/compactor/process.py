"""The job runner as a compactor process imports it (PROCESS_RUNNER): run_job,
with numpy loaded up front. Every job builds its filters with numpy and most
merge with it; a compactor imports this while it announces itself, not inside
its first job, where a writer filling its first memtables would wait for the
import. The writer's own process never imports this module."""
import numpy  # noqa: F401 - loaded for the jobs to come

from .runner import run_job

__all__ = ["run_job"]
