"""Bounded work per request (issue 9, item 3), over HTTP on a real server.

- A 2^20 x 2^20 TIFF whose tiles are all absent: its coarsest synthesized chunk is known
  fill at once (404), and a giant with one stored tile gets its coarsest chunk exactly.
- Heavy synthesized-level work runs in a pool of its own: a control file answers while
  more heavy requests than that pool has threads are held inside the pyramid.
- A request over its budget answers a JSON 503; a client that hangs up cancels the work.

"Slow" levels are made deterministic: ``gateway.levels.pyramid.downsample`` is wrapped so that
a computation waits on an event the test controls (no timed assertions).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import tifffile

from gateway.levels import budget, pyramid
from gateway.store import dataset as store
from tests.http.support import assert_json_error, decode_chunk, running_gateway
from tests.pyramid_reference import reduce_reference

GIANT = 2**20
GIANT_TILE = 2048  # 512 x 512 tiles: 262,144 absent (or present) entries in the tile table
WAIT = 30.0  # generous bound of every wait for the server (never a measured figure)


def write_sparse_giant(path: Path, stored: dict[tuple[int, int], int]) -> None:
    """A GIANT x GIANT uint8 tiled TIFF whose only stored tiles are ``stored`` (tile
    position → constant value); every other tile has offset and byte count 0."""
    import zlib

    grid = GIANT // GIANT_TILE
    blobs = {
        where: zlib.compress(np.full((GIANT_TILE, GIANT_TILE), value, np.uint8).tobytes())
        for where, value in stored.items()
    }
    tiles = (blobs.get((row, column), b"") for row in range(grid) for column in range(grid))
    tifffile.imwrite(
        path,
        tiles,
        shape=(GIANT, GIANT),
        dtype="uint8",
        tile=(GIANT_TILE, GIANT_TILE),
        compression="zlib",
        photometric="minisblack",
        bigtiff=True,
    )


def heavy_pixels() -> np.ndarray:
    """4096 x 4096 uint8 (level 1: 4 x 4 chunks of 512): compressible, not constant."""
    y, x = np.mgrid[0:4096, 0:4096]
    return ((7 * y + 3 * x) % 251 + 1).astype(np.uint8)


class Gate:
    """Wraps ``pyramid.downsample``: each call counts, then waits until ``open``."""

    def __init__(self) -> None:
        self.calls = 0
        self.waiting = 0
        self.opened = threading.Event()
        self._lock = threading.Lock()
        self._real = pyramid.downsample

    def __call__(self, data: np.ndarray, factors: Any, method: Any) -> np.ndarray:
        with self._lock:
            self.calls += 1
            self.waiting += 1
        try:
            self.opened.wait(WAIT)
        finally:
            with self._lock:
                self.waiting -= 1
        return self._real(data, factors, method)

    def wait_for(self, waiting: int) -> None:
        """Until ``waiting`` computations are held at the gate."""
        done = threading.Event()
        for _ in range(int(WAIT * 100)):
            if self.waiting >= waiting:
                done.set()
                break
            done.wait(0.01)
        assert self.waiting >= waiting, f"{self.waiting} computations reached the gate, not {waiting}"


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = Gate()
    monkeypatch.setattr(pyramid, "downsample", gate)
    try:
        yield gate
    finally:
        gate.opened.set()  # never leave a server thread waiting


@pytest.fixture(scope="module")
def giants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("giants")
    write_sparse_giant(root / "empty.tif", {})
    write_sparse_giant(root / "one.tif", {(300, 17): 200})
    return root


def test_coarsest_chunk_of_an_empty_giant_is_fill_at_once(giants: Path) -> None:
    with running_gateway(giants) as gateway:
        group = gateway.get("data/empty.tif/zarr.json").json()
        paths = [d["path"] for d in group["attributes"]["ome"]["multiscales"][0]["datasets"]]
        assert len(paths) >= 9  # 2^20 down to one chunk: every level but 0 synthesized
        coarsest = gateway.get(f"data/empty.tif/{paths[-1]}/zarr.json").json()
        assert coarsest["shape"] == [2048, 2048]
        assert gateway.get(f"data/empty.tif/{paths[-1]}/c/0/0").status_code == 404
        middle = len(paths) // 2
        assert gateway.get(f"data/empty.tif/{middle}/c/3/5").status_code == 404
        gateway.assert_healthy()


def test_coarsest_chunk_of_an_empty_giant_is_the_fill_chunk_when_not_omitted(giants: Path) -> None:
    with running_gateway(giants, chunks={"omit_empty": False}) as gateway:
        group = gateway.get("data/empty.tif/zarr.json").json()
        last = group["attributes"]["ome"]["multiscales"][0]["datasets"][-1]["path"]
        array = gateway.get(f"data/empty.tif/{last}/zarr.json").json()
        response = gateway.get(f"data/empty.tif/{last}/c/0/0")
        assert response.status_code == 200
        assert not decode_chunk(response.content, array).any()


def test_coarsest_chunk_of_a_giant_with_one_tile_is_exact(giants: Path) -> None:
    with running_gateway(giants) as gateway:
        group = gateway.get("data/one.tif/zarr.json").json()
        last = group["attributes"]["ome"]["multiscales"][0]["datasets"][-1]["path"]
        array = gateway.get(f"data/one.tif/{last}/zarr.json").json()
        response = gateway.get(f"data/one.tif/{last}/c/0/0")
        assert response.status_code == 200, response.text
        chunk = decode_chunk(response.content, array)
        # the coarsest pixel is 512 x 512 source pixels: tile (300, 17) is 4 x 4 of them
        expected = np.zeros((2048, 2048), np.uint8)
        expected[300 * 4 : 301 * 4, 17 * 4 : 18 * 4] = 200
        np.testing.assert_array_equal(chunk, expected)


def test_control_file_answers_while_heavy_work_holds_its_pool(tmp_path: Path, gate: Gate) -> None:
    data = heavy_pixels()
    tifffile.imwrite(
        tmp_path / "heavy.tif", data, tile=(512, 512), compression="zlib", photometric="minisblack"
    )
    heavy_requests = 6  # more than the whole read pool (4) and the heavy pool (2)
    with running_gateway(tmp_path, server={"threads": 4, "heavy_threads": 2}) as gateway:
        array = gateway.get("data/heavy.tif/1/zarr.json").json()
        assert array["chunk_grid"]["configuration"]["chunk_shape"] == [512, 512]
        with ThreadPoolExecutor(heavy_requests) as clients:
            places = [divmod(i, 4) for i in range(heavy_requests)]  # distinct: no shared work
            pending = [clients.submit(gateway.get, f"data/heavy.tif/1/c/{y}/{x}") for y, x in places]
            gate.wait_for(2)  # both heavy threads are held inside the pyramid
            gateway.assert_healthy()  # the control file: 200, exact pixels
            assert not any(p.done() for p in pending)  # ...while the heavy work is still held
            assert gate.waiting == 2  # the other heavy requests queue, they take no read thread
            gate.opened.set()
            answers = [p.result(WAIT) for p in pending]
        level1 = reduce_reference(data, (2, 2), "mean")
        for (y, x), answer in zip(places, answers, strict=True):
            assert answer.status_code == 200, answer.text
            expected = level1[y * 512 : (y + 1) * 512, x * 512 : (x + 1) * 512]
            np.testing.assert_array_equal(decode_chunk(answer.content, array), expected)


def test_request_over_its_budget_answers_json_503(tmp_path: Path, gate: Gate) -> None:
    tifffile.imwrite(tmp_path / "heavy.tif", heavy_pixels(), tile=(512, 512), photometric="minisblack")
    with running_gateway(tmp_path, server={"request_seconds": 0.5}) as gateway:
        response = gateway.get("data/heavy.tif/2/c/0/0")  # held at the gate past its budget
        document = assert_json_error(response, 503)
        assert document["error"] == "budget_exceeded"
        assert response.headers["access-control-allow-origin"] == "*"
        gate.opened.set()
        gateway.assert_healthy()


def test_client_hanging_up_cancels_the_work(
    tmp_path: Path, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    tifffile.imwrite(tmp_path / "heavy.tif", heavy_pixels(), tile=(512, 512), photometric="minisblack")
    cancelled, stopped = threading.Event(), threading.Event()

    class Token(budget.WorkToken):
        def cancel(self) -> None:
            cancelled.set()
            super().cancel()

        def check(self) -> None:  # every checkpoint, and a queued block before it starts
            try:
                super().check()
            except budget.WorkCancelled:
                stopped.set()
                raise

    monkeypatch.setattr(store, "WorkToken", Token)
    fan_out = ThreadPoolExecutor(2, thread_name_prefix="test-fan-out")  # whatever the CPU count
    monkeypatch.setattr(pyramid, "_fan_out_pool", fan_out)
    with running_gateway(tmp_path) as gateway, fan_out:
        address = urlsplit(gateway.base)
        # level 2's chunk needs 4 blocks of level 1: two computed side by side by the
        # fan-out pool's threads, two queued
        with socket.create_connection((address.hostname, address.port), timeout=WAIT) as client:
            target = "/data/heavy.tif/2/c/0/0"
            client.sendall(f"GET {target} HTTP/1.1\r\nHost: {address.netloc}\r\n\r\n".encode())
            gate.wait_for(1)  # blocks are being computed
        assert cancelled.wait(WAIT), "the work token was not cancelled when the client left"
        started = gate.calls  # the blocks already computing when the client left
        assert started <= 2
        gate.opened.set()
        assert stopped.wait(WAIT), "the computation did not stop at its next checkpoint"
        assert gate.calls == started  # no block of level 1 started after the hang-up
        gateway.assert_healthy()
