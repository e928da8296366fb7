"""A file changed on disk is reopened: the next requests see the new metadata and pixels.

Servers here check files on every request (``cache.stat_interval_seconds = 0``), except the
last test, which checks that the default interval also picks a change up (polling).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from tests.http.support import (
    HEALTHY_SHAPE,
    HEALTHY_TILE,
    assert_json_error,
    fetch_chunk,
    healthy_pixels,
    new_client,
    write_healthy,
    write_tiff,
)

CHUNK = "data/image.tif/0/c/1/1"
ALWAYS_STAT = {"cache": {"stat_interval_seconds": 0}}


@pytest.fixture
def served(serve_dir):
    """(root, base URL, client, original pixels) with ``image.tif`` already read once."""
    root, start = serve_dir
    original = write_healthy(root / "image.tif", offset=1)
    with start(**ALWAYS_STAT) as base, new_client() as client:
        first = client.get(f"{base}/{CHUNK}")
        assert first.status_code == 200
        client.get(f"{base}/data/image.tif/0/zarr.json").raise_for_status()
        yield root, base, client, original


def chunk_pixels(client, base, key=CHUNK):
    array, _, chunk_key = key.partition("/c/")
    return fetch_chunk(client, f"{base}/{array}", f"c/{chunk_key}")


def test_atomic_replace_serves_new_chunk(served):
    root, base, client, _original = served
    replacement = write_healthy(root / "image.tif.new", offset=1000)
    os.replace(root / "image.tif.new", root / "image.tif")
    np.testing.assert_array_equal(chunk_pixels(client, base), replacement[128:, 128:])


def test_atomic_replace_with_other_dtype_serves_new_metadata(served):
    root, base, client, _original = served
    write_tiff(root / "image.tif.new", np.ones(HEALTHY_SHAPE, np.float32), tile=HEALTHY_TILE)
    os.replace(root / "image.tif.new", root / "image.tif")
    assert client.get(f"{base}/data/image.tif/0/zarr.json").json()["data_type"] == "float32"


def rewrite_in_place(path, data):
    """Same inode, same size, different bytes, and a later mtime."""
    before = os.stat(path)
    scratch = path.with_name("scratch.bin")
    write_tiff(scratch, data, tile=HEALTHY_TILE)  # uncompressed: same layout, same size
    content = scratch.read_bytes()
    scratch.unlink()
    assert len(content) == before.st_size
    with open(path, "r+b") as fh:
        fh.write(content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))
    after = os.stat(path)
    assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)


def test_in_place_rewrite_serves_new_chunk(serve_dir):
    root, start = serve_dir
    path = root / "image.tif"
    write_tiff(path, healthy_pixels(1), tile=HEALTHY_TILE)
    with start(**ALWAYS_STAT) as base, new_client() as client:
        np.testing.assert_array_equal(chunk_pixels(client, base), healthy_pixels(1)[128:, 128:])
        rewrite_in_place(path, healthy_pixels(777))
        np.testing.assert_array_equal(chunk_pixels(client, base), healthy_pixels(777)[128:, 128:])


def test_in_place_rewrite_serves_new_chunk_to_a_cached_neighbour(serve_dir):
    """Every chunk of the old version is dropped, not only the one read before the change."""
    root, start = serve_dir
    path = root / "image.tif"
    write_tiff(path, healthy_pixels(1), tile=HEALTHY_TILE)
    with start(**ALWAYS_STAT) as base, new_client() as client:
        for key in ("0/c/0/0", "0/c/0/1", "0/c/1/0", "0/c/1/1"):
            chunk_pixels(client, base, f"data/image.tif/{key}")
        rewrite_in_place(path, healthy_pixels(777))
        np.testing.assert_array_equal(
            chunk_pixels(client, base, "data/image.tif/0/c/0/1"), healthy_pixels(777)[:128, 128:]
        )


def test_new_shape_serves_new_array_metadata(served):
    root, base, client, _original = served
    write_tiff(root / "image.tif.new", np.ones((300, 200), np.uint16), tile=HEALTHY_TILE)
    os.replace(root / "image.tif.new", root / "image.tif")
    assert client.get(f"{base}/data/image.tif/0/zarr.json").json()["shape"] == [300, 200]


def test_new_shape_serves_new_group_metadata(served):
    root, base, client, _original = served
    data = np.ones((3, 300, 200), np.uint16)
    write_tiff(root / "image.tif.new", data, tile=HEALTHY_TILE)
    os.replace(root / "image.tif.new", root / "image.tif")
    group = client.get(f"{base}/data/image.tif/zarr.json").json()
    axes = [a["name"] for a in group["attributes"]["ome"]["multiscales"][0]["axes"]]
    assert axes == ["z", "y", "x"]


def test_new_shape_serves_new_chunk(served):
    root, base, client, _original = served
    data = (np.arange(300 * 200, dtype=np.uint16) + 5).reshape(300, 200)
    write_tiff(root / "image.tif.new", data, tile=HEALTHY_TILE)
    os.replace(root / "image.tif.new", root / "image.tif")
    expected = np.zeros(HEALTHY_TILE, np.uint16)
    expected[:, : 200 - 128] = data[128:256, 128:]
    np.testing.assert_array_equal(chunk_pixels(client, base), expected)


def test_smaller_shape_makes_old_chunks_404(served):
    root, base, client, _original = served
    write_tiff(root / "image.tif.new", np.ones((100, 100), np.uint16))
    os.replace(root / "image.tif.new", root / "image.tif")
    assert_json_error(client.get(f"{base}/{CHUNK}"), 404)


def test_deleted_file_is_404(served):
    root, base, client, _original = served
    (root / "image.tif").unlink()
    assert_json_error(client.get(f"{base}/data/image.tif/zarr.json"), 404)


def test_deleted_file_chunk_is_404(served):
    root, base, client, _original = served
    (root / "image.tif").unlink()
    assert_json_error(client.get(f"{base}/{CHUNK}"), 404)


def test_file_broken_on_disk_becomes_500(served):
    root, base, client, _original = served
    (root / "image.tif.new").write_bytes(b"no longer a tiff")
    os.replace(root / "image.tif.new", root / "image.tif")
    assert_json_error(client.get(f"{base}/{CHUNK}"), 500)


def test_repaired_file_is_served_again(serve_dir):
    root, start = serve_dir
    (root / "image.tif").write_bytes(b"not yet a tiff")
    with start(**ALWAYS_STAT) as base, new_client() as client:
        assert client.get(f"{base}/data/image.tif/zarr.json").status_code == 500
        replacement = write_healthy(root / "image.tif.new")
        os.replace(root / "image.tif.new", root / "image.tif")
        np.testing.assert_array_equal(chunk_pixels(client, base), replacement[128:, 128:])


def test_change_is_seen_within_the_default_stat_interval(serve_dir):
    root, start = serve_dir
    write_healthy(root / "image.tif", offset=1)
    with start() as base, new_client() as client:
        chunk_pixels(client, base)
        replacement = write_healthy(root / "image.tif.new", offset=4242)
        os.replace(root / "image.tif.new", root / "image.tif")
        deadline = time.monotonic() + 15
        while not np.array_equal(chunk_pixels(client, base), replacement[128:, 128:]):
            assert time.monotonic() < deadline, "the change was never picked up"
            time.sleep(0.05)
