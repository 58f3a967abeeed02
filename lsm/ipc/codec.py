"""Wire encoding of lsm.ipc.messages. Pure: no sockets, no files, no pickle.

A message is exactly two ZeroMQ frames:

    frame 0, header (5 bytes):  b"LQ"  u16le PROTOCOL_VERSION  u8 MsgType
    frame 1, body:              the message's fields, in declaration order

Body field encodings (all integers are unsigned, < 2**64):

    uint      varint (LEB128, as lsm.coding)
    bool      one byte, 0 or 1
    float     8 bytes, little-endian IEEE double
    bytes     varint length, then the bytes (user keys, internal keys)
    str       as bytes, UTF-8
    optional  one byte 0 (absent) or 1, then the value
    list      varint count, then each item

Composite values (FileMetaData, TableOptions, FlushJob, CompactionJob,
OutputTable, JobResult) are their dataclass fields in order, as listed in the
_put_*/_get_* pairs below. A job is prefixed by a kind byte: 1 flush,
2 compaction. JobResult.error_kind is a uint holding lsm.jobs.ErrorKind's
frozen value (an unknown one is refused). The header never starts with 0x80 (pickle's PROTO opcode), so a
pickled payload is refused as a bad magic.

``encode(msg) -> [header, body]``; ``decode(frames) -> msg`` raises
ProtocolError saying what was wrong: frame count, magic, version, type,
truncation (with the field and byte offset), trailing bytes, bad UTF-8.
"""
import struct

from ..coding import decode_varint64, encode_varint
from ..jobs import CompactionJob, ErrorKind, FlushJob, JobResult, OutputTable
from ..table.options import TableOptions
from ..errors import DecodeError
from ..filemeta import FileMetaData
from .messages import (
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Heartbeat,
    Job,
    MsgType,
    ProtocolError,
    Ready,
    Result,
    Shutdown,
)

MAGIC = b"LQ"
HEADER = struct.Struct("<2sHB")  # magic, version, message type
_DOUBLE = struct.Struct("<d")
_U64_LIMIT = 1 << 64

_FLUSH, _COMPACTION = 1, 2


# ---------------------------------------------------------------- writing


class BodyWriter:
    __slots__ = ("parts",)

    def __init__(self):
        self.parts = []

    def uint(self, value, name):
        if type(value) is bool or not isinstance(value, int) or not 0 <= value < _U64_LIMIT:
            raise ValueError(f"{name}: {value!r} is not an unsigned 64-bit integer")
        self.parts.append(encode_varint(value))

    def flag(self, value, name):
        if not isinstance(value, (bool, int)) or value not in (0, 1):
            raise ValueError(f"{name}: {value!r} is not a bool")
        self.parts.append(b"\x01" if value else b"\x00")

    def float(self, value, name):
        self.parts.append(_DOUBLE.pack(float(value)))

    def bytes(self, value, name):
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise ValueError(f"{name}: {type(value).__name__} is not bytes")
        value = bytes(value)
        self.parts.append(encode_varint(len(value)))
        self.parts.append(value)

    def str(self, value, name):
        if not isinstance(value, str):
            raise ValueError(f"{name}: {type(value).__name__} is not str")
        self.bytes(value.encode("utf-8"), name)

    def opt(self, put, value, name):
        if value is None:
            self.parts.append(b"\x00")
        else:
            self.parts.append(b"\x01")
            put(value, name)

    def list(self, put, items, name):
        self.uint(len(items), name)
        for i, item in enumerate(items):
            put(self, item, f"{name}[{i}]")


def _put_meta(out, m, name):
    out.uint(m.number, f"{name}.number")
    out.uint(m.size, f"{name}.size")
    out.bytes(m.smallest, f"{name}.smallest")
    out.bytes(m.largest, f"{name}.largest")
    out.uint(m.allowed_seeks, f"{name}.allowed_seeks")


def _put_range(out, r, name):
    lo, hi = r
    out.bytes(lo, f"{name}.lower")
    out.bytes(hi, f"{name}.upper")


