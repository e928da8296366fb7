"""HDF5 datasets as arrays and levels: lock-free and locked reads agree, one behaviour per test."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from adapters.base import NoTileCache
from adapters.hdf5.chunks import (
    CONTIGUOUS_CHUNK_BYTES,
    LockedArray,
    LockFreeArray,
    contiguous_chunk_shape,
    open_array,
)
from adapters.hdf5.file import H5File, has_hdf5_signature
from adapters.hdf5.levels import StackedLevel, squeeze_dims

DATA = (np.arange(6 * 50 * 70, dtype=np.uint16) % 5000).reshape(6, 50, 70)


@pytest.fixture
def h5(tmp_path: Path):
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("chunked", data=DATA, chunks=(2, 16, 32), compression="gzip", shuffle=True)
        f.create_dataset("contiguous", data=DATA)
        f.create_dataset("sparse", shape=(6, 50, 70), dtype=np.int16, chunks=(2, 16, 32), fillvalue=-3)
        f["sparse"][0:2, 0:16, 0:32] = 1
    file = H5File(path)
    yield file
    file.close()


def region(*bounds: tuple[int, int]) -> tuple[slice, ...]:
    return tuple(slice(a, b) for a, b in bounds)


@pytest.mark.parametrize("name", ["chunked", "contiguous"])
@pytest.mark.parametrize("lock_free", [True, False])
def test_reads_any_region(h5: H5File, name: str, lock_free: bool) -> None:
    array, _ = open_array(h5, h5.h5[name], NoTileCache(), lock_free=lock_free)
    assert isinstance(array, LockFreeArray if lock_free else LockedArray)
    wanted = region((1, 5), (7, 49), (30, 69))
    np.testing.assert_array_equal(array.read(wanted), DATA[wanted])


def test_unallocated_chunks_read_as_the_fill_value(h5: H5File) -> None:
    array, _ = open_array(h5, h5.h5["sparse"], NoTileCache(), lock_free=True)
    assert array.fill_value == -3
    block = array.read(region((0, 4), (0, 20), (0, 40)))
    assert (block[:2, :16, :32] == 1).all()
    assert (block[2:] == -3).all() and (block[:2, 16:] == -3).all()


def test_view_dtype_serves_the_same_bytes(h5: H5File) -> None:
    array, _ = open_array(h5, h5.h5["sparse"], NoTileCache(), lock_free=True, view=np.uint16)
    assert array.dtype == np.uint16 and array.fill_value == 65533
    assert array.read(region((0, 1), (0, 1), (0, 1)))[0, 0, 0] == 1


def test_closed_file_reads_are_errors(h5: H5File) -> None:
    from adapters.base import SourceReadError

    array, _ = open_array(h5, h5.h5["chunked"], NoTileCache(), lock_free=False)
    h5.close()
    with pytest.raises(SourceReadError, match="closed"):
        array.read(region((0, 1), (0, 1), (0, 1)))


def test_contiguous_chunks_are_contiguous_runs() -> None:
    assert contiguous_chunk_shape((60, 256, 256), 2) == (8, 256, 256)
    rows = contiguous_chunk_shape((3, 700, 800), 2)
    assert rows[0] == 1 and rows[2] == 800 and rows[1] * 800 * 2 <= CONTIGUOUS_CHUNK_BYTES
    assert contiguous_chunk_shape((10, 10**6), 8) == (1, CONTIGUOUS_CHUNK_BYTES // 8)


def test_stacked_level_transposes_and_fills_missing(h5: H5File) -> None:
    array, _ = open_array(h5, h5.h5["chunked"], NoTileCache(), lock_free=True)
    level = StackedLevel({(0,): array, (1,): None}, (2,), (70, 50), (2, 1))  # x, y of plane 0
    assert level.shape == (2, 70, 50)
    block = level.read(region((0, 2), (0, 70), (0, 50)))
    np.testing.assert_array_equal(block[0], DATA[0].T)
    assert (block[1] == 0).all()
    assert level.raw_chunk_format is None  # gzip, and transposed


def test_squeeze_keeps_y_and_x() -> None:
    assert squeeze_dims((1, 5, 1, 1), "tzyx") == (["z", "y", "x"], [1, 2, 3])


def test_signature_sniff(tmp_path: Path, h5: H5File) -> None:
    assert has_hdf5_signature(h5.path)
    (tmp_path / "user-block.h5").write_bytes(b"\0" * 512 + b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert has_hdf5_signature(tmp_path / "user-block.h5")
    (tmp_path / "no.h5").write_bytes(b"CDF\x01" + b"\0" * 1000)
    assert not has_hdf5_signature(tmp_path / "no.h5")
    assert not has_hdf5_signature(tmp_path / "missing.h5")


@pytest.mark.parametrize("lock_free", [True, False])
def test_concurrent_first_reads_agree(h5: H5File, lock_free: bool) -> None:
    """Many threads hit a fresh array at once: the chunk index is learnt once, safely."""
    from concurrent.futures import ThreadPoolExecutor

    array, _ = open_array(h5, h5.h5["chunked"], NoTileCache(), lock_free=lock_free)
    rng = np.random.default_rng(0)
    regions = []
    for _ in range(64):
        lo = [int(rng.integers(0, n - 1)) for n in DATA.shape]
        regions.append(
            tuple(slice(a, int(rng.integers(a + 1, n + 1))) for a, n in zip(lo, DATA.shape, strict=True))
        )
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(array.read, regions))
    for wanted, got in zip(regions, results, strict=True):
        np.testing.assert_array_equal(got, DATA[wanted])
