"""Command line: ``python -m lsm <command>``. Knows files and the terminal; no engine state.

``dump FILE`` decodes one database file, chosen by its name (a table
``*.ldb``/``*.sst``, a WAL ``*.log`` or a ``MANIFEST-*``), and prints one JSON
object per line with bytes as lowercase hex. Damage prints one line naming the
file, the offset and the problem to stderr and exits 1; usage errors exit 2.
"""
import argparse
import json
import os
import sys

from .batch import decode_batch
from .errors import CorruptionError, DecodeError
from .fileio import DEFAULT_FS
from .filenames import FileType, parse_file_name
from .keys import TYPE_VALUE, parse_internal_key
from .record import LogReader
from .version_edit import VersionEdit

EXIT_DAMAGE = 1  # damaged, unreadable or missing input (usage errors: argparse exits 2)


class _Damage(Exception):
    """A file is damaged: message already names the file and the offset."""


def main(argv=None):
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.error("a command is required")
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader (e.g. `head`) went away: not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _build_parser():
    parser = argparse.ArgumentParser(prog="python -m lsm", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    dump = commands.add_parser(
        "dump", help="decode a table, WAL or MANIFEST file to JSON lines",
        description="Print a table (.ldb/.sst), WAL (.log) or MANIFEST-* as JSON lines, bytes in hex.",
    )
    dump.add_argument("file", metavar="FILE")
    dump.set_defaults(run=lambda args: _cmd_dump(dump, args))
    return parser


def _cmd_dump(parser, args):
    path = args.file
    parsed = parse_file_name(os.path.basename(path))
    dumpers = {FileType.TABLE: _dump_table, FileType.LOG: _dump_wal, FileType.DESCRIPTOR: _dump_manifest}
    dumper = dumpers.get(parsed[0]) if parsed else None
    if dumper is None:
        parser.error(f"{path}: cannot tell the file type from its name "
                     "(expected NNNNNN.ldb, NNNNNN.sst, NNNNNN.log or MANIFEST-NNNNNN)")
    if not os.path.isfile(path):
        return _fail(f"{path}: no such file")
    out = sys.stdout
    try:
        for obj in dumper(path):
            out.write(json.dumps(obj))
            out.write("\n")
        out.flush()
    except _Damage as exc:
        out.flush()
        return _fail(str(exc))
    except CorruptionError as exc:
        out.flush()
        where = "offset unknown" if exc.offset is None else f"offset {exc.offset}"
        return _fail(f"{exc.path or path}: {where}: {exc.reason}")
    except DecodeError as exc:  # a codec error the table reader did not wrap
        out.flush()
        where = "offset unknown" if exc.offset is None else f"offset {exc.offset}"
        return _fail(f"{path}: {where}: {exc.reason}")
    except BrokenPipeError:
        raise
    except OSError as exc:  # includes lsm.errors.IOError
        return _fail(f"{path}: cannot read: {exc}")
    except Exception as exc:  # noqa: BLE001 - a dump tool must describe damage, never crash on it
        out.flush()
        return _fail(f"{path}: offset unknown: cannot decode ({type(exc).__name__}: {exc})")
    return 0


def _fail(message):
    print(" ".join(message.split("\n")), file=sys.stderr)  # one line, whatever the reason text
    return EXIT_DAMAGE


def _read_records(path):
    """Yield (offset, payload) for every log record; any mid-log damage is fatal.
    A torn tail is how a crashed writer leaves a log, so it ends the dump quietly."""
    data = DEFAULT_FS.read_file(path)
    try:
        yield from LogReader(data, strict=True)
    except DecodeError as exc:
        raise _Damage(f"{path}: offset {exc.offset}: {exc.reason}") from None


def _dump_wal(path):
    for offset, payload in _read_records(path):
        try:
            sequence, ops = decode_batch(payload)
        except DecodeError as exc:
            raise _Damage(f"{path}: offset {offset}: bad WriteBatch in the record there: "
                          f"{exc.reason} (byte {exc.offset} of the batch)") from None
        yield {"seq": sequence, "ops": [
            {"kind": "put", "key": key.hex(), "value": value.hex()} if kind == TYPE_VALUE
            else {"kind": "del", "key": key.hex()}
            for kind, key, value in ops
        ]}


def _dump_manifest(path):
    for offset, payload in _read_records(path):
        try:
            edit = VersionEdit.decode(payload)
        except DecodeError as exc:
            raise _Damage(f"{path}: offset {offset}: bad VersionEdit in the record there: "
                          f"{exc.reason} (byte {exc.offset} of the edit)") from None
        yield _edit_json(edit)


def _edit_json(edit):
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


def _dump_table(path):
    # Imported here so WAL/MANIFEST dumps work even where the table reader cannot load.
    from .table.reader import Table

    file = DEFAULT_FS.open_random(path)
    try:
        table = Table.open(file, path=path)
        for index, (ikey, value) in enumerate(table.iter_entries()):
            try:
                ukey, seq, kind = parse_internal_key(ikey)
            except DecodeError as exc:
                raise _Damage(f"{path}: offset unknown: entry {index}: {exc.reason}") from None
            entry = {"key": ukey.hex(), "seq": seq, "kind": "put" if kind == TYPE_VALUE else "del"}
            entry["value"] = value.hex()
            yield entry
    finally:
        file.close()
