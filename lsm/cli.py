"""Command line: ``python -m lsm <command>``. Knows files and the terminal; no engine state.

Commands: ``dump`` (one file as JSON lines), ``check`` (verify every checksum
of a database without opening it), ``stats`` (levels and the flush and compaction
history of the info LOG, see lsm.history), ``get``/``put``/``delete``,
``scan``, ``load`` (bulk load JSON Lines or TSV), ``compact``, ``repair`` and
``bench`` (lsm against LevelDB and RocksDB, see lsm/bench.py).

Exit codes, for every command: 0 success; 1 an error, damage found, or (for
``get``) the key is absent; 2 bad usage. Errors are one line on stderr, never
a traceback.

``dump FILE`` decodes one database file, chosen by its name (a table
``*.ldb``/``*.sst``, a WAL ``*.log`` or a ``MANIFEST-*``), and prints one JSON
object per line with bytes as lowercase hex. Damage prints one line naming the
file, the offset and the problem to stderr and exits 1; usage errors exit 2.

Keys and values on the command line and in output are UTF-8 text unless
``--hex`` is given (then both are hexadecimal). Commands that open a database
(everything but ``dump`` and ``check``) take its LOCK, so the database must not
be open in another process; opening it runs recovery like any open does.
"""
import argparse
import json
import operator
import os
import sys
import time

from .batch import decode_batch
from .errors import CorruptionError, DecodeError
from .fileio import DEFAULT_FS
from .filenames import FileType, parse_file_name
from .keys import TYPE_VALUE, parse_internal_key
from .record import LogReader
from .version_edit import VersionEdit

EXIT_OK = 0
EXIT_DAMAGE = 1  # damaged, unreadable or missing input; any other error; `get` of an absent key
EXIT_USAGE = 2   # bad command line (argparse exits 2 as well)
LOAD_BATCH = 1000


class _Damage(Exception):
    """A file is damaged: message already names the file and the offset."""


class _Failure(Exception):
    """A command cannot go on: the message is printed as one line, exit 1."""


class _Usage(Exception):
    """Bad input on the command line: printed through argparse, exit 2."""


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
    except _Usage as exc:
        args.parser.error(str(exc))  # exits 2
    except _Failure as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        return _fail(_describe(exc, getattr(args, "path", None)))


