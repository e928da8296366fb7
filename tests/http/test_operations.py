"""Operations endpoints and headers: /health, /ready, /metrics (counters move as requests are
made), Server-Timing, X-Gateway-Instance, sub-path mounting (server.root_path)."""

from __future__ import annotations

import shutil

import httpx
import pytest

from tests.deploy.support import metric_total
from tests.http.support import running_gateway

CHUNK = "data/healthy.tif/0/c/1/0"


@pytest.fixture
def gateway(tmp_path):
    with running_gateway(tmp_path, server={"instance": "node1-8001"}) as gw:
        yield gw


def scrape(gw) -> str:
    response = gw.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_health(gateway):
    response = gateway.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert response.headers["cache-control"] == "no-store"
    assert gateway.client.head(gateway.url("/health")).status_code == 200
    assert gateway.client.post(gateway.url("/health")).status_code == 405


def test_ready_checks_the_roots(gateway):
    response = gateway.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "roots": {"data": "ok"}}
    moved = gateway.root.with_name("moved")
    shutil.move(gateway.root, moved)
    try:
        response = gateway.get("/ready")
        assert response.status_code == 503
        assert response.json()["roots"]["data"] == "not a directory"
        assert gateway.get("/health").status_code == 200  # liveness does not depend on storage
    finally:
        shutil.move(moved, gateway.root)


def test_request_counters_move(gateway):
    before = scrape(gateway)
    for _ in range(3):
        assert gateway.get(CHUNK).status_code == 200
    assert gateway.get("data/healthy.tif/0/c/9/9").status_code == 404
    after = scrape(gateway)
    chunk_200 = {"kind": "chunk", "method": "GET", "status": "200"}
    assert (
        metric_total(after, "gateway_requests_total", **chunk_200)
        == metric_total(before, "gateway_requests_total", **chunk_200) + 3
    )
    assert metric_total(after, "gateway_requests_total", status="404") >= 1
    assert metric_total(after, "gateway_request_duration_seconds_count", kind="chunk") >= 3
    assert metric_total(after, "gateway_response_bytes_total", kind="chunk") > 0


def test_cache_and_source_counters_move(gateway):
    target = "data/healthy.tif/0/c/0/1"
    first = scrape(gateway)
    gateway.get(target)
    second = scrape(gateway)
    gateway.get(target)
    third = scrape(gateway)

    def delta(a, b, name, **labels):
        return metric_total(b, name, **labels) - metric_total(a, name, **labels)

    assert delta(first, second, "gateway_cache_lookups_total", cache="chunks", result="miss") == 1
    assert delta(first, second, "gateway_source_tiles_read_total") >= 1
    assert delta(first, second, "gateway_source_decoded_bytes_total") >= 128 * 128 * 2
    assert delta(first, second, "gateway_chunk_encode_seconds_count") == 1
    assert delta(second, third, "gateway_cache_lookups_total", cache="chunks", result="hit") == 1
    assert delta(second, third, "gateway_source_tiles_read_total") == 0
    assert metric_total(third, "gateway_cache_bytes", cache="chunks") > 0
    assert metric_total(third, "gateway_open_datasets") == 1
    assert metric_total(third, "process_open_fds") > 0


def test_label_values_do_not_grow_with_paths(gateway):
    def series(text: str) -> int:
        return sum(1 for line in text.splitlines() if line.startswith("gateway_requests_total{"))

    gateway.get("data/nope-0.tif/zarr.json")
    gateway.get("data/dir0/")
    scrape(gateway)  # the scrape counts itself
    before = series(scrape(gateway))
    for index in range(40):
        gateway.get(f"data/nope-{index}.tif/zarr.json")
        gateway.get(f"data/dir{index}/")
    assert series(scrape(gateway)) == before


def test_server_timing(gateway):
    computed = gateway.get("data/healthy.tif/0/c/0/0").headers["server-timing"]
    assert {"locate", "read", "encode", "total"} <= {
        part.split(";")[0].strip() for part in computed.split(",")
    }
    cached = gateway.get("data/healthy.tif/0/c/0/0").headers["server-timing"]
    assert 'chunk-cache;desc="hit"' in cached and "read;" not in cached
    metadata = gateway.get("data/healthy.tif/zarr.json").headers["server-timing"]
    assert metadata.startswith("locate;dur=")


def test_instance_header(gateway):
    assert gateway.get("/health").headers["x-gateway-instance"] == "node1-8001"
    assert gateway.get("data/nope.tif/zarr.json").headers["x-gateway-instance"] == "node1-8001"


def test_defaults_add_no_instance_header_and_switches_work(tmp_path):
    with running_gateway(tmp_path, server={"server_timing": False, "metrics": False}) as gw:
        response = gw.get(CHUNK)
        assert "x-gateway-instance" not in response.headers
        assert "server-timing" not in response.headers
        assert gw.get("/metrics").status_code == 404


def test_mounted_under_a_sub_path(tmp_path):
    with running_gateway(tmp_path, server={"root_path": "/zarr"}) as gw:
        # the proxy strips /zarr; the gateway's links carry it
        page = gw.get("data/healthy.tif/", params={"format": "json"}).json()
        assert page["url"] == f"{gw.base}/zarr/data/healthy.tif/"
        listing = gw.get("/data/", params={"format": "json"}).text
        assert f"{gw.base}/zarr/data/healthy.tif/" in listing
        assert gw.get("/health").status_code == 200
        gw.assert_healthy()


def test_metrics_of_an_app_are_its_own(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with running_gateway(tmp_path / "a") as first, running_gateway(tmp_path / "b") as second:
        for _ in range(2):
            first.get(CHUNK)
        assert metric_total(scrape(first), "gateway_requests_total", kind="chunk") == 2
        assert metric_total(scrape(second), "gateway_requests_total", kind="chunk") == 0
    assert httpx is not None
