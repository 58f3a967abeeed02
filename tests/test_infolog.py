"""lsm.infolog: LevelDB-style info LOG, rotated to LOG.old at open, one line per message."""
import re
import threading
import time

import pytest

from lsm.errors import IOError as LsmIOError
from lsm.fileio import DEFAULT_FS, FileSystem
from lsm.infolog import InfoLog, NullInfoLog, format_line, parse_line

LINE = re.compile(r"^(\d{4})/(\d{2})/(\d{2})-(\d{2}):(\d{2}):(\d{2})\.(\d{6}) (\d+) (.*)$")


def read_lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_open_creates_log_and_lines_have_leveldb_format(tmp_path):
    log = InfoLog.open(DEFAULT_FS, str(tmp_path))
    log.log("Recovering log #3")
    log.log("Compacting %d@%d + %d@%d files", 4, 0, 1, 1)
    # Each line is in the OS before log() returns: readable while still open.
    lines = read_lines(tmp_path / "LOG")
    assert len(lines) == 2
    first, second = (LINE.match(line) for line in lines)
    assert first and second, lines
    assert first.group(9) == "Recovering log #3"
    assert second.group(9) == "Compacting 4@0 + 1@1 files"
    assert int(first.group(8)) == threading.get_ident()
    log.close()
    assert log.closed


def test_timestamp_is_local_time_with_microseconds():
    now = time.mktime((2026, 11, 21, 8, 0, 0, 0, 0, -1)) + 0.123456
    assert format_line("hello", now=now, thread_id=42) == "2026/11/21-08:00:00.123456 42 hello\n"


def test_parse_line_inverts_format_line():
    now = time.mktime((2026, 11, 21, 8, 0, 0, 0, 0, -1)) + 0.123456
    stamp, timestamp, thread_id, message = parse_line(format_line("Compacted 1@0 + 1@1 files", now, 42))
    assert (stamp, thread_id, message) == ("2026/11/21-08:00:00.123456", "42", "Compacted 1@0 + 1@1 files")
    assert timestamp == pytest.approx(now, abs=1e-6)
    assert parse_line(format_line("", now, 42))[3] == ""
    assert parse_line("2026/11/21-08:00:00.123456 7f3a2b hex thread id, as LevelDB may write\r\n")[2:] == \
        ("7f3a2b", "hex thread id, as LevelDB may write")


@pytest.mark.parametrize("line", [
    "", "hello", "2026/11/21-08:00:00.123456", "2026/11/21-08:00:00.123456 42",
    "2026/11/21-08:00:00.12 42 short micros", "2026/13/21-08:00:00.123456 42 month 13",
    "2026/11/21 08:00:00.123456 42 space for a dash", "\x00\x00\x00 torn"])
def test_parse_line_returns_none_for_malformed_lines(line):
    assert parse_line(line) is None


def test_reopen_rotates_log_to_log_old(tmp_path):
    with InfoLog.open(DEFAULT_FS, str(tmp_path)) as log:
        log.log("first session")
    with InfoLog.open(DEFAULT_FS, str(tmp_path)) as log:
        log.log("second session")
    assert [LINE.match(x).group(9) for x in read_lines(tmp_path / "LOG.old")] == ["first session"]
    assert [LINE.match(x).group(9) for x in read_lines(tmp_path / "LOG")] == ["second session"]
    with InfoLog.open(DEFAULT_FS, str(tmp_path)) as log:  # the oldest session is replaced
        log.log("third session")
    assert [LINE.match(x).group(9) for x in read_lines(tmp_path / "LOG.old")] == ["second session"]
    assert [LINE.match(x).group(9) for x in read_lines(tmp_path / "LOG")] == ["third session"]


def test_open_without_previous_log_makes_no_log_old(tmp_path):
    InfoLog.open(DEFAULT_FS, str(tmp_path)).close()
    assert (tmp_path / "LOG").exists()
    assert (tmp_path / "LOG").read_bytes() == b""
    assert not (tmp_path / "LOG.old").exists()


def test_multiline_message_stays_one_line(tmp_path):
    with InfoLog.open(DEFAULT_FS, str(tmp_path)) as log:
        log.log("compaction failed:\nCorruption: bad block\r\nretrying")
    lines = read_lines(tmp_path / "LOG")
    assert len(lines) == 1
    assert LINE.match(lines[0]).group(9) == "compaction failed: | Corruption: bad block | retrying"


def test_non_ascii_and_bad_format_args_do_not_raise(tmp_path):
    with InfoLog.open(DEFAULT_FS, str(tmp_path)) as log:
        log.log("key \u00e9t\u00e9 \udcff")
        log.log("%d files", "not a number")
        log("callable too")
    lines = read_lines(tmp_path / "LOG")
    assert len(lines) == 3
    assert "\u00e9t\u00e9" in lines[0]
    assert lines[1].endswith("%d files not a number")
    assert lines[2].endswith(" callable too")


