"""Opening a database: creating it when asked, refusing what must not be
opened, recovering the MANIFEST, replaying the live WALs into level-0
tables, and removing what an earlier session left behind (staging
directories, obsolete files).

Knows the shared state, the memtables (the open starts a fresh WAL), the
installer (replayed WALs become tables like any flush), the obsolete-file
keeper and a runner for jobs in this process. Files are read and written
through the FileSystem seam.
"""
from .. import filenames
from ..errors import CorruptionError, Error
from ..infolog import recovered_log_message
from ..jobs import FlushJob, job_error
from ..version_edit import VersionEdit


def create_directory(state):
    """Make the database's directory if it is missing and that is allowed."""
    fs, dbname = state.fs, state.dbname
    if not fs.exists(dbname):
        if not state.options.create_if_missing:
            raise Error(f"Invalid argument: {dbname}/CURRENT: does not exist (create_if_missing is false)")
        fs.mkdir(dbname)


def recover(state, memtables, installer, obsolete, run_here):
    """At open, the database's LOCK held: bring the database to the state
    its MANIFEST and WALs describe, with a fresh WAL open for writes."""
    fs, dbname, options = state.fs, state.dbname, state.options
    _create_or_check(state)
    vs = state.versions
    vs.recover()
    fs.rmtree(filenames.staging_root(dbname))

    present_tables = set()
    wals = []
    for name in fs.listdir(dbname):
        parsed = filenames.parse_file_name(name)
        if parsed is None:
            continue
        kind, number = parsed
        vs.mark_file_number_used(number)  # never reuse a number found on disk
        if kind == filenames.FileType.TABLE:
            present_tables.add(number)
        elif kind == filenames.FileType.LOG and filenames.wal_is_live(number, vs.log_number, vs.prev_log_number):
            wals.append(number)
    missing = sorted(vs.current.live_numbers() - present_tables)
    if missing:
        raise CorruptionError(dbname, None, f"{len(missing)} missing files; e.g. "
                              f"{filenames.table_file_name(dbname, missing[0])}")

    edit = VersionEdit()
    max_sequence = vs.last_sequence
    for wal_number in sorted(wals):
        job = FlushJob(state.next_job_id(), wal_number, options.table_options(), paranoid=options.paranoid_checks,
                       comparator=options.comparator_reference)
        result = run_here(job)
        state.log(recovered_log_message(wal_number, result.max_sequence, sum(o.size for o in result.outputs),
                                        None if result.ok else result.error))
        path = filenames.log_file_name(dbname, wal_number)
        if not result.ok:
            raise job_error(result, f"recovery of {path} failed", path)
        max_sequence = max(max_sequence, result.max_sequence)
        installer.validate_outputs(result)
        for meta in installer.install_outputs(result):
            edit.new_files.append((0, meta))  # recovery flushes always go to level 0
        if result.error:
            # Point-in-time recovery: the WAL was damaged (or lost a block
            # in a power cut); replaying a later one would leave a hole.
            later = [n for n in sorted(wals) if n > wal_number]
            state.log(f"Log #{wal_number} {result.error}; not replaying {len(later)} later log(s)")
            break
    vs.last_sequence = max_sequence
    memtables.new_wal()
    edit.log_number = memtables.mem.wal_number
    edit.prev_log_number = 0
    edit.last_sequence = max_sequence
    vs.log_and_apply(edit)
    obsolete.delete_obsolete_files()


def _create_or_check(state):
    """Create a new database where there is none, or refuse what the
    options or the directory's contents forbid."""
    fs, dbname, options = state.fs, state.dbname, state.options
    current = filenames.current_file_name(dbname)
    names = fs.listdir(dbname)
    if not fs.exists(current):
        stray = [n for n in names if (p := filenames.parse_file_name(n)) and p[0] in
                 (filenames.FileType.TABLE, filenames.FileType.DESCRIPTOR)]
        if stray == ["MANIFEST-000001"] and not any(n.endswith(filenames.LOG_SUFFIX) for n in names):
            # A creation cut short before CURRENT was written: no write can
            # have been acknowledged (there is no WAL), so create again.
            stray = []
        if stray:
            raise CorruptionError(current, None,
                                  f"CURRENT is missing but the directory holds {len(stray)} table/MANIFEST "
                                  f"file(s), e.g. {sorted(stray)[0]}; refusing to create a new database "
                                  "over them (run repair_db)")
        if not options.create_if_missing:
            raise Error(f"Invalid argument: {dbname}/CURRENT: does not exist (create_if_missing is false)")
        state.versions.create_new_db()
    elif options.error_if_exists:
        raise Error(f"Invalid argument: {dbname}: exists (error_if_exists is true)")
