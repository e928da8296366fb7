"""Broken and changing HDF5 files: clear JSON errors, never stale or wrong pixels.

Servers here check files on every request (``cache.stat_interval_seconds = 0``). A
BigDataViewer dataset is its XML, but a change of its HDF5 file alone must be seen too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest

from gateway.config.settings import Settings
from tests.hdf5.writers import BdvSetup, smooth, write_bdv
from tests.server import serve

ALWAYS_STAT = {"cache": {"stat_interval_seconds": 0}}
CHUNK = (8, 32, 32)


def volume(offset: int, shape: tuple[int, ...] = (16, 64, 64)) -> np.ndarray:
    """Distinct, never-zero pixels (no chunk is all fill)."""
    return (np.arange(int(np.prod(shape)), dtype=np.uint16).reshape(shape) % 60000) + offset


def write_h5(path: Path, data: np.ndarray, **options: object) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data, chunks=CHUNK, **{"compression": "gzip", **options})


def chunk(client: httpx.Client, url: str) -> np.ndarray:
    """A served chunk decoded (the gateway's default codec: bytes little-endian + zstd)."""
    import numcodecs

    meta = client.get(url.rsplit("/c/", 1)[0] + "/zarr.json").json()
    assert [c["name"] for c in meta["codecs"]] == ["bytes", "zstd"]
    response = client.get(url)
    assert response.status_code == 200, response.text
    shape = meta["chunk_grid"]["configuration"]["chunk_shape"]
    return np.frombuffer(numcodecs.Zstd().decode(response.content), "<u2").reshape(shape)


def assert_json_500(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 500, response.text
    body = response.json()
    assert body["error"] in ("source_unreadable", "source_error"), body
    for word in words:
        assert word in body["detail"], body


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, str, httpx.Client]]:
    root = tmp_path / "root"
    root.mkdir()
    extra = getattr(request, "param", {})
    # one plane per chunk: the keys below name planes (c/<z>/0/0)
    settings = Settings.from_mapping({"roots": {"d": str(root)}, "chunks": {"z": 1}, **ALWAYS_STAT, **extra})
    with serve(settings) as url, httpx.Client() as client:
        yield root, url, client


# ---------------------------------------------------------------------------------------
# Broken files


def test_truncated_file_is_a_clear_500_and_others_are_served(served) -> None:
    root, url, client = served
    write_h5(root / "good.h5", volume(1))
    write_h5(root / "cut.h5", volume(1))
    os.truncate(root / "cut.h5", os.path.getsize(root / "cut.h5") // 2)
    assert_json_500(client.get(f"{url}/d/cut.h5/data/zarr.json"), "cut.h5", "truncated")
    assert_json_500(client.get(f"{url}/d/cut.h5/data/0/c/0/0/0"), "cut.h5")
    assert client.get(f"{url}/d/good.h5/data/0/zarr.json").status_code == 200


def test_garbage_after_the_signature_is_a_clear_500(served) -> None:
    root, url, client = served
    (root / "garbage.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(4096))
    assert_json_500(client.get(f"{url}/d/garbage.h5/zarr.json"), "garbage.h5", "not a readable HDF5 file")


def test_not_hdf5_at_all_is_a_clear_500(served) -> None:
    root, url, client = served
    (root / "text.h5").write_text("not an HDF5 file\n")
    assert_json_500(client.get(f"{url}/d/text.h5/zarr.json"), "text.h5")


def test_netcdf3_is_not_a_dataset(served) -> None:
    root, url, client = served
    (root / "classic.nc").write_bytes(b"CDF\x01" + bytes(100))
    assert client.get(f"{url}/d/classic.nc/zarr.json").status_code == 404
    listing = client.get(f"{url}/", headers={"Accept": "application/json"}).json()
    assert "d/classic.nc" not in {d["path"] for d in listing["datasets"]}


def _garble_chunk(path: Path, origin: tuple[int, ...]) -> None:
    with h5py.File(path, "r") as f:
        info = f["data"].id.get_chunk_info_by_coord(origin)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(b"\xde\xad\xbe\xef" * 4)


@pytest.mark.parametrize(
    ("options", "word"),
    [
        ({"compression": "gzip"}, "cannot be decoded"),
        ({"compression": None, "fletcher32": True}, "cannot be decoded"),  # checksum mismatch
    ],
    ids=["gzip", "fletcher32"],
)
def test_garbled_chunk_is_a_clear_500_and_neighbours_are_served(served, options, word) -> None:
    root, url, client = served
    data = volume(1)
    write_h5(root / "bad.h5", data, **options)
    _garble_chunk(root / "bad.h5", (8, 32, 32))
    # served chunks are (1, 64, 64): plane 8 touches the garbled stored chunk
    assert_json_500(client.get(f"{url}/d/bad.h5/data/0/c/8/0/0"), "bad.h5", word)
    np.testing.assert_array_equal(chunk(client, f"{url}/d/bad.h5/data/0/c/0/0/0")[0], data[0])


# ---------------------------------------------------------------------------------------
# Files that change while served


def test_atomic_replace_serves_new_pixels(served) -> None:
    root, url, client = served
    write_h5(root / "image.h5", volume(1))
    key = f"{url}/d/image.h5/data/0/c/3/0/0"
    np.testing.assert_array_equal(chunk(client, key)[0], volume(1)[3])
    write_h5(root / "image.h5.new", volume(1000))
    os.replace(root / "image.h5.new", root / "image.h5")
    np.testing.assert_array_equal(chunk(client, key)[0], volume(1000)[3])


@pytest.mark.parametrize("served", [{"hdf5": {"lock_free": False}}], indirect=True, ids=["locked"])
def test_atomic_replace_serves_new_pixels_when_locked(served) -> None:
    test_atomic_replace_serves_new_pixels(served)


def test_in_place_rewrite_serves_new_pixels(served) -> None:
    root, url, client = served
    path = root / "image.h5"
    write_h5(path, volume(1), compression=None)
    key = f"{url}/d/image.h5/data/0/c/5/0/0"
    np.testing.assert_array_equal(chunk(client, key)[0], volume(1)[5])
    before = os.stat(path)
    write_h5(root / "scratch.h5", volume(777), compression=None)
    content = (root / "scratch.h5").read_bytes()
    (root / "scratch.h5").unlink()
    with open(path, "r+b") as fh:  # same inode, new bytes and mtime
        fh.write(content)
        fh.truncate()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))
    assert os.stat(path).st_ino == before.st_ino
    np.testing.assert_array_equal(chunk(client, key)[0], volume(777)[5])


