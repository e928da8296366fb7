"""Thumbnails as values of a dataset's store (``gateway.store.thumbnails``), in-process.

Each thumbnail is compared with an independent numpy rendering (``tests.thumbnail_reference``)
of the level the rules choose, read through zarr-python from the same store: the
picture shows what clients read. Files are written by tifffile into ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pytest
import tifffile
import zarr
from zarr.core.buffer import default_buffer_prototype

from gateway.store.base import ServedStore
from gateway.store.inprocess import open_store
from tests.thumbnail_reference import level_index, omero_styles, reference_thumbnail


def get(store: ServedStore, key: str) -> bytes | None:
    found = asyncio.run(store.get(key, default_buffer_prototype()))
    return None if found is None else found.to_bytes()


def document(store: ServedStore, key: str) -> dict[str, Any]:
    data = get(store, key)
    assert data is not None, key
    parsed: dict[str, Any] = json.loads(data)
    return parsed


def expected_plane(store: ServedStore, image: str = "") -> tuple[np.ndarray, dict[str, Any]]:
    """(C, H, W) of the level a thumbnail reads (first t, middle z), read with zarr-python,
    and the image group's ``zarr.json``."""
    prefix = f"{image}/" if image else ""
    group_doc = document(store, f"{prefix}zarr.json")
    multiscale = group_doc["attributes"]["ome"]["multiscales"][0]
    names = [axis["name"] for axis in multiscale["axes"]]
    paths = [entry["path"] for entry in multiscale["datasets"]]
    shapes = [document(store, f"{prefix}{p}/zarr.json")["shape"] for p in paths]
    sides = [max(dict(zip(names, s, strict=True)).get(a, 1) for a in "yx") for s in shapes]
    chosen = paths[level_index(sides)]
    array = zarr.open_group(store=store, mode="r")[f"{prefix}{chosen}"]
    index = tuple(
        0 if n == "t" else array.shape[i] // 2 if n == "z" else slice(None) for i, n in enumerate(names)
    )
    plane = np.asarray(array[index])
    if "c" not in names:
        plane = plane[None]
    if "y" not in names:
        plane = plane[:, None, :]
    return plane, group_doc


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[Callable[[str, Callable[[Path], object]], ServedStore]]:
    stores: list[ServedStore] = []

    def open_file(name: str, write: Callable[[Path], object]) -> ServedStore:
        path = tmp_path / name
        write(path)
        store = open_store(path)
        stores.append(store)
        return store

    yield open_file
    for store in stores:
        store.close()


