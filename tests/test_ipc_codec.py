"""The compactor wire codec: every message round-trips; damaged, foreign or
pickled frames are refused with an error that says what was wrong; nothing on
the wire is pickled."""
import ast
import pathlib
import pickle
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lsm.ipc.codec
import lsm.ipc.messages
import lsm.ipc.pool
import lsm.ipc.worker
from lsm.jobs import CompactionJob, ErrorKind, FlushJob, JobResult, OutputTable
from lsm.table.options import TableOptions
from lsm.filemeta import FileMetaData
from lsm.ipc.codec import MAGIC, decode, encode
from lsm.ipc.messages import (
    PROTOCOL_VERSION,
    Heartbeat,
    Job,
    MsgType,
    ProtocolError,
    Ready,
    Result,
    Shutdown,
)

u64 = st.integers(min_value=0, max_value=2**64 - 1)
small = st.integers(min_value=0, max_value=2**31)
keys = st.binary(max_size=40)
ikeys = st.binary(min_size=8, max_size=48)
text = st.text(max_size=40)

metas = st.builds(FileMetaData, number=u64, size=u64, smallest=ikeys, largest=ikeys, allowed_seeks=small)
table_options = st.builds(TableOptions, block_size=small, block_restart_interval=small,
                          compression=st.sampled_from([None, "snappy"]) | text, bloom_bits_per_key=small,
                          prefix_compression=st.booleans(), lsm_filter=st.booleans())
comparators = st.none() | text
flush_jobs = st.builds(FlushJob, job_id=u64, wal_number=u64, table=table_options, paranoid=st.booleans(),
                       comparator=comparators, unsorted_table=st.none() | table_options)
compaction_jobs = st.builds(
    CompactionJob, job_id=u64, level=st.integers(0, 6), inputs=st.lists(metas, max_size=5),
    next_inputs=st.lists(metas, max_size=5), grandparents=st.lists(metas, max_size=5), smallest_snapshot=u64,
    deeper_ranges=st.lists(st.tuples(keys, keys), max_size=5), max_output_file_size=u64,
    max_grandparent_overlap=u64, table=table_options, lower=st.none() | keys, upper=st.none() | keys,
    comparator=comparators)
outputs = st.builds(OutputTable, name=text, size=u64, smallest=ikeys, largest=ikeys, entries=u64)
results = st.builds(JobResult, job_id=u64, ok=st.booleans(), outputs=st.lists(outputs, max_size=5), error=text,
                    error_kind=st.sampled_from(ErrorKind), os_errno=small, bytes_read=u64, bytes_written=u64,
                    max_sequence=u64, seconds=st.floats(allow_nan=False), for_level0=st.booleans())
sessions = st.text(alphabet="0123456789abcdef", max_size=32)

messages = st.one_of(
    st.builds(Ready, pid=u64),
    st.builds(Heartbeat, pid=u64, session=sessions, job_id=u64, attempt=u64, bytes_done=u64),
    st.builds(Job, session=sessions, job_id=u64, attempt=u64, db_dir=text, staging_dir=text,
              job=flush_jobs | compaction_jobs),
    st.builds(Result, session=sessions, job_id=u64, attempt=u64, pid=u64, result=results),
    st.builds(Shutdown, reason=text),
)


@given(messages)
def test_every_message_round_trips(msg):
    frames = encode(msg)
    assert len(frames) == 2 and all(isinstance(f, bytes) for f in frames)
    back = decode(frames)
    assert back == msg
    assert type(back) is type(msg)
    if isinstance(msg, Job):
        assert type(back.job) is type(msg.job)
        for field in ("inputs", "next_inputs", "grandparents"):
            for a, b in zip(getattr(msg.job, field, []), getattr(back.job, field, [])):
                assert a.allowed_seeks == b.allowed_seeks  # not part of FileMetaData's ==


@given(messages)
def test_frames_are_not_pickles(msg):
    header, body = encode(msg)
    # A message starts with its header: the magic, never pickle's PROTO opcode
    # (0x80, the first byte of every protocol >= 2 pickle). The body is read
    # field by field as the header's type says; it is never unpickled.
    assert header[:2] == MAGIC and not header.startswith(b"\x80")
    assert len(header) == 5


@given(messages, st.data())
def test_any_truncation_is_refused_and_named(msg, data):
    header, body = encode(msg)
    if not body:
        return
    cut = data.draw(st.integers(0, len(body) - 1))
    with pytest.raises(ProtocolError) as info:
        decode([header, body[:cut]])
    message = str(info.value)
    assert MsgType(header[4]).name in message
    assert "truncated" in message or "exceeds the bytes left" in message or "bad UTF-8" in message


