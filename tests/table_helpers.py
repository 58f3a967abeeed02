"""Shared by the table tests: a table built and held in memory, and the
shapes of a database's data blocks."""
import os

from lsm.table.block import _uniform_layout, entries_limit
from lsm.table.builder import TableBuilder
from lsm.table.options import TableOptions
from lsm.table.reader import Table


class MemFile:
    """RandomAccessFile over bytes; counts its reads (cache tests look)."""

    def __init__(self, data):
        self.data = bytes(data)
        self.size = len(self.data)
        self.reads = 0

    def read(self, offset, n):
        self.reads += 1
        return self.data[offset : offset + n]


def table_bytes(entries, **options):
    """The table file TableBuilder makes of (internal key, value) entries."""
    out = []
    builder = TableBuilder(TableOptions(**options), out.append)
    for key, value in entries:
        builder.add(key, value)
    builder.finish()
    return b"".join(out)


def block_shapes(path):
    """(uniform, other) data blocks over the tables in directory `path`."""
    shapes = [0, 0]
    for name in os.listdir(path):
        if name.endswith(".ldb"):
            with open(os.path.join(path, name), "rb") as f:
                table = Table.open(MemFile(f.read()), path=name)
            for i in range(table.num_blocks):
                contents = table._contents(i)
                shapes[_uniform_layout(contents, entries_limit(contents)) is None] += 1
    return tuple(shapes)


def stored_block_types(path):
    """{file number: the set of block types (format.NO_COMPRESSION,
    SNAPPY_COMPRESSION) its data blocks are stored as}, over the tables in
    directory `path`."""
    types = {}
    for name in os.listdir(path):
        if name.endswith(".ldb"):
            with open(os.path.join(path, name), "rb") as f:
                table = Table.open(MemFile(f.read()), path=name)
            types[int(name[:-4])] = {table.file.data[table._offsets[i] + table._sizes[i]]
                                     for i in range(table.num_blocks)}
    return types
