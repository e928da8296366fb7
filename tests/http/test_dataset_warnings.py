"""A truncated or damaged file's problems are on its page (HTML and JSON ``warnings``), not
spread over the server's log: tifffile's lines are captured while the file opens, read
failures are added once per kind, and the log gets one line per dataset."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import tifffile

from adapters.diagnostics import MAX_WARNINGS
from tests.http.support import running_gateway

PLANES = 60
CHROMIUM = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def cut(path, fraction=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    root = tmp_path_factory.mktemp("warnings")
    planes = np.random.default_rng(0).integers(1, 4000, (PLANES, 64, 64), dtype=np.uint16)
    tifffile.imwrite(root / "contiguous.tif", planes)  # one IFD for 60 contiguous planes
    cut(root / "contiguous.tif")
    tifffile.imwrite(root / "compressed.tif", planes, compression="zlib", rowsperstrip=32)
    cut(root / "compressed.tif")
    pyramid = np.random.default_rng(1).integers(0, 4000, (2, 512, 512), dtype=np.uint16)
    with tifffile.TiffWriter(root / "pyramid.ome.tif") as writer:
        writer.write(pyramid, subifds=2, tile=(128, 128), metadata={"axes": "CYX"})
        writer.write(pyramid[:, ::2, ::2], subfiletype=1, tile=(128, 128))
        writer.write(pyramid[:, ::4, ::4], subfiletype=1, tile=(128, 128))
    cut(root / "pyramid.ome.tif")
    with running_gateway(root) as gw:
        yield gw


@pytest.mark.parametrize("name", ["contiguous.tif", "compressed.tif", "pyramid.ome.tif"])
def test_warnings_are_a_bounded_list_of_distinct_strings(gateway, name):
    warnings = gateway.describe(name)["warnings"]
    assert warnings and all(isinstance(w, str) and w for w in warnings)
    assert len(warnings) == len(set(warnings)) <= MAX_WARNINGS


def test_a_healthy_file_has_no_warnings(gateway):
    assert gateway.describe("healthy.tif")["warnings"] == []


def test_a_stack_cut_to_one_plane_says_how_many_planes_were_expected(gateway):
    with tifffile.TiffFile(gateway.root / "compressed.tif") as tif:
        found = len(tif.pages)
    description = gateway.describe("compressed.tif")
    assert description["images"][0]["shape"] == [64, 64]
    assert any(
        f"describes {PLANES} planes, the file holds {found} page(s)" in w for w in description["warnings"]
    )


def test_a_cut_pyramid_ome_tiff_is_labelled_so(gateway):
    description = gateway.describe("pyramid.ome.tif")
    assert description["format"] == "OME-TIFF (truncated)"
    assert description["warnings"][0].startswith("this is a truncated OME-TIFF")


def test_the_html_page_shows_the_warnings(gateway):
    page = gateway.get("/data/pyramid.ome.tif/", headers={"Accept": CHROMIUM}).text
    section = re.search(r'<section class="warnings">(.*?)</section>', page, re.S)
    assert section is not None
    assert "this is a truncated OME-TIFF" in section.group(1)
    assert "OME-TIFF (truncated) file served" in page


def test_read_failures_are_added_once_per_kind(gateway):
    before = gateway.describe("contiguous.tif")["warnings"]
    assert any("30 of 60 planes lie (partly) beyond the end of the file" in w for w in before)
    failed = [gateway.get(f"/data/contiguous.tif/0/c/{z}/0/0").status_code for z in range(40, 60)]
    assert failed == [500] * 20
    after = gateway.describe("contiguous.tif")["warnings"]
    reading = [w for w in after if w.startswith("reading failed: ")]
    assert len(reading) == 1, after
    assert "lie outside the file" in reading[0]
    assert after[: len(before)] == before


def test_the_log_gets_one_line_per_dataset_not_per_tile(tmp_path, caplog):
    planes = np.random.default_rng(2).integers(1, 4000, (PLANES, 64, 64), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "contiguous.tif", planes)
    cut(tmp_path / "contiguous.tif")
    tifffile.imwrite(tmp_path / "compressed.tif", planes, compression="zlib", rowsperstrip=8)
    cut(tmp_path / "compressed.tif")
    with tifffile.TiffWriter(tmp_path / "pyramid.ome.tif") as writer:
        writer.write(planes[:2], subifds=2, tile=(32, 32), metadata={"axes": "CYX"})
        writer.write(planes[:2, ::2, ::2], subfiletype=1, tile=(32, 32))
        writer.write(planes[:2, ::4, ::4], subfiletype=1, tile=(32, 32))
    cut(tmp_path / "pyramid.ome.tif", 0.7)
    names = ("contiguous.tif", "compressed.tif", "pyramid.ome.tif")
    with caplog.at_level(logging.INFO), running_gateway(tmp_path) as gw:
        for name in names:
            assert gw.get(f"/data/{name}/").status_code == 200
        codes = [gw.get(f"/data/contiguous.tif/0/c/{z}/0/0").status_code for z in range(PLANES)]
        assert codes.count(500) == 30  # every plane past the cut: 30 failed reads
        assert gw.get("/data/compressed.tif/0/c/0/0").status_code == 200
    assert not [r for r in caplog.records if r.name.startswith("tifffile")]
    for name in names:
        opened = [
            r
            for r in caplog.records
            if r.name == "gateway.store.catalog" and f"data/{name}" in r.getMessage()
        ]
        assert len(opened) == 1, [r.getMessage() for r in opened]
        assert opened[0].levelno == logging.WARNING
        assert "warning(s), shown on its page" in opened[0].getMessage()
        lines = [
            r.getMessage()
            for r in caplog.records
            if r.levelno >= logging.WARNING
            and name in r.getMessage()
            and not r.name.startswith("gateway.access")
        ]
        assert len(lines) <= 3, lines  # opened; at most a window estimate and one read error
