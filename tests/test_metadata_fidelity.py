"""Metadata carried from the sources into OME-Zarr: the 46 OME-XML documents of ome-types
(converted without a crash, valid, the invalid one reported), OME-TIFF, ImageJ and
BigDataViewer display settings, estimated windows, the original OME-XML of every OME-TIFF,
RO-Crates, and label declarations that do not fit."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tifffile
from ome_zarr_models.v05.image import ImageAttrs

from adapters.base import Axis, AxisName, Image
from adapters.tiff.adapter import ome_image_metadata
from adapters.tiff.ome_xml import OmeImage, parse_ome_xml
from gateway.config.settings import Settings
from gateway.demo import write_bdv
from gateway.levels import windows
from gateway.ngff import ome
from tests.ngff_schemas import validate
from tests.server import serve

ROOT = "lab"
OME_XML = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ome_types" / "xml"
XML_FILES = sorted(OME_XML.glob("*.ome.xml")) if OME_XML.is_dir() else []


class _Plane:
    """A level with a shape and nothing to read (conversion of metadata only)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.dtype = np.dtype("uint16")
        self.tile_shape = shape
        self.fill_value = 0

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        raise AssertionError("metadata only")


def _image_from_xml(ome_image: OmeImage) -> Image:
    """The image an OME-TIFF with this OME-XML Image would become (axes by size)."""
    sizes = dict(ome_image.sizes)
    sizes["c"] = max(sizes["c"], sum(c.samples_per_pixel for c in ome_image.channels))
    names: list[AxisName] = [n for n in ("t", "c", "z", "y", "x") if sizes[n] > 1 or n in "yx"]  # type: ignore[misc]
    meta = ome_image_metadata(ome_image)
    axes = tuple(Axis(n, None if n == "c" else meta.units.get(n)) for n in names)
    channels = meta.channels if len(meta.channels) == (sizes["c"] if "c" in names else 1) else ()
    return Image(
        name=meta.name or "image",
        axes=axes,
        levels=(_Plane(tuple(sizes[n] for n in names)),),
        scale=tuple(meta.scale.get(n, 1.0) for n in names),
        channels=channels,
    )


def test_all_46_documents_are_there() -> None:
    if not OME_XML.is_dir():
        pytest.skip(f"sample data folder {OME_XML} is missing")
    assert len(XML_FILES) == 46


@pytest.mark.parametrize("path", XML_FILES, ids=[p.name for p in XML_FILES])
def test_ome_xml_converts_to_valid_ome_zarr(path: Path) -> None:
    document = parse_ome_xml(path.read_bytes())
    assert document.images, path.name
    for ome_image in document.images:
        image = _image_from_xml(ome_image)
        attributes = ome.image_attributes(image, ["0"])
        validate(attributes, "0.5", "image")
        ImageAttrs.model_validate(attributes["ome"])
        axes = {a["name"]: a.get("unit") for a in attributes["ome"]["multiscales"][0]["axes"]}
        for name, size in ome_image.physical.items():
            if name in axes and size.unit is not None:
                assert axes[name] == size.unit
    if path.name == "bad.ome.xml":
        assert any("Channel ID 'InvalidName'" in w and "not valid OME-XML" in w for w in document.warnings)
    else:
        assert not any("not valid OME-XML" in w for w in document.warnings), document.warnings


def test_known_conversions() -> None:
    if not OME_XML.is_dir():
        pytest.skip(f"sample data folder {OME_XML} is missing")
    mmstack = parse_ome_xml((OME_XML / "MMStack.ome.xml").read_bytes()).images[0]
    meta = ome_image_metadata(mmstack)
    assert meta.scale == {"x": 2.0, "y": 2.0, "z": 1.75, "t": 1.0}
    assert meta.units == {"x": "micrometer", "y": "micrometer", "z": "micrometer", "t": "millisecond"}
    assert [c.label for c in meta.channels] == ["Cy5", "DAPI", "FITC"]
    units = parse_ome_xml((OME_XML / "instrument-units-alternate.ome.xml").read_bytes()).images[0]
    assert ome_image_metadata(units).units["x"] == "centimeter"


# -- over HTTP ---------------------------------------------------------------------------


