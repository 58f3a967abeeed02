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
