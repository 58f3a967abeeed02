"""Names of the files in a database directory, and the CURRENT pointer.

Name functions are pure. ``set_current_file`` and ``read_current`` do their
I/O only through the ``fs`` object they are given (lsm.fileio.FileSystem).
"""
import enum
import os

from .errors import CorruptionError

# On-disk names (frozen). Numbers are decimal, zero-padded to at least 6 digits.
CURRENT = "CURRENT"
LOCK = "LOCK"
INFO_LOG = "LOG"
OLD_INFO_LOG = "LOG.old"
MANIFEST_PREFIX = "MANIFEST-"
LOG_SUFFIX = ".log"
TABLE_SUFFIX = ".ldb"
SST_SUFFIX = ".sst"  # legacy table name; C++ still reads it
TEMP_SUFFIX = ".dbtmp"
# lsm's own sub-directory, where jobs write their tables before the writer
# renames them in. LevelDB ignores directories, and lsm clears it at open.
STAGING_DIR_NAME = "lsm-staging"

_MAX_NUMBER = (1 << 64) - 1
_DIGITS = frozenset("0123456789")


class FileType(enum.Enum):
    LOG = "log"
    TABLE = "table"
    DESCRIPTOR = "descriptor"
    CURRENT = "current"
    LOCK = "lock"
    INFO_LOG = "info_log"
    TEMP = "temp"


def _numbered(db, number, suffix):
    return os.path.join(db, f"{number:06d}{suffix}")


def log_file_name(db, number):
    return _numbered(db, number, LOG_SUFFIX)


def table_file_name(db, number):
    return _numbered(db, number, TABLE_SUFFIX)


def sst_table_file_name(db, number):
    return _numbered(db, number, SST_SUFFIX)


def temp_file_name(db, number):
    return _numbered(db, number, TEMP_SUFFIX)


def descriptor_file_name(db, number):
    return os.path.join(db, f"{MANIFEST_PREFIX}{number:06d}")


def current_file_name(db):
    return os.path.join(db, CURRENT)


def lock_file_name(db):
    return os.path.join(db, LOCK)


def info_log_file_name(db):
    return os.path.join(db, INFO_LOG)


def old_info_log_file_name(db):
    return os.path.join(db, OLD_INFO_LOG)


def staging_root(db):
    """The directory holding every job's staging directory."""
    return os.path.join(db, STAGING_DIR_NAME)


def job_staging_dir(db, session, job_id, attempt=0):
    """Where one run of a job writes its tables: ``{session}-{job_id}-{attempt}``
    under staging_root. `session` tells one open's (or tool's) runs from
    another's; attempt 0 is a run in the writer, 1.. the pool's attempts."""
    return os.path.join(db, STAGING_DIR_NAME, f"{session}-{job_id}-{attempt}")


def wal_is_live(number, log_number, prev_log_number):
    """Whether the WAL with `number` may hold writes no table has yet, given
    the MANIFEST's log number and previous log number: recovery replays
    exactly these, and only the others may be deleted."""
    return number >= log_number or number == prev_log_number


def _parse_number(text):
    # ASCII digits only (str.isdigit would accept other scripts), fitting uint64, as C++.
    if not text or not _DIGITS.issuperset(text):
        return None
    number = int(text)
    return number if number <= _MAX_NUMBER else None


_SUFFIX_TYPES = {
    LOG_SUFFIX: FileType.LOG,
    TABLE_SUFFIX: FileType.TABLE,
    SST_SUFFIX: FileType.TABLE,
    TEMP_SUFFIX: FileType.TEMP,
}
_FIXED_NAMES = {
    CURRENT: FileType.CURRENT,
    LOCK: FileType.LOCK,
    INFO_LOG: FileType.INFO_LOG,
    OLD_INFO_LOG: FileType.INFO_LOG,
}


def parse_file_name(name):
    """Return (FileType, number) for a base name LevelDB recognises, else None.

    Fixed names (CURRENT, LOCK, LOG, LOG.old) have number 0. Like C++, any
    number of digits is accepted ("5.ldb"), and ".sst" is a table too.
    """
    fixed = _FIXED_NAMES.get(name)
    if fixed is not None:
        return fixed, 0
    if name.startswith(MANIFEST_PREFIX):
        number = _parse_number(name[len(MANIFEST_PREFIX):])
        return None if number is None else (FileType.DESCRIPTOR, number)
    stem, dot, suffix = name.partition(".")
    ftype = _SUFFIX_TYPES.get(dot + suffix)
    if ftype is None:
        return None
    number = _parse_number(stem)
    return None if number is None else (ftype, number)


def set_current_file(fs, db, manifest_number):
    """Point CURRENT at MANIFEST-<manifest_number> atomically and durably.

    C++'s scheme (write NNNNNN.dbtmp, fsync, rename over CURRENT) plus a
    directory fsync, so the rename itself survives a power cut.
    """
    contents = f"{MANIFEST_PREFIX}{manifest_number:06d}\n".encode()
    tmp = temp_file_name(db, manifest_number)
    try:
        fs.write_file(tmp, contents, sync=True)
        fs.rename(tmp, current_file_name(db))
    except BaseException:
        fs.remove(tmp)
        raise
    fs.sync_dir(db)


def read_current(fs, db):
    """Return the manifest's base name that CURRENT names (e.g. "MANIFEST-000002").

    CorruptionError when CURRENT is missing, empty, lacks its trailing newline,
    or names a file that does not exist. As C++, exactly one "\\n" is stripped
    and the rest is used verbatim (so "\\r\\n" leaves a name that does not exist).
    """
    path = current_file_name(db)
    if not fs.exists(path):
        raise CorruptionError(path, None, "CURRENT file does not exist")
    contents = fs.read_file(path)
    if not contents.endswith(b"\n"):
        raise CorruptionError(path, None, "CURRENT file does not end with newline")
    name = os.fsdecode(contents[:-1])
    if not name or not fs.exists(os.path.join(db, name)):
        raise CorruptionError(path, None, f"CURRENT points to a non-existent file {name!r}")
    return name
