"""The tables of an open database are read through a mapping
(FileSystem.open_mapped): its reads must return what pread returns, at any
offset and length, and fail clearly rather than crash once closed."""
import os

import pytest

from lsm.errors import Error
from lsm.fileio import DEFAULT_FS, MappedFile, RandomAccessFile


def test_a_mapped_read_returns_what_pread_returns_even_past_the_end(tmp_path):
    path = str(tmp_path / "000005.ldb")
    data = os.urandom(3 * 4096 + 123)
    with open(path, "wb") as f:
        f.write(data)
    mapped, plain = DEFAULT_FS.open_mapped(path), DEFAULT_FS.open_random(path)
    assert isinstance(mapped, MappedFile) and mapped.size == len(data)
    for offset in (0, 1, 4095, 4096, len(data) - 1, len(data), len(data) + 10):
        for length in (0, 1, 100, 4096, 20000):
            assert mapped.read(offset, length) == plain.read(offset, length) == data[offset:offset + length]
    mapped.close()
    plain.close()


def test_a_mapped_read_of_a_negative_offset_names_it_rather_than_reading_from_the_end(tmp_path):
    path = str(tmp_path / "000006.ldb")
    with open(path, "wb") as f:
        f.write(b"x" * 100)
    mapped = DEFAULT_FS.open_mapped(path)
    with pytest.raises(Error, match=r"000006\.ldb: read of 10 bytes at offset -20"):
        mapped.read(-20, 10)
    mapped.close()
    with pytest.raises(Error, match=r"000006\.ldb: read after close"):
        mapped.read(0, 10)


def test_an_empty_file_is_read_without_a_mapping(tmp_path):
    path = str(tmp_path / "000007.ldb")
    open(path, "wb").close()
    empty = DEFAULT_FS.open_mapped(path)
    assert type(empty) is RandomAccessFile and empty.read(0, 10) == b""
    empty.close()