def smooth(shape: tuple[int, ...], dtype: str, low: float, high: float, seed: int = 0) -> np.ndarray:
    """Values from ``low`` to ``high`` that vary smoothly, with some noise (never all fill)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*(np.linspace(0, 1, n) for n in shape), indexing="ij")
    values = low + (high - low) * (sum(grids) / len(grids)) * 0.9 + rng.random(shape) * (high - low) * 0.1
    return values.astype(dtype)


CASES: dict[str, Callable[[Path], object]] = {
    # 2-D, a synthesized pyramid (700 px > one chunk): a synthesized level is read
    "yx-uint16.tif": lambda p: tifffile.imwrite(p, smooth((700, 500), "uint16", 100, 60000), tile=(256, 256)),
    # 2-D int16 with negative values, smaller than a thumbnail: never enlarged
    "yx-int16.tif": lambda p: tifffile.imwrite(p, smooth((90, 130), "int16", -3000, 3000)),
    # 3-D z-stack (ImageJ): the middle plane
    "zyx-uint8.tif": lambda p: tifffile.imwrite(
        p, smooth((5, 300, 200), "uint8", 0, 255), imagej=True, metadata={"axes": "ZYX"}
    ),
    # 5-D float32 OME-TIFF: first t, middle z, three channels in default colours
    "tczyx-float32.ome.tif": lambda p: tifffile.imwrite(
        p, smooth((2, 3, 4, 128, 160), "float32", -1, 5), ome=True, metadata={"axes": "TCZYX"}
    ),
    # five channels, uint16
    "cyx-5channels.ome.tif": lambda p: tifffile.imwrite(
        p, smooth((5, 260, 300), "uint16", 0, 4000), ome=True, metadata={"axes": "CYX"}
    ),
    # float64 (served with a float32 variant group, which has no thumbnail of its own)
    "yx-float64.tif": lambda p: tifffile.imwrite(p, smooth((64, 80), "float64", -1e6, 1e6)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_thumbnail_matches_an_independent_rendering(opened, name):
    store = opened(name, CASES[name])
    plane, group_doc = expected_plane(store)
    colors, windows = omero_styles(group_doc)
    data = get(store, "thumbnail.png")
    assert data is not None and data.startswith(b"\x89PNG")
    picture = imagecodecs.imread(data)
    expected = reference_thumbnail(plane, colors, windows)
    assert picture.shape == expected.shape
    assert max(picture.shape[:2]) <= 256
    assert np.abs(picture.astype(int) - expected).max() <= 1  # float sums in another order
    assert picture.std() > 0  # not blank


@pytest.mark.parametrize("name", ["cyx-5channels.ome.tif", "tczyx-float32.ome.tif"])
def test_each_channel_alone_in_its_colour(opened, name):
    store = opened(name, CASES[name])
    plane, group_doc = expected_plane(store)
    colors, windows = omero_styles(group_doc)
    for channel in range(plane.shape[0]):
        data = get(store, f"thumbnail.c{channel}.png")
        assert data is not None
        expected = reference_thumbnail(
            plane[channel : channel + 1], colors[channel : channel + 1], windows[channel : channel + 1]
        )
        assert np.abs(imagecodecs.imread(data).astype(int) - expected).max() <= 1
    assert get(store, f"thumbnail.c{plane.shape[0]}.png") is None  # no such channel: absent


def test_an_rgb_picture_is_shown_as_it_is(opened):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
    store = opened("rgb.tif", lambda p: tifffile.imwrite(p, rgb, photometric="rgb"))
    data = get(store, "thumbnail.png")
    assert data is not None
    np.testing.assert_array_equal(imagecodecs.imread(data), rgb)


def test_an_rgba_picture_keeps_its_alpha(opened):
    rng = np.random.default_rng(4)
    rgba = rng.integers(0, 256, (40, 50, 4), dtype=np.uint8)
    store = opened(
        "rgba.tif", lambda p: tifffile.imwrite(p, rgba, photometric="rgb", extrasamples=["unassalpha"])
    )
    data = get(store, "thumbnail.png")
    assert data is not None
    np.testing.assert_array_equal(imagecodecs.imread(data), rgba)


def write_two_images(path: Path) -> None:
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(smooth((3, 70, 90), "int16", -100, 100), metadata={"axes": "ZYX"}, photometric="minisblack")
        tif.write(
            smooth((2, 64, 64), "uint8", 0, 255, seed=1), metadata={"axes": "CYX"}, photometric="minisblack"
        )


def test_a_multi_image_file_has_one_thumbnail_per_image_and_its_root_shows_the_first(opened):
    store = opened("two.ome.tif", write_two_images)
    first, second = get(store, "0/thumbnail.png"), get(store, "1/thumbnail.png")
    assert first is not None and second is not None and first != second
    assert get(store, "thumbnail.png") == first
    assert store.describe("thumbnail.png") == store.describe("0/thumbnail.png")  # one entity, one tag
    assert get(store, "1/thumbnail.c1.png") is not None
    assert get(store, "1/thumbnail.c2.png") is None
    assert get(store, "2/thumbnail.png") is None  # no such image
    assert get(store, "OME/thumbnail.png") is None  # a group that is no image


def test_a_variant_group_has_no_thumbnail_of_its_own(opened):
    store = opened("yx-float64.tif", CASES["yx-float64.tif"])
    assert get(store, "float32/zarr.json") is not None
    assert get(store, "float32/thumbnail.png") is None


def test_webp_is_the_same_picture_smaller(opened):
    store = opened("cyx-5channels.ome.tif", CASES["cyx-5channels.ome.tif"])
    png, webp = get(store, "thumbnail.png"), get(store, "thumbnail.webp")
    assert png is not None and webp is not None
    assert webp[8:12] == b"WEBP" and len(webp) < len(png)
    difference = imagecodecs.imread(webp).astype(int) - imagecodecs.imread(png)
    assert np.abs(difference).mean() < 8  # lossy (quality 90), on a noisy picture


def test_descriptions_need_no_pixels_and_tags_differ_by_what_is_shown(opened):
    store = opened("cyx-5channels.ome.tif", CASES["cyx-5channels.ome.tif"])
    described = {key: store.describe(key) for key in ("thumbnail.png", "thumbnail.webp", "thumbnail.c0.png")}
    assert all(d is not None and d.kind == "thumbnail" for d in described.values())
    assert described["thumbnail.png"].media_type == "image/png"  # type: ignore[union-attr]
    assert described["thumbnail.webp"].media_type == "image/webp"  # type: ignore[union-attr]
    assert len({d.etag for d in described.values() if d is not None}) == 3
    assert not asyncio.run(_listed(store))  # never listed: not part of the zarr hierarchy


async def _listed(store: ServedStore) -> list[str]:
    return [key async for key in store.list() if "thumbnail" in key]
