"""Served plates against the OME-Zarr JSON schemas, ome-zarr-models and ome-zarr-py, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import zarr
from ome_zarr_models.v04.hcs import HCS as HCSV04
from ome_zarr_models.v04.well import Well as WellV04
from ome_zarr_models.v05.bioformats2raw import BioFormats2Raw
from ome_zarr_models.v05.hcs import HCS
from ome_zarr_models.v05.well import Well

from tests.ngff_schemas import kind_of, validate
from tests.plates.support import EXPECTED, Fixture, url_of
from tests.plates.writers import FIXTURES
from tests.viewers.conftest import require_module


def _groups(root: zarr.Group) -> Iterator[tuple[str, zarr.Group]]:
    """The root and every group below it (from its consolidated metadata)."""
    yield "", root
    for path, node in root.members(max_depth=None):
        if isinstance(node, zarr.Group):
            yield path, node


@pytest.mark.parametrize("name", FIXTURES)
def test_every_group_follows_the_ome_zarr_05_schemas(base: str, name: str) -> None:
    kinds: dict[str, int] = {}
    for path, group in _groups(zarr.open_group(url_of(base, name), mode="r", use_consolidated=True)):
        attributes = group.attrs.asdict()
        for kind in kind_of(attributes, "0.5"):
            validate(attributes, "0.5", kind)
            kinds[kind] = kinds.get(kind, 0) + 1
        assert attributes.get("ome", {"version": "0.5"})["version"] == "0.5", path
    assert kinds["plate"] == len(EXPECTED[name])
    assert kinds["well"] == sum(len(e.wells) for e in EXPECTED[name])
    assert kinds["bf2raw"] == 1 and kinds["ome"] == 1  # the root and the OME group


@pytest.mark.parametrize("name", FIXTURES)
def test_every_group_of_the_v2_view_follows_the_ome_zarr_04_schemas(base: str, name: str) -> None:
    root = zarr.open_group(url_of(base, name, v2=True), mode="r", zarr_format=2, use_consolidated=True)
    kinds: list[str] = []
    for _, group in _groups(root):
        attributes = group.attrs.asdict()
        for kind in kind_of(attributes, "0.4"):
            validate(attributes, "0.4", kind)
            kinds.append(kind)
    assert kinds.count("plate") == len(EXPECTED[name])
    assert kinds.count("well") == sum(len(e.wells) for e in EXPECTED[name])


@pytest.mark.parametrize("name", FIXTURES)
def test_ome_zarr_models_validates_plates_and_wells(
    base: str, fixtures: dict[str, Fixture], name: str
) -> None:
    fields = 0
    for expected in EXPECTED[name]:
        url = url_of(base, name, expected.group)
        hcs = HCS.from_zarr(zarr.open_group(url, mode="r"))
        assert hcs.n_wells == len(expected.wells)
        for well_path, acquisitions in expected.wells.items():
            well = Well.from_zarr(zarr.open_group(f"{url}/{well_path}", mode="r"))
            assert len(well.ome_attributes.well.images) == len(acquisitions)
            fields += len(acquisitions)
        v04 = HCSV04.from_zarr(
            zarr.open_group(url_of(base, name, expected.group, v2=True), mode="r", zarr_format=2)
        )
        assert len(list(v04.well_groups)) == len(expected.wells)
        well_path = next(iter(expected.wells))
        WellV04.from_zarr(
            zarr.open_group(
                url_of(base, name, f"{expected.group}/{well_path}".lstrip("/"), v2=True),
                mode="r",
                zarr_format=2,
            )
        )
    assert fields == len(fixtures[name].images)
    BioFormats2Raw.from_zarr(zarr.open_group(url_of(base, name), mode="r"))


def test_ome_zarr_py_reads_the_plate_as_its_grid_of_first_fields(
    base: str, fixtures: dict[str, Fixture]
) -> None:
    """ome-zarr-py stitches a plate: row by row, column by column, each well's first field
    (zeros where a place has no well)."""
    require_module("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Plate, Reader

    name = "one-screen-one-plate-four-wells"
    expected = EXPECTED[name][0]
    location = parse_url(url_of(base, name))
    assert location is not None and location.version == "0.5"
    node = next(n for n in Reader(location)() if n.load(Plate) is not None)
    stitched = np.asarray(node.data[0])
    group = zarr.open_group(url_of(base, name), mode="r")
    height, width = group["B/2/0/0"].shape
    want = np.zeros((len(expected.rows) * height, len(expected.columns) * width), np.uint8)
    for well in expected.wells:
        row, column = well.split("/")
        r, c = expected.rows.index(row), expected.columns.index(column)
        want[r * height : (r + 1) * height, c * width : (c + 1) * width] = group[f"{well}/0/0"][...]
    np.testing.assert_array_equal(stitched, want, strict=True)
    assert node.metadata["metadata"]["plate"]["wells"][0]["path"] == "B/2"


@pytest.mark.parametrize("well", ["B/2", "C/2"])
def test_ome_zarr_py_reads_a_well_as_its_grid_of_fields(base: str, well: str) -> None:
    """A well is an almost square grid of its fields: C/2's five fields are 2 x 3 (one empty)."""
    require_module("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr.reader import Well as WellSpec

    name = "one-screen-one-plate-four-wells"
    count = len(EXPECTED[name][0].wells[well])
    location = parse_url(url_of(base, name, well))
    assert location is not None
    node = next(n for n in Reader(location)() if n.load(WellSpec) is not None)
    grid = np.asarray(node.data[0])
    group = zarr.open_group(url_of(base, name, well), mode="r")
    height, width = group["0/0"].shape
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    want = np.zeros((rows * height, columns * width), np.uint8)
    for index in range(count):
        r, c = divmod(index, columns)
        want[r * height : (r + 1) * height, c * width : (c + 1) * width] = group[f"{index}/0"][...]
    np.testing.assert_array_equal(grid, want, strict=True)
