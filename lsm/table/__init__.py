"""LevelDB tables (.ldb): building, reading, the bloom filter and the block cache.
Pure codecs live in format.py, block.py and filter.py; reader.py
reads through the RandomAccessFile it is given; builder.py writes only through
the callable it is given.
"""
from .builder import TableBuilder
from .cache import BlockCache
from .reader import Table

__all__ = ["BlockCache", "Table", "TableBuilder"]