def _put_table_options(out, t, name):
    out.uint(t.block_size, f"{name}.block_size")
    out.uint(t.block_restart_interval, f"{name}.block_restart_interval")
    out.opt(out.str, t.compression, f"{name}.compression")
    out.uint(t.bloom_bits_per_key, f"{name}.bloom_bits_per_key")
    out.flag(t.prefix_compression, f"{name}.prefix_compression")
    out.flag(t.lsm_filter, f"{name}.lsm_filter")


def _put_job(out, job, name):
    if isinstance(job, FlushJob):
        out.parts.append(bytes([_FLUSH]))
        out.uint(job.job_id, f"{name}.job_id")
        out.uint(job.wal_number, f"{name}.wal_number")
        _put_table_options(out, job.table, f"{name}.table")
        out.flag(job.paranoid, f"{name}.paranoid")
        out.flag(job.salvage, f"{name}.salvage")
        out.opt(out.str, job.comparator, f"{name}.comparator")
        out.opt(lambda table, at: _put_table_options(out, table, at), job.unsorted_table, f"{name}.unsorted_table")
    elif isinstance(job, CompactionJob):
        out.parts.append(bytes([_COMPACTION]))
        out.uint(job.job_id, f"{name}.job_id")
        out.uint(job.level, f"{name}.level")
        out.list(_put_meta, job.inputs, f"{name}.inputs")
        out.list(_put_meta, job.next_inputs, f"{name}.next_inputs")
        out.list(_put_meta, job.grandparents, f"{name}.grandparents")
        out.uint(job.smallest_snapshot, f"{name}.smallest_snapshot")
        out.list(_put_range, job.deeper_ranges, f"{name}.deeper_ranges")
        out.uint(job.max_output_file_size, f"{name}.max_output_file_size")
        out.uint(job.max_grandparent_overlap, f"{name}.max_grandparent_overlap")
        _put_table_options(out, job.table, f"{name}.table")
        out.opt(out.bytes, job.lower, f"{name}.lower")
        out.opt(out.bytes, job.upper, f"{name}.upper")
        out.opt(out.str, job.comparator, f"{name}.comparator")
    else:
        raise ValueError(f"{name}: {type(job).__name__} is not a FlushJob or CompactionJob")


def _put_output(out, o, name):
    out.str(o.name, f"{name}.name")
    out.uint(o.size, f"{name}.size")
    out.bytes(o.smallest, f"{name}.smallest")
    out.bytes(o.largest, f"{name}.largest")
    out.uint(o.entries, f"{name}.entries")


def _put_result(out, r, name):
    out.uint(r.job_id, f"{name}.job_id")
    out.flag(r.ok, f"{name}.ok")
    out.list(_put_output, r.outputs, f"{name}.outputs")
    out.str(r.error, f"{name}.error")
    out.uint(r.error_kind, f"{name}.error_kind")
    out.uint(r.os_errno, f"{name}.os_errno")
    out.uint(r.bytes_read, f"{name}.bytes_read")
    out.uint(r.bytes_written, f"{name}.bytes_written")
    out.uint(r.max_sequence, f"{name}.max_sequence")
    out.float(r.seconds, f"{name}.seconds")
    out.flag(r.for_level0, f"{name}.for_level0")


def encode(msg) -> list[bytes]:
    """The two frames of `msg`; ValueError when a field cannot be encoded."""
    try:
        kind = MESSAGE_TYPES[type(msg)]
    except KeyError:
        raise ValueError(f"not a protocol message: {type(msg).__name__}") from None
    out = BodyWriter()
    if kind is MsgType.READY:
        out.uint(msg.pid, "pid")
    elif kind is MsgType.HEARTBEAT:
        out.uint(msg.pid, "pid")
        out.str(msg.session, "session")
        out.uint(msg.job_id, "job_id")
        out.uint(msg.attempt, "attempt")
        out.uint(msg.bytes_done, "bytes_done")
    elif kind is MsgType.JOB:
        out.str(msg.session, "session")
        out.uint(msg.job_id, "job_id")
        out.uint(msg.attempt, "attempt")
        out.str(msg.db_dir, "db_dir")
        out.str(msg.staging_dir, "staging_dir")
        _put_job(out, msg.job, "job")
    elif kind is MsgType.RESULT:
        out.str(msg.session, "session")
        out.uint(msg.job_id, "job_id")
        out.uint(msg.attempt, "attempt")
        out.uint(msg.pid, "pid")
        _put_result(out, msg.result, "result")
    else:  # SHUTDOWN
        out.str(msg.reason, "reason")
    return [HEADER.pack(MAGIC, PROTOCOL_VERSION, kind), b"".join(out.parts)]


