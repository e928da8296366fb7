"""The HDF5 chunk index is sized by what is stored, not by the grid a file declares.

A 2^20 x 2^20 dataset of 64 x 64 chunks has a grid of 2^28 cells (a dense index took
2.1 GB); one of 10^9 x 10^9 has 2.4 x 10^14 (a dense index failed: "Unable to allocate
6.94 TiB"). Memory is measured with tracemalloc, which sees numpy's allocations.
"""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from adapters.base import NoTileCache
from adapters.hdf5.chunks import LockFreeArray, _SparseIndex, open_array
from adapters.hdf5.file import H5File
from tests.bombs import GIANT_CHUNK, giant_block, write_sparse_giant

MiB = 1024**2
#: (chunk coords) of the allocated chunks of each giant, far apart and near the end
STORED = [(3, 5), (1000, 2), (16383, 16383)]


@pytest.fixture(params=[2**20, 10**9], ids=["2^20", "1e9"])
def giant(request, tmp_path: Path) -> Iterator[tuple[LockFreeArray, int]]:
    edge = request.param
    path = tmp_path / "giant.h5"
    write_sparse_giant(path, edge, STORED)
    file = H5File(path)
    array, reason = open_array(file, file.h5["x"], NoTileCache(), lock_free=True)
    assert reason is None and isinstance(array, LockFreeArray)
    yield array, edge
    file.close()


def region(coords: tuple[int, int], size: tuple[int, int] = GIANT_CHUNK) -> tuple[slice, slice]:
    return slice(coords[0] * 64, coords[0] * 64 + size[0]), slice(coords[1] * 64, coords[1] * 64 + size[1])


