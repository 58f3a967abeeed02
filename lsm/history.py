"""Flush and compaction history, read back from the info LOG.

The engine's counters (``db.stats()``, ``leveldb.stats``) live in memory and
start at zero with every open. The info LOG keeps what happened on disk:
each flush, compaction and trivial move is one line (lsm.infolog words
and parses them). LevelDB rotates ``LOG`` to ``LOG.old`` at every open and keeps
only one ``LOG.old``, so the history reaches back over the last two sessions
(opens) at most.

``parse_history(texts)`` is pure: it takes the text of each LOG, oldest first,
and returns a ``History``. ``read_logs(fs, dbname)`` is the only function here
that touches files, through the FileSystem seam; the wording of events is
lsm.infolog's. Lines that are not LOG lines, or that name an event but do
not parse, are counted in ``History.skipped`` and otherwise ignored: a torn
last line after a crash must not break a stats tool.

Lines understood (the engine's wording):

- ``Flushed table #12: 65432 bytes, to level 0, 0.012s (WAL #11)``
- ``Compacted 4@0 + 2@1 files => 300000 bytes in 3 files, 327000 bytes read, 0.103s[, 2 subcompactions]``
- ``Moved #12 to level-2 65432 bytes`` (a trivial move: no bytes read or written)
- ``Recovering log #11: max sequence 900, 65432 bytes of tables`` (a WAL
  replayed at open: a flush to level 0 when it wrote tables; no duration logged)
"""
import dataclasses
import os
from dataclasses import dataclass

from .filenames import info_log_file_name, old_info_log_file_name
from .infolog import COMPACTION, FLUSH, MOVE, parse_event_message, parse_line

KINDS = (FLUSH, COMPACTION, MOVE)

@dataclass(frozen=True)
class Event:
    """One flush, compaction or trivial move, as the LOG recorded it.

    Levels: ``from_level`` is None for a flush (the source is a memtable/WAL).
    Unknown values are None: the LOG does not say how many bytes a flush
    read, and has no duration for a flush done by recovery at open."""

    time: str                 # local time as logged, e.g. "2026/11/21-08:00:00.123456"
    timestamp: float          # the same, in seconds since the epoch
    session: int              # 0 for the oldest LOG given, 1 for the next, ...
    kind: str                 # FLUSH, COMPACTION or MOVE
    from_level: int | None
    to_level: int
    input_files: int | None
    input_bytes: int | None
    output_files: int
    output_bytes: int
    seconds: float | None
    moved_bytes: int = 0      # MOVE only: size of the file moved (not read or written)
    detail: str = ""          # e.g. "table #12 from WAL #11", "2 subcompactions"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class History:
    events: list              # [Event], in LOG order (oldest first)
    sessions: int             # LOG texts that held at least one well-formed line
    lines: int                # lines read (non-empty)
    skipped: int              # malformed lines ignored
    first_time: str | None    # first and last well-formed line's time
    last_time: str | None


def parse_event(stamp, timestamp, message, session=0):
    """The Event a LOG message records, None if it records none.
    Raises ValueError for a message that names an event but does not parse."""
    parsed = parse_event_message(message)
    if parsed is None:
        return None
    kind, f = parsed
    base = {"time": stamp, "timestamp": timestamp, "session": session}
    if kind == FLUSH:
        table, wal = f["table_number"], f["wal_number"]
        return Event(kind=FLUSH, from_level=None, to_level=f["level"], input_files=None, input_bytes=None,
                     output_files=0 if table is None else 1, output_bytes=f["written"], seconds=f["seconds"],
                     detail=f"table #{'-' if table is None else table}"
                            + (f" from WAL #{wal}" if wal is not None else ""), **base)
    if kind == COMPACTION:
        level, subs = f["level"], f["subcompactions"]
        return Event(kind=COMPACTION, from_level=level, to_level=level + 1,
                     input_files=f["inputs"] + f["next_inputs"], input_bytes=f["read"], output_files=f["outputs"],
                     output_bytes=f["written"], seconds=f["seconds"],
                     detail=f"{f['inputs']}@{level} + {f['next_inputs']}@{level + 1} files"
                            + (f", {subs} subcompactions" if subs > 1 else ""), **base)
    if kind == MOVE:
        level = f["level"]
        if level < 1:
            raise ValueError(f"move into level {level}: {message!r}")
        return Event(kind=MOVE, from_level=level - 1, to_level=level, input_files=1, input_bytes=0,
                     output_files=1, output_bytes=0, seconds=None, moved_bytes=f["size"],
                     detail=f"table #{f['number']}", **base)
    if f["error"] is not None or f["table_bytes"] == 0:
        return None  # nothing was written: an empty WAL replayed at open is no flush
    return Event(kind=FLUSH, from_level=None, to_level=0, input_files=None, input_bytes=None,
                 output_files=1, output_bytes=f["table_bytes"], seconds=None,
                 detail=f"recovery of WAL #{f['wal_number']} at open", **base)


