"""Source tiles that already are zarr chunks are served byte for byte, untouched."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import tifffile
import zarr
from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype

from gateway.config.settings import Settings
from gateway.store.inprocess import open_store


@contextmanager
def gzip_served(path) -> Iterator[tuple[Store, zarr.Array]]:
    """The in-process store of ``path`` with ``codec = "gzip"``, and its level 0."""
    store = open_store(path, Settings.from_mapping({"chunks": {"codec": "gzip"}}))
    try:
        yield store, zarr.open_array(store=store, path="0", mode="r")
    finally:
        store.close()


def served_bytes(store: Store, key: str) -> bytes:
    served = asyncio.run(store.get(key, default_buffer_prototype()))
    assert served is not None
    return served.to_bytes()


def tile_bytes(path, page: int, index: int) -> bytes:
    with tifffile.TiffFile(path) as tif:
        p = tif.pages[page]
        with open(path, "rb") as fh:
            fh.seek(p.dataoffsets[index])
            return fh.read(p.databytecounts[index])


@pytest.mark.parametrize(
    ("options", "codecs", "endian"),
    [
        ({"compression": "zstd"}, ["bytes", "zstd"], "little"),
        ({"compression": "zstd", "byteorder": ">"}, ["bytes", "zstd"], "big"),
        ({}, ["bytes"], "little"),
    ],
)
def test_tiles_are_served_untouched(tmp_path, options, codecs, endian) -> None:
    data = np.random.default_rng(1).integers(0, 60000, (2, 700, 500), dtype=np.uint16)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, data, tile=(256, 256), photometric="minisblack", **options)
    store = open_store(path)
    try:
        array = zarr.open_array(store=store, path="0", mode="r")
        assert [c.to_dict()["name"] for c in array.metadata.codecs] == codecs
        assert array.metadata.codecs[0].to_dict()["configuration"]["endian"] == endian
        assert array.chunks == (1, 256, 256)
        np.testing.assert_array_equal(array[:], data)
        # page 1, tile row 2, column 1 (an edge tile: TIFF stores it full size, as zarr does)
        served = asyncio.run(store.get("0/c/1/2/1", default_buffer_prototype()))
        assert served is not None
        assert served.to_bytes() == tile_bytes(path, page=1, index=2 * 2 + 1)
    finally:
        store.close()


@pytest.mark.parametrize(
    "options",
    [
        {"compression": "zstd", "predictor": True},  # predictor: bytes differ from the pixels
        {"compression": "zlib", "predictor": True},
        {"compression": "zlib"},  # noise: a zlib stream no shorter than the tile, which blosc would copy
    ],
)
def test_other_tiles_are_reencoded(tmp_path, options) -> None:
    data = np.random.default_rng(2).integers(0, 60000, (300, 300), dtype=np.uint16)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, data, tile=(256, 256), photometric="minisblack", **options)
    store = open_store(path)
    try:
        array = zarr.open_array(store=store, path="0", mode="r")
        np.testing.assert_array_equal(array[:], data)
        served = asyncio.run(store.get("0/c/0/0", default_buffer_prototype()))
        assert served is not None and served.to_bytes() != tile_bytes(path, page=0, index=0)
    finally:
        store.close()


def test_passthrough_can_be_disabled(tmp_path) -> None:
    data = np.arange(512 * 512, dtype=np.uint16).reshape(512, 512)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, data, tile=(256, 256), photometric="minisblack", compression="zstd")
    settings = Settings.from_mapping({"chunks": {"passthrough": False, "codec": "gzip"}})
    store = open_store(path, settings)
    try:
        array = zarr.open_array(store=store, path="0", mode="r")
        assert [c.to_dict()["name"] for c in array.metadata.codecs] == ["bytes", "gzip"]
        np.testing.assert_array_equal(array[:], data)
    finally:
        store.close()


def write_deflate_tiles(path, byteorder: str) -> np.ndarray:
    """Two pages of smooth uint16 in 256 x 256 deflate tiles, edge tiles in both axes."""
    y, x = np.mgrid[:700, :500]
    data = np.stack(
        [(1000 + 900 * np.sin(y / 37.0 + p) * np.cos(x / 53.0)).astype(np.uint16) for p in (0, 1)]
    )
    tifffile.imwrite(
        path, data, tile=(256, 256), photometric="minisblack", compression="zlib", byteorder=byteorder
    )
    return data


@pytest.mark.parametrize(("byteorder", "endian"), [("<", "little"), (">", "big")])
def test_deflate_tiles_are_sent_as_stored_in_blosc_frames(tmp_path, byteorder, endian) -> None:
    """By default a deflate tile (a zlib stream) is the one block of a blosc frame (zlib, no
    shuffle): a 24-byte header, then the tile as stored; edge tiles too."""
    path = tmp_path / "deflate.tif"
    data = write_deflate_tiles(path, byteorder)
    store = open_store(path)
    try:
        array = zarr.open_array(store=store, path="0", mode="r")
        configuration = array.metadata.codecs[-1].to_dict()["configuration"]
        assert (configuration["cname"], configuration["shuffle"]) == ("zlib", "noshuffle")
        assert array.metadata.codecs[0].to_dict()["configuration"]["endian"] == endian
        np.testing.assert_array_equal(array[:], data)
        for key, page, index in (("0/c/1/2/1", 1, 2 * 2 + 1), ("0/c/0/0/0", 0, 0)):
            assert served_bytes(store, key)[24:] == tile_bytes(path, page, index)
    finally:
        store.close()


@pytest.mark.parametrize(("byteorder", "endian"), [("<", "little"), (">", "big")])
def test_deflate_tiles_are_served_as_gzip_members_where_gzip_is_asked_for(
    tmp_path, byteorder, endian
) -> None:
    """With ``codec = "gzip"``, a deflate tile (a zlib stream) is sent as the gzip member of
    its stored deflate data; edge tiles too (TIFF stores them full size)."""
    path = tmp_path / "deflate.tif"
    data = write_deflate_tiles(path, byteorder)
    with gzip_served(path) as (store, array):
        assert array.metadata.codecs[-1].to_dict()["name"] == "gzip"
        assert array.metadata.codecs[0].to_dict()["configuration"]["endian"] == endian
        np.testing.assert_array_equal(array[:], data)
        for key, page, index in (("0/c/1/2/1", 1, 2 * 2 + 1), ("0/c/0/0/0", 0, 0)):
            assert served_bytes(store, key)[10:-8] == tile_bytes(path, page, index)[2:-4]


def test_predicted_deflate_tiles_are_compressed_afresh_even_for_gzip(tmp_path) -> None:
    data = np.random.default_rng(4).integers(0, 60000, (300, 300), dtype=np.uint16)
    path = tmp_path / "predicted.tif"
    tifffile.imwrite(
        path, data, tile=(256, 256), photometric="minisblack", compression="zlib", predictor=True
    )
    with gzip_served(path) as (store, array):
        np.testing.assert_array_equal(array[:], data)
        assert served_bytes(store, "0/c/0/0")[10:-8] != tile_bytes(path, page=0, index=0)[2:-4]