def _ome_tiff(path: Path) -> np.ndarray:
    data = np.random.default_rng(1).integers(100, 3000, (2, 3, 40, 50), dtype=np.uint16)
    metadata = {
        "axes": "TCYX",
        "Name": "cells",
        "PhysicalSizeX": 120.0,
        "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": 0.12,
        "PhysicalSizeYUnit": "µm",
        "TimeIncrement": 2.5,
        "TimeIncrementUnit": "s",
        "Channel": {"Name": ["DAPI", "GFP", "mCherry"], "Color": [-16776961, 16711935, -1]},
    }
    tifffile.imwrite(path, data, ome=True, metadata=metadata, photometric="minisblack")
    return data


def _imagej_single(path: Path) -> None:
    data = np.random.default_rng(2).integers(0, 255, (40, 50), dtype=np.uint8)
    tifffile.imwrite(path, data, imagej=True, metadata={"min": 10.0, "max": 200.0})


def _bdv_with_settings(path: Path) -> None:
    write_bdv(path)
    path.with_name(f"{path.stem}.settings.xml").write_text(
        "<Settings><SetupAssignments><ConverterSetups>"
        "<ConverterSetup><id>0</id><min>90.0</min><max>2000.0</max><color>-16711936</color></ConverterSetup>"
        "<ConverterSetup><id>1</id><min>5.0</min><max>700.0</max><color>-65281</color></ConverterSetup>"
        "</ConverterSetups></SetupAssignments></Settings>"
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("metadata") / ROOT
    folder.mkdir()
    _ome_tiff(folder / "cells.ome.tif")
    _imagej_single(folder / "single.tif")
    _bdv_with_settings(folder / "bdv.xml")
    tifffile.imwrite(folder / "plain.tif", np.arange(30 * 40, dtype=np.int16).reshape(30, 40))
    tifffile.imwrite(folder / "other_shape.tif", np.zeros((31, 40), np.uint16))
    tifffile.imwrite(folder / "float_labels.tif", np.zeros((30, 40), np.float32))
    return folder


@pytest.fixture(scope="module")
def base(root: Path) -> Iterator[str]:
    settings = Settings.from_mapping(
        {
            "roots": {ROOT: str(root)},
            "rocrate": [
                {
                    "dataset": f"{ROOT}/cells.ome.tif",
                    "name": "Cells",
                    "description": "HeLa cells, three channels",
                    "license": "https://creativecommons.org/licenses/by/4.0/",
                    "organism": "NCBI:txid9606",
                    "imaging_method": "obo:FBbi_00000246",
                }
            ],
        }
    )
    with serve(settings) as url:
        yield url


def _attrs(base: str, path: str) -> dict[str, object]:
    response = httpx.get(f"{base}/{ROOT}/{path}/zarr.json")
    assert response.status_code == 200, response.text
    ome_attrs: dict[str, object] = response.json()["attributes"]["ome"]
    return ome_attrs


def test_ome_tiff_units_scale_time_channels(base: str) -> None:
    attrs = _attrs(base, "cells.ome.tif")
    multiscale = attrs["multiscales"][0]  # type: ignore[index]
    assert multiscale["name"] == "cells"
    assert {a["name"]: a.get("unit") for a in multiscale["axes"]} == {
        "t": "second",
        "c": None,
        "y": "micrometer",
        "x": "nanometer",
    }
    assert multiscale["datasets"][0]["coordinateTransformations"][0]["scale"] == [2.5, 1.0, 0.12, 120.0]
    channels = attrs["omero"]["channels"]  # type: ignore[index]
    assert [c["label"] for c in channels] == ["DAPI", "GFP", "mCherry"]
    # OME's signed RGBA integers: -16776961 = 0xFF0000FF, 16711935 = 0x00FF00FF, -1 = white
    assert [c["color"] for c in channels] == ["FF0000", "00FF00", "FFFFFF"]
    assert all(c["active"] is True for c in channels)


def test_windows_are_estimated_from_one_plane(base: str, root: Path) -> None:
    data = tifffile.imread(root / "cells.ome.tif")
    channels = _attrs(base, "cells.ome.tif")["omero"]["channels"]  # type: ignore[index]
    for index, channel in enumerate(channels):
        low, high = np.percentile(data[0, index], [windows.LOW_PERCENTILE, windows.HIGH_PERCENTILE])
        assert channel["window"] == {"min": 0, "max": 65535, "start": np.floor(low), "end": np.ceil(high)}


def test_imagej_display_range_of_one_channel(base: str) -> None:
    (channel,) = _attrs(base, "single.tif")["omero"]["channels"]  # type: ignore[index]
    assert channel["window"] == {"min": 0, "max": 255, "start": 10, "end": 200}


def test_bigdataviewer_names_colours_and_ranges(base: str) -> None:
    channels = _attrs(base, "bdv.xml")["omero"]["channels"]  # type: ignore[index]
    assert [c["label"] for c in channels] == ["DAPI", "GFP"]
    assert [c["color"] for c in channels] == ["00FF00", "FF00FF"]
    assert [(c["window"]["start"], c["window"]["end"]) for c in channels] == [(90, 2000), (5, 700)]


def test_every_ome_tiff_serves_its_ome_xml(base: str, root: Path) -> None:
    with tifffile.TiffFile(root / "cells.ome.tif") as tif:
        original = tif.ome_metadata
    response = httpx.get(f"{base}/{ROOT}/cells.ome.tif/OME/METADATA.ome.xml")
    assert response.status_code == 200
    assert response.text == original
    # a single image stays an image group at the root (what viewers are pointed at); its
    # OME group is a plain group holding the XML
    assert "multiscales" in _attrs(base, "cells.ome.tif")
    group = httpx.get(f"{base}/{ROOT}/cells.ome.tif/OME/zarr.json").json()
    assert group.pop("consolidated_metadata")["metadata"] == {}  # no nodes below it
    assert group == {"zarr_format": 3, "node_type": "group", "attributes": {}}
    assert httpx.get(f"{base}/{ROOT}/plain.tif/OME/METADATA.ome.xml").status_code == 404


def test_rocrate_beside_the_root_group(base: str) -> None:
    crate = httpx.get(f"{base}/{ROOT}/cells.ome.tif/ro-crate-metadata.json").json()
    graph = {entity["@id"]: entity for entity in crate["@graph"]}
    assert graph["ro-crate-metadata.json"]["about"] == {"@id": "./"}
    dataset = graph["./"]
    assert dataset["@type"] == "Dataset"
    assert dataset["name"] == "Cells" and dataset["description"] == "HeLa cells, three channels"
    assert dataset["license"] == "https://creativecommons.org/licenses/by/4.0/"
    acquisition = graph[dataset["resultOf"]["@id"]]
    assert acquisition["fbbi_id"] == {"@id": "obo:FBbi_00000246"}
    specimen = graph[acquisition["specimen"]["@id"]]
    assert graph[specimen["biosample"]["@id"]]["organism_classification"] == {"@id": "NCBI:txid9606"}
    assert httpx.get(f"{base}/v2/{ROOT}/cells.ome.tif/ro-crate-metadata.json").json() == crate
    assert httpx.get(f"{base}/{ROOT}/plain.tif/ro-crate-metadata.json").status_code == 404


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("other_shape.tif", "shape (31, 40) differs"),
        ("float_labels.tif", "not an integer type"),
        ("absent.tif", "not a file"),
    ],
)
def test_a_label_that_does_not_fit_is_logged_and_left_out(
    root: Path, caplog: pytest.LogCaptureFixture, source: str, reason: str
) -> None:
    settings = Settings.from_mapping(
        {
            "roots": {ROOT: str(root)},
            "labels": [{"image": f"{ROOT}/plain.tif", "source": f"{ROOT}/{source}", "name": "cells"}],
        }
    )
    with caplog.at_level(logging.ERROR), serve(settings) as url:
        response = httpx.get(f"{url}/{ROOT}/plain.tif/zarr.json")
        assert response.status_code == 200  # the image is served...
        assert httpx.get(f"{url}/{ROOT}/plain.tif/labels/zarr.json").status_code == 404  # ...without it
    assert any(reason in record.getMessage() and record.levelno == logging.ERROR for record in caplog.records)


def test_an_invalid_ome_xml_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if not OME_XML.is_dir():
        pytest.skip(f"sample data folder {OME_XML} is missing")
    bad = (OME_XML / "bad.ome.xml").read_text().replace("µm", "um")  # TIFF strings are ASCII
    tifffile.imwrite(
        tmp_path / "bad.ome.tif",
        np.zeros((3, 16, 16), np.uint16),
        description=bad,
        metadata=None,
        photometric="minisblack",
    )
    with (
        caplog.at_level(logging.WARNING),
        serve(Settings.from_mapping({"roots": {ROOT: str(tmp_path)}})) as url,
    ):
        httpx.get(f"{url}/{ROOT}/bad.ome.tif/zarr.json")
    assert any(
        "'InvalidName'" in r.getMessage() and "not valid OME-XML" in r.getMessage() for r in caplog.records
    )
