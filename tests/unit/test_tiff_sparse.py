"""TIFF levels know where tiles are absent (offset or byte count 0), without reading:
``any_stored`` over image regions, for tiled planes, stacks of pages and strips."""

from __future__ import annotations

import zlib
from contextlib import closing
from pathlib import Path

import numpy as np
import tifffile

from adapters.base import NoTileCache
from adapters.tiff.adapter import TiffAdapter

TILE = 64


def write_sparse(path: Path, shape: tuple[int, ...], stored: dict[tuple[int, ...], int], **kwargs) -> None:
    """A tiled uint8 TIFF whose only stored tiles are ``stored`` ((page,) row, column of
    the tile → its constant value); all others have offset and byte count 0."""
    pages = shape[0] if len(shape) == 3 else 1
    rows, columns = shape[-2] // TILE, shape[-1] // TILE
    blob = {
        where: zlib.compress(np.full((TILE, TILE), value, np.uint8).tobytes())
        for where, value in stored.items()
    }
    tiles = (
        blob.get((page, row, column) if len(shape) == 3 else (row, column), b"")
        for page in range(pages)
        for row in range(rows)
        for column in range(columns)
    )
    tifffile.imwrite(
        path,
        tiles,
        shape=shape,
        dtype="uint8",
        tile=(TILE, TILE),
        compression="zlib",
        photometric="minisblack",
        **kwargs,
    )


def open_level(path: Path):
    source = TiffAdapter().open(path, NoTileCache())
    return source, source.images[0].levels[0]


def test_a_plane_knows_its_absent_tiles(tmp_path):
    write_sparse(tmp_path / "a.tif", (512, 512), {(2, 5): 9})
    source, level = open_level(tmp_path / "a.tif")
    with closing(source):
        assert level.any_stored((slice(128, 192), slice(320, 384)))  # exactly the tile
        assert level.any_stored((slice(0, 512), slice(0, 512)))
        assert level.any_stored((slice(190, 200), slice(380, 390)))  # a corner of it
        assert not level.any_stored((slice(0, 128), slice(0, 512)))
        assert not level.any_stored((slice(128, 192), slice(0, 320)))
        assert not level.any_stored((slice(192, 512), slice(0, 512)))
        np.testing.assert_array_equal(level.read((slice(128, 130), slice(320, 322))), np.full((2, 2), 9))


def test_an_empty_file_stores_nothing(tmp_path):
    write_sparse(tmp_path / "e.tif", (256, 256), {})
    source, level = open_level(tmp_path / "e.tif")
    with closing(source):
        assert not level.any_stored((slice(0, 256), slice(0, 256)))


def test_a_stack_knows_which_page_holds_data(tmp_path):
    write_sparse(tmp_path / "z.tif", (3, 128, 128), {(1, 1, 0): 5})
    source, level = open_level(tmp_path / "z.tif")
    with closing(source):
        assert level.shape == (3, 128, 128)
        assert not level.any_stored((slice(0, 1), slice(0, 128), slice(0, 128)))
        assert not level.any_stored((slice(2, 3), slice(0, 128), slice(0, 128)))
        assert level.any_stored((slice(1, 2), slice(64, 128), slice(0, 64)))
        assert not level.any_stored((slice(1, 2), slice(0, 64), slice(0, 128)))
        assert level.any_stored((slice(0, 3), slice(0, 128), slice(0, 128)))


def test_strips_count_too(tmp_path):
    data = np.zeros((64, 32), np.uint8)
    data[40:] = 3
    tifffile.imwrite(tmp_path / "s.tif", data, rowsperstrip=8, photometric="minisblack")
    source, level = open_level(tmp_path / "s.tif")
    with closing(source):
        assert level.any_stored((slice(0, 8), slice(0, 32)))  # stored, though zero
