"""Volumes chunked in z (issue 11): served in 3-D chunks that follow the source's (HDF5,
BigDataViewer, Imaris, TIFF tiles with depth), with pyramids that go on until one chunk holds
the coarsest level. Read in-process by zarr-python through the gateway's own store stack
(``open_store``), compared bit-exactly with the written data (level 0, edge chunks included)
and with the numpy reference downsampling."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import tifffile
import zarr
from zarr.core.buffer import default_buffer_prototype

from gateway.config.settings import Settings
from gateway.store.inprocess import open_store
from tests.hdf5.writers import BdvSetup, ImarisSpec, smooth, write_bdv, write_imaris
from tests.pyramid_reference import assert_synthesized_levels, reference_pyramid, synthesized_paths

#: Odd in every axis: edge chunks are partial in z, y and x.
SHAPE = (37, 100, 70)
BLOCK = (16, 32, 32)  # 16 x 32 x 32 uint16: a volumetric chunk of min_yx² voxels


def _chunk_shape(array: Any) -> tuple[int, ...]:
    return tuple(array.metadata.chunk_grid.chunk_shape)


def _multiscale(group: zarr.Group) -> list[str]:
    return [d["path"] for d in group.attrs["ome"]["multiscales"][0]["datasets"]]


# -- generic HDF5 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("compression", "passthrough"),
    [("gzip", True), (None, True), (None, False)],
    ids=["gzip", "none-passed-through", "none-transcoded"],
)
def test_hdf5_volume_is_served_in_its_own_3d_chunks_bit_exactly(
    tmp_path: Path, compression: str | None, passthrough: bool
) -> None:
    data = smooth(SHAPE, np.uint16, seed=1)
    path = tmp_path / "volume.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("volume", data=data, chunks=BLOCK, compression=compression)
    store = open_store(path, Settings(chunks={"passthrough": passthrough}), threads=2)
    try:
        group = zarr.open_group(store=store, mode="r")["volume"]
        level0 = group["0"]
        assert _chunk_shape(level0) == BLOCK
        with h5py.File(path, "r") as f:
            np.testing.assert_array_equal(level0[...], f["volume"][...], strict=True)
        paths = _multiscale(group)
        shapes = [group[p].shape for p in paths]
        assert shapes == [(37, 100, 70), (19, 50, 35), (10, 25, 18)]
        assert all(_chunk_shape(group[p])[0] > 1 for p in paths)
        assert_synthesized_levels(group, data, 1, f"hdf5 {compression}")
    finally:
        store.close()


def test_a_set_z_keeps_planes_and_rules_pick_chunks_per_dataset(tmp_path: Path) -> None:
    data = smooth(SHAPE, np.uint16, seed=2)
    with h5py.File(tmp_path / "volume.h5", "w") as f:
        f.create_dataset("volume", data=data, chunks=BLOCK, compression="gzip")
    planes = Settings(chunks={"z": 1})
    ruled = Settings(chunks={"rules": [{"pattern": "other*", "z": 4}, {"pattern": "vol*.h5", "z": 8}]})
    for settings, depth in ((planes, 1), (ruled, 8)):
        store = open_store(tmp_path / "volume.h5", settings, threads=2)
        try:
            level0 = zarr.open_group(store=store, mode="r")["volume/0"]
            assert _chunk_shape(level0)[0] == depth
            np.testing.assert_array_equal(level0[...], data, strict=True)
        finally:
            store.close()


# -- BigDataViewer and Imaris: native pyramids extended in 3-D ------------------------------------


def test_bdv_volume_bit_exact_and_its_pyramid_extended_in_3d(tmp_path: Path) -> None:
    data = smooth((1, 40, 200, 150), np.uint16, seed=3)
    setup = BdvSetup(data, "volume", voxel=(1.0, 1.0, 1.0), chunks=(BLOCK, BLOCK))
    write_bdv(tmp_path / "dataset.xml", "dataset.h5", [setup])
    store = open_store(tmp_path / "dataset.xml", threads=2)
    try:
        group = zarr.open_group(store=store, mode="r")
        level0 = group["0"]
        assert _chunk_shape(level0)[-3:] == BLOCK
        np.testing.assert_array_equal(level0[...].reshape(data.shape[1:]), data[0], strict=True)
        paths = _multiscale(group)
        assert synthesized_paths(group) == paths[2:]  # the native two, then ours
        coarsest = group[paths[-1]]
        assert coarsest.shape[-3:] == (10, 25, 19)
        assert coarsest.metadata.chunk_grid.get_nchunks(coarsest.shape) == 1
        assert_synthesized_levels(group, group["1"][...], 2, "bdv")
    finally:
        store.close()


def test_imaris_volume_bit_exact_and_its_pyramid_extended_in_3d(tmp_path: Path) -> None:
    data = smooth((1, 1, 40, 200, 150), np.uint16, seed=4)
    spec = ImarisSpec(data, levels=2, block=BLOCK, voxel=(0.5, 0.5, 0.5))
    write_imaris(tmp_path / "volume.ims", spec)
    store = open_store(tmp_path / "volume.ims", threads=2)
    try:
        group = zarr.open_group(store=store, mode="r")
        level0 = group["0"]
        assert _chunk_shape(level0)[-3:] == BLOCK
        np.testing.assert_array_equal(level0[...].reshape(data.shape), data, strict=True)
        paths = _multiscale(group)
        assert synthesized_paths(group) == paths[2:]
        coarsest = group[paths[-1]]
        assert coarsest.metadata.chunk_grid.get_nchunks(coarsest.shape) == 1
        assert_synthesized_levels(group, group["1"][...], 2, "imaris")
    finally:
        store.close()


# -- a 1024³ volume -------------------------------------------------------------------------------


def test_a_1024_cube_gets_a_pyramid_whose_coarsest_level_is_one_chunk(tmp_path: Path) -> None:
    """Mostly unallocated (fill), so it is small on disk and its empty blocks cost nothing;
    two written corners check the pixels."""
    corner = smooth((128, 128, 128), np.uint8, seed=5)
    path = tmp_path / "cube.h5"
    with h5py.File(path, "w") as f:
        cube = f.create_dataset(
            "cube", shape=(1024,) * 3, dtype=np.uint8, chunks=(64, 128, 128), compression="gzip"
        )
        cube[:128, :128, :128] = corner
        cube[-128:, -128:, -128:] = corner[::-1]
    store = open_store(path, threads=2)
    try:
        group = zarr.open_group(store=store, mode="r")["cube"]
        paths = _multiscale(group)
        assert [group[p].shape for p in paths] == [(1024 >> k,) * 3 for k in range(5)]
        assert _chunk_shape(group["0"]) == (64, 128, 128)
        coarsest = group[paths[-1]]
        assert coarsest.metadata.chunk_grid.get_nchunks(coarsest.shape) == 1
        np.testing.assert_array_equal(group["0"][:128, :128, :128], corner, strict=True)
        np.testing.assert_array_equal(group["0"][-130:, -128:, -128:][2:], corner[::-1], strict=True)
        shapes = [(128 >> k,) * 3 for k in range(5)]
        want = np.zeros((64,) * 3, np.uint8)
        want[:8, :8, :8] = reference_pyramid(corner, shapes, "mean")[-1]
        want[-8:, -8:, -8:] = reference_pyramid(corner[::-1], shapes, "mean")[-1]
        np.testing.assert_array_equal(coarsest[...], want, strict=True)
    finally:
        store.close()


# -- TIFF with volumetric tiles (SGI ImageDepth) --------------------------------------------------

#: 16 x 64 x 64: y/x below ``min_yx``, followed because the tile holds more than min_yx² voxels.
TIFF_TILE = (16, 64, 64)


def _write_volumetric_tiff(path: Path, data: np.ndarray, compression: str | None) -> None:
    tifffile.imwrite(path, data, tile=TIFF_TILE, compression=compression, photometric="minisblack")
    with tifffile.TiffFile(path) as tif:  # one page of 3-D tiles, not a stack of 2-D pages
        assert len(tif.pages) == 1 and tif.pages.first.tiledepth == TIFF_TILE[0]


def _stored_tile(path: Path, index: int) -> bytes:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        offset, count = page.dataoffsets[index], page.databytecounts[index]
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(count)


@pytest.mark.parametrize("compression", ["zlib", "zstd", None])
def test_tiff_volumetric_tiles_are_served_as_3d_chunks_bit_exactly(
    tmp_path: Path, compression: str | None
) -> None:
    data = smooth(SHAPE, np.uint16, seed=6)
    path = tmp_path / "volume.tif"
    _write_volumetric_tiff(path, data, compression)
    store = open_store(path, threads=2)
    try:
        group = zarr.open_group(store=store, mode="r")
        level0 = group["0"]
        assert _chunk_shape(level0) == TIFF_TILE
        np.testing.assert_array_equal(level0[...], data, strict=True)
        np.testing.assert_array_equal(level0[32:, 64:, 64:], data[32:, 64:, 64:], strict=True)  # the corner
        assert all(_chunk_shape(group[p])[0] > 1 for p in _multiscale(group))
    finally:
        store.close()


@pytest.mark.parametrize(("compression", "untouched"), [("zstd", True), (None, True), ("zlib", False)])
def test_tiff_volumetric_tiles_pass_through_as_stored(
    tmp_path: Path, compression: str | None, untouched: bool
) -> None:
    """The corner chunk ``c/2/1/1`` is tile 11 (depth 2, row 1, column 1 of a 3 x 2 x 2 grid),
    stored full size as a zarr edge chunk is; a zlib stream is no zarr chunk and is re-encoded."""
    data = smooth(SHAPE, np.uint16, seed=7)
    path = tmp_path / "volume.tif"
    _write_volumetric_tiff(path, data, compression)
    store = open_store(path, threads=2)
    try:
        served = asyncio.run(store.get("0/c/2/1/1", default_buffer_prototype()))
        assert served is not None
        assert (served.to_bytes() == _stored_tile(path, 11)) is untouched
    finally:
        store.close()
