"""Generic HDF5 files over HTTP: dataset paths as URL paths, pyramids, axes and pixel sizes.

Axes come from configuration, dimension labels or scales, common attributes, or the
default (see ``adapters/hdf5_generic.py``); the served array must then be h5py's
reading of the dataset, transposed to t, c, z, y, x and without size-1 dimensions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest
import zarr
from ome_zarr_models.v05.image import Image as OmeImage

from gateway.config.settings import Settings
from tests.hdf5.writers import pixels, smooth
from tests.server import serve

VOLUME = smooth((12, 40, 30), seed=1)
LABELS = pixels((12, 40, 30), np.uint32, 2)
PYRAMID = [VOLUME, VOLUME[::2, ::2, ::2], VOLUME[::4, ::4, ::4]]


def write_tree(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("raw/volume", data=VOLUME, chunks=(4, 16, 16), compression="gzip")
        f.create_dataset("raw/labels", data=LABELS)
        for k, level in enumerate(PYRAMID):
            f.create_dataset(f"multiscale/{k}", data=level, chunks=True)
        for k, level in enumerate(PYRAMID[:2]):
            f.create_dataset(f"n5like/s{k}", data=level)
        f.create_dataset("table", data=np.arange(10))  # 1-D: not an image
        f.create_dataset("strings", data=np.array([b"a", b"b"]))
        f.create_dataset("records", data=np.zeros(4, dtype=[("a", "i4"), ("b", "f4")]))
        f.create_dataset("weird name with spaces/data", data=VOLUME[0])


def write_root_pyramid(path: Path) -> None:
    with h5py.File(path, "w") as f:
        for k, level in enumerate(PYRAMID):
            f.create_dataset(str(k), data=level)


def write_axes(path: Path) -> None:
    """One dataset per way of naming dimensions."""
    with h5py.File(path, "w") as f:
        # dimension labels, in x, y, z order: served transposed
        labelled = f.create_dataset("labelled", data=np.ascontiguousarray(VOLUME.transpose(2, 1, 0)))
        for i, label in enumerate("xyz"):
            labelled.dims[i].label = label
        # ilastik: axistags JSON, channel last, and element_size_um
        ilastik = f.create_dataset("ilastik", data=pixels((12, 40, 30, 2), np.uint8, 3))
        ilastik.attrs["axistags"] = json.dumps({"axes": [{"key": k, "typeFlags": 2} for k in "zyxc"]})
        ilastik.attrs["element_size_um"] = np.array([2.0, 0.5, 0.5])
        # an "axes" attribute, as a string
        f.create_dataset("timelapse", data=pixels((5, 40, 30), np.uint16, 4)).attrs["axes"] = "tyx"
        # netCDF-4 style: dimension scales named time, y, x with regular spacing and units
        f["time"] = np.arange(3, dtype=np.float64) * 2.5
        f["time"].attrs["units"] = "seconds"
        f["y"] = 100.0 + np.arange(40) * 0.25
        f["y"].attrs["units"] = "um"
        f["x"] = np.arange(30) * 0.25
        f["x"].attrs["units"] = "um"
        measured = f.create_dataset("measured", data=pixels((3, 40, 30), np.float32, 5))
        for name in ("time", "y", "x"):
            f[name].make_scale(name)
        for i, name in enumerate(("time", "y", "x")):
            measured.dims[i].attach_scale(f[name])
        # defaults: 4-D is c, z, y, x; a size-1 z is dropped
        f.create_dataset("default4d", data=pixels((2, 3, 20, 10), np.int16, 6))
        f.create_dataset("flat", data=pixels((1, 20, 10), np.uint8, 7))
        # configured (the server's [hdf5.axes] table) beats the attribute
        f.create_dataset("configured", data=pixels((4, 20, 10), np.uint8, 8)).attrs["axes"] = "zyx"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("generic")
    write_tree(directory / "tree.h5")
    write_root_pyramid(directory / "pyramid.hdf5")
    write_axes(directory / "axes.h5")
    return directory


@pytest.fixture(scope="module")
def base_url(root: Path) -> Iterator[str]:
    settings = Settings.from_mapping(
        {"roots": {"g": str(root)}, "hdf5": {"axes": {"*/axes.h5/configured": "cyx"}}}
    )
    with serve(settings) as url:
        yield url


def group_at(base: str, path: str) -> zarr.Group:
    return zarr.open_group(f"{base}/g/{path}", mode="r")


def axes_of(group: zarr.Group) -> list[str]:
    return [a["name"] for a in group.attrs["ome"]["multiscales"][0]["axes"]]


def scale0(group: zarr.Group) -> list[float]:
    return group.attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]


# ---------------------------------------------------------------------------------------
# URL mapping


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("tree.h5/raw/volume", VOLUME),
        ("tree.h5/raw/labels", LABELS),
        ("tree.h5/weird name with spaces/data", VOLUME[0]),
    ],
)
def test_dataset_paths_are_url_paths(path: str, want: np.ndarray, base_url: str) -> None:
    group = group_at(base_url, path)
    OmeImage.from_zarr(group)
    assert group["0"][...].tobytes() == want.tobytes()


def test_intermediate_groups_are_plain_groups(base_url: str) -> None:
    for path in ("tree.h5", "tree.h5/raw", "tree.h5/weird name with spaces"):
        document = httpx.get(f"{base_url}/g/{path}/zarr.json").json()
        assert document.pop("consolidated_metadata")["metadata"], path  # the nodes below it
        assert document == {"zarr_format": 3, "node_type": "group", "attributes": {}}, path


def test_non_images_and_missing_paths_are_404(base_url: str) -> None:
    for key in (
        "tree.h5/table/zarr.json",
        "tree.h5/strings/zarr.json",
        "tree.h5/records/zarr.json",
        "tree.h5/raw/nothing/zarr.json",
        "tree.h5/raw/volume/3/zarr.json",  # levels 0-2: until one 3-D chunk holds it
        "tree.h5/raw/volume/0/c/99/0/0",
        "tree.h5/0/zarr.json",
        "nothing.h5/zarr.json",
    ):
        response = httpx.get(f"{base_url}/g/{key}")
        assert response.status_code == 404, key
        assert response.json()["error"] == "not_found"


@pytest.mark.parametrize("path", ["tree.h5/multiscale", "tree.h5/n5like"])
def test_pyramid_groups_are_one_multiscale_image(path: str, base_url: str) -> None:
    group = group_at(base_url, path)
    OmeImage.from_zarr(group)
    datasets = group.attrs["ome"]["multiscales"][0]["datasets"]
    count = 3 if path.endswith("multiscale") else 2
    assert [d["path"] for d in datasets] == [str(k) for k in range(count)]
    for k in range(count):
        assert group[str(k)][...].tobytes() == np.ascontiguousarray(PYRAMID[k]).tobytes()
    assert [d["coordinateTransformations"][0]["scale"] for d in datasets][1] == [2.0, 2.0, 2.0]
    assert httpx.get(f"{base_url}/g/{path}/0/0/zarr.json").status_code == 404


def test_root_pyramid_is_the_root_image(base_url: str) -> None:
    group = group_at(base_url, "pyramid.hdf5")
    OmeImage.from_zarr(group)
    assert group["2"][...].tobytes() == np.ascontiguousarray(PYRAMID[2]).tobytes()


# ---------------------------------------------------------------------------------------
# Axes and pixel sizes


def test_dimension_labels_transpose(base_url: str) -> None:
    group = group_at(base_url, "axes.h5/labelled")
    assert axes_of(group) == ["z", "y", "x"]
    assert group["0"][...].tobytes() == VOLUME.tobytes()


def test_ilastik_axistags_and_element_size(root: Path, base_url: str) -> None:
    group = group_at(base_url, "axes.h5/ilastik")
    OmeImage.from_zarr(group)
    assert axes_of(group) == ["c", "z", "y", "x"]
    with h5py.File(root / "axes.h5", "r") as f:
        want = np.ascontiguousarray(f["ilastik"][()].transpose(3, 0, 1, 2))
    assert group["0"][...].tobytes() == want.tobytes()
    assert scale0(group) == [1.0, 2.0, 0.5, 0.5]
    units = {a["name"]: a.get("unit") for a in group.attrs["ome"]["multiscales"][0]["axes"]}
    assert units == {"c": None, "z": "micrometer", "y": "micrometer", "x": "micrometer"}


def test_axes_attribute(base_url: str) -> None:
    assert axes_of(group_at(base_url, "axes.h5/timelapse")) == ["t", "y", "x"]


def test_dimension_scales_give_axes_scale_units_and_origin(base_url: str) -> None:
    group = group_at(base_url, "axes.h5/measured")
    OmeImage.from_zarr(group)
    multiscale = group.attrs["ome"]["multiscales"][0]
    assert axes_of(group) == ["t", "y", "x"]
    assert [a.get("unit") for a in multiscale["axes"]] == ["second", "micrometer", "micrometer"]
    transforms = multiscale["datasets"][0]["coordinateTransformations"]
    assert transforms[0]["scale"] == pytest.approx([2.5, 0.25, 0.25])
    assert transforms[1]["translation"] == pytest.approx([0.0, 100.0, 0.0])


def test_default_axes_and_dropped_dimensions(root: Path, base_url: str) -> None:
    assert axes_of(group_at(base_url, "axes.h5/default4d")) == ["c", "z", "y", "x"]
    flat = group_at(base_url, "axes.h5/flat")
    assert axes_of(flat) == ["y", "x"]
    with h5py.File(root / "axes.h5", "r") as f:
        assert flat["0"][...].tobytes() == f["flat"][0].tobytes()


def test_configured_axes_win(base_url: str) -> None:
    assert axes_of(group_at(base_url, "axes.h5/configured")) == ["c", "y", "x"]


def test_scale_datasets_are_not_images(base_url: str) -> None:
    for name in ("time", "x", "y"):
        assert httpx.get(f"{base_url}/g/axes.h5/{name}/zarr.json").status_code == 404
