"""What TIFF files mean, served as they mean it (issue 13, fidelity): default channel
colours (red, green, blue for 3-channel uint8 data and for the samples of RGB pages, as
bioformats2raw shows them), stack axes from the configuration (``[tiff.axes]``) and from
the file's own ImageJ or OME metadata before any guess, and the physical scale of an SVS
slide's thumbnail from its size ratio to the baseline."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tifffile
import zarr
from pydantic import ValidationError

from gateway.config.settings import Settings
from gateway.ngff import ome
from tests.server import serve
from tests.svs import write_svs

ROOT = "lab"
PALETTE = list(ome.DEFAULT_COLORS[:3])
RGB = ["FF0000", "00FF00", "0000FF"]


def _ome_xml(pixels: str, name: str = "image") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        f'<Image ID="Image:0" Name="{name}"><Pixels ID="Pixels:0" {pixels}</Pixels></Image></OME>'
    )


def _stack(pages: int = 51) -> np.ndarray:
    return np.random.default_rng(pages).integers(0, 4000, (pages, 24, 20), dtype=np.uint16)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fidelity") / ROOT
    folder.mkdir()
    rng = np.random.default_rng(3)
    # colours: 3 uint8 channels (a brightfield slide saved as channels), 3 and 4 others
    for name, count, dtype in (
        ("brightfield", 3, np.uint8),
        ("fluo16", 3, np.uint16),
        ("four8", 4, np.uint8),
    ):
        data = rng.integers(0, 200, (count, 32, 40)).astype(dtype)
        tifffile.imwrite(folder / f"{name}.ome.tif", data, ome=True, metadata={"axes": "CYX"})
    # RGB pages of 16 bits whose OME-XML lists three channels without colours
    pixels = (
        'DimensionOrder="XYCZT" Type="uint16" SizeX="20" SizeY="16" SizeZ="1" SizeC="3" SizeT="1">'
        + "".join(f'<Channel ID="Channel:0:{c}" SamplesPerPixel="1"/>' for c in range(3))
        + '<TiffData IFD="0" PlaneCount="1"/>'
    )
    rgb16 = rng.integers(0, 60000, (16, 20, 3)).astype(np.uint16)
    tifffile.imwrite(
        folder / "rgb16.ome.tif", rgb16, photometric="rgb", description=_ome_xml(pixels), metadata=None
    )
    # axes: 51 pages that tifffile calls Q ("shaped"), the ImageJ header saying frames
    description = "ImageJ=1.54f\nimages=51\nframes=51\nfinterval=2.5\nunit=micron\n"
    tifffile.imwrite(folder / "frames.tif", _stack(), metadata={}, description=description)
    # the same, the header's counts accounting for other pages than the file holds
    wrong = "ImageJ=1.54f\nimages=50\nframes=50\n"
    tifffile.imwrite(folder / "frames_wrong.tif", _stack(), metadata={}, description=wrong)
    absurd = "ImageJ=1.54f\nimages=51\nframes=99999999999999999999999\nslices=-3\nchannels=x\n"
    tifffile.imwrite(folder / "frames_absurd.tif", _stack(), metadata={}, description=absurd)
    # an OME-XML whose planes tifffile cannot map (no TiffData): it serves the pages as I
    pixels = (
        'DimensionOrder="XYZCT" Type="uint16" SizeX="20" SizeY="24" SizeZ="1" SizeC="1" SizeT="6" '
        'TimeIncrement="4.0" TimeIncrementUnit="s"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
    )
    tifffile.imwrite(folder / "no_tiffdata.ome.tif", _stack(6), description=_ome_xml(pixels), metadata=None)
    # plain stacks, named by the configuration or guessed
    for name in ("timelapse.tif", "guessed.tif", "misfit.tif"):
        tifffile.imwrite(folder / name, _stack())
    rgb_series = rng.integers(0, 255, (5, 16, 20, 3)).astype(np.uint8)
    tifffile.imwrite(folder / "rgb_series.tif", rgb_series, photometric="rgb")
    write_svs(folder / "slide.svs")
    return folder


TIFF_AXES = {
    "*/lab/timelapse.tif": "tyx",
    "misfit.tif": "tzyx",  # one stack dimension, two letters for it: does not fit
    "rgb_series.tif": "tyxc",
    "frames.tif": "zyx",  # the configuration wins over the file
}


@pytest.fixture(scope="module")
def base(root: Path) -> Iterator[str]:
    with serve(Settings.from_mapping({"roots": {ROOT: str(root)}})) as url:
        yield url


@pytest.fixture(scope="module")
def configured(root: Path) -> Iterator[str]:
    with serve(Settings.from_mapping({"roots": {ROOT: str(root)}, "tiff": {"axes": TIFF_AXES}})) as url:
        yield url


def _ome(base: str, path: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/{ROOT}/{path}/zarr.json")
    assert response.status_code == 200, response.text
    attributes: dict[str, Any] = response.json()["attributes"]["ome"]
    return attributes


def _axes(base: str, path: str) -> list[str]:
    return [axis["name"] for axis in _ome(base, path)["multiscales"][0]["axes"]]


def _scale(base: str, path: str, level: int = 0) -> list[float]:
    datasets = _ome(base, path)["multiscales"][0]["datasets"]
    scale: list[float] = datasets[level]["coordinateTransformations"][0]["scale"]
    return scale


def _colours(base: str, path: str) -> list[str]:
    return [channel["color"] for channel in _ome(base, path)["omero"]["channels"]]


# -- channel colours ---------------------------------------------------------------------


def test_three_uint8_channels_without_colours_are_red_green_blue(base: str) -> None:
    assert _colours(base, "brightfield.ome.tif") == RGB


@pytest.mark.parametrize("path", ["fluo16.ome.tif", "four8.ome.tif"])
def test_other_channels_without_colours_keep_the_palette(base: str, path: str) -> None:
    colours = _colours(base, path)
    assert colours[:3] == PALETTE
    assert len(set(colours)) == len(colours)


def test_the_samples_of_rgb_pages_are_red_green_blue_whatever_their_type(base: str) -> None:
    assert _colours(base, "rgb16.ome.tif") == RGB


def test_the_default_colour_rule() -> None:
    dtype = np.dtype(np.uint8)
    assert [ome.default_color(i, 3, dtype) for i in range(3)] == RGB
    assert [ome.default_color(i, 3, np.dtype(np.int8)) for i in range(3)] == PALETTE
    assert ome.default_color(0, 1, dtype) == "FFFFFF"


# -- stack axes --------------------------------------------------------------------------


def test_imagej_frames_name_a_stack_tifffile_calls_unknown(base: str, root: Path) -> None:
    with tifffile.TiffFile(root / "frames.tif") as tif:  # the premise: tifffile cannot say
        assert tif.series[0].axes == "QYX" and tif.imagej_metadata is not None
    assert _axes(base, "frames.tif") == ["t", "y", "x"]
    assert _scale(base, "frames.tif")[0] == 2.5  # finterval now has its axis
    time_axis = _ome(base, "frames.tif")["multiscales"][0]["axes"][0]
    assert time_axis == {"name": "t", "type": "time", "unit": "second"}


@pytest.mark.parametrize("path", ["frames_wrong.tif", "frames_absurd.tif"])
def test_imagej_counts_that_miss_the_pages_are_not_believed(base: str, path: str) -> None:
    assert _axes(base, path) == ["z", "y", "x"]
    data = httpx.get(f"{base}/{ROOT}/{path}/0/zarr.json").json()
    assert data["shape"] == [51, 24, 20]


def test_an_ome_xml_tifffile_could_not_map_still_names_the_stack(base: str, root: Path) -> None:
    with tifffile.TiffFile(root / "no_tiffdata.ome.tif") as tif:
        assert tif.series[0].axes == "IYX"
    assert _axes(base, "no_tiffdata.ome.tif") == ["t", "y", "x"]
    assert _scale(base, "no_tiffdata.ome.tif")[0] == 4.0


def test_a_stack_without_metadata_is_still_guessed_as_z(base: str) -> None:
    assert _axes(base, "guessed.tif") == ["z", "y", "x"]


def test_configured_axes_name_the_stack(configured: str, root: Path) -> None:
    assert _axes(configured, "timelapse.tif") == ["t", "y", "x"]
    assert _axes(configured, "rgb_series.tif") == ["t", "c", "y", "x"]
    meta = httpx.get(f"{configured}/{ROOT}/timelapse.tif/0/zarr.json").json()
    assert meta["shape"] == [51, 24, 20] and meta["dimension_names"] == ["t", "y", "x"]


def test_the_configuration_wins_over_the_file(configured: str) -> None:
    assert _axes(configured, "frames.tif") == ["z", "y", "x"]


def test_configured_axes_that_do_not_fit_are_reported_and_ignored(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING),
        serve(
            Settings.from_mapping({"roots": {ROOT: str(root)}, "tiff": {"axes": {"misfit.tif": "tzyx"}}})
        ) as url,
    ):
        assert _axes(url, "misfit.tif") == ["z", "y", "x"]
    assert any("configured axes 'tzyx' do not fit" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("letters", ["tt", "tyx z", "zy", "abc", ""])
def test_axis_letters_are_checked_when_the_settings_are_read(letters: str) -> None:
    with pytest.raises((ValidationError, ValueError)):
        Settings.from_mapping({"tiff": {"axes": {"*.tif": letters}}})


def test_configured_axes_are_bit_exact(configured: str, root: Path) -> None:
    group = zarr.open_group(f"{configured}/{ROOT}/timelapse.tif", mode="r")
    assert np.array_equal(group["0"][:], tifffile.imread(root / "timelapse.tif"))
    rgb = zarr.open_group(f"{configured}/{ROOT}/rgb_series.tif", mode="r")["0"][:]
    assert np.array_equal(rgb, np.moveaxis(tifffile.imread(root / "rgb_series.tif"), -1, 1))


# -- SVS thumbnail scale -----------------------------------------------------------------


def test_svs_thumbnail_scale_is_the_baseline_mpp_times_the_size_ratio(base: str) -> None:
    baseline, thumbnail = _scale(base, "slide.svs/0"), _scale(base, "slide.svs/1")
    assert baseline[1:] == [0.3, 0.3]
    assert thumbnail[1:] == pytest.approx([1.2, 1.2])  # 512x384 -> 128x96
    units = {a["name"]: a.get("unit") for a in _ome(base, "slide.svs/1")["multiscales"][0]["axes"]}
    assert units == {"c": None, "y": "micrometer", "x": "micrometer"}


@pytest.mark.parametrize("image", ["2", "3"])
def test_svs_label_and_macro_have_no_physical_scale(base: str, image: str) -> None:
    """Photographs of the glass slide: their size ratio to the scan says nothing."""
    assert _scale(base, f"slide.svs/{image}") == [1.0, 1.0, 1.0]
    assert all("unit" not in a for a in _ome(base, f"slide.svs/{image}")["multiscales"][0]["axes"])


def test_the_real_svs_thumbnail_is_about_four_times_the_baseline(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "openslide_cmu1_small" / "CMU-1-Small-Region.svs"
    shutil.copy(source, tmp_path / "cmu.svs")
    with tifffile.TiffFile(source) as tif:
        assert "2220x2967 -> 574x768" in tif.series[1].keyframe.description  # what the file says
    with serve(Settings.from_mapping({"roots": {ROOT: str(tmp_path)}})) as url:
        baseline, thumbnail = _scale(url, "cmu.svs/0"), _scale(url, "cmu.svs/1")
    assert baseline[1:] == [0.499, 0.499]
    assert thumbnail[1:] == pytest.approx([0.499 * 2967 / 768, 0.499 * 2220 / 574])
    assert 3.8 < thumbnail[2] / baseline[2] < 3.9
