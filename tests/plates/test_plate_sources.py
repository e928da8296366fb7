"""OME-TIFF plates as the TIFF adapter opens them and as their trees are laid out (in process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from adapters.base import NoTileCache
from adapters.tiff.adapter import TiffAdapter
from gateway.config.settings import Settings
from gateway.store.inprocess import open_store
from tests.plates.writers import write_ome_tiff

SAMPLE = '<WellSample ID="WellSample:{i}"><ImageRef ID="Image:{i}"/></WellSample>'


def _well(row: int, column: int, *images: int) -> str:
    samples = "".join(SAMPLE.format(i=i) for i in images)
    return f'<Well ID="Well:{row}:{column}" Row="{row}" Column="{column}">{samples}</Well>'


def _plate(*wells: str, name: str = "") -> str:
    named = f' Name="{name}"' if name else ""
    return f'<Plate ID="Plate:{name or 0}"{named}>{"".join(wells)}</Plate>'


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[object]:
    stores = []

    def open_group(path: Path) -> zarr.Group:
        store = open_store(path, Settings.from_mapping({"pyramids": {"enabled": False}}), threads=2)
        stores.append(store)
        return zarr.open_group(store=store, mode="r", zarr_format=3)

    yield open_group
    for store in stores:
        store.close()


def test_fields_follow_their_image_references_past_images_without_pixels(tmp_path: Path, opened) -> None:
    """Images 0 and 2 hold no pixels (tifffile lists no series for them): image 3 is the
    second served image, yet the field that names Image:3 must show image 3's pixels."""
    path = tmp_path / "plate.ome.tif"
    planes = write_ome_tiff(path, _plate(_well(0, 0, 3), _well(0, 1, 1)), 4, without_data=(0, 2))
    source = TiffAdapter().open(path, NoTileCache())
    try:
        (plate,) = source.plates
        assert [image.name for image in source.images] == ["field 1", "field 3"]
        assert plate.field_paths() == {1: "A/1/0", 0: "A/2/0"}
    finally:
        source.close()
    group = opened(path)
    np.testing.assert_array_equal(group["A/1/0/0"][:], planes[1], strict=True)
    np.testing.assert_array_equal(group["A/2/0/0"][:], planes[0], strict=True)


def test_a_plate_of_every_image_is_the_root(tmp_path: Path, opened) -> None:
    path = tmp_path / "plate.ome.tif"
    planes = write_ome_tiff(path, _plate(_well(0, 0, 0, 1), _well(1, 2, 2)), 3)
    group = opened(path)
    ome = group.attrs["ome"]
    assert ome["bioformats2raw.layout"] == 3
    assert [w["path"] for w in ome["plate"]["wells"]] == ["A/1", "B/3"]
    assert group["OME"].attrs["ome"]["series"] == ["A/1/0", "A/1/1", "B/3/0"]
    assert group["A"].attrs.asdict() == {}  # a row is a plain group
    assert group["A/1"].attrs["ome"]["well"] == {"images": [{"path": "0"}, {"path": "1"}]}
    for path_, plane in zip(["A/1/0", "A/1/1", "B/3/0"], planes, strict=True):
        np.testing.assert_array_equal(group[f"{path_}/0"][:], plane, strict=True)
    assert "0" not in group  # no image is served twice


def test_images_on_no_plate_stay_at_their_index_beside_the_plate(tmp_path: Path, opened) -> None:
    path = tmp_path / "plate.ome.tif"
    planes = write_ome_tiff(path, _plate(_well(0, 0, 1)), 3)
    group = opened(path)
    assert group.attrs["ome"] == {"version": "0.5", "bioformats2raw.layout": 3}
    assert group["plate0"].attrs["ome"]["plate"]["name"] == "plate.ome.tif #0"
    assert group["OME"].attrs["ome"]["series"] == ["0", "plate0/A/1/0", "2"]
    np.testing.assert_array_equal(group["0/0"][:], planes[0], strict=True)
    np.testing.assert_array_equal(group["plate0/A/1/0/0"][:], planes[1], strict=True)
    np.testing.assert_array_equal(group["2/0"][:], planes[2], strict=True)


def test_several_plates_are_groups_of_a_bioformats2raw_root(tmp_path: Path, opened) -> None:
    path = tmp_path / "plates.ome.tif"
    write_ome_tiff(path, _plate(_well(0, 0, 0), name="left") + _plate(_well(0, 0, 1), name="right"), 2)
    group = opened(path)
    assert "plate" not in group.attrs["ome"]
    assert [group[f"plate{k}"].attrs["ome"]["plate"]["name"] for k in (0, 1)] == ["left", "right"]
    assert group["OME"].attrs["ome"]["series"] == ["plate0/A/1/0", "plate1/A/1/0"]


def test_a_plate_that_names_no_served_image_is_no_plate(tmp_path: Path, opened) -> None:
    path = tmp_path / "plate.ome.tif"
    write_ome_tiff(path, _plate(_well(0, 0, 7)), 2)
    source = TiffAdapter().open(path, NoTileCache())
    try:
        assert source.plates == ()
        assert any("'Image:7' is not served" in w for w in source.warnings)
    finally:
        source.close()
    group = opened(path)
    assert group["OME"].attrs["ome"]["series"] == ["0", "1"]  # a multi-image file, as before


def test_the_original_ome_xml_is_kept_and_a_lone_field_is_not_the_root(tmp_path: Path, opened) -> None:
    path = tmp_path / "plate.ome.tif"
    write_ome_tiff(path, _plate(_well(0, 0, 0)), 1)
    group = opened(path)
    prototype = default_buffer_prototype()
    xml = sync(group.store.get("OME/METADATA.ome.xml", prototype))
    assert xml is not None and b'<Plate ID="Plate:0">' in xml.to_bytes()
    assert "multiscales" not in group.attrs["ome"]  # the root is the plate
    assert "multiscales" in group["A/1/0"].attrs["ome"]


def test_a_label_image_declared_for_a_field_is_served_inside_it(serve_dir) -> None:
    root, start = serve_dir
    planes = write_ome_tiff(root / "plate.ome.tif", _plate(_well(0, 0, 0), _well(0, 1, 1)), 2)
    cells = (planes[1] % 7).astype(np.uint16)
    tifffile.imwrite(root / "cells.tif", cells, photometric="minisblack")
    labels = [{"image": "data/plate.ome.tif/A/2/0", "source": "data/cells.tif", "name": "cells"}]
    with start(labels=labels) as url:
        field = zarr.open_group(f"{url}/data/plate.ome.tif/A/2/0", mode="r")
        assert field["labels"].attrs["ome"]["labels"] == ["cells"]
        np.testing.assert_array_equal(field["labels/cells/0"][:], cells, strict=True)
