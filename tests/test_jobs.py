"""The job contract's failure rules: a failed job's kind is told by the
exception's class, the error a user sees keeps that kind (and the errno), and
one retry policy decides which failed attempts get another."""
import errno

import pytest

import lsm
from lsm.errors import CorruptionError, DecodeError
from lsm.fileio import DEFAULT_FS
from lsm.jobs import IN_WRITER, ErrorKind, JobResult, RetryPolicy, job_error


def test_failure_kind_follows_the_exception_class(tmp_path):
    with pytest.raises(lsm.IOError) as missing:
        DEFAULT_FS.read_file(str(tmp_path / "000007.log"))
    disk_full = lsm.IOError("write out-000001.ldb: No space left on device")
    disk_full.errno = errno.ENOSPC
    cases = [
        (missing.value, ErrorKind.IO, errno.ENOENT),
        (disk_full, ErrorKind.IO, errno.ENOSPC),
        (PermissionError(errno.EACCES, "Permission denied"), ErrorKind.IO, errno.EACCES),
        (CorruptionError("/db/000005.ldb", 100, "block checksum mismatch"), ErrorKind.CORRUPTION, 0),
        (DecodeError("truncated varint", 3), ErrorKind.CORRUPTION, 0),
        (ZeroDivisionError("a bug"), ErrorKind.OTHER, 0),
    ]
    for exc, kind, code in cases:
        result = JobResult.failure(4, exc)
        assert (result.ok, result.job_id, result.error_kind, result.os_errno) == (False, 4, kind, code), exc
        assert result.error == f"{type(exc).__name__}: {exc}"


def test_user_error_keeps_the_kind_and_errno_of_the_failure():
    disk_full = lsm.IOError("write out-000001.ldb: No space left on device")
    disk_full.errno = errno.ENOSPC
    err = job_error(JobResult.failure(1, disk_full), "flush job 1 failed")
    assert type(err) is lsm.IOError and err.errno == errno.ENOSPC
    assert str(err) == "flush job 1 failed: IOError: write out-000001.ldb: No space left on device"
    damaged = JobResult.failure(2, CorruptionError("/db/000005.ldb", 100, "bad block"))
    err = job_error(damaged, "compaction job 2 failed", "/db")
    assert type(err) is lsm.CorruptionError and err.path == "/db" and "bad block" in err.reason
    err = job_error(JobResult.failure(3, RuntimeError("a bug")), "compaction job 3 failed")
    assert type(err) is lsm.Error


def test_corruption_is_never_retried_and_attempts_run_out():
    policy = RetryPolicy(max_attempts=3, backoff=0.5)
    assert not policy.retries(ErrorKind.CORRUPTION, 1)
    for kind in (ErrorKind.IO, ErrorKind.OTHER, ErrorKind.REJECTED):
        assert [policy.retries(kind, attempt) for attempt in (1, 2, 3)] == [True, True, False]
    assert [policy.delay(attempt) for attempt in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_jobs_run_in_the_writer_fail_at_once_but_a_rejected_result_runs_again():
    assert not IN_WRITER.retries(ErrorKind.IO, 1)
    assert not IN_WRITER.retries(ErrorKind.OTHER, 1)
    assert IN_WRITER.retries(ErrorKind.REJECTED, 1) and not IN_WRITER.retries(ErrorKind.REJECTED, 3)


def test_a_policy_without_attempts_is_refused():
    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="backoff must not be negative"):
        RetryPolicy(backoff=-1)
