"""Jobs and results: the plain data the writer hands to a compactor and gets
back, and the rules every side applies to a failed one.

A job says everything the runner needs (which files, where to write, what may
be dropped), so it can run in this process or another one and give the same
outputs. A failed result says what kind of failure it was (ErrorKind), which
decides whether it is tried again (RetryPolicy) and which lsm error a user
finally sees (job_error). The contract between the writer, the ipc layer and
the compactors: pure (no files, no sockets); it imports only plain data types
and lsm.errors, never lsm.writer, lsm.ipc or lsm.compactor.
"""
from dataclasses import dataclass, field
from enum import IntEnum

from .errors import CorruptionError, DecodeError, Error
from .errors import IOError as LsmIOError
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
    # A custom comparator as "module:qualname" (lsm.order); None: bytewise.
    comparator: str | None = None
    # How to build the table when the WAL's keys arrived out of order: such
    # keys land among stored ones, and the table is stored for level 0 alone
    # (the writer's Options.compress_level0). None: as `table`.
    unsorted_table: TableOptions | None = None


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
    # A custom comparator as "module:qualname" (lsm.order); None: bytewise.
    comparator: str | None = None


@dataclass
class OutputTable:
    """A table a job wrote, named by its place in the staging directory."""

    name: str  # file name inside the staging directory
    size: int
    smallest: bytes
    largest: bytes
    entries: int = 0


class ErrorKind(IntEnum):
    """What made a job fail. The values are wire numbers (lsm.ipc.codec):
    never renumber; a retired one stays listed."""

    NONE = 0  # the job did not fail
    IO = 1  # the operating system refused an operation (ENOSPC, EIO, a missing file)
    CORRUPTION = 2  # the job's inputs are damaged: every attempt fails the same way
    OTHER = 3  # anything else: a bug, a compactor that died or hung
    REJECTED = 4  # the job ran, but the writer found its outputs missing or unreadable


@dataclass
class JobResult:
    job_id: int
    ok: bool
    outputs: list[OutputTable] = field(default_factory=list)
    error: str = ""  # what went wrong, for people; decisions read error_kind
    error_kind: ErrorKind = ErrorKind.NONE
    os_errno: int = 0  # error_kind IO: the errno, when the OS gave one
    bytes_read: int = 0
    bytes_written: int = 0
    max_sequence: int = 0  # flushes: the largest sequence found in the WAL
    seconds: float = 0.0
    # A flush built with its job's unsorted_table: the table goes to level 0.
    for_level0: bool = False

    @classmethod
    def failure(cls, job_id, exc, context="") -> "JobResult":
        """A failed result for exception `exc`, its kind told by its class:
        damaged input (CorruptionError, DecodeError), an OS refusal (OSError,
        lsm.IOError among them) or anything else."""
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, (CorruptionError, DecodeError)):
            kind = ErrorKind.CORRUPTION
        elif isinstance(exc, OSError):
            kind = ErrorKind.IO
        else:
            kind = ErrorKind.OTHER
        os_errno = getattr(exc, "errno", None) if kind is ErrorKind.IO else None
        return cls(job_id=job_id, ok=False, error=f"{context}{text}", error_kind=kind,
                   os_errno=os_errno if isinstance(os_errno, int) and os_errno > 0 else 0)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed job is tried again, and after how long: the one
    rule the pool (attempts in compactors) and the writer (a result it
    rejects, a flush it ran itself) both apply. A job has `max_attempts`
    attempts in all, whoever runs them; attempt n + 1 starts `backoff *
    2**(n - 1)` seconds after attempt n failed. Only failures of a kind in
    `retried` get another attempt: never damaged input (CORRUPTION), which
    fails the same way every time."""

    max_attempts: int = 3
    backoff: float = 0.1
    retried: frozenset = frozenset({ErrorKind.IO, ErrorKind.OTHER, ErrorKind.REJECTED})

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.backoff < 0:
            raise ValueError(f"backoff must not be negative, not {self.backoff}")

    def retries(self, kind: ErrorKind, attempt: int) -> bool:
        """Whether attempt number `attempt`, failed with `kind`, gets another."""
        return kind in self.retried and attempt < self.max_attempts

    def delay(self, attempt: int) -> float:
        """Seconds between the failure of attempt `attempt` and the next one."""
        return self.backoff * 2 ** (attempt - 1)


# Jobs run in the writer's own process (compactors=0): a failure there is
# final at once, as LevelDB's background errors are, and reaches the write
# that waits on it; only a result the writer rejects is run again.
IN_WRITER = RetryPolicy(retried=frozenset({ErrorKind.REJECTED}))


def job_error(result: JobResult, message: str, path=None) -> Error:
    """The lsm error a user sees for a failed `result`, keeping its kind:
    lsm.IOError (with its errno) for an OS refusal, CorruptionError (naming
    `path`) for damaged input, lsm.Error otherwise."""
    if result.error_kind is ErrorKind.CORRUPTION:
        return CorruptionError(path, None, f"{message}: {result.error}")
    if result.error_kind is ErrorKind.IO:
        err = LsmIOError(f"{message}: {result.error}")
        if result.os_errno:
            err.errno = result.os_errno
        return err
    return Error(f"{message}: {result.error}")