def _describe(exc, path=None):
    """One line saying what went wrong, for any exception the engine raises."""
    from .errors import LockError
    if isinstance(exc, LockError):
        return f"{path}: the database is in use by another process (its LOCK is held); close it first"
    if isinstance(exc, CorruptionError):
        where = "" if exc.offset is None else f"offset {exc.offset}: "
        return f"{exc.path or path}: {where}{exc.reason}"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and not text.startswith(str(path)):
        return f"{path}: {text}" if path else text
    return text


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m lsm",
        description="Tools for lsm (LevelDB-format) databases: inspect, verify, edit, repair, benchmark.",
        epilog="Exit codes: 0 ok; 1 error, damage found or key not found; 2 usage error.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name, help, description=None):
        sub = commands.add_parser(name, help=help, description=description or help,
                                  epilog="Exit codes: 0 ok; 1 error or damage found; 2 usage error.")
        sub.set_defaults(parser=sub)
        return sub

    dump = command("dump", "decode a table, WAL or MANIFEST file to JSON lines",
                   "Print a table (.ldb/.sst), WAL (.log) or MANIFEST-* as JSON lines, bytes in hex.")
    dump.add_argument("file", metavar="FILE")
    dump.set_defaults(run=lambda args: _cmd_dump(dump, args))

    check = command("check", "verify every checksum of every live file of a database",
                    "Read CURRENT and the MANIFEST, then every live table (every block, checksums, "
                    "first and last keys against the MANIFEST) and every live WAL, without opening "
                    "the database (nothing is written). Prints one line per damage, naming the file "
                    "and the offset, and exits 1 if there is any.")
    check.add_argument("path", metavar="PATH", help="database directory")
    check.set_defaults(run=_cmd_check)

    stats = command("stats", "levels, files, bytes, scores, compaction history and leveldb.stats",
                    "Open the database and print its levels (files, bytes, compaction score), the "
                    "flush and compaction history read from the info LOG (counts, bytes in and out, "
                    "seconds, per level, and the last events), this open's counters and the "
                    "leveldb.stats property. The history comes from LOG.old and LOG, read before "
                    "opening, plus the LOG of this open: like LevelDB, every open rotates LOG to "
                    "LOG.old and keeps only one LOG.old, so the history covers the last two "
                    "sessions before this one (and running stats is itself a session, pushing the "
                    "oldest out). A flush's input bytes are not logged (shown as '-').")
    stats.add_argument("path", metavar="PATH", help="database directory")
    stats.add_argument("--json", action="store_true",
                       help="print one JSON object (the history under \"history\")")
    stats.add_argument("--history", metavar="N", type=_non_negative, default=10,
                       help="show the last N flushes/compactions/moves (default 10; 0: none)")
    stats.set_defaults(run=_cmd_stats)

    compact = command("compact", "compact a key range (all keys by default)",
                      "Compact the keys in [--start, --stop) (everything when neither is given) "
                      "down to the deepest level that holds them.")
    compact.add_argument("path", metavar="PATH", help="database directory")
    compact.add_argument("--start", help="first key (inclusive)")
    compact.add_argument("--stop", help="last key (exclusive)")
    _key_format(compact)
    _compactors(compact)
    compact.set_defaults(run=_cmd_compact)

    get = command("get", "print the value of KEY (exit 1 if absent)")
    get.add_argument("path", metavar="PATH", help="database directory")
    get.add_argument("key", metavar="KEY")
    _key_format(get)
    get.set_defaults(run=_cmd_get)

    put = command("put", "set KEY to VALUE")
    put.add_argument("path", metavar="PATH", help="database directory")
    put.add_argument("key", metavar="KEY")
    put.add_argument("value", metavar="VALUE")
    _key_format(put)
    put.add_argument("--create", action="store_true", help="create the database if it does not exist")
    put.add_argument("--sync", action="store_true", help="fsync the WAL before returning")
    put.set_defaults(run=_cmd_put)

    delete = command("delete", "delete KEY (no error if it is absent)")
    delete.add_argument("path", metavar="PATH", help="database directory")
    delete.add_argument("key", metavar="KEY")
    _key_format(delete)
    delete.add_argument("--sync", action="store_true", help="fsync the WAL before returning")
    delete.set_defaults(run=_cmd_delete)

    scan = command("scan", "print keys and values in order, one 'KEY<TAB>VALUE' line each",
                   "Print entries in key order as 'KEY<TAB>VALUE' lines (the TSV `load` reads). "
                   "Text must be UTF-8; use --hex for binary keys or values.")
    scan.add_argument("path", metavar="PATH", help="database directory")
    scan.add_argument("--start", help="first key (inclusive)")
    scan.add_argument("--stop", help="last key (exclusive)")
    scan.add_argument("--prefix", help="only keys starting with this")
    scan.add_argument("--reverse", action="store_true", help="descending key order")
    scan.add_argument("--limit", type=_non_negative, help="print at most this many entries")
    scan.add_argument("--keys-only", action="store_true", help="print keys only")
    _key_format(scan)
    scan.set_defaults(run=_cmd_scan)

    load = command("load", "bulk load JSON Lines or TSV into a database",
                   "Load FILE ('-' for stdin) in write batches: JSON Lines with one "
                   '{"key": ..., "value": ...} object per line, or TSV with one KEY<TAB>VALUE per '
                   "line. The format comes from the extension (.jsonl/.ndjson/.json, .tsv/.tab/.txt) "
                   "or --format. The first bad line stops the load (earlier batches stay written) "
                   "and exits 1 naming the line.")
    load.add_argument("path", metavar="PATH", help="database directory")
    load.add_argument("file", metavar="FILE", help="input file, or '-' for stdin")
    load.add_argument("--format", choices=("jsonl", "tsv"), help="input format (default: from the extension)")
    load.add_argument("--batch", type=_positive, default=LOAD_BATCH,
                      help=f"entries per write batch (default {LOAD_BATCH})")
    load.add_argument("--create", action="store_true", help="create the database if it does not exist")
    load.add_argument("--quiet", action="store_true", help="no progress bar and no rate line")
    _key_format(load)
    _compactors(load)
    load.set_defaults(run=_cmd_load)

    repair = command("repair", "rebuild a damaged database (lsm.repair_db) and print the report",
                     "Salvage every intact entry of the tables and WALs present, write a fresh "
                     "MANIFEST and compact; prints what was kept, what was dropped and what was "
                     "moved into PATH/lost/ (unusable tables are kept there, never deleted).")
    repair.add_argument("path", metavar="PATH", help="database directory")
    repair.add_argument("--json", action="store_true", help="print the report as one JSON object")
    repair.set_defaults(run=_cmd_repair)

    from . import bench
    bench_parser = command("bench", "db_bench workloads on lsm, LevelDB (plyvel) and RocksDB (rocksdict)",
                           "Run LevelDB's db_bench workloads on lsm, LevelDB (plyvel) and RocksDB "
                           "(rocksdict) in one process with the same keys and values, and print ops/s, "
                           "MB/s and the lsm/plyvel and lsm/rocksdict ratios.")
    bench.add_arguments(bench_parser)
    bench_parser.set_defaults(run=_cmd_bench)
    return parser


