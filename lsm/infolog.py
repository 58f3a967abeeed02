"""The info LOG: a human-readable diary of a database, as LevelDB keeps one.

Opening renames an existing ``LOG`` to ``LOG.old`` (replacing any older one)
and starts a new ``LOG``. Each ``log()`` call appends one line in LevelDB's
format, ``2026/11/21-08:00:00.123456 140234567890 message``: local time with
microseconds, the calling thread's id, then the text. Every line goes to the
OS before ``log()`` returns, so it survives a crash of this process.

All I/O goes through the FileSystem seam (lsm.fileio). Logging never raises
for I/O trouble: a full disk must not turn a diary into an outage (LevelDB
ignores its logger's write errors too). Thread-safe.

``parse_line`` is ``format_line``'s inverse, for tools that read a LOG back
(lsm.history); it does no I/O. The same goes for the events the engine
logs (flushes, compactions, trivial moves, WAL recoveries): each has its
formatter here, and ``parse_event_message`` reads any of them back, so a
line's wording is decided in this module only.
"""
import re
import threading
import time

from .filenames import info_log_file_name, old_info_log_file_name


def format_line(message, now=None, thread_id=None) -> str:
    """One LOG line (with its newline) for message. Line breaks inside the
    message are turned into " | " so that every call stays one line."""
    if now is None:
        now = time.time()
    if thread_id is None:
        thread_id = threading.get_ident()
    seconds = int(now)
    micros = int(round((now - seconds) * 1e6))
    if micros >= 1000000:
        seconds, micros = seconds + 1, micros - 1000000
    stamp = time.strftime("%Y/%m/%d-%H:%M:%S", time.localtime(seconds))
    text = " | ".join(str(message).splitlines()) if ("\n" in str(message) or "\r" in str(message)) \
        else str(message)
    return f"{stamp}.{micros:06d} {thread_id} {text}\n"


# LevelDB writes the same layout; its thread id need not be decimal, so any word is taken.
_LINE = re.compile(r"(\d{4}/\d{2}/\d{2}-\d{2}:\d{2}:\d{2})\.(\d{6}) (\S+) (.*)", re.S)


def parse_line(line):
    """Split one LOG line (trailing newline optional) into
    ``(stamp, timestamp, thread_id, message)``: stamp is the logged local time
    text with its microseconds, timestamp the same as seconds since the epoch,
    thread_id the logged id as text. Returns None for a line not in the format
    (torn, hand-edited, another program's), never raises."""
    m = _LINE.fullmatch(line.rstrip("\r\n"))
    if m is None:
        return None
    stamp, micros, thread_id, message = m.groups()
    try:
        seconds = time.mktime(time.strptime(stamp, "%Y/%m/%d-%H:%M:%S"))
    except (ValueError, OverflowError):
        return None  # e.g. month 13: the shape matched but it is no time
    return f"{stamp}.{micros}", seconds + int(micros) / 1e6, thread_id, message


# --- events: one formatter per kind, and the parser that reads them all back

FLUSH, COMPACTION, MOVE, RECOVERY = "flush", "compaction", "move", "recovery"

_NUM = r"(\d+(?:\.\d*)?)"
_FLUSH = re.compile(r"Flushed table #(\d+|-): (\d+) bytes, to level (\d+), " + _NUM + r"s(?: \(WAL #(\d+)\))?")
_COMPACTION = re.compile(r"Compacted (\d+)@(\d+) \+ (\d+)@(\d+) files => (\d+) bytes in (\d+) files, "
                         r"(\d+) bytes read, " + _NUM + r"s(?:, (\d+) subcompactions)?")
_MOVE = re.compile(r"Moved #(\d+) to level-(\d+) (\d+) bytes")
_RECOVERY = re.compile(r"Recovering log #(\d+): max sequence (\d+), (\d+) bytes of tables(?:, failed: (.*))?", re.S)
# Messages that announce an event: one of these that does not parse is malformed.
_EVENTS = (("Flushed table ", FLUSH, _FLUSH), ("Compacted ", COMPACTION, _COMPACTION), ("Moved #", MOVE, _MOVE),
           ("Recovering log #", RECOVERY, _RECOVERY))


def flushed_message(table_number, written, level, seconds, wal_number) -> str:
    """A memtable flushed: its table (None when it wrote none), bytes written, the level it went to."""
    table = "-" if table_number is None else table_number
    return f"Flushed table #{table}: {written} bytes, to level {level}, {seconds:.3f}s (WAL #{wal_number})"


