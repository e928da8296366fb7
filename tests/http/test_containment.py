"""Only files inside a root are reachable: every escape attempt is a JSON 404, never the secret.

The outside file is an uncompressed TIFF whose pixels spell ``SECRET`` and the server encodes
chunks with codec ``none``, so a leaked chunk would carry the marker verbatim.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from gateway.config.settings import Settings
from tests.http.support import (
    assert_json_error,
    fetch_chunk,
    raw_request,
    running_gateway,
    write_tiff,
)
from tests.server import serve

SECRET = b"TOP-SECRET-7f3a9c"


def secret_pixels() -> np.ndarray:
    return np.frombuffer(SECRET * 10 * 64, dtype=np.uint8).reshape(64, len(SECRET) * 10)


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """``<tmp>/outside``, beside the root ``<tmp>/root``: ``/data/../outside`` would reach it."""
    directory = tmp_path_factory.mktemp("containment") / "outside"
    directory.mkdir()
    write_tiff(directory / "secret.tif", secret_pixels())
    (directory / "secret.txt").write_bytes(SECRET)
    return directory


@pytest.fixture(scope="module")
def gateway(outside):
    root = outside.parent / "root"
    root.mkdir()
    write_tiff(root / ".hidden.tif", secret_pixels())
    (root / ".hiddendir").mkdir()
    write_tiff(root / ".hiddendir" / "inner.tif", secret_pixels())
    (root / "sub").mkdir()
    (root / "notes.txt").write_bytes(SECRET)
    os.symlink(outside / "secret.tif", root / "link-out.tif")
    os.symlink(outside, root / "outdir")
    with running_gateway(root, chunks={"codec": "none"}) as gw:
        os.symlink(root / "healthy.tif", root / "link-in.tif")
        yield gw


ESCAPES = [
    "/data/../outside/secret.tif/0/c/0/0",
    "/data/../outside/secret.tif/zarr.json",
    "/data/%2e%2e/outside/secret.tif/0/c/0/0",
    "/data/%2E%2E/outside/secret.tif/0/c/0/0",
    "/data/.%2e/outside/secret.tif/0/c/0/0",
    "/data/%2e./outside/secret.tif/0/c/0/0",
    "/data/%252e%252e/outside/secret.tif/0/c/0/0",
    "/data/%25252e%25252e/outside/secret.tif/0/c/0/0",
    "/data/sub/..%2f..%2foutside/secret.tif/0/c/0/0",
    "/data/sub%2f..%2f..%2foutside%2fsecret.tif/0/c/0/0",
    "/data%2f..%2foutside/secret.tif/0/c/0/0",
    "/data/sub/%2e%2e%2f%2e%2e%2foutside/secret.tif/0/c/0/0",
    "/data/healthy.tif/../../outside/secret.tif/0/c/0/0",
    "/data/healthy.tif/%2e%2e/%2e%2e/outside/secret.tif/0/c/0/0",
    "/data/sub/../healthy.tif/zarr.json",
    "/data/./healthy.tif/zarr.json",
    "/data/%2e/healthy.tif/zarr.json",
    "//etc/passwd",
    "/data//etc/passwd",
    "/data/%2fetc%2fpasswd",
    "/data/%2Fetc%2Fpasswd.tif/zarr.json",
    "/data//healthy.tif/zarr.json",
    "/data/healthy.tif%00/zarr.json",
    "/data/healthy.tif%00.txt/zarr.json",
    "/data/link-out.tif%00/0/c/0/0",
    "/data/sub%5c..%5c..%5coutside%5csecret.tif/0/c/0/0",
    "/data/..%5coutside%5csecret.tif/0/c/0/0",
    "/data/..\\outside\\secret.tif/0/c/0/0",
    "/data/sub\\..\\healthy.tif/zarr.json",
    "/data/.hidden.tif/zarr.json",
    "/data/.hidden.tif/0/c/0/0",
    "/data/%2ehidden.tif/0/c/0/0",
    "/data/.hiddendir/inner.tif/0/c/0/0",
    "/data/link-out.tif/zarr.json",
    "/data/link-out.tif/0/c/0/0",
    "/data/outdir/secret.tif/zarr.json",
    "/data/outdir/secret.tif/0/c/0/0",
    "/outside/secret.tif/0/c/0/0",
    "/nope/healthy.tif/zarr.json",
    "/DATA/healthy.tif/zarr.json",
    "/data/notes.txt",
    "/data/notes.txt/zarr.json",
    "/data/outdir/secret.txt",
    "/data/missing.tif/zarr.json",
    "/data/sub.tif/zarr.json",
]


@pytest.mark.parametrize("view", ["", "/browse", "/v2"])  # the canonical, browsing and Zarr v2 views
@pytest.mark.parametrize("target", ESCAPES)
def test_escape_attempt_is_json_404_without_secret(gateway, target, view):
    response = gateway.raw("GET", view + target)
    assert_json_error(response, 404)
    assert SECRET not in response.body


@pytest.mark.parametrize("target", ESCAPES[:6])
def test_escape_attempt_with_head_is_404(gateway, target):
    response = gateway.raw("HEAD", target)
    assert response.status == 404
    assert response.body == b""


def test_extra_leading_slashes_are_404(gateway):
    assert_json_error(gateway.raw("GET", "///data/healthy.tif/zarr.json"), 404)


def test_absolute_path_of_outside_file_under_root_is_404(gateway, outside):
    absolute = (outside / "secret.tif").as_posix()
    response = gateway.raw("GET", f"/data/{absolute}/0/c/0/0")
    assert_json_error(response, 404)
    assert SECRET not in response.body


def test_absolute_path_of_outside_file_alone_is_404(gateway, outside):
    absolute = (outside / "secret.tif").as_posix()
    response = gateway.raw("GET", f"{absolute}/0/c/0/0")
    assert_json_error(response, 404)
    assert SECRET not in response.body


def test_symlink_to_file_inside_root_is_served(gateway):
    chunk = fetch_chunk(gateway.client, gateway.url("data/link-in.tif/0"), "c/0/0")
    np.testing.assert_array_equal(chunk, gateway.healthy[:128, :128])


def test_listing_never_mentions_outside_or_hidden_files(gateway):
    response = gateway.get("/data/", headers={"Accept": "application/json"})
    paths = {d["path"] for d in response.json()["datasets"]}
    assert paths == {"data/healthy.tif", "data/link-in.tif"}
    assert SECRET not in response.content


def test_secret_would_be_visible_if_served(tmp_path):
    """The marker test above has teeth: the same file served from its own root shows it."""
    write_tiff(tmp_path / "secret.tif", secret_pixels())
    settings = Settings.from_mapping({"roots": {"out": str(tmp_path)}, "chunks": {"codec": "none"}})
    with serve(settings) as base:
        response = raw_request(base, "GET", "/out/secret.tif/0/c/0/0")
    assert response.status == 200
    assert SECRET in response.body