def _key_format(parser):
    parser.add_argument("--hex", action="store_true",
                        help="keys and values are hexadecimal, in input and output")


def _compactors(parser):
    parser.add_argument("--compactors", type=_non_negative, default=None,
                        help="compactor processes (0: run jobs in this process; default: lsm's default)")


def _non_negative(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative (got {value})")
    return value


def _positive(text):
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


# ------------------------------------------------------------ key encoding
def _in_bytes(args, text, what):
    """Command-line text -> bytes: hex with --hex, else UTF-8 (undecodable
    argv bytes pass through unchanged)."""
    if text is None:
        return None
    if args.hex:
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise _Usage(f"{what} {text!r} is not hexadecimal") from None
    return text.encode("utf-8", "surrogateescape")


def _out_text(args, data, what):
    if args.hex:
        return data.hex()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Failure(f"{what} {data[:32]!r}{'...' if len(data) > 32 else ''} is not UTF-8 text; "
                       "use --hex") from None


# ------------------------------------------------------------- open a DB
def _open_db(path, *, create=False, compactors=0):
    import lsm
    if not create and not os.path.isdir(path):
        raise _Failure(f"{path}: no such database directory")
    if not create and not os.path.exists(os.path.join(path, "CURRENT")):
        raise _Failure(f"{path}: not a database (no CURRENT file); `repair` rebuilds one from its tables")
    kwargs = {} if compactors is None else {"compactors": compactors}
    return lsm.DB(path, create_if_missing=create, **kwargs)


# ----------------------------------------------------------------- stats
def _cmd_stats(args):
    from . import history
    # Opening rotates LOG to LOG.old and drops the older LOG.old: read both first,
    # then (after close) the LOG this open wrote, so no session is lost to our own open.
    if os.path.isdir(args.path):
        logs = history.read_logs(DEFAULT_FS, args.path)
    else:
        logs = []  # _open_db says what is wrong
    with _open_db(args.path) as db:
        stats = db.stats()
        leveldb_stats = (db.get_property(b"leveldb.stats") or b"").decode("utf-8", "replace")
    this_open = [text for name, text in history.read_logs(DEFAULT_FS, args.path) if name == "LOG"]
    logs += [("LOG (this stats run)", text) for text in this_open]
    past = history.parse_history(text for _, text in logs)
    summary = history.summarize(past)
    summary["logs"] = [name for name, _ in logs]
    recent = past.events[-args.history:] if args.history else []
    if args.json:
        obj = dict(stats)
        obj["path"] = args.path
        obj["leveldb.stats"] = leveldb_stats
        obj["history"] = dict(summary, last=[e.as_dict() for e in recent])
        print(json.dumps(obj, default=str))
        return EXIT_OK
    into = {row["level"]: row for row in summary["levels"]}
    head = f"{'level':>5} {'files':>7} {'size MB':>10} {'score':>7} |"
    tail = (f" {'flushes':>7} {'compactions':>11} {'moves':>5} {'read MB':>9} {'write MB':>9} "
            f"{'seconds':>9}")
    out = [f"database: {args.path}", "",
           f"{'now':^{len(head) - 1}}|{' history: into this level (from the LOGs)':<{len(tail)}}",
           head + tail]
    files = size = 0
    for lv in stats.get("levels", []):
        files += lv.get("files", 0)
        size += lv.get("bytes", 0)
        row = into.get(lv["level"], {})
        out.append(f"{'L%d' % lv['level']:>5} {lv.get('files', 0):>7} {lv.get('bytes', 0) / 1048576:>10.2f} "
                   f"{lv.get('score', 0):>7.2f} | {row.get('flushes', 0):>7} {row.get('compactions', 0):>11} "
                   f"{row.get('moves', 0):>5} "
                   f"{(row.get('input_bytes') or 0) / 1048576:>9.2f} {row.get('output_bytes', 0) / 1048576:>9.2f} "
                   f"{row.get('seconds') or 0:>9.3f}")
    out.append(f"{'total':>5} {files:>7} {size / 1048576:>10.2f}")
    out += ["", *_history_summary_lines(summary), ""]
    out.append(f"last {len(recent)} of {len(past.events)} events:" if recent else
               f"last events: none shown ({len(past.events)} in the history; --history N shows N)")
    if recent:
        out.append(f"{'time':<26} {'kind':<10} {'levels':>8} {'in files':>8} {'in bytes':>11} "
                   f"{'out files':>9} {'out bytes':>11} {'seconds':>8}  detail")
        for e in recent:
            levels = f"{'mem' if e.from_level is None else 'L%d' % e.from_level}->L{e.to_level}"
            out.append(f"{e.time:<26} {e.kind:<10} {levels:>8} {_dash(e.input_files):>8} "
                       f"{_dash(e.input_bytes if e.kind != 'move' else None):>11} {e.output_files:>9} "
                       f"{_dash(e.output_bytes if e.kind != 'move' else None):>11} "
                       f"{_dash(e.seconds, '.3f'):>8}  {e.detail}"
                       + (f", {e.moved_bytes} bytes moved" if e.kind == "move" else ""))
    counters = [(k, stats[k]) for k in ("flushes", "compactions", "compaction_bytes_read",
                                        "compaction_bytes_written", "compaction_seconds", "stall_seconds",
                                        "write_amplification", "last_sequence", "background_error")
                if k in stats]
    out += ["", "this open only (the stats command's own session):"]
    for key, value in counters:
        out.append(f"  {key + ':':<26} {value:.3f}" if isinstance(value, float) else f"  {key + ':':<26} {value}")
    if stats.get("compactors"):
        out.append(f"  {'compactors:':<26} {stats['compactors']}")
    out += ["", "leveldb.stats:", leveldb_stats.rstrip("\n")]
    print("\n".join(line.rstrip() for line in out))
    return EXIT_OK


def _dash(value, spec=""):
    return "-" if value is None else format(value, spec)


def _history_summary_lines(summary):
    logs = " + ".join(summary["logs"]) or "no LOG found"
    span = (f", {summary['first_time']} to {summary['last_time']}" if summary["first_time"] else "")
    out = [f"compaction history ({logs}: {summary['sessions']} session(s){span}):",
           f"{'kind':<11} {'count':>6} {'in files':>9} {'in MB':>9} {'out files':>9} {'out MB':>9} {'seconds':>9}"]
    for kind, t in summary["kinds"].items():
        if kind == "move":
            out.append(f"{kind:<11} {t['count']:>6} {t['input_files'] or 0:>9} {'-':>9} {t['output_files']:>9} "
                       f"{'-':>9} {'-':>9}  ({t['moved_bytes'] / 1048576:.2f} MB moved, no I/O)")
            continue
        in_mb = "-" if t["input_bytes"] is None else f"{t['input_bytes'] / 1048576:.2f}"
        out.append(f"{kind:<11} {t['count']:>6} {_dash(t['input_files']):>9} {in_mb:>9} {t['output_files']:>9} "
                   f"{t['output_bytes'] / 1048576:>9.2f} {_dash(t['seconds'], '.3f'):>9}")
    if summary["skipped_lines"]:
        out.append(f"({summary['skipped_lines']} malformed LOG line(s) skipped)")
    return out


# --------------------------------------------------------- point commands
def _cmd_get(args):
    key = _in_bytes(args, args.key, "KEY")
    with _open_db(args.path) as db:
        value = db.get(key)
    if value is None:
        print(f"{args.path}: key {args.key!r} not found", file=sys.stderr)
        return EXIT_DAMAGE
    print(_out_text(args, value, "the value"))
    return EXIT_OK


def _cmd_put(args):
    key = _in_bytes(args, args.key, "KEY")
    value = _in_bytes(args, args.value, "VALUE")
    with _open_db(args.path, create=args.create) as db:
        db.put(key, value, sync=args.sync)
    return EXIT_OK


def _cmd_delete(args):
    key = _in_bytes(args, args.key, "KEY")
    with _open_db(args.path) as db:
        db.delete(key, sync=args.sync)
    return EXIT_OK


def _cmd_compact(args):
    start = _in_bytes(args, args.start, "--start")
    stop = _in_bytes(args, args.stop, "--stop")
    began = time.monotonic()
    with _open_db(args.path, compactors=args.compactors) as db:
        db.compact_range(start=start, stop=stop)
        levels = [db.get_property(b"leveldb.num-files-at-level%d" % i) for i in range(7)]
    files = " ".join(f"L{i}={int(n)}" for i, n in enumerate(levels) if n is not None and int(n))
    print(f"compacted {args.path} in {time.monotonic() - began:.2f} s; files per level: {files or 'none'}")
    return EXIT_OK


def _cmd_scan(args):
    start = _in_bytes(args, args.start, "--start")
    stop = _in_bytes(args, args.stop, "--stop")
    prefix = _in_bytes(args, args.prefix, "--prefix")
    if prefix is not None and (start is not None or stop is not None):
        raise _Usage("--prefix cannot be combined with --start/--stop")
    if args.limit == 0:
        return EXIT_OK
    out = sys.stdout
    with _open_db(args.path) as db:
        it = db.iterator(reverse=args.reverse, start=start, stop=stop, prefix=prefix,
                         include_value=not args.keys_only)
        try:
            n = 0
            lines = []
            for entry in it:
                if args.keys_only:
                    lines.append(_out_text(args, entry, "key"))
                else:
                    key, value = entry
                    key_text = _out_text(args, key, "key")
                    lines.append(f"{key_text}\t{_out_text(args, value, f'the value of key {key_text!r}')}")
                n += 1
                if len(lines) >= 1000:
                    out.write("\n".join(lines) + "\n")
                    lines = []
                if args.limit is not None and n >= args.limit:
                    break
            if lines:
                out.write("\n".join(lines) + "\n")
            out.flush()
        finally:
            it.close()
    return EXIT_OK


# ------------------------------------------------------------------ load
def _load_format(args):
    if args.format:
        return args.format
    name = args.file.lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".tsv", ".tab", ".txt")):
        return "tsv"
    raise _Usage(f"{args.file}: cannot tell the format from the name; pass --format jsonl or --format tsv")


