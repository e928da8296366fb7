"""HEAD mirrors GET (status, exact Content-Length, no body); bodies are never content-encoded."""

from __future__ import annotations

import pytest

from tests.http.support import running_gateway

TARGETS = [
    "/data/healthy.tif/zarr.json",
    "/data/healthy.tif/0/zarr.json",
    "/data/healthy.tif/0/c/0/0",
    "/data/healthy.tif/0/c/1/1",
    "/data/healthy.tif/0/c/5/5",
    "/data/missing.tif/zarr.json",
    "/",
]
CHUNKS = ["/data/healthy.tif/0/c/0/0", "/data/healthy.tif/0/c/1/0"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("head")) as gw:
        yield gw


@pytest.mark.parametrize("target", TARGETS)
def test_head_has_the_status_of_get(gateway, target):
    assert gateway.raw("HEAD", target).status == gateway.raw("GET", target).status


@pytest.mark.parametrize("target", TARGETS)
def test_head_has_the_content_length_of_get(gateway, target):
    head, get = gateway.raw("HEAD", target), gateway.raw("GET", target)
    assert head.headers["content-length"] == get.headers["content-length"]


@pytest.mark.parametrize("target", TARGETS)
def test_head_has_an_empty_body(gateway, target):
    assert gateway.raw("HEAD", target).body == b""


@pytest.mark.parametrize("target", TARGETS)
def test_head_has_the_content_type_of_get(gateway, target):
    head, get = gateway.raw("HEAD", target), gateway.raw("GET", target)
    assert head.headers["content-type"] == get.headers["content-type"]


@pytest.mark.parametrize("target", TARGETS)
def test_get_content_length_is_the_body_length(gateway, target):
    response = gateway.raw("GET", target)
    assert int(response.headers["content-length"]) == len(response.body)


@pytest.mark.parametrize("target", CHUNKS)
def test_chunk_is_not_content_encoded_even_if_gzip_is_accepted(gateway, target):
    response = gateway.raw("GET", target, {"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert response.status == 200
    assert "content-encoding" not in response.headers


def test_metadata_is_not_content_encoded_even_if_gzip_is_accepted(gateway):
    response = gateway.raw("GET", "/data/healthy.tif/0/zarr.json", {"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers


def test_chunk_is_octet_stream(gateway):
    response = gateway.raw("GET", CHUNKS[0])
    assert response.headers["content-type"] == "application/octet-stream"


def test_metadata_is_json(gateway):
    response = gateway.raw("GET", "/data/healthy.tif/zarr.json")
    assert response.headers["content-type"].startswith("application/json")


def test_response_has_a_date(gateway):
    assert gateway.raw("GET", CHUNKS[0]).headers.get("date")
