"""The plate fixtures served over real HTTP: plate → wells → fields, as the OME-XML says,
every field bit-exact with tifffile's series; consolidated and not, v3 and the v2 view.

The fixtures are the plate OME-XML documents of the shared data, given pixels
(``tests/plates/writers.py``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest
import requests
import tifffile
import zarr

from gateway.config.settings import Settings
from tests.plates.support import EXPECTED, ROOT, Expected, Fixture, url_of
from tests.plates.writers import FIXTURES, PLATE_XML
from tests.server import serve


def open_plate(base: str, name: str, expected: Expected, **options: Any) -> zarr.Group:
    return zarr.open_group(url_of(base, name, expected.group), mode="r", **options)


def ome_wells(name: str) -> list[list[tuple[int, int, list[str]]]]:
    """Per Plate element of the document: each Well's Row, Column and ImageRefs (read here
    with ElementTree, independently of the gateway's reader)."""

    def local(element: ET.Element) -> str:
        return element.tag.rsplit("}", 1)[-1]

    plates = []
    for plate in (e for e in ET.parse(PLATE_XML / f"{name}.ome.xml").getroot() if local(e) == "Plate"):
        wells = []
        for well in (e for e in plate if local(e) == "Well"):
            refs = [
                r.attrib["ID"] for s in well if local(s) == "WellSample" for r in s if local(r) == "ImageRef"
            ]
            wells.append((int(well.attrib["Row"]), int(well.attrib["Column"]), refs))
        plates.append(wells)
    return plates


def as_served(data: np.ndarray, axes: str, names: list[str]) -> np.ndarray:
    """``data`` (dimensions ``axes``, tifffile letters) in the served ``names`` order,
    dimensions of size 1 the gateway drops dropped."""
    kept = [i for i, axis in enumerate(axes) if axis.lower() in names]
    squeezed = data.transpose([*kept, *(i for i in range(data.ndim) if i not in kept)])
    squeezed = squeezed.reshape(squeezed.shape[: len(kept)])
    order = [axes[i].lower() for i in kept]
    return squeezed.transpose([order.index(n) for n in names])


@pytest.mark.parametrize("name", FIXTURES)
def test_plate_structure_is_the_ome_xmls(base: str, name: str) -> None:
    for expected in EXPECTED[name]:
        plate = open_plate(base, name, expected, use_consolidated=False).attrs["ome"]["plate"]
        assert plate["name"] == expected.name
        assert tuple(r["name"] for r in plate["rows"]) == expected.rows
        assert tuple(c["name"] for c in plate["columns"]) == expected.columns
        assert {w["path"]: None for w in plate["wells"]}.keys() == expected.wells.keys()
        assert plate["field_count"] == max(len(f) for f in expected.wells.values())
        assert plate["version"] == "0.5"


@pytest.mark.parametrize("name", FIXTURES)
def test_wells_sit_where_the_ome_xml_puts_them_with_its_fields(base: str, name: str) -> None:
    for expected, ome_plate in zip(EXPECTED[name], ome_wells(name), strict=True):
        group = open_plate(base, name, expected, use_consolidated=False)
        plate = group.attrs["ome"]["plate"]
        served = {(w["rowIndex"], w["columnIndex"]): w["path"] for w in plate["wells"]}
        assert sorted(served) == sorted((row, column) for row, column, _ in ome_plate)
        for row, column, refs in ome_plate:
            path = served[(row, column)]
            assert path == f"{expected.rows[row]}/{expected.columns[column]}"
            images = group[path].attrs["ome"]["well"]["images"]
            assert [i["path"] for i in images] == [str(k) for k in range(len(refs))]
            assert [i.get("acquisition") for i in images] == expected.wells[path]


@pytest.mark.parametrize("consolidated", [True, False], ids=["consolidated", "one-by-one"])
@pytest.mark.parametrize("name", FIXTURES)
def test_every_field_is_bit_exact_with_tifffiles_series(
    base: str, fixtures: dict[str, Fixture], name: str, consolidated: bool
) -> None:
    fixture = fixtures[name]
    by_id = {image.id: image for image in fixture.images}
    fields = 0
    for expected, ome_plate in zip(EXPECTED[name], ome_wells(name), strict=True):
        group = open_plate(base, name, expected, use_consolidated=consolidated)
        for row, column, refs in ome_plate:
            for index, ref in enumerate(refs):
                field = group[f"{expected.rows[row]}/{expected.columns[column]}/{index}"]
                array = field["0"]
                served = array[...]
                names = list(array.metadata.dimension_names)
                written = by_id[ref]
                np.testing.assert_array_equal(
                    served, as_served(written.data, written.axes, names), strict=True
                )
                tiff = fixture.series_of(ref)
                assert served.dtype == tiff.dtype and served.size == tiff.size
                np.testing.assert_array_equal(served.ravel(), tiff.ravel(), strict=True)
                assert field.attrs["ome"]["multiscales"][0]["name"] is not None
                fields += 1
    assert fields == len(fixture.images)  # every image of these documents is on a plate


