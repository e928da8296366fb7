"""Opening a file is bounded by what it holds, not by what it claims: an OME-XML's plane
count, an HDF5 file's number of datasets or depth of groups (the hostile corpus of
tests/hostile has the full-size versions; these are the same rules at small sizes)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

import adapters
from adapters.base import OpenOptions
from adapters.tiff import adapter as tiff
from gateway.config.settings import Settings, SettingsError
from gateway.store.cache import ByteLRU, NamespacedTiles


def open_source(path: Path) -> adapters.Source:
    return adapters.open_source(path, NamespacedTiles(ByteLRU(1 << 24), "t"), None)


def write_ome(path: Path, size_t: int) -> None:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        '<Image ID="Image:0" Name="cut"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" '
        f'SizeX="32" SizeY="16" SizeZ="1" SizeC="1" SizeT="{size_t}">'
        '<Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
        '<TiffData IFD="0" PlaneCount="2"/></Pixels></Image></OME>'
    )
    data = np.arange(2 * 16 * 32, dtype=np.uint8).reshape(2, 16, 32)
    tifffile.imwrite(path, data, description=xml, photometric="minisblack", metadata=None)


def test_ome_claiming_a_billion_planes_is_served_as_a_plain_tiff(tmp_path):
    path = tmp_path / "claims.ome.tif"
    write_ome(path, 10**9)
    source = open_source(path)
    try:
        assert source.format != "OME-TIFF"
        assert any("claims 1,000,000,000 planes" in w for w in source.warnings), source.warnings
        level = source.images[0].levels[0]
        assert level.shape[-2:] == (16, 32)
        assert level.read(tuple(slice(0, n) for n in level.shape)).reshape(-1, 16, 32).shape[0] == 2
    finally:
        source.close()


def test_ome_missing_a_few_planes_keeps_its_metadata(tmp_path):
    """An acquisition cut short (SizeT 3, two planes written) stays an OME-TIFF."""
    path = tmp_path / "short.ome.tif"
    write_ome(path, 3)
    source = open_source(path)
    try:
        assert source.format == "OME-TIFF"
        assert not any("claims" in w for w in source.warnings)
    finally:
        source.close()


def test_plane_claim_limit_is_above_small_files():
    assert tiff.MIN_PLANES_CLAIM_LIMIT >= 1024 and tiff.MAX_MISSING_PLANES_FACTOR >= 2


def test_hdf5_file_serves_at_most_max_datasets(tmp_path):
    path = tmp_path / "many.h5"
    with h5py.File(path, "w") as f:
        for index in range(12):
            f.create_dataset(f"d{index:02d}", data=np.full((4, 4), index, np.uint8))
    tiles = NamespacedTiles(ByteLRU(1 << 24), "t")
    source = adapters.open_source(path, tiles, OpenOptions(max_datasets=5))
    try:
        assert len(source.images) == 5
        assert sum("only the first 5 image datasets" in w for w in source.warnings) == 1
    finally:
        source.close()
    assert len(open_source(path).images) == 12  # the default is far above


def test_max_datasets_is_a_setting():
    assert Settings.from_mapping({"hdf5": {"max_datasets": 7}}).open_options().max_datasets == 7
    with pytest.raises(SettingsError, match="max_datasets"):
        Settings.from_mapping({"hdf5": {"max_datasets": 0}})


@pytest.mark.parametrize("depth", [1, 300])
def test_deep_groups_are_walked_once(tmp_path, depth):
    path = tmp_path / "deep.h5"
    with h5py.File(path, "w") as f:
        group: h5py.Group = f
        for index in range(depth):
            group = group.create_group(f"g{index}")
        group.create_dataset("data", data=np.arange(64, dtype=np.uint8).reshape(8, 8))
        group["elsewhere"] = h5py.ExternalLink("missing.h5", "/x")  # walked, not followed
    source = open_source(path)
    try:
        (image,) = source.images
        level = image.levels[0]
        assert np.array_equal(level.read((slice(0, 8), slice(0, 8))), np.arange(64).reshape(8, 8))
    finally:
        source.close()
