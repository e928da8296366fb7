"""SVS and ImageJ metadata carried as OME-XML at ``OME/METADATA.ome.xml`` (issue 13,
fidelity), the way bioformats2raw carries it: one ``Image`` per served image group,
magnification as the objective's, MPP as the physical pixel size, the scan date and stage
position, every header field as ``OriginalMetadata``. Checked against the OME schema,
against the files' own headers and, for the CMU-1 slide, against the OME-XML Bio-Formats
itself wrote for it (``bioformats_derived``)."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import ome_types
import pytest
import tifffile
from ome_types import model

from adapters.tiff import ome_writer
from gateway.config.settings import Settings
from tests.server import serve
from tests.svs import write_svs

ROOT = "lab"
KEY = "OME/METADATA.ome.xml"
HUGE_INFO = "x" * 100_000


def _original(ome: model.OME) -> dict[str, str]:
    """Bio-Formats' original metadata: ``OriginalMetadata`` key/value XML annotations."""
    found = {}
    for annotation in ome.structured_annotations.xml_annotations:
        assert annotation.namespace == "openmicroscopy.org/OriginalMetadata"
        (element,) = annotation.value.any_elements
        key, value = element.children  # type: ignore[attr-defined]
        found[key.text] = value.text or ""
    return found


def _imagej(path: Path) -> np.ndarray:
    data = np.random.default_rng(11).integers(0, 4000, (3, 4, 2, 20, 24), dtype=np.uint16)
    luts = [np.zeros((3, 256), np.uint8) for _ in range(2)]
    luts[0][1] = np.arange(256)  # green
    luts[1][0] = np.arange(256)  # red...
    luts[1][2] = np.arange(256)  # ...and blue: magenta
    metadata = {
        "axes": "TZCYX",
        "spacing": 0.75,
        "unit": "um",
        "finterval": 30.0,
        "Ranges": (100.0, 3000.0, 50.0, 2500.0),
        "LUTs": luts,
        "Info": "Objective: 40x\x00\x07 oil",
        "Properties": {"Experimenter": "A. B."},
    }
    tifffile.imwrite(path, data, imagej=True, resolution=(4.0, 4.0), metadata=metadata)
    return data


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("omexml") / ROOT
    folder.mkdir()
    write_svs(folder / "slide.svs", mpp="0.3", fields="|Hostile = a\x01b<c>&d|AppMag = 40")
    _imagej(folder / "hyper.tif")
    tifffile.imwrite(
        folder / "huge_info.tif",
        np.zeros((5, 8, 8), np.uint8),
        imagej=True,
        metadata={"axes": "ZYX", "Info": HUGE_INFO, "Properties": {f"k{i}": str(i) for i in range(5000)}},
    )
    # a 64-bit integer image with an ImageJ header: OME has no such pixel type
    tifffile.imwrite(
        folder / "int64.tif",
        np.zeros((3, 8, 8), np.int64),
        photometric="minisblack",
        metadata={},
        description="ImageJ=1.54f\n",
    )
    tifffile.imwrite(folder / "plain.tif", np.zeros((8, 8), np.uint8))
    return folder


@pytest.fixture(scope="module")
def base(root: Path) -> Iterator[str]:
    with serve(Settings.from_mapping({"roots": {ROOT: str(root)}})) as url:
        yield url


def _xml(base: str, dataset: str) -> str:
    response = httpx.get(f"{base}/{ROOT}/{dataset}/{KEY}")
    assert response.status_code == 200, response.text
    return response.text


@pytest.mark.parametrize("dataset", ["slide.svs", "hyper.tif", "huge_info.tif"])
def test_written_ome_xml_is_valid_against_the_ome_schema(base: str, dataset: str) -> None:
    ome_types.validate_xml(_xml(base, dataset))


def test_svs_images_pair_with_the_series_groups(base: str) -> None:
    ome = ome_types.from_xml(_xml(base, "slide.svs"))
    series = httpx.get(f"{base}/{ROOT}/slide.svs/OME/zarr.json").json()["attributes"]["ome"]["series"]
    assert series == ["0", "1", "2", "3"]
    assert [image.name for image in ome.images] == ["Baseline", "Thumbnail", "Label", "Macro"]
    for index, image in enumerate(ome.images):
        shape = httpx.get(f"{base}/{ROOT}/slide.svs/{index}/0/zarr.json").json()["shape"]
        pixels = image.pixels
        assert [pixels.size_c, pixels.size_y, pixels.size_x] == shape
        assert pixels.metadata_only is not None
        assert [c.samples_per_pixel for c in pixels.channels] == [3]  # one RGB channel, as Bio-Formats


def test_svs_fields_go_where_bio_formats_puts_them(base: str) -> None:
    ome = ome_types.from_xml(_xml(base, "slide.svs"))
    baseline, thumbnail, label, _ = ome.images
    assert ome.instruments[0].objectives[0].nominal_magnification == 40.0  # AppMag
    assert baseline.instrument_ref is not None and baseline.objective_settings is not None
    assert (baseline.pixels.physical_size_x, baseline.pixels.physical_size_y) == (0.3, 0.3)  # MPP
    assert baseline.pixels.physical_size_x_unit == model.UnitsLength.MICROMETER
    assert thumbnail.pixels.physical_size_x == pytest.approx(1.2)  # as served: MPP x 4
    assert label.pixels.physical_size_x is None and label.instrument_ref is None
    assert baseline.acquisition_date == dt.datetime(2021, 3, 14, 15, 9, 26)  # Date, Time
    (plane,) = baseline.pixels.planes
    assert (plane.position_x, plane.position_y) == (10.5, 20.25)
    assert plane.position_x_unit == model.UnitsLength.MILLIMETER