def _parse_lines(args, stream, fmt):
    """Yield (line number, key bytes, value bytes, line length) for each non-empty line."""
    name = "stdin" if args.file == "-" else args.file
    for number, raw in enumerate(stream, 1):
        size = len(raw)
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        if fmt == "jsonl":
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise _Failure(f"{name}:{number}: not a JSON object ({exc})") from None
            if not isinstance(obj, dict) or "key" not in obj or "value" not in obj:
                raise _Failure(f'{name}:{number}: expected an object with "key" and "value"')
            fields = (obj["key"], obj["value"])
            if not all(isinstance(f, str) for f in fields):
                raise _Failure(f"{name}:{number}: key and value must be JSON strings")
            try:
                if args.hex:
                    key, value = bytes.fromhex(fields[0]), bytes.fromhex(fields[1])
                else:
                    key, value = fields[0].encode("utf-8"), fields[1].encode("utf-8")
            except (ValueError, UnicodeEncodeError) as exc:
                raise _Failure(f"{name}:{number}: {'not hexadecimal' if args.hex else 'bad text'} ({exc})") from None
        else:
            key, tab, value = line.partition(b"\t")
            if not tab:
                raise _Failure(f"{name}:{number}: expected KEY<TAB>VALUE (no tab on the line)")
            if args.hex:
                try:
                    key, value = bytes.fromhex(key.decode("ascii")), bytes.fromhex(value.decode("ascii"))
                except (ValueError, UnicodeDecodeError):
                    raise _Failure(f"{name}:{number}: not hexadecimal") from None
        yield number, key, value, size


