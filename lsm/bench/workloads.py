"""Every workload the bench knows, with what it needs to run on.

A workload needs a "fresh" database (new and empty), the "existing" one the
preceding workload left (an untimed fillrandom makes one when there is
none), or is "self" (opens, fills and closes its own). Read-only workloads,
unless told otherwise, run on a compacted database (the engine's own
compact_range, untimed), so every engine is measured on its settled layout.

Knows the workload modules only.
"""
from dataclasses import dataclass
from typing import Callable, Optional

from . import dbbench, loaders, realistic


@dataclass(frozen=True)
class Workload:
    name: str
    needs: str                     # "fresh", "existing" or "self"
    execute: Callable              # (adapter, data, plan, progress) -> (ops, seconds, bytes, extra)
    plan: Optional[Callable] = None  # (data) -> the plan every engine runs; made once per run
    read_only: bool = False
    compacts: bool = False         # leaves the database compacted
    total: Callable = lambda data: data.num  # operations, for the progress bar


def _db_bench(name, needs, read_only=False, total=lambda data: data.num):
    run = getattr(dbbench, f"w_{name}")
    return Workload(name, needs, lambda a, d, plan, progress: run(a, d, progress),
                    plan=_fresh_records if needs in ("fresh", "self") else None, read_only=read_only, total=total)


def _fresh_records(data):
    """A fill writes records 0..num-1 and nothing else."""
    data.reset_ids()


def _reads(data):
    return data.reads


def _realistic(name, execute, plan=None, read_only=False, total=_reads, compacts=False):
    return Workload(name, "existing", execute, plan=plan, read_only=read_only, total=total, compacts=compacts)


WORKLOADS = {w.name: w for w in (
    _db_bench("fillseq", "fresh"),
    _db_bench("fillbatch", "fresh"),
    _db_bench("fillsync", "fresh", total=lambda data: dbbench.fillsync_ops(data.num)),
    _db_bench("fillrandom", "fresh"),
    _db_bench("overwrite", "existing"),
    _db_bench("readrandom", "existing", read_only=True, total=_reads),
    _db_bench("readmissing", "existing", read_only=True, total=_reads),
    _db_bench("readseq", "existing", read_only=True),
    _db_bench("readreverse", "existing", read_only=True),
    _db_bench("seekrandom", "existing", read_only=True, total=_reads),
    _db_bench("readwhilewriting", "existing", total=_reads),
    _db_bench("deleterandom", "existing"),
    Workload("load", "self", None, plan=_fresh_records),
    Workload("loaders", "fresh", loaders.w_loaders, plan=loaders.plan_loaders, total=loaders.total_operations),
    _realistic("churn", realistic.w_churn, realistic.plan_churn, total=lambda data: data.num),
    *(_realistic(name, realistic.w_ycsb, realistic.plan_ycsb(name), read_only=name == "ycsb-c")
      for name in realistic.YCSB),
    _realistic("absentget", realistic.w_absentget, realistic.plan_absentget, read_only=True),
    _realistic("scan50", realistic.w_scan50, realistic.plan_scan50, read_only=True),
    _realistic("fullscan", realistic.w_fullscan, read_only=True, total=lambda data: data.next_id),
    _realistic("compact_range", realistic.w_compact_range, total=lambda data: 1, compacts=True),
)}

# db_bench's workloads and load: what a run does when not told otherwise.
DEFAULT_WORKLOADS = ("fillseq", "fillbatch", "fillsync", "fillrandom", "overwrite", "readrandom", "readmissing",
                     "readseq", "readreverse", "seekrandom", "readwhilewriting", "deleterandom", "load")
