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
(lsm.history); it does no I/O.
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


__all__ = ["InfoLog", "NullInfoLog", "format_line", "parse_line"]
