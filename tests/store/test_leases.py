"""A leased source replaced on disk: the request holding it finishes on its own version,
and every request after the change is noticed gets the new pixels under a new ETag.

A request is held inside its read (a positional read gated by an event, on a real server
in this process), so its lease on the old source is certain while the file is replaced by
``os.replace``. The caches are on: chunks cached before the change, and the held request's
chunk computed after it, must not be served as the new version.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from adapters.io.files import PositionalFile
from tests.http.support import HEALTHY_TILE, decode_chunk, deleted_descriptors, write_healthy

STAT_INTERVAL_SECONDS = 0.2
#: Caches on; no display-window estimate, which would read (and cache) every tile when
#: ``zarr.json`` is first asked for, before the gate is armed.
SETTINGS = {
    "cache": {"stat_interval_seconds": STAT_INTERVAL_SECONDS},
    "metadata": {"estimate_windows": False},
}
KEYS = ("c/0/0", "c/0/1", "c/1/0", "c/1/1")
HELD_KEY = "c/1/1"


class ReadGate:
    """Holds the first positional read after ``arm()`` until ``release()``: the request
    making it stays in flight, leasing its source, for as long as the test needs."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._released = threading.Event()
        self._armed = False
        self._lock = threading.Lock()

    def arm(self) -> None:
        with self._lock:
            self._armed = True

    def release(self) -> None:
        self._released.set()

    def wrap(self, read: Callable[[PositionalFile, int, int], bytes]) -> Callable[..., bytes]:
        def gated(file: PositionalFile, offset: int, size: int) -> bytes:
            with self._lock:
                hold, self._armed = self._armed, False
            if hold:
                self.entered.set()
                self._released.wait(timeout=60)
            return read(file, offset, size)

        return gated


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReadGate]:
    gate = ReadGate()
    monkeypatch.setattr(PositionalFile, "pread", gate.wrap(PositionalFile.pread))
    yield gate
    gate.release()  # never leave a server thread waiting


def chunk_of(pixels: np.ndarray, key: str) -> np.ndarray:
    row, column = (int(n) for n in key.split("/")[1:])
    ty, tx = HEALTHY_TILE
    return pixels[row * ty : (row + 1) * ty, column * tx : (column + 1) * tx]


def client() -> httpx.Client:
    # a request stuck behind the held one would hang: fail it well before the server's deadline
    return httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
def test_a_leased_source_replaced_on_disk_is_never_served_stale(serve_dir, gate):
    root, start = serve_dir
    path = root / "image.tif"
    old = write_healthy(path, offset=1)
    held: list[httpx.Response] = []
    with start(**SETTINGS) as base, client() as http:
        level = f"{base}/data/image.tif/0"
        array = http.get(f"{level}/zarr.json").json()
        old_etags = {}
        for key in KEYS[:-1]:  # cached now: they must not outlive the replacement either
            response = http.get(f"{level}/{key}")
            np.testing.assert_array_equal(decode_chunk(response.content, array), chunk_of(old, key))
            old_etags[key] = response.headers["etag"]

        gate.arm()  # the first read of the held chunk's tile waits for the gate
        holder = threading.Thread(target=get_into, args=(f"{level}/{HELD_KEY}", held))
        holder.start()
        try:
            assert gate.entered.wait(timeout=10), "the held request never read its source"
            new = write_healthy(root / "image.tif.new", offset=5000)
            os.replace(root / "image.tif.new", path)
            time.sleep(2 * STAT_INTERVAL_SECONDS)  # past the stat interval: the change is noticed

            new_etags = {key: read_new(http, level, key, array, new) for key in KEYS}
            assert set(new_etags.values()).isdisjoint(old_etags.values())
            # the old version's descriptor stays open while its lease is held...
            assert deleted_descriptors(path), "the held request's source was closed under it"
        finally:
            gate.release()
            holder.join(timeout=30)

        # ...the held request finished on one version, whole, under an ETag not the new one...
        [response] = held
        assert response.status_code == 200, response.text
        np.testing.assert_array_equal(decode_chunk(response.content, array), chunk_of(old, HELD_KEY))
        assert response.headers["etag"] != new_etags[HELD_KEY]
        # ...left nothing stale behind (its chunk is not cached as the new version's)...
        for key in KEYS:
            assert read_new(http, level, key, array, new) == new_etags[key]
        # ...and the replaced version is closed once that lease ends
        wait_until(lambda: not deleted_descriptors(path), "the replaced version was never closed")


def get_into(url: str, responses: list[httpx.Response]) -> None:
    with client() as http:
        responses.append(http.get(url))


def read_new(http: httpx.Client, level: str, key: str, array: dict[str, Any], new: np.ndarray) -> str:
    """GET a chunk that must hold the new version's pixels; its ETag."""
    response = http.get(f"{level}/{key}")
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(decode_chunk(response.content, array), chunk_of(new, key))
    return response.headers["etag"]


def wait_until(condition: Callable[[], bool], message: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)
