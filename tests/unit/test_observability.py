"""Pure parts of metrics, timing and access logs."""

from __future__ import annotations

import pytest

from gateway.ops.accesslog import redact_path, redact_query
from gateway.ops.metrics import Metrics, classify
from gateway.store.cache import CacheStats
from gateway.store.timing import RequestTiming


@pytest.mark.parametrize(
    ("path", "stored", "kind"),
    [
        ("/", None, "listing"),
        ("/health", None, "health"),
        ("/metrics", None, "metrics"),
        ("/lab/a.tif/", None, "page"),
        ("/lab/a.tif/zarr.json", None, "metadata"),
        ("/lab/a.tif/0/c/0/0", "chunk", "chunk"),
        ("/lab/a.tif/0/c/9/9", None, "other"),
        ("/s/TOKEN/lab/a.tif/", None, "page"),
        ("/s/TOKEN/", None, "listing"),
        ("/x", "bogus", "other"),
    ],
)
def test_classify(path, stored, kind):
    assert classify(path, stored) == kind


def test_redaction():
    assert redact_path("/zarr/s/v1.2.abc.def/lab/a.tif") == "/zarr/s/<redacted>/lab/a.tif"
    assert redact_path("https://h/s/tok/x?y") == "https://h/s/<redacted>/x?y"
    assert (
        redact_query("token=abc&level=2&Signature=x")
        == "token=%3Credacted%3E&level=2&Signature=%3Credacted%3E"
    )


def test_timing_header():
    timing = RequestTiming()
    timing.add("read", 0.002)
    timing.add("locate", 0.001)
    timing.add("read", 0.001)
    header = timing.header()
    assert header.startswith("locate;dur=1.000, read;dur=3.000, total;dur=")
    timing.kind = "chunk"
    assert 'chunk-cache;desc="hit"' not in timing.header()
    assert 'chunk-cache;desc="hit"' in RequestTiming(kind="chunk").header()


class FakeStore:
    def __init__(self) -> None:
        self.chunks = CacheStats()
        self.tiles = CacheStats()

    def cache_stats(self):
        return {"chunks": (self.chunks, 100, 2), "tiles": (self.tiles, 400, 3)}

    def open_datasets(self) -> int:
        return 1


def value(metrics: Metrics, name: str, **labels: str) -> float:
    result = metrics.registry.get_sample_value(name, labels)
    return 0.0 if result is None else result


def test_sync_copies_increases_once():
    metrics, store = Metrics(), FakeStore()
    metrics.attach(store)
    store.tiles.misses, store.tiles.computed_bytes, store.tiles.compute_seconds = 3, 3000, 0.5
    store.chunks.hits = 2
    metrics.sync()
    metrics.sync()  # nothing new: nothing added
    assert value(metrics, "gateway_source_tiles_read_total") == 3
    assert value(metrics, "gateway_source_decoded_bytes_total") == 3000
    assert value(metrics, "gateway_source_read_decode_seconds_total") == 0.5
    assert value(metrics, "gateway_cache_lookups_total", cache="chunks", result="hit") == 2
    assert value(metrics, "gateway_cache_bytes", cache="tiles") == 400
    assert value(metrics, "gateway_open_datasets") == 1
    store.chunks.hits = 5
    metrics.sync()
    assert value(metrics, "gateway_cache_lookups_total", cache="chunks", result="hit") == 5


def test_registries_are_per_app():
    first, second = Metrics(), Metrics()
    first.observe("chunk", "GET", 200, 0.01, 10)
    assert value(first, "gateway_requests_total", kind="chunk", method="GET", status="200") == 1
    assert value(second, "gateway_requests_total", kind="chunk", method="GET", status="200") == 0
    first.observe("chunk", "PROPFIND", 405, 0.01, 0)
    assert value(first, "gateway_requests_total", kind="chunk", method="other", status="405") == 1
