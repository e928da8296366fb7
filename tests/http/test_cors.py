"""CORS on every response (200, 404, 405, 500) and answered preflights."""

from __future__ import annotations

import pytest

from tests.http.support import assert_json_error, running_gateway

ORIGIN = "https://viewer.example"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    root = tmp_path_factory.mktemp("cors")
    (root / "broken.tif").write_bytes(b"not a tiff at all")
    with running_gateway(root) as gw:
        yield gw


def preflight(gateway, target="/data/healthy.tif/0/c/0/0", requested="range, authorization"):
    return gateway.raw(
        "OPTIONS",
        target,
        {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": requested,
        },
    )


def header_set(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",") if item.strip()}


def test_preflight_is_204(gateway):
    assert preflight(gateway).status == 204


def test_preflight_allows_any_origin(gateway):
    assert preflight(gateway).headers["access-control-allow-origin"] == "*"


def test_preflight_allows_get_and_head(gateway):
    methods = header_set(preflight(gateway).headers["access-control-allow-methods"])
    assert {"get", "head"} <= methods


def test_preflight_allows_range_and_authorization(gateway):
    headers = header_set(preflight(gateway).headers["access-control-allow-headers"])
    assert {"range", "authorization"} <= headers


def test_preflight_allows_other_requested_headers(gateway):
    response = preflight(gateway, requested="Range, X-Custom-Header")
    assert "x-custom-header" in header_set(response.headers["access-control-allow-headers"])


def test_preflight_on_root_listing_is_204(gateway):
    assert preflight(gateway, target="/").status == 204


def test_preflight_on_missing_key_is_204(gateway):
    assert preflight(gateway, target="/data/missing.tif/zarr.json").status == 204


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        ("GET", "/data/healthy.tif/zarr.json", 200),
        ("GET", "/data/healthy.tif/0/c/0/0", 200),
        ("HEAD", "/data/healthy.tif/0/c/0/0", 200),
        ("GET", "/", 200),
        ("GET", "/data/healthy.tif/0/c/7/7", 404),
        ("GET", "/data/../etc/passwd", 404),
        ("PUT", "/data/healthy.tif/zarr.json", 405),
        ("DELETE", "/", 405),
        ("GET", "/data/broken.tif/zarr.json", 500),
    ],
)
def test_cors_header_on_every_response(gateway, method, target, status):
    response = gateway.raw(method, target, {"Origin": ORIGIN})
    assert response.status == status
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("target", ["/data/healthy.tif/0/c/0/0", "/data/missing.tif/zarr.json"])
def test_exposed_headers_include_content_length(gateway, target):
    response = gateway.raw("GET", target, {"Origin": ORIGIN})
    assert "content-length" in header_set(response.headers["access-control-expose-headers"])


def test_cors_header_without_origin_in_request(gateway):
    response = gateway.raw("GET", "/data/healthy.tif/zarr.json")
    assert response.headers["access-control-allow-origin"] == "*"


def test_500_with_cors_is_json(gateway):
    response = gateway.raw("GET", "/data/broken.tif/zarr.json", {"Origin": ORIGIN})
    assert_json_error(response, 500)


# -- a configured list of origins ------------------------------------------------------------


@pytest.fixture(scope="module")
def restricted(tmp_path_factory):
    root = tmp_path_factory.mktemp("cors-restricted")
    with running_gateway(root, server={"cors_origins": [ORIGIN]}) as gw:
        yield gw


def test_listed_origin_is_echoed(restricted):
    response = restricted.raw("GET", "/data/healthy.tif/zarr.json", {"Origin": ORIGIN})
    assert response.headers["access-control-allow-origin"] == ORIGIN


def test_listed_origin_response_varies_on_origin(restricted):
    response = restricted.raw("GET", "/data/healthy.tif/zarr.json", {"Origin": ORIGIN})
    assert "origin" in header_set(response.headers["vary"])


def test_unlisted_origin_gets_no_cors_header(restricted):
    response = restricted.raw("GET", "/data/healthy.tif/zarr.json", {"Origin": "https://evil.example"})
    assert response.status == 200
    assert "access-control-allow-origin" not in response.headers


def test_unlisted_origin_preflight_gets_no_cors_header(restricted):
    unlisted = restricted.raw(
        "OPTIONS",
        "/data/healthy.tif/zarr.json",
        {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in unlisted.headers
