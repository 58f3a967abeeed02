"""Jobs and results: the plain data the writer hands to a compactor and gets back.

Pure data, no behaviour: a job says everything the runner needs (which files,
where to write, what may be dropped), so it can run in this process or another
one and give the same outputs. The contract between the writer, the ipc layer and the compactors:
it imports only plain data types, never lsm.writer, lsm.ipc or lsm.compactor.
"""
from dataclasses import dataclass, field

from .filemeta import FileMetaData
from .table.options import TableOptions


@dataclass
class FlushJob:
    """Build one level-0 table from a frozen WAL (the memtable never travels)."""

    job_id: int
    wal_number: int
    table: TableOptions = field(default_factory=TableOptions)
    # paranoid: any damage fails the job. Otherwise recovery stops at the first
    # damage (point-in-time: a prefix of the history, never a hole), and
    # salvage (repair_db) skips damaged records and keeps everything intact.
    paranoid: bool = True
    salvage: bool = False


@dataclass
class CompactionJob:
    """Merge `inputs` (files of `level`) with `next_inputs` (files of `level + 1`)
    into tables for `level + 1`."""

    job_id: int
    level: int
    inputs: list[FileMetaData]
    next_inputs: list[FileMetaData]
    grandparents: list[FileMetaData]  # level + 2 files overlapping the range
    smallest_snapshot: int  # oldest sequence any reader may still ask for
    # (smallest_user_key, largest_user_key) of every file in levels > level + 1:
    # a deletion marker may be dropped only where none of them can hold the key.
    deeper_ranges: list[tuple[bytes, bytes]]
    max_output_file_size: int = 2 << 20
    max_grandparent_overlap: int = 20 << 20
    table: TableOptions = field(default_factory=TableOptions)
    # Subcompaction bounds on user keys: this job writes only keys k with
    # lower <= k < upper (None: unbounded). Several jobs with disjoint bounds
    # over the same inputs commit as one edit.
    lower: bytes | None = None
    upper: bytes | None = None


@dataclass
class OutputTable:
    """A table a job wrote, named by its place in the staging directory."""

    name: str  # file name inside the staging directory
    size: int
    smallest: bytes
    largest: bytes
    entries: int = 0


@dataclass
class JobResult:
    job_id: int
    ok: bool
    outputs: list[OutputTable] = field(default_factory=list)
    error: str = ""
    corruption: bool = False  # the failure was damaged input, not a transient fault
    bytes_read: int = 0
    bytes_written: int = 0
    max_sequence: int = 0  # flushes: the largest sequence found in the WAL
    seconds: float = 0.0
