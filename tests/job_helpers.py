"""Shared by the job tests: tables of (user key, seq, kind, value) entries
written and read back, compaction jobs over them, and WALs of write batches."""
import os

from lsm.batch import encode_batch
from lsm.jobs import CompactionJob
from lsm.table.options import TableOptions
from lsm.fileio import DEFAULT_FS
from lsm.filemeta import FileMetaData
from lsm.filenames import log_file_name, sst_table_file_name, table_file_name
from lsm.keys import TYPE_DELETION, TYPE_VALUE, make_internal_key, parse_internal_key
from lsm.record import BLOCK_SIZE, LogWriter
from lsm.table import Table, TableBuilder

DEL, PUT = TYPE_DELETION, TYPE_VALUE
SMALL_TABLES = TableOptions(block_size=512, compression=None, bloom_bits_per_key=10)


def order(entry):
    ukey, seq, kind, _ = entry
    return (ukey, -seq, -kind)


def write_table(db_dir, number, entries, options=SMALL_TABLES, sst=False) -> FileMetaData:
    """A table of (ukey, seq, kind, value) entries, as the writer would have it."""
    path = (sst_table_file_name if sst else table_file_name)(str(db_dir), number)
    f = DEFAULT_FS.create(path)
    builder = TableBuilder(options, f.append)
    for ukey, seq, kind, value in sorted(entries, key=order):
        builder.add(make_internal_key(ukey, seq, kind), value)
    size = builder.finish()
    f.sync()
    f.close()
    return FileMetaData(number, size, builder.smallest, builder.largest)


def read_table(path):
    f = DEFAULT_FS.open_random(str(path))
    try:
        table = Table.open(f, path=str(path))
        out = []
        for ikey, value in table.iter_entries():
            ukey, seq, kind = parse_internal_key(ikey)
            out.append((ukey, seq, kind, value if kind == PUT else b""))
        return out
    finally:
        f.close()


def read_outputs(staging, result):
    return [read_table(os.path.join(staging, o.name)) for o in result.outputs]


def compaction(level, inputs, next_inputs, smallest_snapshot, **kw):
    kw.setdefault("grandparents", [])
    kw.setdefault("deeper_ranges", [])
    kw.setdefault("table", SMALL_TABLES)
    return CompactionJob(
        job_id=7,
        level=level,
        inputs=inputs,
        next_inputs=next_inputs,
        smallest_snapshot=smallest_snapshot,
        **kw,
    )


def write_wal(db_dir, number, batches):
    """batches: [(sequence, ops)]; returns the file offset of each record."""
    writer = LogWriter()
    chunks, offsets, pos = [], [], 0
    for sequence, ops in batches:
        framed = writer.encode(encode_batch(sequence, ops))
        # A record starts after any block trailer padding the writer emitted.
        start = pos
        if BLOCK_SIZE - pos % BLOCK_SIZE < 7:
            start = pos + BLOCK_SIZE - pos % BLOCK_SIZE
        offsets.append(start)
        chunks.append(framed)
        pos += len(framed)
    DEFAULT_FS.write_file(log_file_name(str(db_dir), number), b"".join(chunks))
    return offsets


def batch_entries(batches):
    out = []
    for sequence, ops in batches:
        for i, (kind, key, value) in enumerate(ops):
            out.append((key, sequence + i, kind, value if kind == PUT else b""))
    return sorted(out, key=order)


def report_environment_and_exit(path, name, code):
    """A compactor-process target for launch tests: writes the value of the
    environment variable `name` (empty if unset), then exits with `code`."""
    import os
    with open(path, "w") as f:
        f.write(os.environ.get(name, ""))
    os._exit(code)


def report_modules_and_exit(path, code):
    """A compactor-process target for launch tests: writes the names of the
    modules the process has loaded, then exits with `code`."""
    import os
    import sys
    with open(path, "w") as f:
        f.write("\n".join(sorted(sys.modules)))
    os._exit(code)