def parse_history(texts) -> History:
    """Events from LOG texts given oldest first (``[LOG.old, LOG]``). Each item
    is a str (a whole LOG) or an iterable of lines. No I/O."""
    events = []
    sessions = lines = skipped = 0
    first = last = None
    for text in texts:
        seen = False
        for line in (text.splitlines() if isinstance(text, str) else text):
            if not line.strip():
                continue
            lines += 1
            parsed = parse_line(line)
            if parsed is None:
                skipped += 1
                continue
            stamp, timestamp, _thread, message = parsed
            try:
                event = parse_event(stamp, timestamp, message, session=sessions)
            except ValueError:
                skipped += 1
                continue
            seen = True
            first = first or stamp
            last = stamp
            if event is not None:
                events.append(event)
        sessions += seen
    return History(events, sessions, lines, skipped, first, last)


def _total(values):
    """Sum of the known values; None when there are values but none is known
    (a flush's input bytes), 0 when there are none at all."""
    values = list(values)
    known = [v for v in values if v is not None]
    return sum(known) if known or not values else None


def _totals(events) -> dict:
    return {"count": len(events),
            "input_files": _total(e.input_files for e in events),
            "input_bytes": _total(e.input_bytes for e in events),
            "output_files": sum(e.output_files for e in events),
            "output_bytes": sum(e.output_bytes for e in events),
            "seconds": _total(e.seconds for e in events),
            "moved_bytes": sum(e.moved_bytes for e in events)}


def summarize(history: History) -> dict:
    """Totals per kind, and per destination level (what went into level N)."""
    events = history.events
    levels = []
    for level in sorted({e.to_level for e in events}):
        into = [e for e in events if e.to_level == level]
        row = {"level": level, "flushes": sum(e.kind == FLUSH for e in into),
               "compactions": sum(e.kind == COMPACTION for e in into),
               "moves": sum(e.kind == MOVE for e in into)}
        row.update({k: v for k, v in _totals(into).items() if k != "count"})
        levels.append(row)
    return {"sessions": history.sessions, "lines": history.lines, "skipped_lines": history.skipped,
            "first_time": history.first_time, "last_time": history.last_time,
            "event_count": len(events),
            "kinds": {kind: _totals([e for e in events if e.kind == kind]) for kind in KINDS},
            "levels": levels}


def read_logs(fs, dbname) -> list:
    """``[(name, text)]`` for LOG.old and LOG, oldest first, leaving out a
    file that is missing or unreadable. Text is decoded as UTF-8, bad bytes
    replaced. Opening the database rotates LOG to LOG.old and drops the
    older LOG.old: read before opening to keep it."""
    out = []
    for path in (old_info_log_file_name(dbname), info_log_file_name(dbname)):
        try:
            if not fs.exists(path):
                continue
            data = fs.read_file(path)
        except OSError:  # includes lsm.errors.IOError: a diary that cannot be read is left out
            continue
        out.append((os.path.basename(path), data.decode("utf-8", "replace")))
    return out


__all__ = ["Event", "History", "FLUSH", "COMPACTION", "MOVE", "KINDS", "parse_event", "parse_history",
           "summarize", "read_logs"]
