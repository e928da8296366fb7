"""The gateway is read-only: write methods are a JSON 405 with an ``Allow`` header."""

from __future__ import annotations

import pytest

from tests.http.support import assert_json_error, running_gateway

WRITE_METHODS = ["PUT", "POST", "DELETE", "PATCH"]
TARGETS = [
    "/",
    "/data/healthy.tif/zarr.json",
    "/data/healthy.tif/0/zarr.json",
    "/data/healthy.tif/0/c/0/0",
    "/data/healthy.tif/0/c/9/9",
    "/data/missing.tif/zarr.json",
]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("methods")) as gw:
        yield gw


def allowed(response) -> set[str]:
    return {m.strip().upper() for m in response.headers["allow"].split(",")}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("method", WRITE_METHODS)
def test_write_method_is_json_405(gateway, method, target):
    response = gateway.raw(method, target)
    document = assert_json_error(response, 405)
    assert method in document["detail"]


@pytest.mark.parametrize("method", WRITE_METHODS)
def test_405_allow_header_lists_only_read_methods(gateway, method):
    response = gateway.raw(method, "/data/healthy.tif/0/c/0/0")
    assert allowed(response) == {"GET", "HEAD", "OPTIONS"}


def test_put_with_a_body_does_not_touch_the_file(gateway):
    path = gateway.root / "healthy.tif"
    before = path.read_bytes()
    response = gateway.client.put(gateway.url("data/healthy.tif/0/c/0/0"), content=b"\0" * 1000)
    assert response.status_code == 405
    assert path.read_bytes() == before


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND"])
def test_other_method_is_json_405_allowing_only_reads(gateway, method):
    response = gateway.raw(method, "/data/healthy.tif/zarr.json")
    assert_json_error(response, 405)
    assert allowed(response) == {"GET", "HEAD", "OPTIONS"}