def _cmd_load(args):
    fmt = _load_format(args)
    if args.file == "-":
        stream, total = sys.stdin.buffer, None
    else:
        try:
            stream = open(args.file, "rb")
            total = os.fstat(stream.fileno()).st_size
        except OSError as exc:
            raise _Failure(f"{args.file}: cannot read: {exc.strerror or exc}") from None
    bar = _load_bar(args, total)
    entries = nbytes = 0
    began = time.perf_counter()
    opened = False
    try:
        with _open_db(args.path, create=args.create, compactors=args.compactors) as db:
            opened = True
            batch = db.write_batch()
            pending = 0
            read = 0
            try:
                for _, key, value, size in _parse_lines(args, stream, fmt):
                    batch.put(key, value)
                    pending += 1
                    read += size
                    nbytes += len(key) + len(value)
                    if pending >= args.batch:
                        batch.write()
                        batch.clear()
                        entries += pending
                        pending = 0
                        bar.update(read)
                        read = 0
            finally:
                if pending:  # the good lines before a bad one are loaded too
                    batch.write()
                    entries += pending
                    bar.update(read)
    finally:
        bar.close()
        if stream is not sys.stdin.buffer:
            stream.close()
        seconds = time.perf_counter() - began
        if opened and not args.quiet:
            print(f"loaded {entries:,} entries ({nbytes / 1048576:.1f} MB) into {args.path} in {seconds:.2f} s: "
                  f"{entries / seconds if seconds else 0:,.0f} entries/s, "
                  f"{nbytes / 1048576 / seconds if seconds else 0:.1f} MB/s", flush=True)
    return EXIT_OK


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _load_bar(args, total):
    if args.quiet or not sys.stderr.isatty():
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="load", file=sys.stderr,
                leave=False, mininterval=0.5)