def test_log_after_close_is_dropped(tmp_path):
    log = InfoLog.open(DEFAULT_FS, str(tmp_path))
    log.log("before")
    log.close()
    log.log("after")  # e.g. a thread still finishing at shutdown
    log.close()       # closing twice is fine
    assert [LINE.match(x).group(9) for x in read_lines(tmp_path / "LOG")] == ["before"]


def test_threads_write_whole_lines(tmp_path):
    log = InfoLog.open(DEFAULT_FS, str(tmp_path))
    barrier = threading.Barrier(4)  # all alive at once, so their ids differ

    def worker(n):
        barrier.wait()
        for i in range(200):
            log.log(f"thread {n} line {i} " + "x" * 50)
        barrier.wait()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    lines = read_lines(tmp_path / "LOG")
    assert len(lines) == 800
    assert all(LINE.match(line) for line in lines)
    idents = {int(LINE.match(line).group(8)) for line in lines}
    assert len(idents) == 4


class RecordingFS(FileSystem):
    """Records the seam calls; can make appends fail like a full disk."""

    def __init__(self, fail_appends=False):
        self.calls = []
        self.fail_appends = fail_appends

    def rename(self, src, dst):
        self.calls.append(("rename", src, dst))
        super().rename(src, dst)

    def create(self, path, exclusive=True):
        self.calls.append(("create", path, exclusive))
        file = super().create(path, exclusive)
        if self.fail_appends:
            def append(data):
                raise LsmIOError(f"write {path}: No space left on device")
            file = _FailingFile(file, append)
        return file


class _FailingFile:
    def __init__(self, inner, append):
        self._inner = inner
        self.append = append

    def close(self):
        self._inner.close()


def test_uses_the_filesystem_seam(tmp_path):
    fs = RecordingFS()
    InfoLog.open(fs, str(tmp_path)).close()
    InfoLog.open(fs, str(tmp_path)).close()
    log, old = str(tmp_path / "LOG"), str(tmp_path / "LOG.old")
    assert fs.calls == [("create", log, False), ("rename", log, old), ("create", log, False)]


def test_write_errors_are_swallowed(tmp_path):
    log = InfoLog.open(RecordingFS(fail_appends=True), str(tmp_path))
    log.log("disk is full")  # must not raise: the info LOG never breaks the database
    log.close()


def test_open_fails_loudly_when_the_directory_is_missing(tmp_path):
    with pytest.raises(LsmIOError):
        InfoLog.open(DEFAULT_FS, str(tmp_path / "missing"))


def test_null_info_log_accepts_everything():
    log = NullInfoLog()
    log.log("anything %d", 1)
    log("anything")
    with log:
        pass
    log.close()


def test_every_event_line_reads_back_as_it_was_written():
    from lsm import infolog
    cases = [
        (infolog.flushed_message(12, 65432, 0, 0.0123, 11), infolog.FLUSH,
         {"table_number": 12, "written": 65432, "level": 0, "seconds": 0.012, "wal_number": 11}),
        (infolog.flushed_message(None, 0, 2, 0.001, 5), infolog.FLUSH,
         {"table_number": None, "written": 0, "level": 2, "seconds": 0.001, "wal_number": 5}),
        (infolog.compacted_message(4, 0, 2, 300000, 3, 327000, 0.103, 2), infolog.COMPACTION,
         {"inputs": 4, "level": 0, "next_inputs": 2, "written": 300000, "outputs": 3, "read": 327000,
          "seconds": 0.103, "subcompactions": 2}),
        (infolog.moved_message(14, 2, 65432), infolog.MOVE, {"number": 14, "level": 2, "size": 65432}),
        (infolog.recovered_log_message(11, 900, 7193), infolog.RECOVERY,
         {"wal_number": 11, "max_sequence": 900, "table_bytes": 7193, "error": None}),
        (infolog.recovered_log_message(3, 0, 0, "IOError: disk full"), infolog.RECOVERY,
         {"wal_number": 3, "max_sequence": 0, "table_bytes": 0, "error": "IOError: disk full"}),
    ]
    for message, kind, fields in cases:
        _stamp, _ts, _thread, read_back = parse_line(format_line(message))
        assert infolog.parse_event_message(read_back) == (kind, fields), message


def test_an_event_line_that_does_not_parse_is_reported_and_other_lines_are_no_events():
    from lsm import infolog
    with pytest.raises(ValueError, match="unparsable"):
        infolog.parse_event_message("Compacted garbage")
    assert infolog.parse_event_message("Opening /tmp/db (compactors=1)") is None