# ---------------------------------------------------------------- reading


class BodyReader:
    __slots__ = ("data", "pos", "what")

    def __init__(self, data, what):
        self.data = data
        self.pos = 0
        self.what = what

    def fail(self, reason, offset=None):
        offset = self.pos if offset is None else offset
        raise ProtocolError(f"{self.what} message: {reason}", offset)

    def uint(self, name):
        try:
            value, self.pos = decode_varint64(self.data, self.pos)
        except DecodeError as exc:
            self.fail(f"{name}: {exc.reason}", exc.offset)
        return value

    def flag(self, name):
        b = self.take(1, name)[0]
        if b > 1:
            self.fail(f"{name}: bool byte is {b}", self.pos - 1)
        return b == 1

    def float(self, name):
        return _DOUBLE.unpack(self.take(8, name))[0]

    def take(self, n, name):
        end = self.pos + n
        if end > len(self.data):
            self.fail(f"truncated in {name} (needs {n} bytes, {len(self.data) - self.pos} left)")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def bytes(self, name):
        return self.take(self.uint(f"{name} length"), name)

    def str(self, name):
        start = self.pos
        raw = self.bytes(name)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.fail(f"{name}: bad UTF-8 ({exc.reason})", start)

    def opt(self, get, name):
        return get(name) if self.flag(f"{name} presence") else None

    def list(self, get, name):
        count = self.uint(f"{name} count")
        if count > len(self.data) - self.pos:  # every item takes at least one byte
            self.fail(f"{name}: count {count} exceeds the bytes left")
        return [get(self, f"{name}[{i}]") for i in range(count)]


def _get_meta(inp, name):
    return FileMetaData(
        inp.uint(f"{name}.number"),
        inp.uint(f"{name}.size"),
        inp.bytes(f"{name}.smallest"),
        inp.bytes(f"{name}.largest"),
        inp.uint(f"{name}.allowed_seeks"),
    )


def _get_range(inp, name):
    return (inp.bytes(f"{name}.lower"), inp.bytes(f"{name}.upper"))


def _get_table_options(inp, name):
    return TableOptions(
        block_size=inp.uint(f"{name}.block_size"),
        block_restart_interval=inp.uint(f"{name}.block_restart_interval"),
        compression=inp.opt(inp.str, f"{name}.compression"),
        bloom_bits_per_key=inp.uint(f"{name}.bloom_bits_per_key"),
        prefix_compression=inp.flag(f"{name}.prefix_compression"),
        lsm_filter=inp.flag(f"{name}.lsm_filter"),
    )


def _get_job(inp, name):
    kind = inp.take(1, f"{name} kind")[0]
    if kind == _FLUSH:
        return FlushJob(
            job_id=inp.uint(f"{name}.job_id"),
            wal_number=inp.uint(f"{name}.wal_number"),
            table=_get_table_options(inp, f"{name}.table"),
            paranoid=inp.flag(f"{name}.paranoid"),
            salvage=inp.flag(f"{name}.salvage"),
            comparator=inp.opt(inp.str, f"{name}.comparator"),
            unsorted_table=inp.opt(lambda at: _get_table_options(inp, at), f"{name}.unsorted_table"),
        )
    if kind == _COMPACTION:
        return CompactionJob(
            job_id=inp.uint(f"{name}.job_id"),
            level=inp.uint(f"{name}.level"),
            inputs=inp.list(_get_meta, f"{name}.inputs"),
            next_inputs=inp.list(_get_meta, f"{name}.next_inputs"),
            grandparents=inp.list(_get_meta, f"{name}.grandparents"),
            smallest_snapshot=inp.uint(f"{name}.smallest_snapshot"),
            deeper_ranges=inp.list(_get_range, f"{name}.deeper_ranges"),
            max_output_file_size=inp.uint(f"{name}.max_output_file_size"),
            max_grandparent_overlap=inp.uint(f"{name}.max_grandparent_overlap"),
            table=_get_table_options(inp, f"{name}.table"),
            lower=inp.opt(inp.bytes, f"{name}.lower"),
            upper=inp.opt(inp.bytes, f"{name}.upper"),
            comparator=inp.opt(inp.str, f"{name}.comparator"),
        )
    inp.fail(f"{name}: unknown job kind {kind}", inp.pos - 1)


