"""Command line: ``python -m lsm <command>``. Parses arguments, calls lsm.tools
or lsm.DB, prints what they return; knows the terminal, no engine state.

Commands: ``dump`` (one file as JSON lines), ``check`` (verify every checksum
of a database without opening it), ``stats`` (levels and the flush and compaction
history of the info LOG, see lsm.history), ``get``/``put``/``delete``,
``scan``, ``load`` (bulk load JSON Lines or TSV), ``compact``, ``repair`` and
``bench`` (lsm against LevelDB and RocksDB, see lsm.bench; imported only when
that command runs).

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
import os
import sys
import time

from .errors import CorruptionError, LockError
from .tools.load import FORMATS, LOAD_BATCH
from .version_edit import NUM_LEVELS

EXIT_OK = 0
EXIT_DAMAGE = 1  # damaged, unreadable or missing input; any other error; `get` of an absent key
EXIT_USAGE = 2   # bad command line (argparse exits 2 as well)
EXIT_INTERRUPTED = 130
BENCH_HELP = "db_bench, YCSB and real-data workloads on lsm, LevelDB (plyvel) and RocksDB (rocksdict)"
EXIT_CODES = "Exit codes: 0 ok; 1 error or damage found; 2 usage error."


class _Failure(Exception):
    """A command cannot go on: the message is printed as one line, exit 1."""


class _Usage(Exception):
    """Bad input on the command line: printed through argparse, exit 2."""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        return _guarded(lambda: _cmd_bench(argv[1:]))
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.error("a command is required")
    return _guarded(lambda: args.run(args), args)


def _guarded(run, args=None):
    """run(), its exceptions turned into one line on stderr and an exit code."""
    try:
        return run()
    except BrokenPipeError:
        # The reader (e.g. `head`) went away: not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except _Usage as exc:
        args.parser.error(str(exc))  # exits 2
    except _Failure as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        return _fail(_describe(exc, getattr(args, "path", None)))


def _describe(exc, path=None):
    """One line saying what went wrong, for any exception the engine raises."""
    if isinstance(exc, LockError):
        return f"{path}: the database is in use by another process (its LOCK is held); close it first"
    if isinstance(exc, CorruptionError):
        where = "" if exc.offset is None else f"offset {exc.offset}: "
        return f"{exc.path or path}: {where}{exc.reason}"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and not text.startswith(str(path)):
        return f"{path}: {text}" if path else text
    return text


def _fail(message):
    print(" ".join(message.split("\n")), file=sys.stderr)  # one line, whatever the reason text
    return EXIT_DAMAGE


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m lsm",
        description="Tools for lsm (LevelDB-format) databases: inspect, verify, edit, repair, benchmark.",
        epilog="Exit codes: 0 ok; 1 error, damage found or key not found; 2 usage error.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name, help, description=None):
        sub = commands.add_parser(name, help=help, description=description or help,
                                  epilog=EXIT_CODES)
        sub.set_defaults(parser=sub)
        return sub

    dump = command("dump", "decode a table, WAL or MANIFEST file to JSON lines",
                   "Print a table (.ldb/.sst), WAL (.log) or MANIFEST-* as JSON lines, bytes in hex.")
    dump.add_argument("file", metavar="FILE")
    dump.set_defaults(run=_cmd_dump)

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
    load.add_argument("--format", choices=FORMATS, help="input format (default: from the extension)")
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

    serve = command("serve", "serve a database to lsm.connect clients until SIGTERM or SIGINT",
                    "Open the database and serve it to other processes (lsm.connect(PATH)) until "
                    "SIGTERM or SIGINT, then close it cleanly. Prints a status line (clients, ops/s, "
                    "stalls) every --interval seconds.")
    serve.add_argument("path", metavar="PATH", help="database directory")
    serve.add_argument("--create", action="store_true", help="create the database if it does not exist")
    serve.add_argument("--interval", type=float, default=5.0, help="seconds between status lines (default 5)")
    serve.add_argument("--tcp", metavar="HOST:PORT", default=None,
                       help="serve remote clients too, over TCP with CURVE (keys in PATH/SERVER.curve, "
                            "allowed client keys in PATH/CLIENTS.curve)")
    _compactors(serve)
    serve.set_defaults(run=_cmd_serve)

    # Listed here for the overview only: main() hands `bench ...` to the
    # benchmark before this parser runs, so nothing else imports it.
    bench = commands.add_parser("bench", add_help=False, help=BENCH_HELP)
    bench.add_argument("argv", nargs=argparse.REMAINDER)
    bench.set_defaults(run=lambda args: _cmd_bench(args.argv))
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


# ------------------------------------------------------------- commands
def _open_db(path, *, create=False, compactors=0):
    from .tools.database import open_database
    return open_database(path, create=create, compactors=compactors)


def _cmd_stats(args):
    from .tools.stats import database_stats, stats_text
    report = database_stats(args.path, last_events=args.history)
    print(json.dumps(report, default=str) if args.json else stats_text(report))
    return EXIT_OK


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
        levels = [db.get_property(b"leveldb.num-files-at-level%d" % i) for i in range(NUM_LEVELS)]
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


def _cmd_load(args):
    from .tools import load
    fmt = args.format or load.format_of(args.file)
    if fmt is None:
        raise _Usage(f"{args.file}: cannot tell the format from the name; pass --format jsonl or --format tsv")
    if args.file == "-":
        stream, total, name = sys.stdin.buffer, None, "stdin"
    else:
        try:
            stream = open(args.file, "rb")
            total = os.fstat(stream.fileno()).st_size
        except OSError as exc:
            raise _Failure(f"{args.file}: cannot read: {exc.strerror or exc}") from None
        name = args.file
    bar = _load_bar(args, total)
    totals = load.LoadTotals()
    began = time.perf_counter()
    opened = False
    try:
        with _open_db(args.path, create=args.create, compactors=args.compactors) as db:
            opened = True
            entries = load.parse_lines(stream, fmt, hex=args.hex, name=name)
            load.load_entries(db, entries, totals, batch_size=args.batch, on_batch=bar.update)
    finally:
        bar.close()
        if stream is not sys.stdin.buffer:
            stream.close()
        seconds = time.perf_counter() - began
        if opened and not args.quiet:
            print(f"loaded {totals.entries:,} entries ({totals.bytes / 1048576:.1f} MB) into {args.path} in "
                  f"{seconds:.2f} s: {totals.entries / seconds if seconds else 0:,.0f} entries/s, "
                  f"{totals.bytes / 1048576 / seconds if seconds else 0:.1f} MB/s", flush=True)
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


def _cmd_serve(args):
    from .serve.run import serve_until_signalled
    serve_until_signalled(args.path, create=args.create, compactors=args.compactors, interval=args.interval,
                          tcp=args.tcp)
    return EXIT_OK


def _cmd_repair(args):
    from .tools.repair_report import repair_database, report_lines
    report = repair_database(args.path)
    print(json.dumps(report, default=str) if args.json else "\n".join(report_lines(args.path, report)))
    return EXIT_OK


def _cmd_check(args):
    from .tools.check import check_database
    report = check_database(args.path)
    for finding in report.findings:
        print(finding)
    if not report.ok:
        print(f"{args.path}: {len(report.findings)} damaged place(s) found", file=sys.stderr)
        return EXIT_DAMAGE
    c = report.counts
    print(f"ok: {args.path}: MANIFEST ({c.manifest_records} records), {c.tables} tables "
          f"({c.blocks} blocks, {c.entries:,} entries, {c.table_bytes / 1048576:.1f} MB), "
          f"{c.wals} WALs ({c.wal_records} records) verified")
    return EXIT_OK


def _cmd_dump(args):
    from .tools.check import Finding
    from .tools.dump import UnknownFileKind, dump_file
    path = args.file
    try:
        records = dump_file(path)
    except UnknownFileKind as exc:
        args.parser.error(str(exc))  # exits 2
    except FileNotFoundError:
        return _fail(f"{path}: no such file")
    out = sys.stdout
    try:
        for record in records:
            out.write(json.dumps(record))
            out.write("\n")
        out.flush()
    except CorruptionError as exc:
        out.flush()
        return _fail(str(Finding.of(exc, path)))
    except BrokenPipeError:
        raise
    except OSError as exc:  # includes lsm.errors.IOError
        return _fail(f"{path}: cannot read: {exc}")
    except Exception as exc:  # noqa: BLE001 - a dump tool must describe damage, never crash on it
        out.flush()
        return _fail(f"{path}: offset unknown: cannot decode ({type(exc).__name__}: {exc})")
    return EXIT_OK


def _cmd_bench(argv):
    """The benchmark parses its own arguments: it is imported only here."""
    from . import bench
    return bench.main(argv)
