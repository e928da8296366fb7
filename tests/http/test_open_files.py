"""The open-file pool under a real server: leases, replaced files, permissions, deleted files.

- A source replaced on disk while requests hold it is never served stale afterwards, and no
  response mixes versions.
- ``chmod 000`` is refused as "permission denied" — also when the suite runs as root, which
  could still read the file: the gateway treats a file with no read bit for anyone as
  withdrawn. Without read bits the process cannot read it either unless it is root.
- A deleted file's descriptor is closed by the pool's sweep, without a request for it.

Pool pressure and a source replaced while a request holds it: ``tests/store``.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from tests.http.support import assert_json_error, decode_chunk, deleted_descriptors, new_client, write_healthy

KEYS = ("c/0/0", "c/0/1", "c/1/0", "c/1/1")


def expected_chunk(pixels: np.ndarray, key: str) -> np.ndarray:
    row, column = (int(n) for n in key.split("/")[1:])
    return pixels[row * 128 : (row + 1) * 128, column * 128 : (column + 1) * 128]


def test_replaced_source_is_never_served_stale_or_mixed(serve_dir):
    """Readers hold leases on each version while it is replaced (atomic rename); every
    request made after a replacement gets the new bytes, every response one version."""
    root, start = serve_dir
    path = root / "image.tif"
    versions = [write_healthy(path, offset=1)]
    key = "c/1/1"
    seen: list[np.ndarray] = []
    errors: list[str] = []
    stop = threading.Event()
    with start(cache={"stat_interval_seconds": 0}) as base, new_client() as client:
        array = client.get(f"{base}/data/image.tif/0/zarr.json").json()
        url = f"{base}/data/image.tif/0/{key}"

        def read_continuously() -> None:
            with new_client() as reader:
                while not stop.is_set():
                    response = reader.get(url)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code} {response.text[:200]}")
                    else:
                        seen.append(decode_chunk(response.content, array))

        readers = [threading.Thread(target=read_continuously) for _ in range(6)]
        for reader in readers:
            reader.start()
        try:
            for version in range(2, 12):
                versions.append(write_healthy(root / "image.tif.new", offset=version * 1000))
                os.replace(root / "image.tif.new", path)
                response = client.get(url)
                assert response.status_code == 200, response.text
                np.testing.assert_array_equal(
                    decode_chunk(response.content, array), expected_chunk(versions[-1], key)
                )
        finally:
            stop.set()
            for reader in readers:
                reader.join()
    assert errors == []
    chunks = [expected_chunk(v, key) for v in versions]
    assert seen and all(any(np.array_equal(s, c) for c in chunks) for s in seen)


def test_chmod_000_is_refused_after_the_stat_interval(serve_dir):
    root, start = serve_dir
    write_healthy(root / "image.tif")
    with start(cache={"stat_interval_seconds": 0.2}) as base, new_client() as client:
        assert client.get(f"{base}/data/image.tif/0/c/0/0").status_code == 200
        os.chmod(root / "image.tif", 0)
        time.sleep(0.5)  # past the stat interval: the next request checks the file
        document = assert_json_error(client.get(f"{base}/data/image.tif/0/c/0/0"), 500)
        assert "permission denied" in document["detail"]
        os.chmod(root / "image.tif", 0o644)
        time.sleep(0.5)
        assert client.get(f"{base}/data/image.tif/0/c/0/0").status_code == 200


def test_file_unreadable_at_open_says_permission_denied(serve_dir):
    root, start = serve_dir
    write_healthy(root / "image.tif")
    os.chmod(root / "image.tif", 0)
    with start() as base, new_client() as client:
        document = assert_json_error(client.get(f"{base}/data/image.tif/zarr.json"), 500)
    assert "permission denied" in document["detail"]
    assert "no adapter" not in document["detail"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
def test_deleted_file_descriptor_is_closed_without_a_request(serve_dir):
    root, start = serve_dir
    path = root / "image.tif"
    write_healthy(path)
    with start(cache={"stat_interval_seconds": 0.2}) as base, new_client() as client:
        assert client.get(f"{base}/data/image.tif/0/c/0/0").status_code == 200
        path.unlink()
        assert deleted_descriptors(path), "the served file had no open descriptor to begin with"
        deadline = time.monotonic() + 20  # a few stat intervals; generous for loaded machines
        while deleted_descriptors(path):
            assert time.monotonic() < deadline, "the deleted file's descriptor was never closed"
            time.sleep(0.05)
