"""Shared by the table tests: a table file held in memory."""


class MemFile:
    """RandomAccessFile over bytes; counts its reads (cache tests look)."""

    def __init__(self, data):
        self.data = bytes(data)
        self.size = len(self.data)
        self.reads = 0

    def read(self, offset, n):
        self.reads += 1
        return self.data[offset : offset + n]
