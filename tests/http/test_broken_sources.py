"""Broken files give a JSON 500 for the requests that touch them; everything else goes on.

What still works is decided by what is broken: a file whose header (IFD) is intact but whose
tile data is cut short or garbled still has its metadata and its intact chunks served; a file
that does not open at all fails on every key.
"""

from __future__ import annotations

import pytest
import tifffile

from tests.http.support import assert_json_error, running_gateway, write_healthy


def tile_extents(path):
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        return list(page.dataoffsets), list(page.databytecounts)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    root = tmp_path_factory.mktemp("broken")
    # cut.tif: tiles 0 and 1 (chunks c/0/0, c/0/1) intact, tile 2 cut short, tile 3 missing.
    write_healthy(root / "cut.tif")
    offsets, _counts = tile_extents(root / "cut.tif")
    with open(root / "cut.tif", "r+b") as fh:
        fh.truncate(offsets[2] + 10)
    # garbled.tif: the deflate stream of tile 1 (chunk c/0/1) overwritten in place.
    write_healthy(root / "garbled.tif")
    offsets, counts = tile_extents(root / "garbled.tif")
    with open(root / "garbled.tif", "r+b") as fh:
        fh.seek(offsets[1])
        fh.write(b"\xde" * counts[1])
    # Pass-through files (tiles served as stored): uncompressed cut short; zstd tile garbled.
    write_healthy(root / "cut-raw.tif", compression=None)
    offsets, _counts = tile_extents(root / "cut-raw.tif")
    with open(root / "cut-raw.tif", "r+b") as fh:
        fh.truncate(offsets[2] + 10)
    write_healthy(root / "garbled-zstd.tif", compression="zstd")
    offsets, counts = tile_extents(root / "garbled-zstd.tif")
    with open(root / "garbled-zstd.tif", "r+b") as fh:
        fh.seek(offsets[1])
        fh.write(b"\xde" * counts[1])
    (root / "notatiff.tif").write_text("this is a text file with a .tif suffix\n")
    (root / "empty.tif").write_bytes(b"")
    (root / "badifd.tif").write_bytes(b"II*\x00\x08\x00\x00\x00" + b"\xff" * 64)
    (root / "ifdbeyondend.tif").write_bytes(b"II*\x00\x00\x00\x01\x00")
    write_healthy(root / "headeronly.tif")
    with open(root / "headeronly.tif", "r+b") as fh:
        fh.truncate(12)
    with running_gateway(root) as gw:
        yield gw


UNOPENABLE = ["notatiff.tif", "empty.tif", "badifd.tif", "ifdbeyondend.tif", "headeronly.tif"]


@pytest.mark.parametrize("name", UNOPENABLE)
def test_unopenable_file_metadata_is_json_500(gateway, name):
    response = gateway.raw("GET", f"/data/{name}/zarr.json")
    assert_json_error(response, 500)
    gateway.assert_healthy()


@pytest.mark.parametrize("name", UNOPENABLE)
def test_unopenable_file_detail_names_the_file(gateway, name):
    document = assert_json_error(gateway.raw("GET", f"/data/{name}/zarr.json"), 500)
    assert name in document["detail"]


@pytest.mark.parametrize("name", UNOPENABLE)
def test_unopenable_file_chunk_is_json_500(gateway, name):
    assert_json_error(gateway.raw("GET", f"/data/{name}/0/c/0/0"), 500)
    gateway.assert_healthy()


@pytest.mark.parametrize("name", UNOPENABLE)
def test_unopenable_file_fails_the_same_way_twice(gateway, name):
    first = assert_json_error(gateway.raw("GET", f"/data/{name}/zarr.json"), 500)
    second = assert_json_error(gateway.raw("GET", f"/data/{name}/zarr.json"), 500)
    assert first == second


def test_unopenable_file_head_is_500(gateway):
    response = gateway.raw("HEAD", "/data/notatiff.tif/zarr.json")
    assert response.status == 500
    assert response.body == b""


def test_not_a_tiff_is_reported_as_unreadable_source(gateway):
    document = assert_json_error(gateway.raw("GET", "/data/notatiff.tif/zarr.json"), 500)
    assert document["error"] == "source_unreadable"


# -- tile data cut short: the header is intact ---------------------------------------------


@pytest.mark.parametrize("key", ["zarr.json", "0/zarr.json"])
def test_cut_file_metadata_is_served(gateway, key):
    assert gateway.raw("GET", f"/data/cut.tif/{key}").status == 200


@pytest.mark.parametrize("key", ["0/c/0/0", "0/c/0/1"])
def test_cut_file_intact_chunks_are_served(gateway, key):
    assert gateway.raw("GET", f"/data/cut.tif/{key}").status == 200


@pytest.mark.parametrize("key", ["0/c/1/0", "0/c/1/1"])
def test_cut_file_missing_chunk_is_json_500(gateway, key):
    assert_json_error(gateway.raw("GET", f"/data/cut.tif/{key}"), 500)
    gateway.assert_healthy()


def test_cut_file_error_says_truncated(gateway):
    document = assert_json_error(gateway.raw("GET", "/data/cut.tif/0/c/1/1"), 500)
    assert "truncated" in document["detail"]


# -- one tile garbled in place -----------------------------------------------------------------


@pytest.mark.parametrize("key", ["zarr.json", "0/zarr.json", "0/c/0/0", "0/c/1/0", "0/c/1/1"])
def test_garbled_file_other_keys_are_served(gateway, key):
    assert gateway.raw("GET", f"/data/garbled.tif/{key}").status == 200


def test_garbled_tile_chunk_is_json_500(gateway):
    assert_json_error(gateway.raw("GET", "/data/garbled.tif/0/c/0/1"), 500)
    gateway.assert_healthy()


def test_garbled_tile_error_says_it_cannot_be_decoded(gateway):
    document = assert_json_error(gateway.raw("GET", "/data/garbled.tif/0/c/0/1"), 500)
    assert "decoded" in document["detail"]


def test_garbled_tile_error_is_not_cached_as_a_chunk(gateway):
    """A failing chunk is computed again (and fails again), never served as empty or stale."""
    for _ in range(2):
        assert_json_error(gateway.raw("GET", "/data/garbled.tif/0/c/0/1"), 500)


# -- pass-through tiles (served as stored) -------------------------------------------------------


def test_cut_pass_through_file_intact_chunk_is_served(gateway):
    assert gateway.raw("GET", "/data/cut-raw.tif/0/c/0/1").status == 200


def test_cut_pass_through_file_missing_chunk_is_json_500(gateway):
    document = assert_json_error(gateway.raw("GET", "/data/cut-raw.tif/0/c/1/1"), 500)
    assert "truncated" in document["detail"]


def test_garbled_pass_through_tile_is_json_500(gateway):
    """Stored bytes go out untouched only when they are one zstd frame declaring exactly
    the chunk's size (adapters/frames.py); garbage is not, so it is decoded, and fails."""
    document = assert_json_error(gateway.raw("GET", "/data/garbled-zstd.tif/0/c/0/1"), 500)
    assert "cannot be decoded" in document["detail"]
    gateway.assert_healthy()
