"""Caching headers: strong ETags from source identity + key + encoding, 304s, Last-Modified,
Date, Cache-Control per kind of response (configurable), never Content-Encoding."""

from __future__ import annotations

import os
import time
from email.utils import parsedate_to_datetime

import numpy as np
import pytest

from gateway.config.settings import Settings
from tests.deploy.support import metric_total
from tests.http.support import (
    assert_json_error,
    new_client,
    raw_request,
    running_gateway,
    write_healthy,
    write_tiff,
)
from tests.server import serve

CHUNK = "/data/healthy.tif/0/c/1/0"
METADATA = "/data/healthy.tif/0/zarr.json"
TARGETS = [CHUNK, "/data/healthy.tif/0/c/0/0", METADATA, "/data/healthy.tif/zarr.json"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("caching")) as gw:
        yield gw


@pytest.fixture(autouse=True)
def still_serving(gateway):
    yield
    gateway.assert_healthy()


@pytest.mark.parametrize("target", TARGETS)
def test_etag_is_strong_and_quoted(gateway, target):
    etag = gateway.raw("GET", target).headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")


@pytest.mark.parametrize("target", TARGETS)
def test_etag_is_stable(gateway, target):
    assert gateway.raw("GET", target).headers["etag"] == gateway.raw("HEAD", target).headers["etag"]


def test_etags_differ_between_keys(gateway):
    assert len({gateway.raw("GET", t).headers["etag"] for t in TARGETS}) == len(TARGETS)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("target", TARGETS)
def test_if_none_match_gives_304_without_a_body(gateway, target, method):
    etag = gateway.raw("GET", target).headers["etag"]
    response = gateway.raw(method, target, {"If-None-Match": etag})
    assert (response.status, response.body) == (304, b"")
    assert response.headers["etag"] == etag
    assert response.headers["access-control-allow-origin"] == "*"


def test_if_none_match_with_a_list_and_weak_form_gives_304(gateway):
    etag = gateway.raw("GET", CHUNK).headers["etag"]
    assert gateway.raw("GET", CHUNK, {"If-None-Match": f'"nope", W/{etag}'}).status == 304


def test_if_none_match_with_another_etag_gives_200(gateway):
    assert gateway.raw("GET", CHUNK, {"If-None-Match": '"nope"'}).status == 200


def test_if_modified_since_last_modified_gives_304(gateway):
    modified = gateway.raw("GET", CHUNK).headers["last-modified"]
    assert gateway.raw("GET", CHUNK, {"If-Modified-Since": modified}).status == 304


