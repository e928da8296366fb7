"""TIFF files cut short say so: the source's warnings name what the metadata promised and
what the file holds, and tifffile's own log lines become warnings instead of log lines.

Every file is written by tifffile into a temp dir and then cut; what each warning must say
is computed from the uncut file with tifffile, not by the adapter under test."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile

from adapters.base import NoTileCache, Source
from adapters.tiff.adapter import TiffAdapter
from tests.conftest import SHARED_DATA

PLANES = 60
SHAPE = (PLANES, 64, 64)
TRUNCATED = ("the file is truncated", "this is a truncated OME-TIFF")
#: How tifffile names the file in its messages (the warnings leave it out: the page is the file's).
FILE_REPR = re.compile(r"<tifffile\.TiffFile '[^']*'>\s*")


def cut(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def open_source(path: Path) -> Source:
    return TiffAdapter().open(path, NoTileCache())


def stack() -> np.ndarray:
    return np.random.default_rng(0).integers(1, 4000, SHAPE, dtype=np.uint16)


def truncation_warnings(source: Source) -> list[str]:
    return [w for w in source.warnings if w.startswith(TRUNCATED)]


def write_pyramid(path: Path) -> None:
    """A 2-channel OME-TIFF with two SubIFD levels (written as tifffile writes pyramids)."""
    data = np.random.default_rng(1).integers(0, 4000, (2, 512, 512), dtype=np.uint16)
    with tifffile.TiffWriter(path) as writer:
        writer.write(data, subifds=2, tile=(128, 128), metadata={"axes": "CYX"})
        writer.write(data[:, ::2, ::2], subfiletype=1, tile=(128, 128))
        writer.write(data[:, ::4, ::4], subfiletype=1, tile=(128, 128))


def test_a_cut_compressed_stack_served_as_one_plane_says_how_many_were_expected(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack(), compression="zlib", rowsperstrip=32)
    cut(path)
    with tifffile.TiffFile(path) as tif:
        found = len(tif.pages)
    assert 1 < found < PLANES
    source = open_source(path)
    assert source.images[0].levels[0].shape == SHAPE[1:]  # what tifffile can still reshape
    (warning,) = truncation_warnings(source)
    assert f"describes {PLANES} planes" in warning
    assert f"holds {found} page(s)" in warning
    assert "served as 1 plane(s)" in warning


def test_a_cut_contiguous_stack_says_which_planes_are_gone(tmp_path):
    path = tmp_path / "contiguous.tif"
    tifffile.imwrite(path, stack())
    with tifffile.TiffFile(path) as tif:
        offset = tif.series[0].dataoffset
    cut(path)
    size = path.stat().st_size
    whole = (size - offset) // (64 * 64 * 2)
    source = open_source(path)
    assert source.images[0].levels[0].shape == SHAPE
    (warning,) = truncation_warnings(source)
    assert (
        f"{PLANES - whole} of {PLANES} planes lie (partly) beyond the end of the file ({size:,} bytes)"
        in warning
    )


def test_a_cut_imagej_stack_says_how_many_images_imagej_described(tmp_path):
    path = tmp_path / "imagej.tif"
    tifffile.imwrite(path, stack(), imagej=True, metadata={"axes": "ZYX"})
    cut(path)
    source = open_source(path)
    (warning,) = truncation_warnings(source)
    assert f"ImageJ metadata ({PLANES} images) describes {PLANES} planes" in warning


@pytest.mark.parametrize("fraction", [0.5, 0.8])
def test_a_cut_pyramid_ome_tiff_is_called_a_truncated_ome_tiff(tmp_path, fraction):
    path = tmp_path / "pyramid.ome.tif"
    write_pyramid(path)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and len(tif.series[0].levels) == 3
        description = tif.pages.first.tags[270]
        offset, length = description.valueoffset, description.count
    cut(path, fraction)
    source = open_source(path)
    assert source.format == "OME-TIFF (truncated)"
    first, second, *_ = source.warnings
    assert first.startswith("this is a truncated OME-TIFF")
    assert f"OME-XML, {length:,} bytes at offset {offset:,}" in second


def test_a_cut_ome_tiff_without_its_ome_name_is_not_called_one(tmp_path):
    written = tmp_path / "pyramid.ome.tif"
    write_pyramid(written)
    path = cut(written).rename(tmp_path / "pyramid.tif")
    source = open_source(path)
    assert source.format == "TIFF"
    assert not any("OME" in w for w in truncation_warnings(source))
    assert any("ImageDescription (metadata" in w for w in truncation_warnings(source))


def test_planes_the_ome_xml_claims_but_the_file_lacks_are_said(tmp_path):
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="32" SizeY="16" '
        'SizeZ="4" SizeC="1" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
        '<TiffData IFD="0" PlaneCount="4"/></Pixels></Image></OME>'
    )
    path = tmp_path / "short.ome.tif"
    tifffile.imwrite(path, np.ones((2, 16, 32), np.uint8), description=xml, metadata=None)
    source = open_source(path)
    assert source.format == "OME-TIFF"
    assert "image 0: 2 of 4 planes are not in the file; they read as fill" in source.warnings


def test_tifffile_lines_become_warnings_not_log_lines(tmp_path, caplog):
    path = tmp_path / "pyramid.ome.tif"
    write_pyramid(path)
    cut(path)
    with caplog.at_level(logging.DEBUG):
        source = open_source(path)
    assert not [r for r in caplog.records if r.name.startswith("tifffile")]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    from_tifffile = [w for w in source.warnings if w.startswith("tifffile: ")]
    assert from_tifffile  # e.g. "invalid value offset" of the description, corrupted SubIFDs
    assert len(source.warnings) == len(set(source.warnings))


def test_each_file_opened_in_parallel_gets_its_own_tifffile_lines(tmp_path, caplog):
    paths = []
    for n in range(8):
        path = tmp_path / f"stack{n}.tif"
        tifffile.imwrite(path, stack()[: 10 + n], compression="zlib", rowsperstrip=32)
        paths.append(cut(path, 0.3 + n * 0.05))
    expected = {}
    for path in paths:  # what tifffile logs for each file alone
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tifffile"), tifffile.TiffFile(path) as tif:
            _ = tif.series
        expected[path] = {FILE_REPR.sub("", r.getMessage()) for r in caplog.records if r.name == "tifffile"}
        assert expected[path]
    caplog.clear()
    with ThreadPoolExecutor(8) as pool:
        sources = dict(zip(paths, pool.map(open_source, paths * 4), strict=False))
    for path, source in sources.items():
        said = {w.removeprefix("tifffile: ") for w in source.warnings if w.startswith("tifffile: ")}
        assert said == expected[path], path.name


@pytest.mark.parametrize("write", ["compressed", "contiguous", "imagej", "pyramid"])
def test_whole_files_have_no_truncation_warning(tmp_path, write):
    path = tmp_path / ("pyramid.ome.tif" if write == "pyramid" else f"{write}.tif")
    if write == "compressed":
        tifffile.imwrite(path, stack(), compression="zlib", rowsperstrip=32)
    elif write == "contiguous":
        tifffile.imwrite(path, stack())
    elif write == "imagej":
        tifffile.imwrite(path, stack(), imagej=True, metadata={"axes": "ZYX"})
    else:
        write_pyramid(path)
    source = open_source(path)
    assert source.warnings == []
    assert "truncated" not in source.format


def test_the_shared_sample_files_have_no_truncation_warning():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"sample data folder {SHARED_DATA} is missing")
    adapter = TiffAdapter()
    checked = 0
    for path in sorted(SHARED_DATA.rglob("*")):
        if not adapter.can_open(path) or path.name.endswith(".companion.ome"):
            continue
        try:
            source = adapter.open(path, NoTileCache())
        except Exception:  # a member of a multi-file set, say: not this test's concern
            continue
        assert truncation_warnings(source) == [], path
        assert "truncated" not in source.format, path
        checked += 1
    assert checked >= 10
