"""Bulk load: lines of JSON (``{"key": ..., "value": ...}``) or TSV
(``KEY<TAB>VALUE``) parsed into entries, and entries written in write batches.
Knows an open DB and a byte stream; no terminal. The first bad line raises
BadInputLine naming the line; the entries before it are written.
"""
import json
from dataclasses import dataclass

LOAD_BATCH = 1000  # entries per write batch
FORMATS = ("jsonl", "tsv")
_EXTENSIONS = {"jsonl": (".jsonl", ".ndjson", ".json"), "tsv": (".tsv", ".tab", ".txt")}


class BadInputLine(ValueError):
    """A line of the input is not an entry: the message names the input and the line."""


def format_of(file_name):
    """The format a file's extension names, or None."""
    name = file_name.lower()
    for fmt, extensions in _EXTENSIONS.items():
        if name.endswith(extensions):
            return fmt
    return None


def parse_lines(stream, fmt, *, hex=False, name="stdin"):
    """Yield (key, value, line size in bytes) for each non-empty line of a
    binary stream; text is UTF-8, or hexadecimal with `hex`."""
    for number, raw in enumerate(stream, 1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        where = f"{name}:{number}"
        key, value = _json_entry(line, hex, where) if fmt == "jsonl" else _tsv_entry(line, hex, where)
        yield key, value, len(raw)


def _json_entry(line, hex, where):
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise BadInputLine(f"{where}: not a JSON object ({exc})") from None
    if not isinstance(obj, dict) or "key" not in obj or "value" not in obj:
        raise BadInputLine(f'{where}: expected an object with "key" and "value"')
    key, value = obj["key"], obj["value"]
    if not (isinstance(key, str) and isinstance(value, str)):
        raise BadInputLine(f"{where}: key and value must be JSON strings")
    try:
        if hex:
            return bytes.fromhex(key), bytes.fromhex(value)
        return key.encode("utf-8"), value.encode("utf-8")
    except (ValueError, UnicodeEncodeError) as exc:
        raise BadInputLine(f"{where}: {'not hexadecimal' if hex else 'bad text'} ({exc})") from None


def _tsv_entry(line, hex, where):
    key, tab, value = line.partition(b"\t")
    if not tab:
        raise BadInputLine(f"{where}: expected KEY<TAB>VALUE (no tab on the line)")
    if hex:
        try:
            return bytes.fromhex(key.decode("ascii")), bytes.fromhex(value.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            raise BadInputLine(f"{where}: not hexadecimal") from None
    return key, value


@dataclass
class LoadTotals:
    """What a load has written so far: entries, and their keys' and values' bytes."""

    entries: int = 0
    bytes: int = 0


def load_entries(db, entries, totals, *, batch_size=LOAD_BATCH, on_batch=None):
    """Write (key, value, input size) entries into `db` in batches of
    `batch_size`, counting them in `totals` (the caller's, so a load that
    fails midway still says how far it got). The entries before a failure
    are written. on_batch(input bytes) follows each batch written."""
    batch = db.write_batch()
    pending = pending_bytes = read = 0
    try:
        for key, value, size in entries:
            batch.put(key, value)
            pending += 1
            pending_bytes += len(key) + len(value)
            read += size
            if pending >= batch_size:
                batch.write()
                batch.clear()
                totals.entries += pending
                totals.bytes += pending_bytes
                pending = pending_bytes = 0
                if on_batch is not None:
                    on_batch(read)
                read = 0
    finally:
        if pending:  # the good lines before a bad one are loaded too
            batch.write()
            totals.entries += pending
            totals.bytes += pending_bytes
            if on_batch is not None:
                on_batch(read)