def test_if_modified_since_an_older_date_gives_200(gateway):
    response = gateway.raw("GET", CHUNK, {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert response.status == 200


@pytest.mark.parametrize("target", TARGETS)
def test_last_modified_is_the_file_mtime(gateway, target):
    header = gateway.raw("GET", target).headers["last-modified"]
    mtime = int(os.stat(gateway.root / "healthy.tif").st_mtime)
    assert parsedate_to_datetime(header).timestamp() == mtime


@pytest.mark.parametrize("target", [*TARGETS, "/", "/data/missing.tif/zarr.json"])
def test_date_is_a_valid_current_http_date(gateway, target):
    date = parsedate_to_datetime(gateway.raw("GET", target).headers["date"])
    assert abs(date.timestamp() - time.time()) < 60


def test_chunk_cache_control_is_long(gateway):
    assert gateway.raw("GET", CHUNK).headers["cache-control"] == "public, max-age=86400"


def test_metadata_cache_control_is_short(gateway):
    assert gateway.raw("GET", METADATA).headers["cache-control"] == "public, max-age=60"


@pytest.mark.parametrize(
    "target", ["/data/healthy.tif/0/c/9/9", "/data/missing.tif/zarr.json", "/data/healthy.tif/.zattrs"]
)
def test_errors_are_not_stored(gateway, target):
    response = gateway.raw("GET", target)
    assert_json_error(response, 404)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("target", TARGETS)
def test_no_content_encoding_even_with_range_and_gzip_accepted(gateway, target):
    response = gateway.raw("GET", target, {"Accept-Encoding": "gzip, br, zstd", "Range": "bytes=0-3"})
    assert "content-encoding" not in response.headers


def test_cache_control_is_configurable(serve_dir):
    root, start = serve_dir
    write_healthy(root / "a.tif", tile=(128, 128))
    server = {"cache_control_chunks": "public, max-age=5, immutable", "cache_control_metadata": "no-cache"}
    with start(server=server) as base, new_client() as client:
        chunk = client.get(f"{base}/data/a.tif/0/c/0/0")
        metadata = client.get(f"{base}/data/a.tif/zarr.json")
    assert chunk.headers["cache-control"] == "public, max-age=5, immutable"
    assert metadata.headers["cache-control"] == "no-cache"


def test_etag_changes_when_the_file_changes(serve_dir):
    root, start = serve_dir
    write_healthy(root / "a.tif", tile=(128, 128))
    with start(cache={"stat_interval_seconds": 0}) as base, new_client() as client:
        before = client.get(f"{base}/data/a.tif/0/c/0/0").headers["etag"]
        write_healthy(root / "a.tif", offset=7, tile=(128, 128))
        os.utime(root / "a.tif", ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
        after = client.get(f"{base}/data/a.tif/0/c/0/0", headers={"If-None-Match": before})
    assert after.status_code == 200
    assert after.headers["etag"] != before


def test_etag_changes_with_the_codec(serve_dir):
    root, start = serve_dir
    write_healthy(root / "a.tif", tile=(128, 128))
    tags = []
    for codec in ("zstd", "gzip"):
        with start(chunks={"codec": codec}) as base, new_client() as client:
            tags.append(client.get(f"{base}/data/a.tif/0/c/0/0").headers["etag"])
    assert tags[0] != tags[1]


def chunk_misses(base: str) -> float:
    """Chunks computed so far (chunk cache misses), from the server's /metrics."""
    text = raw_request(base, "GET", "/metrics").body.decode()
    return metric_total(text, "gateway_cache_lookups_total", cache="chunks", result="miss")


@pytest.mark.parametrize("target", [CHUNK, "/data/pyramid.tif/2/c/0/0"])
def test_304_on_a_fresh_server_reads_no_pixels(tmp_path, target):
    """A revalidation needs the entity tag, not the bytes: a server that has never rendered
    the chunk (a restart, another instance behind the balancer) answers If-None-Match with
    a 304 without computing it (a synthesized pyramid level included)."""
    write_healthy(tmp_path / "healthy.tif")
    pixels = np.arange(2048 * 2048, dtype=np.uint16).reshape(2048, 2048)
    write_tiff(tmp_path / "pyramid.tif", pixels, tile=(256, 256), compression="zlib")
    settings = Settings.from_mapping({"roots": {"data": str(tmp_path)}})
    with serve(settings) as first:
        etag = raw_request(first, "GET", target).headers["etag"]
    with serve(settings) as fresh:
        response = raw_request(fresh, "GET", target, {"If-None-Match": etag})
        assert (response.status, response.body, response.headers["etag"]) == (304, b"", etag)
        assert chunk_misses(fresh) == 0
        other = raw_request(fresh, "GET", target, {"If-None-Match": '"another"'})
        assert other.status == 200 and other.headers["etag"] == etag
        assert chunk_misses(fresh) == 1


def chunk_cache(base: str) -> tuple[float, float]:
    """(entries held, hits so far) of the encoded-chunk cache, from the server's /metrics."""
    text = raw_request(base, "GET", "/metrics").body.decode()
    return (
        metric_total(text, "gateway_cache_entries", cache="chunks"),
        metric_total(text, "gateway_cache_lookups_total", cache="chunks", result="hit"),
    )


def test_stored_chunks_are_kept_from_their_second_request(tmp_path):
    """A chunk sent as the source stores it is read again rather than copied into the chunk
    cache on its first request (the page cache holds those bytes: a dask pass over a file
    leaves the cache alone); asked for again, it is kept. So is one framed without codec
    work (a deflate tile in a blosc frame). A transcoded chunk is kept at once."""
    pixels = np.arange(512 * 512, dtype=np.uint16).reshape(512, 512)
    write_tiff(tmp_path / "stored.tif", pixels, tile=(256, 256), compression="zstd")
    write_tiff(tmp_path / "coded.tif", pixels, tile=(256, 256), compression="zlib", predictor=True)
    write_tiff(tmp_path / "framed.tif", pixels, tile=(256, 256), compression="zlib")
    settings = Settings.from_mapping({"roots": {"data": str(tmp_path)}})
    with serve(settings) as base:
        first = raw_request(base, "GET", "/data/stored.tif/0/c/0/1")
        assert first.status == 200
        assert chunk_cache(base) == (0, 0)
        again = raw_request(base, "GET", "/data/stored.tif/0/c/0/1")
        assert again.body == first.body and again.headers["etag"] == first.headers["etag"]
        assert chunk_cache(base) == (1, 0)
        assert raw_request(base, "GET", "/data/stored.tif/0/c/0/1").body == first.body
        assert chunk_cache(base) == (1, 1)
        assert raw_request(base, "GET", "/data/coded.tif/0/c/0/1").status == 200
        assert chunk_cache(base)[0] == 2
        # deflate tiles in blosc frames are stored bytes behind a header: kept from the second
        assert raw_request(base, "GET", "/data/framed.tif/0/c/0/1").status == 200
        assert chunk_cache(base)[0] == 2
        assert raw_request(base, "GET", "/data/framed.tif/0/c/0/1").status == 200
        assert chunk_cache(base)[0] == 3


def test_rewrapped_chunks_are_kept_at_once(tmp_path):
    """A deflate tile sent as a gzip member (``codec = "gzip"``) costs an inflate to make
    again, not a page-cache read: it is kept at its first request, as transcoded ones are."""
    pixels = np.arange(512 * 512, dtype=np.uint16).reshape(512, 512)
    write_tiff(tmp_path / "coded.tif", pixels, tile=(256, 256), compression="zlib")
    settings = Settings.from_mapping({"roots": {"data": str(tmp_path)}, "chunks": {"codec": "gzip"}})
    with serve(settings) as base:
        assert raw_request(base, "GET", "/data/coded.tif/0/zarr.json").status == 200
        assert raw_request(base, "GET", "/data/coded.tif/0/c/0/1").status == 200
        assert chunk_cache(base) == (1, 0)
