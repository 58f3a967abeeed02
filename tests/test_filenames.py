"""File names and the CURRENT pointer (lsm.filenames)."""
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsm.errors import CorruptionError
from lsm.errors import IOError as LsmIOError
from lsm.fileio import FileSystem
from lsm.filenames import (FileType, current_file_name, descriptor_file_name, info_log_file_name,
                           lock_file_name, log_file_name, old_info_log_file_name,
                           parse_file_name, read_current, set_current_file, sst_table_file_name,
                           table_file_name, temp_file_name)


def test_names_are_zero_padded_to_six_digits():
    assert log_file_name("db", 3) == os.path.join("db", "000003.log")
    assert table_file_name("db", 5) == os.path.join("db", "000005.ldb")
    assert sst_table_file_name("db", 5) == os.path.join("db", "000005.sst")
    assert descriptor_file_name("db", 2) == os.path.join("db", "MANIFEST-000002")
    assert temp_file_name("db", 1) == os.path.join("db", "000001.dbtmp")
    assert table_file_name("db", 12345678) == os.path.join("db", "12345678.ldb")
    assert current_file_name("db") == os.path.join("db", "CURRENT")
    assert lock_file_name("db") == os.path.join("db", "LOCK")
    assert info_log_file_name("db") == os.path.join("db", "LOG")
    assert old_info_log_file_name("db") == os.path.join("db", "LOG.old")


@given(st.integers(0, 2**64 - 1))
def test_every_numbered_name_parses_back(number):
    for make, ftype in [(log_file_name, FileType.LOG), (table_file_name, FileType.TABLE),
                        (sst_table_file_name, FileType.TABLE), (temp_file_name, FileType.TEMP),
                        (descriptor_file_name, FileType.DESCRIPTOR)]:
        assert parse_file_name(os.path.basename(make("db", number))) == (ftype, number)


@pytest.mark.parametrize("name, expected", [
    ("CURRENT", (FileType.CURRENT, 0)),
    ("LOCK", (FileType.LOCK, 0)),
    ("LOG", (FileType.INFO_LOG, 0)),
    ("LOG.old", (FileType.INFO_LOG, 0)),
    ("5.ldb", (FileType.TABLE, 5)),
    ("0000000000000000000007.sst", (FileType.TABLE, 7)),
    ("MANIFEST-1", (FileType.DESCRIPTOR, 1)),
    ("000009.dbtmp", (FileType.TEMP, 9)),
    ("18446744073709551615.log", (FileType.LOG, 2**64 - 1)),
])
def test_names_leveldb_recognises(name, expected):
    assert parse_file_name(name) == expected


@pytest.mark.parametrize("name", [
    "", "foo", "CURRENT.bak", "CURRENT.5", "LOCK2", "LOG.older", "MANIFEST-", "MANIFEST-12x",
    "MANIFEST--1", "manifest-000001", ".log", "x.log", "-1.log", "+1.log", " 1.log", "1 .log",
    "1a.log", "000001.log.bak", "000001.tmp", "000001.LDB", "\u0663.log", "18446744073709551616.log",
])
def test_names_leveldb_ignores(name):
    assert parse_file_name(name) is None


class RecordingFS(FileSystem):
    """The real file system, with a log of the durability steps taken."""

    def __init__(self, fail_rename=False):
        self.calls = []
        self.fail_rename = fail_rename

    def write_file(self, path, data, sync=True):
        self.calls.append(("write_file", os.path.basename(path), data, sync))
        super().write_file(path, data, sync)

    def rename(self, src, dst):
        self.calls.append(("rename", os.path.basename(src), os.path.basename(dst)))
        if self.fail_rename:
            raise LsmIOError("rename refused")
        super().rename(src, dst)

    def sync_dir(self, path):
        self.calls.append(("sync_dir",))
        super().sync_dir(path)


def test_set_current_file_writes_synced_tmp_renames_then_syncs_directory(tmp_path):
    fs = RecordingFS()
    (tmp_path / "MANIFEST-000042").write_bytes(b"")
    set_current_file(fs, str(tmp_path), 42)
    assert fs.calls == [("write_file", "000042.dbtmp", b"MANIFEST-000042\n", True),
                        ("rename", "000042.dbtmp", "CURRENT"),
                        ("sync_dir",)]
    assert (tmp_path / "CURRENT").read_bytes() == b"MANIFEST-000042\n"
    assert sorted(os.listdir(tmp_path)) == ["CURRENT", "MANIFEST-000042"]
    assert read_current(fs, str(tmp_path)) == "MANIFEST-000042"


def test_set_current_file_replaces_old_pointer(tmp_path):
    fs = FileSystem()
    for n in (2, 4):
        (tmp_path / f"MANIFEST-{n:06d}").write_bytes(b"")
        set_current_file(fs, str(tmp_path), n)
        assert read_current(fs, str(tmp_path)) == f"MANIFEST-{n:06d}"


def test_failed_rename_leaves_no_temp_file_and_old_current(tmp_path):
    (tmp_path / "MANIFEST-000001").write_bytes(b"")
    set_current_file(FileSystem(), str(tmp_path), 1)
    with pytest.raises(LsmIOError):
        set_current_file(RecordingFS(fail_rename=True), str(tmp_path), 3)
    assert sorted(os.listdir(tmp_path)) == ["CURRENT", "MANIFEST-000001"]
    assert (tmp_path / "CURRENT").read_bytes() == b"MANIFEST-000001\n"


@pytest.mark.parametrize("contents, reason", [
    (None, "does not exist"),
    (b"", "does not end with newline"),
    (b"MANIFEST-000001", "does not end with newline"),
    (b"MANIFEST-000001\r\n", "non-existent file"),
    (b"MANIFEST-000009\n", "non-existent file"),
    (b"\n", "non-existent file"),
])
def test_read_current_rejects_damaged_pointer(tmp_path, contents, reason):
    (tmp_path / "MANIFEST-000001").write_bytes(b"")
    if contents is not None:
        (tmp_path / "CURRENT").write_bytes(contents)
    with pytest.raises(CorruptionError, match=reason) as info:
        read_current(FileSystem(), str(tmp_path))
    assert info.value.path == str(tmp_path / "CURRENT")


def test_wal_liveness_follows_the_manifest_log_numbers():
    from lsm.filenames import wal_is_live
    assert wal_is_live(7, log_number=7, prev_log_number=0)
    assert wal_is_live(9, log_number=7, prev_log_number=0)
    assert wal_is_live(5, log_number=7, prev_log_number=5)
    assert not wal_is_live(6, log_number=7, prev_log_number=5)


def test_each_job_run_gets_its_own_staging_directory_under_one_root():
    from lsm.filenames import STAGING_DIR_NAME, job_staging_dir, staging_root
    root = staging_root("/db")
    assert root == os.path.join("/db", STAGING_DIR_NAME)
    runs = {job_staging_dir("/db", session, job, attempt)
            for session in ("a", "b") for job in (1, 2) for attempt in (0, 1)}
    assert len(runs) == 8 and all(os.path.dirname(r) == root for r in runs)
