"""The in-process zarr-python Store serves exactly the bytes HTTP serves."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
import tifffile
import zarr
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype

from gateway.config.settings import Settings
from gateway.store.inprocess import MountedStore, open_store


@pytest.fixture
def multi_series(tmp_path):
    path = tmp_path / "two.ome.tif"
    first = np.arange(2 * 300 * 200, dtype=np.uint16).reshape(2, 300, 200)
    second = (np.arange(50 * 60, dtype=np.uint8) % 251).reshape(50, 60)
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(
            first, photometric="minisblack", tile=(64, 64), compression="zlib", metadata={"axes": "CYX"}
        )
        tif.write(second, photometric="minisblack", metadata={"axes": "YX"})
    return path, first, second


def test_open_group_in_process(multi_series) -> None:
    path, first, second = multi_series
    store = open_store(path)
    try:
        root = zarr.open_group(store=store, mode="r")
        assert root.attrs["ome"]["bioformats2raw.layout"] == 3
        np.testing.assert_array_equal(root["0/0"][:], first)
        np.testing.assert_array_equal(root["1/0"][:], second)
        assert sorted(root.group_keys()) == ["0", "1", "OME"]
    finally:
        store.close()


def test_store_bytes_equal_http_bytes(multi_series, server) -> None:
    path, _, _ = multi_series
    settings = Settings(roots={"data": path.parent})
    store = MountedStore(settings)
    keys = [
        "zarr.json",
        "OME/zarr.json",
        "OME/METADATA.ome.xml",
        "0/zarr.json",
        "0/0/zarr.json",
        "0/0/c/1/0/0",
        "1/0/c/0/0",
    ]
    prototype = default_buffer_prototype()
    try:
        with server(settings) as base:
            for key in keys:
                over_http = httpx.get(f"{base}/data/two.ome.tif/{key}")
                assert over_http.status_code == 200, key
                local = asyncio.run(store.get(f"data/two.ome.tif/{key}", prototype))
                assert local is not None and local.to_bytes() == over_http.content, key
    finally:
        store.close()


def test_byte_ranges_and_absent_keys(multi_series) -> None:
    path, _, _ = multi_series
    store = open_store(path)
    prototype = default_buffer_prototype()

    async def run() -> None:
        whole = (await store.get("zarr.json", prototype)).to_bytes()
        assert (await store.get("zarr.json", prototype, RangeByteRequest(2, 10))).to_bytes() == whole[2:10]
        assert (await store.get("zarr.json", prototype, OffsetByteRequest(5))).to_bytes() == whole[5:]
        assert (await store.get("zarr.json", prototype, SuffixByteRequest(4))).to_bytes() == whole[-4:]
        assert await store.get(".zattrs", prototype) is None
        assert await store.get("0/0/c/9/9/9", prototype) is None
        assert not await store.exists("0/.zarray")
        assert await store.exists("0/0/zarr.json")

    try:
        asyncio.run(run())
    finally:
        store.close()


def test_store_is_read_only(multi_series) -> None:
    path, _, _ = multi_series
    store = open_store(path)
    try:
        assert store.read_only and not store.supports_writes
        with pytest.raises(ValueError, match="read-only"):
            asyncio.run(store.set("zarr.json", default_buffer_prototype().buffer.from_bytes(b"{}")))
    finally:
        store.close()
