"""``../shared/data/viv_multifile`` (Bio-Formats' companion layout, written by Bio-Formats,
as viv keeps it): one z-stack of five planes, one plane per file, served as one image at
its companion file, bit-exact with tifffile's own reading of the set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tifffile
import zarr

from gateway.config.settings import Settings
from tests.server import serve

COMPANION = "multifile.companion.ome"
MEMBERS = [f"multifile-Z{z}.ome.tiff" for z in range(1, 6)]


@pytest.fixture(scope="module")
def folder(shared_data: Path) -> Path:
    return shared_data / "viv_multifile"


@pytest.fixture(scope="module")
def base_url(folder: Path) -> Iterator[str]:
    with serve(Settings.from_mapping({"roots": {"viv": str(folder)}})) as url:
        yield url


def reference(folder: Path) -> np.ndarray:
    """tifffile's reading of the set: a member with the companion's XML."""
    xml = (folder / COMPANION).read_text()
    with tifffile.TiffFile(folder / MEMBERS[0], omexml=xml) as tif:
        series = tif.series[0]
        assert series.is_multifile and series.axes == "ZYX"
        return series.asarray()


def test_the_companion_is_one_z_stack_bit_exact_with_tifffile(folder: Path, base_url: str) -> None:
    group = zarr.open_group(f"{base_url}/viv/{COMPANION}", mode="r")
    axes = [axis["name"] for axis in group.attrs["ome"]["multiscales"][0]["axes"]]
    assert axes == ["z", "y", "x"]
    served = group["0"][:]
    expected = reference(folder)
    assert served.shape == (5, 24, 18) == expected.shape
    assert served.dtype == expected.dtype == np.uint8
    np.testing.assert_array_equal(served, expected)


def test_each_plane_is_the_pixels_of_its_own_file(folder: Path, base_url: str) -> None:
    served = zarr.open_group(f"{base_url}/viv/{COMPANION}", mode="r")["0"]
    for z, name in enumerate(MEMBERS):
        np.testing.assert_array_equal(served[z], tifffile.imread(folder / name))


def test_the_companion_xml_is_served_as_the_metadata(folder: Path, base_url: str) -> None:
    response = httpx.get(f"{base_url}/viv/{COMPANION}/OME/METADATA.ome.xml")
    assert response.status_code == 200
    assert response.text == (folder / COMPANION).read_text()


@pytest.mark.parametrize("member", MEMBERS)
def test_a_member_is_part_of_the_companion_not_an_image(member: str, base_url: str) -> None:
    for key in ("zarr.json", "0/zarr.json", ""):
        response = httpx.get(f"{base_url}/viv/{member}/{key}", headers={"Accept": "application/json"})
        assert response.status_code == 404, response.text
        body = response.json()
        assert body["error"] == "part_of_dataset"
        assert f"viv/{COMPANION}" in body["detail"]
