"""Every group of every served dataset — native and synthesized pyramids, TIFF and HDF5
(generic, BigDataViewer, Imaris), multi-image files, float32 variants, labels — passes
ome-zarr-models (v05) and the OME-Zarr 0.5 JSON schemas; the Zarr v2 view of each passes
ome-zarr-models (v04) and the 0.4 schemas. Groups are enumerated from the gateway's own
tree (in-process) and read over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr_models.v04.bioformats2raw import BioFormats2Raw as BioFormats2RawV04
from ome_zarr_models.v04.image import Image as ImageV04
from ome_zarr_models.v04.image_label import ImageLabel as ImageLabelV04
from ome_zarr_models.v04.labels import Labels as LabelsV04
from ome_zarr_models.v05.bioformats2raw import BioFormats2Raw
from ome_zarr_models.v05.image import Image
from ome_zarr_models.v05.image_label import ImageLabel
from ome_zarr_models.v05.labels import Labels

from gateway.config.settings import Settings
from gateway.demo import write_bdv, write_imaris, write_rgb_tiled
from gateway.store.cache import ByteLRU
from tests.catalogs import make_catalog
from tests.ngff_schemas import kind_of, validate
from tests.server import serve

ROOT = "lab"


def _pyramid(path: Path) -> None:
    data = np.random.default_rng(1).integers(0, 4000, (3, 700, 900), dtype=np.uint16)
    metadata = {
        "axes": "CYX",
        "PhysicalSizeX": 0.5,
        "PhysicalSizeY": 0.5,
        "Channel": {"Name": ["a", "b", "c"]},
    }
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(data, subifds=1, metadata=metadata, tile=(128, 128), photometric="minisblack")
        tif.write(data[:, ::2, ::2], subfiletype=1, tile=(128, 128), photometric="minisblack")


def _zstack(path: Path) -> None:
    data = np.random.default_rng(2).integers(0, 255, (9, 300, 260), dtype=np.uint8)
    tifffile.imwrite(path, data, imagej=True, resolution=(5, 5), metadata={"axes": "ZYX", "spacing": 0.5, "unit": "um"}, rowsperstrip=32)  # fmt: skip


def _zstack_labels(path: Path) -> None:
    data = np.random.default_rng(3).integers(0, 6, (9, 300, 260), dtype=np.uint16)
    tifffile.imwrite(path, data, photometric="minisblack", rowsperstrip=32)


def _float64(path: Path) -> None:
    tifffile.imwrite(
        path, np.random.default_rng(4).random((200, 300)), photometric="minisblack", rowsperstrip=32
    )


def _two_images(path: Path) -> None:
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(
            np.zeros((4, 300, 200), np.int16),
            metadata={"axes": "ZYX", "Name": "volume"},
            photometric="minisblack",
        )
        tif.write(np.ones((2, 64, 64), np.uint8), metadata={"axes": "CYX", "Name": "small"}, photometric="minisblack")  # fmt: skip


def _hdf5(path: Path) -> None:
    rng = np.random.default_rng(5)
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "raw/volume", data=rng.integers(0, 999, (6, 200, 150), dtype=np.uint16), chunks=(1, 64, 64)
        )
        f.create_dataset(
            "raw/seg", data=rng.integers(0, 4, (6, 200, 150), dtype=np.uint8), chunks=(1, 64, 64)
        )
        f.create_dataset("pyramid/s0", data=rng.random((300, 300), dtype=np.float32), chunks=(64, 64))
        f.create_dataset("pyramid/s1", data=rng.random((150, 150), dtype=np.float32), chunks=(64, 64))


WRITERS: dict[str, Callable[[Path], None]] = {
    "pyramid.ome.tif": _pyramid,
    "zstack.tif": _zstack,
    "zstack_labels.tif": _zstack_labels,
    "rgb.tif": write_rgb_tiled,
    "float64.tif": _float64,
    "two.ome.tif": _two_images,
    "volumes.h5": _hdf5,
    "bdv.xml": write_bdv,
    "imaris.ims": write_imaris,
}
DATASETS = [name for name in WRITERS if name != "zstack_labels.tif"] + ["zstack_labels.tif"]


def corpus_settings(root: Path, writers: Mapping[str, Callable[[Path], object]], crate: str) -> Settings:
    """``writers``' files written into ``root`` and served as ``ROOT``, with declared labels
    and an RO-Crate: every kind of group and array the gateway synthesizes."""
    root.mkdir()
    for name, write in writers.items():
        write(root / name)
    return Settings.from_mapping(
        {
            "roots": {ROOT: str(root)},
            "chunks": {"yx": 128},
            "labels": [
                {"image": f"{ROOT}/zstack.tif", "source": f"{ROOT}/zstack_labels.tif", "name": "cells"},
                {"image": f"{ROOT}/volumes.h5/raw/volume", "source": f"{ROOT}/volumes.h5/raw/seg"},
            ],
            "rocrate": [{"dataset": f"{ROOT}/*.tif", "name": crate, "license": "CC0-1.0"}],
        }
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return corpus_settings(tmp_path_factory.mktemp("validation") / ROOT, WRITERS, "validation")


@pytest.fixture(scope="module")
def base(settings: Settings) -> Iterator[str]:
    with serve(settings) as url:
        yield url


def _groups(settings: Settings, name: str, v2: bool) -> list[str]:
    """Paths of every group of a dataset's tree (v3) or of its v2 view."""
    catalog = make_catalog(settings, ByteLRU(64 * 1024**2))
    try:
        located = catalog.locate(f"{ROOT}/{name}")
        assert located is not None
        tree = located.dataset.tree.v2 if v2 else located.dataset.tree
        assert tree is not None
        marker = ".zgroup" if v2 else "zarr.json"
        return sorted(
            key[: -len(marker)].rstrip("/")
            for key, data in tree.documents.items()
            if key.rpartition("/")[2] == marker and (v2 or b'"node_type": "group"' in data)
        )
    finally:
        catalog.close()


