"""One database file as records: dicts of JSON types, bytes as lowercase hex.
A table (``*.ldb``/``*.sst``) gives one record per entry, a WAL (``*.log``)
one per write batch, a ``MANIFEST-*`` one per edit; the kind of file comes
from its name.

Reads through the FileSystem seam and prints nothing. The records before any
damage are yielded; then CorruptionError names the file, the offset and the
reason. A torn tail is how a crashed writer leaves a log, so it ends a WAL's
records quietly (a MANIFEST's only if a crash could have left it, as recovery
reads it).
"""
import errno
import os

from ..batch import decode_batch
from ..errors import CorruptionError, DecodeError
from ..fileio import DEFAULT_FS
from ..filenames import FileType, parse_file_name
from ..keys import TYPE_VALUE, parse_internal_key
from ..manifest import ManifestRecords
from ..record import LogReader
from ..table.reader import Table
from .describe import wal_batch_damage


class UnknownFileKind(ValueError):
    """The file's name says neither table, WAL nor MANIFEST."""


def dump_file(path, fs=DEFAULT_FS):
    """An iterator of the records of the file at `path`. Raises before
    reading anything: UnknownFileKind for a name of no known kind,
    FileNotFoundError for a file that is not there."""
    path = os.fspath(path)
    parsed = parse_file_name(os.path.basename(path))
    dumper = _DUMPERS.get(parsed[0]) if parsed else None
    if dumper is None:
        raise UnknownFileKind(f"{path}: cannot tell the file type from its name "
                              "(expected NNNNNN.ldb, NNNNNN.sst, NNNNNN.log or MANIFEST-NNNNNN)")
    if not os.path.isfile(path):
        raise FileNotFoundError(errno.ENOENT, "no such file", path)
    return dumper(path, fs)


def dump_wal(path, fs=DEFAULT_FS):
    """``{"seq": N, "ops": [{"kind": "put"|"del", "key": hex, "value": hex}]}`` per batch."""
    try:
        for offset, payload in LogReader(fs.read_file(path), strict=True):
            try:
                sequence, ops = decode_batch(payload)
            except DecodeError as exc:
                raise CorruptionError(path, offset, wal_batch_damage(exc)) from None
            yield {"seq": sequence, "ops": [
                {"kind": "put", "key": key.hex(), "value": value.hex()} if kind == TYPE_VALUE
                else {"kind": "del", "key": key.hex()}
                for kind, key, value in ops
            ]}
    except DecodeError as exc:
        raise CorruptionError(path, exc.offset, exc.reason) from None


def dump_manifest(path, fs=DEFAULT_FS):
    """Per edit, only the fields it sets (see edit_record)."""
    for _, edit in ManifestRecords(fs.read_file(path), path):
        yield edit_record(edit)


def edit_record(edit) -> dict:
    obj = {}
    if edit.comparator is not None:
        obj["comparator"] = edit.comparator.decode("utf-8", "backslashreplace")
    for name in ("log_number", "prev_log_number", "next_file_number", "last_sequence"):
        value = getattr(edit, name)
        if value is not None:
            obj[name] = value
    if edit.compact_pointers:
        obj["compact_pointers"] = [{"level": level, "key": key.hex()}
                                   for level, key in edit.compact_pointers]
    if edit.deleted_files:
        obj["deleted_files"] = [{"level": level, "number": number}
                                for level, number in sorted(edit.deleted_files)]
    if edit.new_files:
        obj["new_files"] = [{"level": level, "number": f.number, "size": f.size,
                             "smallest": f.smallest.hex(), "largest": f.largest.hex()}
                            for level, f in edit.new_files]
    return obj


def dump_table(path, fs=DEFAULT_FS):
    """``{"key": hex, "seq": N, "kind": "put"|"del", "value": hex}`` per entry, in table order."""
    file = fs.open_random(path)
    try:
        table = Table.open(file, path=path)
        for index, (ikey, value) in enumerate(table.iter_entries()):
            try:
                ukey, seq, kind = parse_internal_key(ikey)
            except DecodeError as exc:
                raise CorruptionError(path, None, f"entry {index}: {exc.reason}") from None
            yield {"key": ukey.hex(), "seq": seq, "kind": "put" if kind == TYPE_VALUE else "del",
                   "value": value.hex()}
    except DecodeError as exc:  # a codec error the table reader did not wrap
        raise CorruptionError(path, exc.offset, exc.reason) from None
    finally:
        file.close()


_DUMPERS = {FileType.TABLE: dump_table, FileType.LOG: dump_wal, FileType.DESCRIPTOR: dump_manifest}
