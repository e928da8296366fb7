"""Range requests on every kind of key: 206 with an exact Content-Range, 416, HEAD, If-Range."""

from __future__ import annotations

import pytest

from tests.http.support import assert_json_error, running_gateway

CHUNK = "/data/healthy.tif/0/c/1/0"
METADATA = "/data/healthy.tif/0/zarr.json"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("ranges")) as gw:
        yield gw


@pytest.fixture(scope="module")
def bodies(gateway):
    return {target: gateway.raw("GET", target).body for target in (CHUNK, METADATA)}


@pytest.fixture(autouse=True)
def still_serving(gateway):
    yield
    gateway.assert_healthy()


@pytest.mark.parametrize("target", [CHUNK, METADATA])
def test_full_response_advertises_byte_ranges(gateway, target):
    assert gateway.raw("GET", target).headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize("target", [CHUNK, METADATA])
@pytest.mark.parametrize(
    ("spec", "start", "stop"), [("0-9", 0, 10), ("5-5", 5, 6), ("10-", 10, None), ("-7", -7, None)]
)
def test_range_is_206_with_the_exact_bytes(gateway, bodies, target, spec, start, stop):
    body = bodies[target]
    response = gateway.raw("GET", target, {"Range": f"bytes={spec}"})
    want = body[start:stop]
    first = start % len(body)
    assert response.status == 206
    assert response.body == want
    assert response.headers["content-length"] == str(len(want))
    assert response.headers["content-range"] == f"bytes {first}-{first + len(want) - 1}/{len(body)}"


def test_range_past_the_end_is_clamped(gateway, bodies):
    size = len(bodies[CHUNK])
    response = gateway.raw("GET", CHUNK, {"Range": f"bytes=2-{size * 10}"})
    assert (response.status, response.body) == (206, bodies[CHUNK][2:])
    assert response.headers["content-range"] == f"bytes 2-{size - 1}/{size}"


def test_suffix_longer_than_the_body_is_the_whole_body(gateway, bodies):
    size = len(bodies[CHUNK])
    response = gateway.raw("GET", CHUNK, {"Range": f"bytes=-{size + 100}"})
    assert (response.status, response.body) == (206, bodies[CHUNK])
    assert response.headers["content-range"] == f"bytes 0-{size - 1}/{size}"


@pytest.mark.parametrize("spec", ["{size}-", "{size}-{end}", "-0"])
def test_unsatisfiable_range_is_json_416_with_the_size(gateway, bodies, spec):
    size = len(bodies[CHUNK])
    response = gateway.raw("GET", CHUNK, {"Range": "bytes=" + spec.format(size=size, end=size + 5)})
    assert_json_error(response, 416)
    assert response.headers["content-range"] == f"bytes */{size}"
    assert response.headers["access-control-allow-origin"] == "*"


def test_head_with_range_is_206_without_a_body(gateway, bodies):
    response = gateway.raw("HEAD", CHUNK, {"Range": "bytes=0-99"})
    assert (response.status, response.body) == (206, b"")
    assert response.headers["content-length"] == "100"
    assert response.headers["content-range"] == f"bytes 0-99/{len(bodies[CHUNK])}"


def test_several_ranges_get_the_whole_body(gateway, bodies):
    """Documented choice: multi-range requests are answered 200 with everything."""
    response = gateway.raw("GET", CHUNK, {"Range": "bytes=0-1,5-6"})
    assert (response.status, response.body) == (200, bodies[CHUNK])


@pytest.mark.parametrize("header", ["bytes=5-2", "items=0-1", "bytes=abc", "bytes=-"])
def test_invalid_range_is_ignored(gateway, bodies, header):
    response = gateway.raw("GET", CHUNK, {"Range": header})
    assert (response.status, response.body) == (200, bodies[CHUNK])


def test_if_range_with_the_current_etag_honours_the_range(gateway):
    etag = gateway.raw("GET", CHUNK).headers["etag"]
    assert gateway.raw("GET", CHUNK, {"Range": "bytes=0-3", "If-Range": etag}).status == 206


def test_if_range_with_another_etag_sends_everything(gateway, bodies):
    response = gateway.raw("GET", CHUNK, {"Range": "bytes=0-3", "If-Range": '"other"'})
    assert (response.status, response.body) == (200, bodies[CHUNK])


def test_range_of_a_missing_key_is_404(gateway):
    assert_json_error(gateway.raw("GET", "/data/healthy.tif/0/c/5/5", {"Range": "bytes=0-3"}), 404)


def test_416_is_not_cached(gateway, bodies):
    response = gateway.raw("GET", CHUNK, {"Range": f"bytes={len(bodies[CHUNK])}-"})
    assert response.headers["cache-control"] == "no-store"