def compacted_message(inputs, level, next_inputs, written, outputs, read, seconds, subcompactions=1) -> str:
    """A compaction of `inputs` files of `level` and `next_inputs` of the next level."""
    subs = f", {subcompactions} subcompactions" if subcompactions > 1 else ""
    return (f"Compacted {inputs}@{level} + {next_inputs}@{level + 1} files => {written} bytes in {outputs} files, "
            f"{read} bytes read, {seconds:.3f}s{subs}")


def moved_message(number, level, size) -> str:
    """A trivial move of table `number` into `level`."""
    return f"Moved #{number} to level-{level} {size} bytes"


def recovered_log_message(wal_number, max_sequence, table_bytes, error=None) -> str:
    """A WAL replayed at open into tables of `table_bytes` in all (error: why it failed)."""
    failed = "" if error is None else f", failed: {error}"
    return f"Recovering log #{wal_number}: max sequence {max_sequence}, {table_bytes} bytes of tables{failed}"


def _int(text):
    return None if text is None or text == "-" else int(text)


def parse_event_message(message):
    """``(kind, fields)`` for a message one of the formatters above wrote,
    None for any other message. Fields are the formatter's arguments by
    name (numbers as int or float, None where the line has none). Raises
    ValueError for a message that names an event but does not parse."""
    for prefix, kind, pattern in _EVENTS:
        if message.startswith(prefix):
            break
    else:
        return None
    m = pattern.match(message)
    if m is None:
        raise ValueError(f"unparsable event line: {message!r}")
    g = m.groups()
    if kind == FLUSH:
        return kind, {"table_number": _int(g[0]), "written": int(g[1]), "level": int(g[2]),
                      "seconds": float(g[3]), "wal_number": _int(g[4])}
    if kind == COMPACTION:
        if int(g[3]) != int(g[1]) + 1:
            raise ValueError(f"compaction from level {g[1]} into level {g[3]}: {message!r}")
        return kind, {"inputs": int(g[0]), "level": int(g[1]), "next_inputs": int(g[2]), "written": int(g[4]),
                      "outputs": int(g[5]), "read": int(g[6]), "seconds": float(g[7]),
                      "subcompactions": _int(g[8]) or 1}
    if kind == MOVE:
        return kind, {"number": int(g[0]), "level": int(g[1]), "size": int(g[2])}
    return kind, {"wal_number": int(g[0]), "max_sequence": int(g[1]), "table_bytes": int(g[2]), "error": g[3]}


class InfoLog:
    """An open info LOG. Build it with InfoLog.open(fs, dbname)."""

    def __init__(self, file, path):
        self._file = file
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def open(cls, fs, dbname):
        """Rotate LOG to LOG.old (if there is a LOG) and start a new, empty LOG.
        Raises lsm.errors.IOError if the new LOG cannot be created."""
        path = info_log_file_name(dbname)
        if fs.exists(path):
            fs.rename(path, old_info_log_file_name(dbname))  # replaces LOG.old
        return cls(fs.create(path, exclusive=False), path)

    def log(self, message, *args) -> None:
        """Append one timestamped line. With args, message is a %-format
        (``log("Compacting %d@%d files", 4, 0)``), formatted only here."""
        if args:
            try:
                message = message % args
            except (TypeError, ValueError):
                message = " ".join([str(message), *map(str, args)])
        line = format_line(message).encode("utf-8", "backslashreplace")
        with self._lock:
            file = self._file
            if file is None:
                return  # closed: late messages (e.g. from a shutting-down thread) are dropped
            try:
                file.append(line)
            except OSError:
                pass  # includes lsm.errors.IOError

    __call__ = log

    def close(self) -> None:
        with self._lock:
            file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass

    @property
    def closed(self) -> bool:
        return self._file is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class NullInfoLog:
    """Stands in for an InfoLog when none is wanted (same methods, no file)."""

    path = None
    closed = False

    def log(self, message, *args) -> None:
        pass

    __call__ = log

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


__all__ = ["InfoLog", "NullInfoLog", "format_line", "parse_line", "FLUSH", "COMPACTION", "MOVE", "RECOVERY",
           "flushed_message", "compacted_message", "moved_message", "recovered_log_message",
           "parse_event_message"]
