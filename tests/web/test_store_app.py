"""gateway.web.app.create_store_app: any store served alone over HTTP, by a real uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tifffile
import zarr
from zarr.core.buffer import default_buffer_prototype

from gateway.config.settings import ServerSettings
from gateway.store.base import ServedStore
from gateway.store.inprocess import open_store
from gateway.web.app import create_store_app
from tests.server import serve_app


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 4096, (3, 300, 260), dtype=np.uint16)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, pixels: np.ndarray) -> Iterator[ServedStore]:
    path = tmp_path_factory.mktemp("store-app") / "cells.tif"
    tifffile.imwrite(
        path, pixels, photometric="minisblack", tile=(128, 128), compression="zlib", metadata={"axes": "CYX"}
    )
    served = open_store(path)
    yield served
    served.close()


@pytest.fixture(scope="module")
def base(store: ServedStore) -> Iterator[str]:
    with serve_app(create_store_app(store), ServerSettings()) as url:
        yield url


def test_zarr_python_reads_the_served_store_bit_exactly(base: str, pixels: np.ndarray) -> None:
    group = zarr.open_group(base, mode="r")
    np.testing.assert_array_equal(group["0"][:], pixels)


def test_bytes_over_http_are_the_store_bytes(base: str, store: ServedStore) -> None:
    for key in ("zarr.json", "0/zarr.json", "0/c/1/2/1"):
        local = asyncio.run(store.get(key, default_buffer_prototype()))
        answer = httpx.get(f"{base}/{key}")
        assert answer.status_code == 200 and local is not None
        assert answer.content == local.to_bytes(), key
        assert answer.headers["etag"] == store.describe(key).etag  # type: ignore[union-attr]


def test_conditional_and_range_requests(base: str) -> None:
    first = httpx.get(f"{base}/0/c/0/0/0")
    again = httpx.get(f"{base}/0/c/0/0/0", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    part = httpx.get(f"{base}/0/c/0/0/0", headers={"Range": "bytes=2-9"})
    assert part.status_code == 206 and part.content == first.content[2:10]
    assert httpx.head(f"{base}/0/c/0/0/0").headers["content-length"] == str(len(first.content))


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "0/c/9/9/9", 404),
        ("GET", "no/such/zarr.json", 404),
        ("GET", "0/", 404),
        ("PUT", "zarr.json", 405),
    ],
)
def test_what_the_store_has_not_is_a_json_error(base: str, method: str, path: str, status: int) -> None:
    answer = httpx.request(method, f"{base}/{path}")
    assert answer.status_code == status
    assert set(answer.json()) >= {"error", "detail"}
    assert answer.headers["access-control-allow-origin"] == "*"


def test_the_store_outlives_its_app(tmp_path: Path) -> None:
    """The caller owns the store: serving it does not close it."""
    path = tmp_path / "plane.tif"
    tifffile.imwrite(path, np.ones((64, 64), np.uint8))
    served = open_store(path)
    try:
        with serve_app(create_store_app(served), ServerSettings()) as url:
            assert httpx.get(f"{url}/zarr.json").status_code == 200
        assert asyncio.run(served.get("zarr.json", default_buffer_prototype())) is not None
    finally:
        served.close()