# ---------------------------------------------------------------- repair
def _cmd_repair(args):
    import lsm
    if not os.path.isdir(args.path):
        raise _Failure(f"{args.path}: no such database directory")
    report = lsm.repair_db(args.path)
    if args.json:
        print(json.dumps(report, default=str))
        return EXIT_OK
    if not isinstance(report, dict):
        print(f"repaired {args.path}" + ("" if report is None else f": {report}"))
        return EXIT_OK
    print(f"repaired {args.path}: {report.get('tables', 0)} tables kept, "
          f"{report.get('tables_rebuilt', 0)} rebuilt from their intact blocks, "
          f"{len(report.get('tables_dropped', []))} dropped; {report.get('wals', 0)} WALs converted; "
          f"{report.get('entries', 0):,} entries salvaged; "
          f"{len(report.get('lost', []))} files moved into {os.path.join(args.path, 'lost')}")
    for item in report.get("tables_dropped", []):
        moved = item.get("moved_to")
        print(f"dropped table {item.get('file')}: {item.get('reason')}"
              + (f" (moved to {moved})" if moved else ""))
    for item in report.get("dropped", []):
        print(f"dropped data in {item.get('file')}: {item.get('reason')}")
    # Every file repair set aside, one line each: dropped tables (also named
    # above) and the damaged originals of rebuilt tables. Nothing reads lost/.
    for path in report.get("lost", []):
        print(f"kept in lost/: {path}")
    return EXIT_OK


# ----------------------------------------------------------------- bench
def _cmd_bench(args):
    from . import bench
    try:
        runner = bench.Bench(args)
    except bench.UsageError as exc:
        raise _Usage(str(exc)) from None
    return runner.run()


# ----------------------------------------------------------------- check
def _cmd_check(args):
    return _Checker(args.path).run()


