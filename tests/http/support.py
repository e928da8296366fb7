"""Helpers for the HTTP suites: raw requests, sample TIFFs, a gateway that proves it still serves.

httpx normalises URLs (it removes ``..`` segments, even from ``raw_path``), so requests whose
path bytes matter go through ``http.client``, which sends the request target unchanged.
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numcodecs
import numpy as np
import tifffile

from gateway.config.settings import Settings
from tests.server import serve

#: The pixels of every "healthy" file: a 256x256 uint16 ramp, tiled 128x128 (chunk grid 2x2).
HEALTHY_SHAPE = (256, 256)
HEALTHY_TILE = (128, 128)


def healthy_pixels(offset: int = 1) -> np.ndarray:
    """Distinct, never-zero pixels (so no chunk is all fill and answers 404)."""
    return (np.arange(np.prod(HEALTHY_SHAPE), dtype=np.uint16) + offset).reshape(HEALTHY_SHAPE)


def write_tiff(path: Path, data: np.ndarray, **kwargs: Any) -> Path:
    options: dict[str, Any] = {"photometric": "minisblack"}
    options.update(kwargs)
    tifffile.imwrite(path, data, **options)
    return path


def write_healthy(path: Path, offset: int = 1, **kwargs: Any) -> np.ndarray:
    data = healthy_pixels(offset)
    options: dict[str, Any] = {"tile": HEALTHY_TILE, "compression": "zlib", **kwargs}
    if options["compression"] == "zlib":  # predicted: transcoded (plain deflate tiles are sent as stored)
        options.setdefault("predictor", True)
    write_tiff(path, data, **options)
    return data


def decode_chunk(body: bytes, array: dict[str, Any]) -> np.ndarray:
    """A served chunk as an array, decoded as its array's ``zarr.json`` declares."""
    codecs = array["codecs"]
    assert codecs[0]["name"] == "bytes", codecs
    for codec in reversed(codecs[1:]):
        config = codec["configuration"]
        if codec["name"] == "zstd":
            body = bytes(numcodecs.Zstd().decode(body))
        elif codec["name"] == "gzip":
            body = bytes(numcodecs.GZip().decode(body))
        elif codec["name"] == "blosc":
            body = bytes(numcodecs.Blosc(cname=config["cname"]).decode(body))
        else:
            raise AssertionError(f"unexpected codec {codec}")
    endian = "<" if codecs[0]["configuration"].get("endian", "little") == "little" else ">"
    dtype = np.dtype(array["data_type"]).newbyteorder(endian)
    return np.frombuffer(body, dtype=dtype).reshape(array["chunk_grid"]["configuration"]["chunk_shape"])


def fetch_chunk(client: httpx.Client, array_url: str, key: str) -> np.ndarray:
    """GET ``<array_url>/zarr.json`` and ``<array_url>/<key>``; the chunk as an array."""
    metadata = client.get(f"{array_url}/zarr.json")
    assert metadata.status_code == 200, metadata.text
    chunk = client.get(f"{array_url}/{key}")
    assert chunk.status_code == 200, chunk.text
    return decode_chunk(chunk.content, metadata.json())


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    base: str, method: str, target: str, headers: Mapping[str, str] | None = None, body: bytes | None = None
) -> RawResponse:
    """Send ``target`` byte for byte (no normalisation, no re-encoding)."""
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=30)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
        return RawResponse(response.status, httpx.Headers(response.getheaders()), data)
    finally:
        connection.close()


def assert_json_error(response: RawResponse | httpx.Response, status: int) -> dict[str, Any]:
    """``status`` with a ``{"error": ..., "detail": ...}`` JSON body; returns the body."""
    if isinstance(response, RawResponse):
        actual, body = response.status, response.body
    else:
        actual, body = response.status_code, response.content
    assert actual == status, body[:300]
    assert response.headers["content-type"].startswith("application/json"), response.headers
    document = json.loads(body)
    assert set(document) == {"error", "detail"}, document
    assert isinstance(document["error"], str) and document["error"]
    assert isinstance(document["detail"], str) and document["detail"]
    return document


@dataclass
class Gateway:
    """A running server with one healthy file, ``data/healthy.tif``, to prove it still serves."""

    base: str
    root: Path
    client: httpx.Client
    healthy: np.ndarray

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(self.url(path), **kwargs)

    def raw(self, method: str, target: str, headers: Mapping[str, str] | None = None) -> RawResponse:
        return raw_request(self.base, method, target, headers)

    def describe(self, name: str) -> Any:
        """The JSON description of dataset ``data/<name>`` (its page, ``?format=json``)."""
        response = self.get(f"/data/{name}/?format=json")
        assert response.status_code == 200, response.text
        return response.json()

    def assert_healthy(self) -> None:
        """zarr.json and a chunk of the healthy file are served with the right pixels."""
        chunk = fetch_chunk(self.client, self.url("data/healthy.tif/0"), "c/1/1")
        np.testing.assert_array_equal(chunk, self.healthy[128:, 128:])


@contextmanager
def running_gateway(root: Path, **sections: Any) -> Iterator[Gateway]:
    """Serve ``root`` as ``data`` (with ``healthy.tif`` written into it) on a real server."""
    healthy = write_healthy(root / "healthy.tif")
    settings = Settings.from_mapping({"roots": {"data": str(root)}, **sections})
    with serve(settings) as base, new_client() as client:
        yield Gateway(base=base, root=root, client=client, healthy=healthy)


def deleted_descriptors(path: Path) -> list[str]:
    """This process's descriptors still open on ``path`` after it was deleted."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target == f"{path} (deleted)":
            found.append(fd)
    return found


def new_client() -> httpx.Client:
    """An httpx client without keep-alive: reused loopback connections wait ~40 ms per request
    on delayed ACKs, which would dominate the suite's runtime."""
    return httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


def write_browsable_tree(root: Path, outside: Path) -> None:
    """A root as a listing sees it: datasets at the top and two folders down, a name in
    capitals, hidden files and folders, a non-dataset file, and symlinks out of the root
    (a file and a folder) and within it; ``outside`` holds what the links point out to."""
    root.mkdir()
    outside.mkdir()
    write_healthy(outside / "outside.tif")
    write_healthy(root / "top.ome.tif")
    (root / "sub" / "deeper").mkdir(parents=True)
    write_healthy(root / "sub" / "deeper" / "inner.tif")
    write_healthy(root / "sub" / "UPPER.TIFF")
    write_healthy(root / ".hidden.tif")
    (root / ".hiddendir").mkdir()
    write_healthy(root / ".hiddendir" / "inside-hidden.tif")
    (root / "notes.txt").write_text("not a dataset")
    os.symlink(outside / "outside.tif", root / "link-out.tif")
    os.symlink(outside, root / "outdir")
    os.symlink(root / "top.ome.tif", root / "link-in.tif")
