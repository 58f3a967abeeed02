"""Repair a database (lsm.repair_db) and say what it did in lines of text:
what was kept, rebuilt, dropped, and moved into ``PATH/lost/``.
Knows lsm.repair_db and its report; prints nothing."""
import os

from ..admin import repair_db
from ..errors import Error


def repair_database(path):
    """lsm.repair_db's report (a dict); Error if `path` is no directory."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise Error(f"{path}: no such database directory")
    return repair_db(path)


def report_lines(path, report) -> list:
    if not isinstance(report, dict):
        return [f"repaired {path}" + ("" if report is None else f": {report}")]
    out = [f"repaired {path}: {report.get('tables', 0)} tables kept, "
           f"{report.get('tables_rebuilt', 0)} rebuilt from their intact blocks, "
           f"{len(report.get('tables_dropped', []))} dropped; {report.get('wals', 0)} WALs converted; "
           f"{report.get('entries', 0):,} entries salvaged; "
           f"{len(report.get('lost', []))} files moved into {os.path.join(path, 'lost')}"]
    for item in report.get("tables_dropped", []):
        moved = item.get("moved_to")
        out.append(f"dropped table {item.get('file')}: {item.get('reason')}"
                   + (f" (moved to {moved})" if moved else ""))
    for item in report.get("dropped", []):
        out.append(f"dropped data in {item.get('file')}: {item.get('reason')}")
    # Every file repair set aside, one line each: dropped tables (also named
    # above) and the damaged originals of rebuilt tables. Nothing reads lost/.
    for lost in report.get("lost", []):
        out.append(f"kept in lost/: {lost}")
    return out