class _Checker:
    """Verifies a database offline: CURRENT, MANIFEST, every live table and
    every live WAL. Reads only (it takes the LOCK so that nothing changes
    underneath, and goes on without it on a read-only file system)."""

    def __init__(self, path):
        self.db = path
        self.fs = DEFAULT_FS
        self.damage = 0
        self.counts = {"tables": 0, "blocks": 0, "entries": 0, "table_bytes": 0, "wals": 0, "wal_records": 0,
                       "manifest_records": 0}

    def report(self, path, offset, reason):
        self.damage += 1
        where = "offset unknown" if offset is None else f"offset {offset}"
        print(" ".join(f"{path}: {where}: {reason}".split("\n")), flush=True)

    def run(self):
        from . import filenames
        from .errors import LockError
        db = self.db
        if not os.path.isdir(db):
            raise _Failure(f"{db}: no such database directory")
        handle = None
        try:
            handle = self.fs.lock(filenames.lock_file_name(db))
        except LockError:
            raise _Failure(f"{db}: the database is in use by another process (its LOCK is held); "
                           "close it first") from None
        except OSError:
            handle = None  # read-only: check anyway
        try:
            self._check()
        finally:
            if handle is not None:
                self.fs.unlock(handle)
        c = self.counts
        if self.damage:
            print(f"{db}: {self.damage} damaged place(s) found", file=sys.stderr)
            return EXIT_DAMAGE
        print(f"ok: {db}: MANIFEST ({c['manifest_records']} records), {c['tables']} tables "
              f"({c['blocks']} blocks, {c['entries']:,} entries, {c['table_bytes'] / 1048576:.1f} MB), "
              f"{c['wals']} WALs ({c['wal_records']} records) verified")
        return EXIT_OK

    def _check(self):
        from . import filenames
        db, fs = self.db, self.fs
        try:
            manifest = filenames.read_current(fs, db)
        except CorruptionError as exc:
            self.report(exc.path or filenames.current_file_name(db), exc.offset, exc.reason)
            return
        except OSError as exc:
            self.report(filenames.current_file_name(db), None, f"cannot read: {exc}")
            return
        state = self._replay_manifest(os.path.join(db, manifest))
        if state is None:
            return
        levels, log_number, prev_log_number = state
        for level, files in enumerate(levels):
            ordered = sorted(files.values(), key=lambda f: _ikey_order(f.smallest))
            for f in ordered:
                self._check_table(level, f)
            if level > 0:
                for a, b in zip(ordered, ordered[1:]):
                    if _ikey_order(a.largest) >= _ikey_order(b.smallest):
                        self.report(os.path.join(db, manifest), None,
                                    f"level {level} files {a.number} and {b.number} overlap")
        for name in sorted(fs.listdir(db)):
            parsed = parse_file_name(name)
            if parsed and parsed[0] == FileType.LOG and (parsed[1] >= log_number or parsed[1] == prev_log_number):
                self._check_wal(os.path.join(db, name))

    def _replay_manifest(self, path):
        try:
            data = self.fs.read_file(path)
        except OSError as exc:
            self.report(path, None, f"cannot read: {exc}")
            return None
        levels = [dict() for _ in range(7)]
        log_number = prev_log_number = 0
        seen_comparator = False
        try:
            # As recovery reads it (VersionSet.recover): the MANIFEST is synced
            # after every edit, so a record running past the end is a torn tail
            # only if a crash could have left it; a damaged length field is
            # damage here as it is at open.
            for offset, payload in LogReader(data, strict=True, verify_tail=True):
                self.counts["manifest_records"] += 1
                try:
                    edit = VersionEdit.decode(payload)
                except DecodeError as exc:
                    self.report(path, offset, f"bad VersionEdit in the record there: {exc.reason}")
                    return None
                if edit.comparator is not None:
                    seen_comparator = True
                    if edit.comparator != b"leveldb.BytewiseComparator":
                        self.report(path, offset, f"comparator {edit.comparator!r} is not "
                                                  "leveldb.BytewiseComparator")
                if edit.log_number is not None:
                    log_number = edit.log_number
                if edit.prev_log_number is not None:
                    prev_log_number = edit.prev_log_number
                for level, number in edit.deleted_files:
                    levels[level].pop(number, None)
                for level, meta in edit.new_files:
                    levels[level][meta.number] = meta
        except DecodeError as exc:
            self.report(path, exc.offset, exc.reason)
            return None
        if not self.counts["manifest_records"]:
            self.report(path, 0, "MANIFEST holds no records")
            return None
        if not seen_comparator:
            self.report(path, None, "MANIFEST names no comparator")
        return levels, log_number, prev_log_number

    def _check_table(self, level, meta):
        from . import filenames
        from .table.reader import Table
        path = filenames.table_file_name(self.db, meta.number)
        if not self.fs.exists(path):
            sst = filenames.sst_table_file_name(self.db, meta.number)
            if not self.fs.exists(sst):
                self.report(path, None, f"missing: the MANIFEST lists it at level {level}")
                return
            path = sst
        size = self.fs.file_size(path)
        if size != meta.size:
            self.report(path, None, f"size {size} but the MANIFEST records {meta.size}")
            return
        self.counts["tables"] += 1
        self.counts["table_bytes"] += size
        try:
            file = self.fs.open_random(path)
        except OSError as exc:
            self.report(path, None, f"cannot open: {exc}")
            return
        try:
            try:
                table = Table.open(file, path=path, number=meta.number)
            except CorruptionError as exc:
                self.report(exc.path or path, exc.offset, exc.reason)
                return
            offsets = getattr(table, "_offsets", None)
            first = last = None  # (internal key, block offset) of the first/last readable entry
            first_damaged = last_damaged = False  # was a block before/after it unreadable?
            previous = None
            for i in range(table.num_blocks):
                block_offset = offsets[i] if offsets is not None else None
                try:
                    ukeys, tags, _ = table.block(i)
                except (CorruptionError, DecodeError) as exc:
                    self.report(getattr(exc, "path", None) or path,
                                exc.offset if exc.offset is not None else block_offset, exc.reason)
                    previous = None
                    if first is None:
                        first_damaged = True
                    last_damaged = True
                    continue
                self.counts["blocks"] += 1
                self.counts["entries"] += len(ukeys)
                if not ukeys:
                    continue
                order = list(zip(ukeys, map(operator.neg, tags)))
                if not all(map(operator.lt, order, order[1:])) or (previous is not None and previous >= order[0]):
                    self.report(path, block_offset, "data block: keys out of order")
                previous = order[-1]
                if first is None:
                    first = (ukeys[0] + tags[0].to_bytes(8, "little"), block_offset)
                last = (ukeys[-1] + tags[-1].to_bytes(8, "little"), block_offset)
                last_damaged = False
            # A damaged first or last block was reported already; its neighbour's
            # keys are not expected to match the MANIFEST's bounds.
            if first is not None and not first_damaged and first[0] != meta.smallest:
                self.report(path, first[1], f"first key {_show_ikey(first[0])} but the MANIFEST records "
                                            f"smallest {_show_ikey(meta.smallest)}")
            if last is not None and not last_damaged and last[0] != meta.largest:
                self.report(path, last[1], f"last key {_show_ikey(last[0])} but the MANIFEST records "
                                           f"largest {_show_ikey(meta.largest)}")
        finally:
            file.close()

    def _check_wal(self, path):
        try:
            data = self.fs.read_file(path)
        except OSError as exc:
            self.report(path, None, f"cannot read: {exc}")
            return
        self.counts["wals"] += 1
        try:
            for offset, payload in LogReader(data, strict=True):
                self.counts["wal_records"] += 1
                try:
                    decode_batch(payload)
                except DecodeError as exc:
                    self.report(path, offset, f"bad WriteBatch in the record there: {exc.reason}")
        except DecodeError as exc:
            self.report(path, exc.offset, exc.reason)


def _ikey_order(ikey):
    return (ikey[:-8], -int.from_bytes(ikey[-8:], "little"))


def _show_ikey(ikey):
    try:
        ukey, seq, kind = parse_internal_key(ikey)
    except DecodeError:
        return ikey.hex()
    return f"{ukey!r}@{seq}:{'put' if kind == TYPE_VALUE else 'del'}"


# ------------------------------------------------------------------ dump
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


def _read_records(path, verify_tail=False):
    """Yield (offset, payload) for every log record; any mid-log damage is fatal.
    A torn tail is how a crashed writer leaves a log, so it ends the dump quietly
    (for a MANIFEST, with verify_tail, only one a crash could have left)."""
    data = DEFAULT_FS.read_file(path)
    try:
        yield from LogReader(data, strict=True, verify_tail=verify_tail)
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
    for offset, payload in _read_records(path, verify_tail=True):  # as recovery reads it
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
