"""Imaris ``.ims`` files (the Imaris 5.5 layout, written by ``tests/hdf5/writers.py``)
over HTTP: levels, t and c, arrays cropped to ``ImageSizeX/Y/Z`` (the padding, filled
with junk, must never be served), voxel size and origin from the extent, channel names,
colours and ranges, the time interval, and OME-Zarr validity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest
import zarr
from ome_zarr_models.v05.image import Image as OmeImage

import adapters
from gateway.config.settings import Settings
from tests.hdf5.writers import ImarisSpec, chars, smooth, write_imaris
from tests.server import serve

SPECS = {
    "tczyx.ims": ImarisSpec(
        data=smooth((2, 3, 20, 70, 50), np.uint16, seed=1),
        levels=3,
        ext_min=(10.0, -20.0, 0.0),
        voxel=(0.25, 0.25, 1.5),
        channel_names=("DAPI", "GFP", "mCherry"),
        channel_colors=((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.5)),
        color_ranges=((0, 4000), (100, 3000), (0, 6000)),
        timestamps=("2021-03-04 10:00:00.000", "2021-03-04 10:00:45.500"),
    ),
    "zyx-uint8.ims": ImarisSpec(data=smooth((1, 1, 9, 33, 41), np.uint8, seed=2, scale=60), levels=2),
    "yx-float.ims": ImarisSpec(
        data=smooth((1, 2, 1, 100, 90), np.float32, seed=3), levels=2, block=(1, 64, 64), unit="nm"
    ),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("imaris")
    for name, spec in SPECS.items():
        write_imaris(directory / name, spec)
    return directory


@pytest.fixture(scope="module")
def base_url(root: Path) -> Iterator[str]:
    with serve(Settings.from_mapping({"roots": {"i": str(root)}})) as url:
        yield url


def squeeze_tcz(data: np.ndarray) -> np.ndarray:
    t, c, z = data.shape[:3]
    keep = [n for n, size in zip("tcz", (t, c, z), strict=True) if size > 1]
    return data.reshape(
        tuple(s for n, s in zip("tcz", data.shape[:3], strict=True) if n in keep) + data.shape[3:]
    )


@pytest.mark.parametrize("name", list(SPECS))
def test_every_level_is_bit_exact_and_cropped(name: str, base_url: str) -> None:
    spec = SPECS[name]
    group = zarr.open_group(f"{base_url}/i/{name}", mode="r")
    for level in range(spec.levels):
        want = squeeze_tcz(spec.level_data(level))
        served = group[str(level)][...]
        assert served.shape == want.shape, (level, served.shape, want.shape)
        assert served.dtype == want.dtype
        assert served.tobytes() == np.ascontiguousarray(want).tobytes(), level


def test_arrays_are_padded_in_the_file(root: Path) -> None:
    """The premise of the crop: the stored arrays are larger than the image."""
    with h5py.File(root / "tczyx.ims", "r") as f:
        stored = f["DataSet/ResolutionLevel 0/TimePoint 0/Channel 0/Data"].shape
    assert stored == (32, 96, 64)
    assert SPECS["tczyx.ims"].data.shape[2:] == (20, 70, 50)


@pytest.mark.parametrize("name", list(SPECS))
def test_image_group_validates(name: str, base_url: str) -> None:
    OmeImage.from_zarr(zarr.open_group(f"{base_url}/i/{name}", mode="r"))


def test_axes_scale_origin_and_units(base_url: str) -> None:
    group = zarr.open_group(f"{base_url}/i/tczyx.ims", mode="r")
    ome = group.attrs["ome"]
    multiscale = ome["multiscales"][0]
    axes = multiscale["axes"]
    assert [a["name"] for a in axes] == ["t", "c", "z", "y", "x"]
    assert {a["name"]: a.get("unit") for a in axes} == {
        "t": "second",
        "c": None,
        "z": "micrometer",
        "y": "micrometer",
        "x": "micrometer",
    }
    transforms = multiscale["datasets"][0]["coordinateTransformations"]
    # (ExtMax - ExtMin) / ImageSize, and 45.5 s between the two timepoints
    assert transforms[0]["scale"] == pytest.approx([45.5, 1.0, 1.5, 0.25, 0.25])
    assert transforms[1]["translation"] == pytest.approx([0.0, 0.0, 0.0, -20.0, 10.0])
    level2 = multiscale["datasets"][2]["coordinateTransformations"][0]["scale"]
    # every level spans the extent (30 x 17.5 x 12.5 um): its voxel is that over its size (5, 18, 13)
    assert level2 == pytest.approx([45.5, 1.0, 30 / 5, 17.5 / 18, 12.5 / 13])
    assert multiscale["name"] == "imaris test"


def test_channels_carry_names_colours_and_ranges(base_url: str) -> None:
    channels = zarr.open_group(f"{base_url}/i/tczyx.ims", mode="r").attrs["ome"]["omero"]["channels"]
    assert [c["label"] for c in channels] == ["DAPI", "GFP", "mCherry"]
    assert [c["color"] for c in channels] == ["0000FF", "00FF00", "FF0080"]
    assert [(c["window"]["start"], c["window"]["end"]) for c in channels] == [
        (0, 4000),
        (100, 3000),
        (0, 6000),
    ]
    assert channels[0]["window"]["min"] == 0 and channels[0]["window"]["max"] == 65535


def test_units_and_dropped_axes(base_url: str) -> None:
    group = zarr.open_group(f"{base_url}/i/yx-float.ims", mode="r")
    axes = group.attrs["ome"]["multiscales"][0]["axes"]
    assert [a["name"] for a in axes] == ["c", "y", "x"]
    assert axes[1]["unit"] == "nanometer"
    single = zarr.open_group(f"{base_url}/i/zyx-uint8.ims", mode="r")
    assert [a["name"] for a in single.attrs["ome"]["multiscales"][0]["axes"]] == ["z", "y", "x"]


def test_chunks_beyond_the_crop_do_not_exist(base_url: str) -> None:
    url = f"{base_url}/i/zyx-uint8.ims/0"
    meta = httpx.get(f"{url}/zarr.json").json()
    assert meta["shape"] == [9, 33, 41]
    grid = [
        -(-n // c)
        for n, c in zip(meta["shape"], meta["chunk_grid"]["configuration"]["chunk_shape"], strict=True)
    ]
    assert httpx.get(f"{url}/c/" + "/".join(str(g) for g in grid)).status_code == 404


def test_attributes_are_decoded_from_character_arrays(root: Path) -> None:
    with h5py.File(root / "tczyx.ims", "r") as f:
        raw = f["DataSetInfo/Channel 0"].attrs["Name"]
    assert raw.dtype == np.dtype("S1") and raw.tolist() == list(chars("DAPI"))
    source = adapters.open_source(root / "tczyx.ims")
    try:
        assert source.format == "Imaris"
        assert source.images[0].channels[0].label == "DAPI"
        assert source.warnings == []
    finally:
        source.close()