def test_index_of_a_giant_holds_only_stored_chunks(giant: tuple[LockFreeArray, int]) -> None:
    array, _ = giant
    tracemalloc.start()
    try:
        chunk = array.read(region((16383, 16383)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(chunk, giant_block((16383, 16383)))
    assert peak < 4 * MiB, peak
    index = array._codec.index  # type: ignore[union-attr]
    assert index.count == len(STORED)
    assert index.nbytes < 1024


def test_unallocated_chunks_of_a_giant_are_fill(giant: tuple[LockFreeArray, int]) -> None:
    array, edge = giant
    assert (array.read(region((0, 0))) == 9).all()
    last = edge // 64 - 1
    assert (array.read(region((last, 0), (edge - last * 64, 64))) == 9).all()  # the last row
    mixed = array.read((slice(3 * 64 - 10, 3 * 64 + 10), slice(5 * 64 - 10, 5 * 64 + 10)))
    assert (mixed[:10] == 9).all() and (mixed[:, :10] == 9).all()
    np.testing.assert_array_equal(mixed[10:, 10:], giant_block((3, 5))[:10, :10])


def test_lookups_find_exactly_the_stored_chunks(giant: tuple[LockFreeArray, int]) -> None:
    index = giant[0]._codec.index  # type: ignore[union-attr]
    for coords in STORED:
        found = index.lookup(coords)
        assert found is not None and found[0] > 0 and found[1] > 0 and found[2] == 0
    for coords in [(0, 0), (3, 4), (4, 5), (5, 3), (16383, 16382), (999, 2), (2, 1000)]:
        assert index.lookup(coords) is None


@pytest.mark.parametrize(
    ("start", "size", "expected"),
    [
        ((0, 0), (64, 64), False),  # one empty chunk
        ((3, 5), (64, 64), True),  # exactly a stored chunk
        ((3, 5), (1, 1), True),  # one pixel of it
        ((0, 0), (3 * 64, 2**19), False),  # a band above every stored chunk
        ((0, 0), (3 * 64 + 1, 5 * 64 + 1), True),  # reaches (3, 5) by one pixel
        ((4, 0), (995 * 64, 2**19), False),  # between (3, 5) and (1000, 2)
        ((0, 0), (2**20, 2**20), True),  # the whole 2^20 plane: more cells than entries
        ((1001, 3), (2**16, 2**16), False),  # a large empty box
    ],
)
def test_any_stored_answers_for_boxes_large_and_small(
    giant: tuple[LockFreeArray, int], start: tuple[int, int], size: tuple[int, int], expected: bool
) -> None:
    array, _ = giant
    tracemalloc.start()
    try:
        assert array.any_stored(region(start, size)) is expected
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MiB, peak


def test_any_stored_of_a_dataset_with_nothing_stored(tmp_path: Path) -> None:
    write_sparse_giant(tmp_path / "empty.h5", 2**20, [])
    file = H5File(tmp_path / "empty.h5")
    try:
        array, _ = open_array(file, file.h5["x"], NoTileCache(), lock_free=True)
        assert isinstance(array, LockFreeArray)
        assert array.any_stored((slice(0, 2**20), slice(0, 2**20))) is False
        assert (array.read((slice(0, 100), slice(0, 100))) == 9).all()
    finally:
        file.close()


def test_masked_filters_are_remembered_per_chunk(tmp_path: Path) -> None:
    path = tmp_path / "masked.h5"
    data = np.arange(64 * 64, dtype=np.uint16).reshape(GIANT_CHUNK)
    with h5py.File(path, "w") as f:
        dataset = f.create_dataset(
            "x", shape=(128, 64), dtype=np.uint16, chunks=GIANT_CHUNK, compression="gzip"
        )
        dataset[64:] = data
        dataset.id.write_direct_chunk((0, 0), data.tobytes(), filter_mask=1)  # deflate skipped
    file = H5File(path)
    try:
        array, _ = open_array(file, file.h5["x"], NoTileCache(), lock_free=True)
        assert isinstance(array, LockFreeArray)
        index = array._codec.index  # type: ignore[union-attr]
        assert index.lookup((0, 0))[2] == 1 and index.lookup((1, 0))[2] == 0  # type: ignore[index]
        np.testing.assert_array_equal(array.read((slice(0, 128), slice(0, 64))), np.concatenate([data, data]))
    finally:
        file.close()


@pytest.mark.parametrize(
    "grid",
    [(4, 8, 8), (2**20, 2**20), (2**40, 2**40), (2**62, 3)],
    ids=["small", "2^40 cells", "2^80 cells: byte keys", "2^63.6 cells: byte keys"],
)
def test_the_sparse_index_finds_what_a_set_of_its_chunks_finds(grid: tuple[int, ...]) -> None:
    """Keys are grid positions where the grid has fewer than 2^63 cells, byte strings
    beyond: lookups and box queries agree with the plain set either way, at the edges too."""
    rng = np.random.default_rng(4)
    stored = {tuple(int(rng.integers(0, n)) for n in grid) for _ in range(40)} | {tuple(n - 1 for n in grid)}
    rows = sorted(stored)
    index = _SparseIndex.build(grid, rows, [10 * i for i in range(len(rows))], [1] * len(rows), {rows[0]: 3})
    assert (index.strides is None) == (math.prod(grid) >= 2**63)
    for i, coords in enumerate(rows):
        assert index.lookup(coords) == (10 * i, 1, 3 if i == 0 else 0)
    for coords in rows:  # neighbours, and cells beyond the grid that a linear key would alias
        for near in (
            tuple(c + 1 for c in coords),
            (*coords[:-1], coords[-1] + grid[-1]),
            tuple(-1 for _ in grid),
        ):
            assert (index.lookup(near) is not None) == (near in stored)
    for lo, hi in [
        ((0,) * len(grid), grid),
        (rows[3], tuple(c + 1 for c in rows[3])),
        (rows[-1], tuple(n + 5 for n in grid)),
    ]:
        assert index.any_in(lo, hi)
    empty = next(c for c in ((0,) * len(grid), (1,) * len(grid)) if c not in stored)
    assert not index.any_in(empty, tuple(c + 1 for c in empty))
