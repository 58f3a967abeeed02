"""Installing job results: checking a result's staged tables, renaming them
into the database under fresh file numbers, and committing the version
edit of a flush, a compaction or a trivial move to the MANIFEST.

Knows the shared state, the memtables (a committed flush drops its frozen
memtable) and the obsolete-file keeper (a commit frees files), and the
picker's placement rule for flushed tables. Runs no job and picks none.
Files are touched through the FileSystem seam.
"""
import os

from .. import filenames
from ..errors import CorruptionError, Error
from ..filemeta import FileMetaData
from ..heap import release_free_memory
from ..infolog import compacted_message, flushed_message, moved_message
from ..table import Table
from ..version_edit import VersionEdit
from . import picker


class Installer:
    def __init__(self, state, memtables, obsolete):
        self._state = state
        self._memtables = memtables
        self._obsolete = obsolete

    # ---------------------------------------------------------- outputs
    def validate_outputs(self, result):
        """Every output present with the stated size and a readable footer and index."""
        fs = self._state.fs
        for out in result.outputs:
            src = os.path.join(result.staging_dir, out.name)
            try:
                size = fs.file_size(src)
            except Error as exc:
                raise CorruptionError(src, None, "result names an output that is missing") from exc
            if size != out.size:
                raise CorruptionError(src, None, f"result says {out.size} bytes, file has {size}")
            f = fs.open_random(src)
            try:
                Table.open(f, path=src, ordered=self._state.versions.ordered)
            finally:
                f.close()

    def discard_staging(self, result):
        staging = getattr(result, "staging_dir", None)
        if staging:
            self._state.fs.rmtree(staging)

    def install_outputs(self, result):
        """Rename a validated result's staged tables to fresh file numbers;
        returns their metadata."""
        state = self._state
        fs, dbname = state.fs, state.dbname
        staging = result.staging_dir
        metas = []
        try:
            for out in result.outputs:
                src = os.path.join(staging, out.name)
                number = state.versions.new_file_number()
                fs.rename(src, filenames.table_file_name(dbname, number))
                metas.append(FileMetaData(number, out.size, out.smallest, out.largest))
            if metas:
                fs.sync_dir(dbname)
        except BaseException:
            self._remove_tables(metas)
            raise
        finally:
            fs.rmtree(staging)
        return metas

    def _remove_tables(self, metas):
        for meta in metas:
            self._state.fs.remove(filenames.table_file_name(self._state.dbname, meta.number))

    def log_and_apply(self, edit):
        try:
            return self._state.versions.log_and_apply(edit)
        except BaseException as exc:
            # The MANIFEST may now end in a torn record: sticky until reopen.
            self._state.bg_error = exc
            raise

    # ---------------------------------------------------------- commits
    def commit_ready_flushes(self, busy_ranges):
        """Commit finished flushes oldest first: a newer level-0 table must get
        a larger file number than the older ones it may shadow. busy_ranges:
        the spans running compactions write, which a flushed table must not
        be placed into."""
        imms = self._memtables.imms
        committed = False
        while imms and imms[0].flush_done is not None:
            imm = imms[0]
            self._commit_flush(imm, imm.flush_done, busy_ranges)
            committed = True
        if committed:
            imm = None  # the last flushed memtable goes now, and with it its index
            release_free_memory()

    def _commit_flush(self, imm, running, busy_ranges):
        state = self._state
        result = running.result
        edit = VersionEdit()
        metas = self.install_outputs(result)
        level = 0
        for meta in metas:
            # A table stored for level 0 alone stays there, whatever it overlaps.
            level = 0 if result.for_level0 else picker.pick_level_for_memtable_output(
                state.versions.current.levels, meta.smallest[:-8], meta.largest[:-8],
                picker.max_grandparent_overlap_bytes(state.options.max_file_size), busy_ranges=busy_ranges)
            edit.new_files.append((level, meta))
        memtables = self._memtables
        remaining = memtables.imms[1:]
        edit.log_number = remaining[0].wal_number if remaining else memtables.mem.wal_number
        edit.prev_log_number = 0
        self.log_and_apply(edit)
        memtables.imms.pop(0)
        # imm and its run point at each other: unlinked, the memtable (its
        # index, its WAL reader) is freed now rather than at the next full
        # collection.
        imm.flush_done = running.imm = None
        written = sum(m.size for m in metas)
        state.stats["flushes"] += 1
        state.stats["bytes_written"] += written
        state.level_stats[level][0] += result.seconds
        state.level_stats[level][2] += written
        state.log(flushed_message(metas[0].number if metas else None, written, level, result.seconds,
                                  imm.wal_number))
        self._obsolete.delete_obsolete_files()

    def commit_compaction(self, plan, siblings):
        """Commit a compaction whose pieces (siblings) all have results, as one edit."""
        state = self._state
        edit = VersionEdit()
        if plan.compact_pointer is not None:
            edit.compact_pointers.append((plan.level, plan.compact_pointer))
        for f in plan.inputs:
            edit.deleted_files.add((plan.level, f.number))
        for f in plan.next_inputs:
            edit.deleted_files.add((plan.level + 1, f.number))
        metas = []
        try:
            for r in siblings:
                metas.extend(self.install_outputs(r.result))
        except BaseException:
            self._remove_tables(metas)
            raise
        for meta in metas:
            edit.new_files.append((plan.level + 1, meta))
        self.log_and_apply(edit)
        # The compactors' running time (the longest piece), as for flushes:
        # the wall clock since submission would count the wait of a compaction
        # queued behind another.
        seconds = max(r.result.seconds for r in siblings)
        read = sum(f.size for f in plan.inputs) + sum(f.size for f in plan.next_inputs)
        written = sum(m.size for m in metas)
        stats = state.stats
        stats["compactions"] += 1
        stats["bytes_read"] += read
        stats["bytes_written"] += written
        stats["compaction_seconds"] += seconds
        st = state.level_stats[plan.level + 1]
        st[0] += seconds
        st[1] += read
        st[2] += written
        state.log(compacted_message(len(plan.inputs), plan.level, len(plan.next_inputs), written, len(metas),
                                    read, seconds, len(siblings)))
        self._obsolete.delete_obsolete_files()

    def commit_trivial_move(self, plan):
        """A compaction that only moves its one input file a level down."""
        edit = VersionEdit()
        if plan.compact_pointer is not None:
            edit.compact_pointers.append((plan.level, plan.compact_pointer))
        f = plan.inputs[0]
        edit.deleted_files.add((plan.level, f.number))
        edit.new_files.append((plan.level + 1, FileMetaData(f.number, f.size, f.smallest, f.largest)))
        self.log_and_apply(edit)
        self._state.log(moved_message(f.number, plan.level + 1, f.size))