@given(messages, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_refused(msg, extra):
    header, body = encode(msg)
    with pytest.raises(ProtocolError, match="trailing bytes"):
        decode([header, body + extra])


def test_bad_version_is_named():
    header, body = encode(Ready(pid=1))
    other = struct.pack("<2sHB", MAGIC, PROTOCOL_VERSION + 1, MsgType.READY)
    with pytest.raises(ProtocolError, match=f"protocol version {PROTOCOL_VERSION + 1}, this side speaks"):
        decode([other, body])


def test_unknown_type_is_named():
    with pytest.raises(ProtocolError, match="unknown message type 99"):
        decode([struct.pack("<2sHB", MAGIC, PROTOCOL_VERSION, 99), b""])


def test_wrong_frame_count_and_foreign_header_are_refused():
    header, body = encode(Shutdown("x"))
    with pytest.raises(ProtocolError, match="expected 2 frames"):
        decode([header])
    with pytest.raises(ProtocolError, match="expected 2 frames"):
        decode([header, body, b""])
    with pytest.raises(ProtocolError, match="header frame is 3 bytes"):
        decode([b"abc", body])
    with pytest.raises(ProtocolError, match="bad magic"):
        decode([b"XX" + header[2:], body])


def test_a_pickled_message_is_refused():
    blob = pickle.dumps(Ready(pid=1), protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(ProtocolError):
        decode([blob[:5], blob[5:]])
    with pytest.raises(ProtocolError, match="expected 2 frames"):
        decode([blob])


def test_unknown_job_kind_and_bad_bool_are_refused():
    header, body = encode(Job("s", 1, 1, "/d", "/d/s", FlushJob(job_id=1, wal_number=2)))
    at = body.index(b"/d/s") + 4  # the job kind byte follows staging_dir
    with pytest.raises(ProtocolError, match="unknown job kind 9"):
        decode([header, body[:at] + b"\x09" + body[at + 1:]])
    header, body = encode(Result("s", 1, 1, 7, JobResult(job_id=1, ok=True)))
    at = len(body) - 17  # ok, then 7 one-byte fields, the 8-byte seconds and for_level0
    assert body[at] == 1  # result.ok
    with pytest.raises(ProtocolError, match="result.ok: bool byte is 7"):
        decode([header, body[:at] + b"\x07" + body[at + 1:]])


def test_unknown_error_kind_is_refused_with_its_offset():
    result = JobResult(job_id=1, ok=False, error="e", error_kind=ErrorKind.IO, os_errno=28)
    header, body = encode(Result("s", 1, 1, 7, result))
    at = len(body) - 14  # error_kind, then os_errno, 3 one-byte fields, the 8-byte seconds and for_level0
    assert body[at] == ErrorKind.IO
    with pytest.raises(ProtocolError, match="result.error_kind: unknown error kind 9") as info:
        decode([header, body[:at] + b"\x09" + body[at + 1:]])
    assert info.value.offset == at


def test_error_kinds_keep_their_wire_numbers():
    assert {kind.name: int(kind) for kind in ErrorKind} == {"NONE": 0, "IO": 1, "CORRUPTION": 2, "OTHER": 3,
                                                          "REJECTED": 4}


def test_a_peer_of_the_previous_protocol_is_refused():
    """A compactor left from before typed failures (version 2) would send a
    corruption flag where error_kind now stands: refused at the header."""
    old = struct.pack("<2sHB", MAGIC, 2, MsgType.RESULT)
    with pytest.raises(ProtocolError, match=f"protocol version 2, this side speaks {PROTOCOL_VERSION}"):
        decode([old, b""])


def test_values_that_do_not_fit_are_refused_when_encoding():
    with pytest.raises(ValueError, match="pid"):
        encode(Ready(pid=-1))
    with pytest.raises(ValueError, match="job_id"):
        encode(Heartbeat(pid=1, job_id=2**64))
    bad = CompactionJob(job_id=1, level=0, inputs=[FileMetaData(1, 1, "not bytes", b"k" * 8)], next_inputs=[],
                        grandparents=[], smallest_snapshot=0, deeper_ranges=[])
    with pytest.raises(ValueError, match=r"job.inputs\[0\].smallest"):
        encode(Job("s", 1, 1, "/d", "/s", bad))
    with pytest.raises(ValueError, match="not a protocol message"):
        encode(object())


@pytest.mark.parametrize("module", [lsm.ipc.codec, lsm.ipc.messages, lsm.ipc.pool, lsm.ipc.worker])
def test_protocol_modules_do_not_import_pickle(module):
    tree = ast.parse(pathlib.Path(module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & {"pickle", "cPickle", "dill", "marshal", "shelve", "copyreg"}
    assert "pickle" not in vars(module)


def test_codec_is_pure():
    tree = ast.parse(pathlib.Path(lsm.ipc.codec.__file__).read_text())
    names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
             for alias in node.names}
    modules = {node.module.split(".")[0] for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert not (names | modules) & {"zmq", "socket", "os", "io", "pickle"}
    assert lsm.ipc.codec.__doc__.splitlines()[0].endswith("Pure: no sockets, no files, no pickle.")
