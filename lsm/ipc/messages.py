"""The compactor protocol's messages. Pure data: no sockets, no files, no encoding.

Who sends what (writer = the pool thread behind a ROUTER socket; worker = a
compactor process behind a DEALER socket):

    READY      worker -> writer  once, after connecting: "pid is here, idle"
    HEARTBEAT  worker -> writer  every interval: pid, the job it is running
                                 (job_id 0: idle) and bytes written so far
               writer -> worker  every interval: "the writer is alive"
    JOB        writer -> worker  one attempt of one job, with everything it needs
    RESULT     worker -> writer  the JobResult of that attempt
    SHUTDOWN   writer -> worker  exit now

Every JOB and RESULT carries the writer's session id (a fresh random id per
pool, standing in for the writer's epoch), the job id and the attempt number
(1, 2, ...). The writer accepts a RESULT only when all three name the current
attempt of a running job; anything else is a duplicate, stale or abandoned
attempt and is dropped (see lsm.ipc.pool).

The wire format is lsm.ipc.codec's; PROTOCOL_VERSION is carried in every
message and bumped on any incompatible change to that format.
"""
from dataclasses import dataclass
from enum import IntEnum

from ..jobs import CompactionJob, FlushJob, JobResult
from ..errors import DecodeError

# A peer speaking another version is refused at the header (ProtocolError
# naming both versions). History:
#   2: TableOptions.prefix_compression
#   3: JobResult.error_kind and os_errno replace the corruption flag
#   4: FlushJob.unsorted_table and JobResult.for_level0
PROTOCOL_VERSION = 4


class MsgType(IntEnum):
    # Wire numbers: never renumber; retired numbers stay listed here.
    READY = 1
    HEARTBEAT = 2
    JOB = 3
    RESULT = 4
    SHUTDOWN = 5


class ProtocolError(DecodeError):
    """A message could not be decoded: wrong version, unknown type, wrong
    number of frames, truncated or over-long body. The text says which."""


@dataclass
class Ready:
    pid: int


@dataclass
class Heartbeat:
    """Worker -> writer: its pid and the attempt it is running (job_id 0 when
    idle). Writer -> worker: pid is the writer's, the rest zero."""

    pid: int
    session: str = ""
    job_id: int = 0
    attempt: int = 0
    bytes_done: int = 0


@dataclass
class Job:
    session: str
    job_id: int
    attempt: int
    db_dir: str
    staging_dir: str
    job: FlushJob | CompactionJob


@dataclass
class Result:
    session: str
    job_id: int
    attempt: int
    pid: int
    result: JobResult


@dataclass
class Shutdown:
    reason: str = ""


MESSAGE_TYPES = {
    Ready: MsgType.READY,
    Heartbeat: MsgType.HEARTBEAT,
    Job: MsgType.JOB,
    Result: MsgType.RESULT,
    Shutdown: MsgType.SHUTDOWN,
}
