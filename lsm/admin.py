"""Whole-database operations outside an open DB: destroy_db and repair_db.
Reads and removes files through the FileSystem seam."""
import os

from . import filenames
from .errors import Error
from .fileio import DEFAULT_FS


def destroy_db(name, fs=DEFAULT_FS):
    """Remove every file LevelDB (or lsm) would have made in `name`, then the
    directory if it is empty. Unknown files are left alone, as LevelDB does."""
    name = os.fsdecode(name) if isinstance(name, bytes) else os.fspath(name)
    if not fs.exists(name):
        return
    handle = fs.lock(filenames.lock_file_name(name))
    try:
        for entry in fs.listdir(name):
            parsed = filenames.parse_file_name(entry)
            if parsed is not None and parsed[0] != filenames.FileType.LOCK:
                fs.remove(os.path.join(name, entry))
        fs.rmtree(filenames.staging_root(name))
    finally:
        fs.unlock(handle)
    fs.remove(filenames.lock_file_name(name))
    try:
        os.rmdir(name)
    except OSError:
        pass


def repair_db(name, **options):
    from .repair import repair
    name = os.fsdecode(name) if isinstance(name, bytes) else os.fspath(name)
    if not os.path.isdir(name):
        raise Error(f"Invalid argument: {name}: does not exist")
    return repair(name, **options)