def test_new_shape_and_removed_dataset(served) -> None:
    root, url, client = served
    write_h5(root / "image.h5", volume(1))
    assert client.get(f"{url}/d/image.h5/data/0/zarr.json").json()["shape"] == [16, 64, 64]
    with h5py.File(root / "image.h5.new", "w") as f:
        f.create_dataset("other", data=volume(5, (4, 40, 40)))
    os.replace(root / "image.h5.new", root / "image.h5")
    assert client.get(f"{url}/d/image.h5/data/0/zarr.json").status_code == 404
    assert client.get(f"{url}/d/image.h5/other/0/zarr.json").json()["shape"] == [4, 40, 40]


def _bdv(root: Path, offset: int) -> np.ndarray:
    data = smooth((1, 8, 40, 30), seed=offset) + offset
    write_bdv(root / "set.xml", "set.h5", [BdvSetup(data, "one")])
    return data[0]


def test_bdv_hdf5_replaced_under_an_unchanged_xml(served) -> None:
    root, url, client = served
    first = _bdv(root, 1)
    xml = (root / "set.xml").read_bytes()
    key = f"{url}/d/set.xml/0/c/2/0/0"
    np.testing.assert_array_equal(chunk(client, key)[0, :40, :30], first[2])
    etag = client.get(key).headers.get("etag")
    second = smooth((1, 8, 40, 30), seed=2) + 2
    scratch = root / "scratch"
    scratch.mkdir()
    write_bdv(scratch / "set.xml", "set.h5", [BdvSetup(second, "one")])
    os.replace(scratch / "set.h5", root / "set.h5")
    assert (root / "set.xml").read_bytes() == xml
    np.testing.assert_array_equal(chunk(client, key)[0, :40, :30], second[0, 2])
    assert client.get(key).headers.get("etag") != etag


def test_bdv_hdf5_removed_then_restored(served) -> None:
    root, url, client = served
    first = _bdv(root, 1)
    key = f"{url}/d/set.xml/0/c/2/0/0"
    np.testing.assert_array_equal(chunk(client, key)[0, :40, :30], first[2])
    shutil.move(root / "set.h5", root / "set.h5.away")
    assert_json_500(client.get(f"{url}/d/set.xml/zarr.json"), "set.h5")
    shutil.move(root / "set.h5.away", root / "set.h5")
    np.testing.assert_array_equal(chunk(client, key)[0, :40, :30], first[2])
