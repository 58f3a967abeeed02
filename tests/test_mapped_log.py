"""The WAL's file (fileio.MappedWritableFile): small appends are copies into
a mapping, batches are pwritten, into a file reserved a window at a time;
what a reader sees is the bytes appended, then zeros until close() cuts the
file back."""
import os
import random

from lsm.fileio import DEFAULT_FS, MappedWritableFile
from lsm.testing.faultfs import FaultFS


class SmallWindows(MappedWritableFile):
    """Windows, and writeback starts, every few appends."""
    __slots__ = ()
    MAP_BYTES = 8192
    WRITEBACK_BYTES = 16384


def append_each_as_a_reader_watches(log, path, pieces) -> bytes:
    """Append the pieces one by one; after each, another reader of the file
    sees every byte appended so far, then only zeros. Returns the bytes."""
    written = b""
    for piece in pieces:
        log.append(piece)
        written += piece
        with open(path, "rb") as f:
            seen = f.read()
        assert seen[:len(written)] == written and not seen[len(written):].strip(b"\0")
        assert len(seen) >= len(written) and log.size == len(written)
    return written


def test_appends_across_many_windows_read_back_whole_and_close_cuts_the_zeros(tmp_path):
    path = str(tmp_path / "000007.log")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    log = SmallWindows(path, fd)
    rng = random.Random(1)
    # Pieces from 1 byte to several windows, so remaps land mid-piece.
    pieces = [rng.randbytes(rng.choice((1, 7, 300, 5000, 20000))) for _ in range(60)]
    written = append_each_as_a_reader_watches(log, path, pieces)
    log.sync()
    log.close()
    assert log.closed
    with open(path, "rb") as f:
        assert f.read() == written


def test_an_empty_log_closes_as_an_empty_file(tmp_path):
    log = DEFAULT_FS.create_log(str(tmp_path / "000003.log"))
    assert isinstance(log, MappedWritableFile)
    log.close()
    assert os.path.getsize(tmp_path / "000003.log") == 0


def test_fault_injecting_file_system_keeps_the_wal_off_the_mapping(tmp_path):
    """Its simulated page cache sees write() calls only: a mapped WAL would
    slip past its crash and fault model."""
    fs = FaultFS(str(tmp_path))
    log = fs.create_log(str(tmp_path / "000004.log"))
    assert not isinstance(log, MappedWritableFile)
    log.append(b"abc")
    log.close()


def test_batches_are_written_and_puts_are_mapped_and_a_reader_sees_them_interleaved(tmp_path):
    """A batch of PWRITE_BYTES or more goes by pwrite(), anything smaller into
    the mapping; both land in one page cache, in append order."""
    path = str(tmp_path / "000008.log")
    log = DEFAULT_FS.create_log(path)
    big = MappedWritableFile.PWRITE_BYTES
    pieces = [b"a" * 10, b"B" * big, b"c" * 3, b"D" * (3 * big + 5), b"e"]
    written = append_each_as_a_reader_watches(log, path, pieces)
    assert log.mapped_bytes == 14 and log.size == len(written)
    log.close()
    with open(path, "rb") as f:
        assert f.read() == written


def test_appended_parts_read_back_as_their_join_across_windows(tmp_path):
    """append_parts (a framed batch as buffers) leaves the bytes that
    append(b"".join(parts)) would, whether the parts are small (copied into
    the mapping) or large (one pwritev), across window boundaries."""
    path = str(tmp_path / "000008.log")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    log = SmallWindows(path, fd)
    rng = random.Random(2)
    written = b""
    for _ in range(40):
        parts = [rng.randbytes(rng.choice((0, 7, 100, 3000, 9000))) for _ in range(rng.randrange(1, 6))]
        parts = [memoryview(p) if rng.random() < 0.5 else p for p in parts]
        log.append_parts(parts)
        written += b"".join(parts)
        assert log.size == len(written)
    log.close()
    with open(path, "rb") as f:
        assert f.read() == written


SHORT_WRITE_CHILD = r"""
import os, resource, signal, sys
from lsm.errors import IOError as LsmIOError
from lsm.fileio import MappedWritableFile
path, limit = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
log = MappedWritableFile(path, fd)
log.append(b"h" * 5000)  # reserves the first window, past the limit set next
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
parts = [b"A" * 7, memoryview(b"B" * 20000), b"C" * 7, b"D" * 30000]
try:
    log.append_parts(parts)
except LsmIOError as exc:
    print("error", log.size, exc)
else:
    print("no error", log.size)
"""


def test_a_short_batch_write_resumes_and_then_reports_the_error_with_what_reached_the_file(tmp_path):
    """The file size limit cuts a pwritev short, then refuses the rest
    (EFBIG): the write is resumed from inside the part it stopped in, the
    error names the file, and size counts exactly the bytes that reached
    it (LevelDB's WritableFile does the same for a short write)."""
    import subprocess
    import sys
    path = str(tmp_path / "000009.log")
    limit = 5000 + 7 + 12345  # inside the second part
    out = subprocess.run([sys.executable, "-c", SHORT_WRITE_CHILD, path, str(limit)], capture_output=True,
                         text=True, timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr
    status, size, message = out.stdout.split(" ", 2)
    assert status == "error" and int(size) == limit
    assert path in message
    with open(path, "rb") as f:
        data = f.read()
    assert data[:limit] == b"h" * 5000 + b"A" * 7 + b"B" * 12345