def _validate_v05(group: zarr.Group, path: str) -> list[str]:
    attributes = group.attrs.asdict()
    kinds = kind_of(attributes, "0.5")
    for kind in kinds:
        validate(attributes, "0.5", kind)
    ome = attributes.get("ome", {})
    if "image-label" in ome:
        ImageLabel.from_zarr(group)
    elif "multiscales" in ome:
        Image.from_zarr(group)
    if "labels" in ome:
        Labels.from_zarr(group)
        kinds.append("labels")
    if "bioformats2raw.layout" in ome:
        BioFormats2Raw.from_zarr(group)
    if ome:
        assert ome["version"] == "0.5", path
    return kinds


def _validate_v04(group: zarr.Group, path: str) -> list[str]:
    attributes = group.attrs.asdict()
    kinds = kind_of(attributes, "0.4")
    for kind in kinds:
        validate(attributes, "0.4", kind)
    if "image-label" in attributes:
        ImageLabelV04.from_zarr(group)
    elif "multiscales" in attributes:
        ImageV04.from_zarr(group)
        assert all(m["version"] == "0.4" for m in attributes["multiscales"]), path
    if "labels" in attributes:
        LabelsV04.from_zarr(group)
        kinds.append("labels")
    if "bioformats2raw.layout" in attributes:
        BioFormats2RawV04.from_zarr(group)
    return kinds


@pytest.mark.parametrize("name", DATASETS)
def test_every_group_validates_as_ome_zarr_05(settings: Settings, base: str, name: str) -> None:
    kinds: list[str] = []
    for path in _groups(settings, name, v2=False):
        url = f"{base}/{ROOT}/{name}/{path}".rstrip("/")
        kinds += _validate_v05(zarr.open_group(url, mode="r", zarr_format=3), path)
    assert "image" in kinds


@pytest.mark.parametrize("name", DATASETS)
def test_every_group_of_the_v2_view_validates_as_ome_zarr_04(
    settings: Settings, base: str, name: str
) -> None:
    v3_groups = _groups(settings, name, v2=False)
    v2_groups = _groups(settings, name, v2=True)
    assert v2_groups == v3_groups  # the same hierarchy
    kinds: list[str] = []
    for path in v2_groups:
        url = f"{base}/v2/{ROOT}/{name}/{path}".rstrip("/")
        kinds += _validate_v04(zarr.open_group(url, mode="r", zarr_format=2), path)
    assert "image" in kinds


def test_the_suite_covers_every_kind(settings: Settings) -> None:
    paths = {name: _groups(settings, name, v2=False) for name in DATASETS}
    assert "labels/cells" in paths["zstack.tif"]  # a label image (TIFF)
    assert "raw/volume/labels/seg" in paths["volumes.h5"]  # a label image (HDF5)
    assert "float32" in paths["float64.tif"]  # a variant
    assert {"", "0", "1", "OME"} <= set(paths["two.ome.tif"])  # bioformats2raw
