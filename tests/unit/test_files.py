"""adapters.io.files: positional reads that never return short or foreign data."""

from __future__ import annotations

import pytest

from adapters.base import SourceReadError
from adapters.io.files import PositionalFile


@pytest.fixture
def file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(100)))
    handle = PositionalFile(path)
    yield handle
    handle.close()


def test_pread_returns_the_bytes_at_offset(file):
    assert file.pread(10, 5) == bytes(range(10, 15))


def test_size_is_the_file_size(file):
    assert file.size == 100


def test_pread_up_to_the_end(file):
    assert file.pread(90, 10) == bytes(range(90, 100))


@pytest.mark.parametrize(("offset", "size"), [(95, 10), (100, 1), (-1, 2), (0, -1), (10**12, 1)])
def test_pread_outside_the_file_is_a_source_read_error(file, offset, size):
    with pytest.raises(SourceReadError):
        file.pread(offset, size)


def test_pread_after_close_is_a_source_read_error(file):
    file.close()
    with pytest.raises(SourceReadError):
        file.pread(0, 1)


def test_close_is_idempotent(file):
    file.close()
    file.close()


def test_file_truncated_after_opening_is_a_source_read_error(tmp_path):
    path = tmp_path / "shrinks.bin"
    path.write_bytes(b"x" * 100)
    handle = PositionalFile(path)
    with open(path, "r+b") as fh:
        fh.truncate(10)
    with pytest.raises(SourceReadError):
        handle.pread(50, 20)
    handle.close()