def test_the_ome_group_lists_every_field_in_image_order_and_keeps_the_xml(
    base: str, fixtures: dict[str, Fixture]
) -> None:
    name = "two-screens-two-plates-four-wells"
    series = zarr.open_group(url_of(base, name, "OME"), mode="r").attrs["ome"]["series"]
    expected = []
    for plate, wells in zip(("plate0", "plate1"), ome_wells(name), strict=True):
        for row, column, refs in wells:
            expected += [(ref, f"{plate}/{'ABC'[row]}/{column + 1}/{k}") for k, ref in enumerate(refs)]
    order = [image.id for image in fixtures[name].images]
    assert series == [path for _, path in sorted(expected, key=lambda e: order.index(e[0]))]
    xml = requests.get(url_of(base, name, "OME/METADATA.ome.xml"), timeout=30)
    with tifffile.TiffFile(fixtures[name].path) as tif:
        assert xml.status_code == 200 and xml.text == tif.ome_metadata


def test_a_multi_plate_root_is_a_bioformats2raw_collection(base: str) -> None:
    root = zarr.open_group(url_of(base, "two-screens-two-plates-four-wells"), mode="r")
    assert root.attrs["ome"] == {"version": "0.5", "bioformats2raw.layout": 3}
    single = zarr.open_group(url_of(base, "one-screen-one-plate-four-wells"), mode="r").attrs["ome"]
    assert single["bioformats2raw.layout"] == 3 and "plate" in single


def test_acquisitions_carry_the_ome_xml_times_in_epoch_seconds(base: str) -> None:
    expected = EXPECTED["one-screen-one-plate-four-wells"][0]
    plate = open_plate(base, "one-screen-one-plate-four-wells", expected).attrs["ome"]["plate"]
    assert plate["acquisitions"] == [
        {"id": 0, "starttime": 1266929370, "endtime": 1266929430},  # 2010-02-23T12:49:30 ... 12:50:30
        {"id": 1, "starttime": 1266929430, "endtime": 1266929489},
    ]
    fake = EXPECTED["fake-plate-rows-2"][0]
    (acquisition,) = open_plate(base, "fake-plate-rows-2", fake).attrs["ome"]["plate"]["acquisitions"]
    assert acquisition == {
        "id": 0,
        "name": "PlateAcquisition Name 0",
        "description": "PlateAcquisition 0 of 1",
        "starttime": 1146766431,
        "endtime": 1146766431,
    }


@pytest.mark.parametrize("name", FIXTURES)
def test_the_plate_roots_metadata_holds_every_well_field_and_array(base: str, name: str) -> None:
    for expected in EXPECTED[name]:
        document = requests.get(
            url_of(base, name, f"{expected.group}/zarr.json".lstrip("/")), timeout=30
        ).json()
        members = document["consolidated_metadata"]["metadata"]
        for well, acquisitions in expected.wells.items():
            assert "well" in members[well]["attributes"]["ome"]
            for index in range(len(acquisitions)):
                assert "multiscales" in members[f"{well}/{index}"]["attributes"]["ome"]
                assert members[f"{well}/{index}/0"]["node_type"] == "array"


def test_a_client_opens_a_whole_plate_in_one_request(fixtures: dict[str, Fixture]) -> None:
    """Opened with its consolidated metadata, the plate's wells and fields are all known:
    walking them after the server is gone needs nothing more from it."""
    name = "one-screen-one-plate-four-wells"
    settings = Settings.from_mapping({"roots": {ROOT: str(fixtures[name].path.parent)}})
    with serve(settings) as url:
        plate = zarr.open_group(url_of(url, name), mode="r", use_consolidated=True)
    wells = {
        path: group for path, group in plate.members(max_depth=None) if "well" in group.attrs.get("ome", {})
    }
    assert sorted(wells) == sorted(EXPECTED[name][0].wells)
    fields = [
        path for path, node in plate.members(max_depth=None) if "multiscales" in node.attrs.get("ome", {})
    ]
    assert len(fields) == len(fixtures[name].images)


@pytest.mark.parametrize("name", FIXTURES)
def test_the_v2_view_is_the_same_plate_in_ome_zarr_04(
    base: str, fixtures: dict[str, Fixture], name: str
) -> None:
    for expected in EXPECTED[name]:
        group = zarr.open_group(url_of(base, name, expected.group, v2=True), mode="r", zarr_format=2)
        plate = group.attrs["plate"]
        assert plate["version"] == "0.4"
        assert tuple(r["name"] for r in plate["rows"]) == expected.rows
        well, acquisitions = next(iter(expected.wells.items()))
        assert group[well].attrs["well"]["version"] == "0.4"
        assert len(group[well].attrs["well"]["images"]) == len(acquisitions)
        served = group[f"{well}/0/0"][...]
        v3 = open_plate(base, name, expected)[f"{well}/0/0"][...]
        np.testing.assert_array_equal(served, v3, strict=True)
