"""A database's statistics as one dict, and that dict as text: levels (files,
bytes, scores), the counters of an open, ``leveldb.stats`` and the flush and
compaction history read from the info LOG (lsm.history).

Opening rotates LOG to LOG.old and drops the older LOG.old, so both are read
before the open, and the LOG the open wrote after it: the history covers the
last two sessions before this one, plus this one.

Knows lsm.history, an open DB's stats and properties, and the FileSystem
seam for reading the LOGs; prints nothing.
"""
import os

from .. import history
from ..fileio import DEFAULT_FS
from .database import open_database

MB = 1048576
COUNTERS = ("flushes", "compactions", "compaction_bytes_read", "compaction_bytes_written", "compaction_seconds",
            "stall_seconds", "write_amplification", "last_sequence", "background_error")


def database_stats(path, *, last_events=10, fs=DEFAULT_FS) -> dict:
    """``db.stats()`` plus "path", "leveldb.stats" and "history" (history.summarize's
    dict, with "logs": the LOG files read, and "last": the last `last_events`
    events as dicts)."""
    path = os.fspath(path)
    logs = history.read_logs(fs, path) if os.path.isdir(path) else []  # else open_database says what is wrong
    with open_database(path) as db:
        stats = db.stats()
        leveldb_stats = (db.get_property(b"leveldb.stats") or b"").decode("utf-8", "replace")
    this_open = [text for name, text in history.read_logs(fs, path) if name == "LOG"]
    logs += [("LOG (this stats run)", text) for text in this_open]
    past = history.parse_history(text for _, text in logs)
    summary = history.summarize(past)
    summary["logs"] = [name for name, _ in logs]
    recent = past.events[-last_events:] if last_events else []
    report = dict(stats)
    report["path"] = path
    report["leveldb.stats"] = leveldb_stats
    report["history"] = dict(summary, last=[e.as_dict() for e in recent])
    return report


def stats_text(report) -> str:
    """The report of database_stats as the tables ``python -m lsm stats`` prints."""
    summary = report["history"]
    recent = summary["last"]
    into = {row["level"]: row for row in summary["levels"]}
    head = f"{'level':>5} {'files':>7} {'size MB':>10} {'score':>7} |"
    tail = (f" {'flushes':>7} {'compactions':>11} {'moves':>5} {'read MB':>9} {'write MB':>9} "
            f"{'seconds':>9}")
    out = [f"database: {report['path']}", "",
           f"{'now':^{len(head) - 1}}|{' history: into this level (from the LOGs)':<{len(tail)}}",
           head + tail]
    files = size = 0
    for lv in report.get("levels", []):
        files += lv.get("files", 0)
        size += lv.get("bytes", 0)
        row = into.get(lv["level"], {})
        out.append(f"{'L%d' % lv['level']:>5} {lv.get('files', 0):>7} {lv.get('bytes', 0) / MB:>10.2f} "
                   f"{lv.get('score', 0):>7.2f} | {row.get('flushes', 0):>7} {row.get('compactions', 0):>11} "
                   f"{row.get('moves', 0):>5} "
                   f"{(row.get('input_bytes') or 0) / MB:>9.2f} {row.get('output_bytes', 0) / MB:>9.2f} "
                   f"{row.get('seconds') or 0:>9.3f}")
    out.append(f"{'total':>5} {files:>7} {size / MB:>10.2f}")
    out += ["", *_history_summary_lines(summary), ""]
    count = summary["event_count"]
    out.append(f"last {len(recent)} of {count} events:" if recent else
               f"last events: none shown ({count} in the history; --history N shows N)")
    if recent:
        out.append(f"{'time':<26} {'kind':<10} {'levels':>8} {'in files':>8} {'in bytes':>11} "
                   f"{'out files':>9} {'out bytes':>11} {'seconds':>8}  detail")
        for e in recent:
            move = e["kind"] == history.MOVE
            levels = f"{'mem' if e['from_level'] is None else 'L%d' % e['from_level']}->L{e['to_level']}"
            out.append(f"{e['time']:<26} {e['kind']:<10} {levels:>8} {_dash(e['input_files']):>8} "
                       f"{_dash(None if move else e['input_bytes']):>11} {e['output_files']:>9} "
                       f"{_dash(None if move else e['output_bytes']):>11} "
                       f"{_dash(e['seconds'], '.3f'):>8}  {e['detail']}"
                       + (f", {e['moved_bytes']} bytes moved" if move else ""))
    out += ["", "this open only (the stats command's own session):"]
    for key in COUNTERS:
        if key in report:
            value = report[key]
            out.append(f"  {key + ':':<26} {value:.3f}" if isinstance(value, float) else f"  {key + ':':<26} {value}")
    if report.get("compactors"):
        out.append(f"  {'compactors:':<26} {report['compactors']}")
    out += ["", "leveldb.stats:", report["leveldb.stats"].rstrip("\n")]
    return "\n".join(line.rstrip() for line in out)


def _dash(value, spec=""):
    return "-" if value is None else format(value, spec)


def _history_summary_lines(summary):
    logs = " + ".join(summary["logs"]) or "no LOG found"
    span = (f", {summary['first_time']} to {summary['last_time']}" if summary["first_time"] else "")
    out = [f"compaction history ({logs}: {summary['sessions']} session(s){span}):",
           f"{'kind':<11} {'count':>6} {'in files':>9} {'in MB':>9} {'out files':>9} {'out MB':>9} {'seconds':>9}"]
    for kind, t in summary["kinds"].items():
        if kind == history.MOVE:
            out.append(f"{kind:<11} {t['count']:>6} {t['input_files'] or 0:>9} {'-':>9} {t['output_files']:>9} "
                       f"{'-':>9} {'-':>9}  ({t['moved_bytes'] / MB:.2f} MB moved, no I/O)")
            continue
        in_mb = "-" if t["input_bytes"] is None else f"{t['input_bytes'] / MB:.2f}"
        out.append(f"{kind:<11} {t['count']:>6} {_dash(t['input_files']):>9} {in_mb:>9} {t['output_files']:>9} "
                   f"{t['output_bytes'] / MB:>9.2f} {_dash(t['seconds'], '.3f'):>9}")
    if summary["skipped_lines"]:
        out.append(f"({summary['skipped_lines']} malformed LOG line(s) skipped)")
    return out
