"""The probes clients send to find out what a URL is answer 404 fast, without opening the file."""

from __future__ import annotations

import pytest

from tests.http.support import assert_json_error, running_gateway

PROBES = [
    ".zattrs",
    ".zgroup",
    ".zarray",
    ".zmetadata",
    "0/.zarray",
    "info",  # Neuroglancer precomputed
    "attributes.json",  # N5
    "0/attributes.json",
    "labels/zarr.json",  # OME-Zarr labels (there are none)
    "labels/.zattrs",
    "0/info",
]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    root = tmp_path_factory.mktemp("probes")
    (root / "broken.tif").write_bytes(b"not a tiff: opening it is a 500")
    with running_gateway(root) as gw:
        yield gw


@pytest.fixture(autouse=True)
def still_serving(gateway):
    yield
    gateway.assert_healthy()


@pytest.mark.parametrize("probe", PROBES)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_probe_is_404(gateway, probe, method):
    response = gateway.raw(method, f"/data/healthy.tif/{probe}", {"Origin": "https://viewer.example"})
    assert response.status == 404
    assert response.headers["access-control-allow-origin"] == "*"
    if method == "GET":
        assert_json_error(response, 404)


@pytest.mark.parametrize("probe", [p for p in PROBES if not p.endswith("zarr.json")])
def test_probe_does_not_open_the_file(gateway, probe):
    """The broken file would answer 500 if it were opened."""
    assert_json_error(gateway.raw("GET", f"/data/broken.tif/{probe}"), 404)
