"""repair_db: rebuild a database's MANIFEST from the tables and WALs present.

Reads every table (verifying every block), keeps each intact entry, turns
every WAL into a table (skipping damaged records), writes a fresh MANIFEST
naming only what survived, and finally compacts all of it into one sorted
run: file numbers alone cannot say which of two overlapping tables is newer,
but sequence numbers can, and a compaction orders by them.

A table that cannot be used whole (unreadable, or rebuilt from its intact
blocks) is never deleted: as LevelDB's RepairDB does, it is moved into
``<db>/lost/``, where nothing reads it and destroy_db leaves it.

Knows the file formats (tables, log, VersionEdit), the job runner
(lsm.compactor.runner, to turn WALs into tables) and lsm.db (for the final
compaction); does its I/O through the FileSystem seam.
"""
import os

from . import filenames
from .jobs import FlushJob
from .table.options import TableOptions
from .compactor.runner import run_job
from .errors import CorruptionError, DecodeError, Error
from .fileio import DEFAULT_FS
from .filemeta import FileMetaData
from .keys import COMPARATOR_NAME, parse_internal_key
from .order import ordered_key_type
from .record import LogReader, LogWriter
from .table import Table, TableBuilder
from .version_edit import VersionEdit

LOST = "lost"  # LevelDB's RepairDB archives what it cannot use here


def repair(dbname, fs=DEFAULT_FS, **options):
    """Returns a report dict: tables kept/rebuilt/dropped, WALs converted,
    what was dropped with the reason, and the files moved into lost/ (each
    dropped table's entry names its new place as ``moved_to``)."""
    from .writer.options import Options
    compare, comparator_name = options.pop("comparator", None), options.pop("comparator_name", None)
    opts = Options.from_kwargs(**{k: v for k, v in options.items() if v is not None})
    table_options = opts.table_options()
    ordered = None if compare is None else ordered_key_type(compare)
    report = {"tables": 0, "tables_rebuilt": 0, "tables_dropped": [], "wals": 0, "dropped": [],
              "entries": 0, "lost": []}
    handle = fs.lock(filenames.lock_file_name(dbname))
    try:
        names = fs.listdir(dbname)
        parsed = [(p, n) for n in names if (p := filenames.parse_file_name(n)) is not None]
        next_number = 1 + max([num for (_, num), _ in parsed] + [1])
        tables, wals, manifests = [], [], []
        for (kind, number), name in parsed:
            if kind == filenames.FileType.TABLE:
                tables.append((number, name))
            elif kind == filenames.FileType.LOG:
                wals.append(number)
            elif kind == filenames.FileType.DESCRIPTOR:
                manifests.append(name)
        staging = filenames.job_staging_dir(dbname, "repair", 0)
        fs.rmtree(staging)
        fs.mkdir(staging)
        metas = []
        max_sequence = 0
        for number in sorted(wals):
            job = FlushJob(0, number, table_options, paranoid=False, salvage=True)
            result = run_job(job, dbname, staging, fs, compare=compare)
            if not result.ok:
                report["dropped"].append({"file": filenames.log_file_name(dbname, number), "reason": result.error})
                continue
            report["wals"] += 1
            report["dropped"].extend(_wal_damage(fs, filenames.log_file_name(dbname, number)))
            max_sequence = max(max_sequence, result.max_sequence)
            for out in result.outputs:
                new_number = next_number
                next_number += 1
                fs.rename(os.path.join(staging, out.name), filenames.table_file_name(dbname, new_number))
                tables.append((new_number, os.path.basename(filenames.table_file_name(dbname, new_number))))
        for number, name in sorted(tables):
            path = os.path.join(dbname, name)
            meta, seq, next_number = _salvage_table(fs, dbname, path, number, table_options, next_number, report,
                                                    ordered)
            if meta is not None:
                metas.append(meta)
                max_sequence = max(max_sequence, seq)
        fs.rmtree(filenames.staging_root(dbname))
        if report["lost"]:
            # The moves into lost/ are durable before the MANIFEST that no
            # longer names those tables.
            fs.sync_dir(os.path.join(dbname, LOST))
            fs.sync_dir(dbname)

        manifest_number = next_number
        next_number += 1
        edit = VersionEdit(comparator=comparator_name or COMPARATOR_NAME, log_number=0, prev_log_number=0,
                           next_file_number=next_number, last_sequence=max_sequence)
        for meta in metas:
            edit.new_files.append((0, meta))
        path = filenames.descriptor_file_name(dbname, manifest_number)
        fs.write_file(path, LogWriter().encode(edit.encode()), sync=True)
        fs.sync_dir(dbname)
        filenames.set_current_file(fs, dbname, manifest_number)
        for name in manifests:
            fs.remove(os.path.join(dbname, name))
        for number in wals:
            fs.remove(filenames.log_file_name(dbname, number))
        fs.sync_dir(dbname)
    finally:
        fs.unlock(handle)
    from .db import DB
    if compare is not None:
        options.update(comparator=compare, comparator_name=comparator_name)
    with DB(dbname, compactors=0, **options) as db:
        db.compact_range()
    return report