def _get_output(inp, name):
    return OutputTable(
        name=inp.str(f"{name}.name"),
        size=inp.uint(f"{name}.size"),
        smallest=inp.bytes(f"{name}.smallest"),
        largest=inp.bytes(f"{name}.largest"),
        entries=inp.uint(f"{name}.entries"),
    )


def _get_error_kind(inp, name):
    start = inp.pos
    value = inp.uint(name)
    try:
        return ErrorKind(value)
    except ValueError:
        inp.fail(f"{name}: unknown error kind {value}", start)


def _get_result(inp, name):
    return JobResult(
        job_id=inp.uint(f"{name}.job_id"),
        ok=inp.flag(f"{name}.ok"),
        outputs=inp.list(_get_output, f"{name}.outputs"),
        error=inp.str(f"{name}.error"),
        error_kind=_get_error_kind(inp, f"{name}.error_kind"),
        os_errno=inp.uint(f"{name}.os_errno"),
        bytes_read=inp.uint(f"{name}.bytes_read"),
        bytes_written=inp.uint(f"{name}.bytes_written"),
        max_sequence=inp.uint(f"{name}.max_sequence"),
        seconds=inp.float(f"{name}.seconds"),
        for_level0=inp.flag(f"{name}.for_level0"),
    )


def read_header(frame, magic: bytes, version: int, types, peer: str):
    """Check a header frame (magic, u16 version, u8 type: the layout of
    every protocol of lsm's) and return the type it announces, a member of
    the enum `types`; ProtocolError naming `peer` otherwise."""
    frame = bytes(frame)
    if len(frame) != HEADER.size:
        raise ProtocolError(f"header frame is {len(frame)} bytes, expected {HEADER.size}", 0)
    got_magic, got_version, kind = HEADER.unpack(frame)
    if got_magic != magic:
        raise ProtocolError(f"bad magic {got_magic!r} (expected {magic!r}; not an lsm {peer} message)", 0)
    if got_version != version:
        raise ProtocolError(f"{peer} protocol version {got_version}, this side speaks {version}", 2)
    try:
        return types(kind)
    except ValueError:
        raise ProtocolError(f"unknown message type {kind} in the {peer} protocol", 4) from None


def read_frames(frames, magic: bytes, version: int, types, peer: str):
    """(message type, body frame) of a message's two frames, the header
    checked by read_header; ProtocolError otherwise."""
    frames = list(frames)
    if len(frames) != 2:
        raise ProtocolError(f"expected 2 frames (header, body), got {len(frames)}")
    return read_header(frames[0], magic, version, types, peer), frames[1]


def decode(frames):
    """The message in `frames` (as returned by encode); ProtocolError otherwise."""
    kind, body = read_frames(frames, MAGIC, PROTOCOL_VERSION, MsgType, "compactor")
    inp = BodyReader(bytes(body), kind.name)
    if kind is MsgType.READY:
        msg = Ready(pid=inp.uint("pid"))
    elif kind is MsgType.HEARTBEAT:
        msg = Heartbeat(
            pid=inp.uint("pid"),
            session=inp.str("session"),
            job_id=inp.uint("job_id"),
            attempt=inp.uint("attempt"),
            bytes_done=inp.uint("bytes_done"),
        )
    elif kind is MsgType.JOB:
        msg = Job(
            session=inp.str("session"),
            job_id=inp.uint("job_id"),
            attempt=inp.uint("attempt"),
            db_dir=inp.str("db_dir"),
            staging_dir=inp.str("staging_dir"),
            job=_get_job(inp, "job"),
        )
    elif kind is MsgType.RESULT:
        msg = Result(
            session=inp.str("session"),
            job_id=inp.uint("job_id"),
            attempt=inp.uint("attempt"),
            pid=inp.uint("pid"),
            result=_get_result(inp, "result"),
        )
    else:
        msg = Shutdown(reason=inp.str("reason"))
    if inp.pos != len(inp.data):
        inp.fail(f"{len(inp.data) - inp.pos} trailing bytes after the last field")
    return msg