def test_svs_original_metadata_is_every_field_as_written(base: str, root: Path) -> None:
    original = _original(ome_types.from_xml(_xml(base, "slide.svs")))
    with tifffile.TiffFile(root / "slide.svs") as tif:
        description = tif.pages[0].description
    for item in description.split("|")[1:]:
        key, _, value = item.partition("=")
        want = value.strip().replace("\x01", "")  # XML 1.0 cannot hold U+0001
        assert original[f"Series 0 {key.strip()}"] == want
    assert original["Series 0 Hostile"] == "ab<c>&d"
    assert original["Series 2 Header"] == "Aperio Image Library vTest\nlabel 80x100"


def test_the_real_slide_agrees_with_bio_formats(shared_data: Path, tmp_path: Path) -> None:
    """CMU-1-Small-Region.svs, and the OME-XML Bio-Formats 7.3.1 wrote converting it."""
    shutil.copy(shared_data / "openslide_cmu1_small" / "CMU-1-Small-Region.svs", tmp_path / "cmu.svs")
    with tifffile.TiffFile(
        shared_data / "bioformats_derived" / "CMU-1-Small-Region.pyramid-lzw.ome.tif"
    ) as tif:
        theirs = ome_types.from_xml(tif.ome_metadata)
    with serve(Settings.from_mapping({"roots": {ROOT: str(tmp_path)}})) as url:
        text = _xml(url, "cmu.svs")
    ome_types.validate_xml(text)
    ours = ome_types.from_xml(text)
    mine, bf = ours.images[0], theirs.images[0]
    assert mine.acquisition_date == bf.acquisition_date
    assert ours.instruments[0].objectives[0].nominal_magnification == 20.0
    assert theirs.instruments[0].objectives[0].nominal_magnification == 20.0
    for field in ("size_x", "size_y", "size_c", "physical_size_x", "physical_size_y", "physical_size_x_unit"):
        assert getattr(mine.pixels, field) == getattr(bf.pixels, field), field
    for field in ("position_x", "position_x_unit", "position_y", "position_y_unit"):
        assert getattr(mine.pixels.planes[0], field) == getattr(bf.pixels.planes[0], field), field
    ours_original, theirs_original = _original(ours), _original(theirs)
    shared = {k for k in theirs_original if k.startswith("Series 0 ") and k in ours_original}
    assert {"Series 0 AppMag", "Series 0 MPP", "Series 0 ScanScope ID", "Series 0 Focus Offset"} <= shared
    assert {k: ours_original[k] for k in shared} == {k: theirs_original[k] for k in shared}


def test_imagej_calibration_and_channels(base: str, root: Path) -> None:
    ome = ome_types.from_xml(_xml(base, "hyper.tif"))
    (image,) = ome.images
    pixels = image.pixels
    assert (pixels.size_t, pixels.size_z, pixels.size_c, pixels.size_y, pixels.size_x) == (3, 4, 2, 20, 24)
    assert pixels.type == model.PixelType.UINT16
    assert (pixels.physical_size_x, pixels.physical_size_z) == (0.25, 0.75)  # 1/resolution, spacing
    assert pixels.physical_size_z_unit == model.UnitsLength.MICROMETER
    assert (pixels.time_increment, pixels.time_increment_unit) == (30.0, model.UnitsTime.SECOND)
    colours = [c.color.as_hex(format="long").upper() for c in pixels.channels]  # type: ignore[union-attr]
    assert colours == ["#00FF00", "#FF00FF"]  # the LUTs' colours, as served in omero
    served = httpx.get(f"{base}/{ROOT}/hyper.tif/zarr.json").json()["attributes"]["ome"]["omero"]["channels"]
    assert [c["color"] for c in served] == ["00FF00", "FF00FF"]


def test_imagej_header_is_original_metadata(base: str, root: Path) -> None:
    original = _original(ome_types.from_xml(_xml(base, "hyper.tif")))
    with tifffile.TiffFile(root / "hyper.tif") as tif:
        header = tif.imagej_metadata
    assert header is not None
    assert original["spacing"] == "0.75" and original["finterval"] == "30.0" and original["unit"] == "um"
    assert original["Ranges"] == "100.0, 3000.0, 50.0, 2500.0"
    assert original["Info"] == "Objective: 40x oil"  # NUL and BEL are not XML
    assert "LUTs" not in original  # arrays are not text
    assert original["Experimenter"] == "A. B."  # ImageJ properties are entries of their own


def test_huge_and_numerous_values_are_left_out(base: str) -> None:
    text = _xml(base, "huge_info.tif")
    original = _original(ome_types.from_xml(text))
    assert "Info" not in original  # 100 kB: left out, not cut
    assert len(original) == ome_writer.MAX_ENTRIES  # 5,000 properties: the first 256 entries
    assert len(text) < 200_000


def test_written_ome_xml_is_the_same_at_every_opening(root: Path) -> None:
    """Its ETag is a digest of its bytes: no UUID, no time of writing."""
    texts = []
    for _ in range(2):
        with serve(Settings.from_mapping({"roots": {ROOT: str(root)}})) as url:
            texts.append(_xml(url, "slide.svs"))
    assert texts[0] == texts[1]


def test_what_ome_cannot_describe_is_served_without_ome_xml(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), serve(Settings.from_mapping({"roots": {ROOT: str(root)}})) as url:
        assert httpx.get(f"{url}/{ROOT}/int64.tif/zarr.json").status_code == 200
        assert httpx.get(f"{url}/{ROOT}/int64.tif/{KEY}").status_code == 404
    assert any("no OME-XML written" in r.getMessage() and "int64" in r.getMessage() for r in caplog.records)


def test_plain_tiffs_still_have_no_ome_xml(base: str) -> None:
    assert httpx.get(f"{base}/{ROOT}/plain.tif/{KEY}").status_code == 404