def _salvage_table(fs, dbname, path, number, table_options, next_number, report, ordered=None):
    """(FileMetaData or None, max sequence, next_number). A table with a damaged
    block is rewritten from its intact blocks under a new number; the damaged
    original, or a table that cannot be opened at all, goes to lost/.
    ordered: a custom comparator's key type (lsm.order)."""
    try:
        file = fs.open_random(path)
    except Error as exc:
        report["tables_dropped"].append({"file": path, "reason": str(exc)})
        return None, 0, next_number
    entries = []
    damaged = False
    try:
        try:
            table = Table.open(file, path=path, number=number, ordered=ordered)
        except (CorruptionError, DecodeError) as exc:
            reason = str(exc)
        else:
            reason = "no intact entries"
            for i in range(table.num_blocks):
                try:
                    ukeys, tags, values = table.block(i)
                except (CorruptionError, DecodeError) as exc:
                    damaged = True
                    report["dropped"].append({"file": path, "reason": str(exc)})
                    continue
                for k, t, v in zip(ukeys, tags, values):
                    entries.append((k + t.to_bytes(8, "little"), v))
    finally:
        file.close()
    if not entries:
        # Unreadable (footer, index) or nothing intact: kept aside, not deleted.
        moved = _move_to_lost(fs, dbname, path, report)
        report["tables_dropped"].append({"file": path, "reason": reason, "moved_to": moved})
        return None, 0, next_number
    max_seq = max(parse_internal_key(k)[1] for k, _ in entries)
    report["entries"] += len(entries)
    if not damaged:
        report["tables"] += 1
        return FileMetaData(number, fs.file_size(path), entries[0][0], entries[-1][0]), max_seq, next_number
    new_number = next_number
    new_path = filenames.table_file_name(dbname, new_number)
    out = fs.create(new_path)
    try:
        builder = TableBuilder(TableOptions(**vars(table_options)), out.append, shorten_index_keys=ordered is None)
        for k, v in entries:
            builder.add(k, v)
        size = builder.finish()
        out.sync()
    finally:
        out.close()
    _move_to_lost(fs, dbname, path, report)  # the damaged original, as LevelDB's RepairTable does
    report["tables_rebuilt"] += 1
    return FileMetaData(new_number, size, entries[0][0], entries[-1][0]), max_seq, next_number + 1


def _move_to_lost(fs, dbname, path, report):
    """Move the file at path into <db>/lost/ (LevelDB's ArchiveFile), never
    over a file an earlier repair put there. Returns its new path."""
    lost = os.path.join(dbname, LOST)
    fs.mkdir(lost)
    name = os.path.basename(path)
    target = os.path.join(lost, name)
    n = 1
    while fs.exists(target):
        target = os.path.join(lost, f"{name}.{n}")
        n += 1
    fs.rename(path, target)
    report["lost"].append(target)
    return target


def _wal_damage(fs, path):
    """What converting the WAL at path skipped: the flush job drops damaged
    records without a word, so read it once more to say where and why."""
    from .batch import decode_batch
    damage = []

    def note(offset, dropped, reason):
        damage.append({"file": path, "offset": offset, "bytes": dropped, "reason": reason})

    try:
        for offset, payload in LogReader(fs.read_file(path), report=note):
            try:
                decode_batch(payload)
            except DecodeError as exc:
                note(offset, len(payload), f"bad write batch: {exc.reason}")
    except (Error, DecodeError) as exc:
        note(None, None, str(exc))
    return damage
