"""Prometheus metrics: requests, latency, both caches, source reads, encode time, open files.

Each app has its own ``CollectorRegistry`` (prometheus_client's default registry is a
process global; a per-app one keeps apps — and tests — independent). Label values come
from small fixed sets (the *kind* of route, never its path; the method; the status code),
so the number of series never grows with the requests served.

Multi-worker processes (``--workers N``) share one port, so a scrape reaches one worker at
random: then prometheus_client's multiprocess mode is used (the CLI sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start; every worker writes its values to
files there, and ``/metrics`` sums them). Process metrics (``process_*``, open file
descriptors among them) exist only in single-process mode, which the deployments in
``deploy/`` use: one process per instance, scaled out with instances (so that nginx's
consistent hashing gives each dataset's cache one home).

Cache and source statistics are counted where they happen (``CacheStats``) and copied into
counters before every scrape (``sync``), so the hot path pays for an integer increment only;
in multiprocess mode also after every request, as the scrape that reaches one worker reads
every worker's files. Per request, ``gateway.ops.observe`` calls ``observe_request``, which
adds to ``gateway.ops.request_metrics``' instruments: plain numbers in single-process mode,
prometheus_client's objects in multiprocess mode.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.process_collector import ProcessCollector
from starlette.requests import Request
from starlette.responses import Response

from gateway import __version__
from gateway.ops.request_metrics import Increments, Instruments, Observes, Tally, prometheus_instruments
from gateway.store.cache import CacheStats

#: Route kinds (the only values of the ``kind`` label).
KINDS = (
    "listing",
    "page",
    "metadata",
    "chunk",
    "document",
    "thumbnail",
    "health",
    "ready",
    "metrics",
    "other",
)
METHODS = ("GET", "HEAD", "OPTIONS")
_SIGNED_PREFIX = re.compile(r"^/s/[^/]*")
_LOOKUP_RESULTS = (("hits", "hit"), ("misses", "miss"), ("shared", "shared"))
_SERVICE_PATHS = {"/health": "health", "/ready": "ready", "/metrics": "metrics", "/": "listing"}


def classify(path: str, stored_kind: str | None) -> str:
    """The route kind of a request: what the store said it served, else from the path
    (after any mount prefix and signed-URL prefix)."""
    if stored_kind in KINDS:
        return stored_kind
    path = _SIGNED_PREFIX.sub("", path) or "/"
    if path in _SERVICE_PATHS:
        return _SERVICE_PATHS[path]
    if path.endswith("/"):
        return "page"
    if path.endswith("/zarr.json"):
        return "metadata"
    return "other"


class StatsSource(Protocol):
    """What ``Metrics.sync`` reads: the store's caches and its open files."""

    def cache_stats(self) -> dict[str, tuple[CacheStats, int, int]]: ...

    def open_datasets(self) -> int: ...


class Metrics:
    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.instruments: Instruments
        if multiprocess_dir is None:
            ProcessCollector(registry=r)  # process_open_fds, memory, CPU
            tally = Tally()
            r.register(tally)
            self.instruments = tally.instruments()
        else:
            self.instruments = prometheus_instruments(r)
        self.in_flight = Gauge(
            "gateway_requests_in_flight", "Requests being handled", registry=r, multiprocess_mode="livesum"
        )
        #: Requests being handled, counted by the observing middleware on the event loop: a
        #: plain int (no lock per request), read by the gauge at a scrape, or set at a sync.
        self.active_requests = 0
        if multiprocess_dir is None:
            self.in_flight.set_function(lambda: self.active_requests)
        self.cache_lookups = Counter(
            "gateway_cache_lookups",
            "Cache lookups by cache (chunks: encoded chunks; tiles: decoded source tiles) and "
            "result (hit; miss: computed; shared: waited for an identical computation)",
            ["cache", "result"],
            registry=r,
        )
        self.cache_bytes = Gauge(
            "gateway_cache_bytes", "Bytes held", ["cache"], registry=r, multiprocess_mode="livesum"
        )
        self.cache_entries = Gauge(
            "gateway_cache_entries", "Entries held", ["cache"], registry=r, multiprocess_mode="livesum"
        )
        self.cache_computed_bytes = Counter(
            "gateway_cache_computed_bytes", "Bytes computed on misses", ["cache"], registry=r
        )
        self.source_reads = Counter(
            "gateway_source_tiles_read",
            "Source tiles, strips or chunks read from files and decoded (tile cache misses)",
            registry=r,
        )
        self.source_bytes = Counter(
            "gateway_source_decoded_bytes", "Bytes of source tiles read and decoded", registry=r
        )
        self.source_seconds = Counter(
            "gateway_source_read_decode_seconds",
            "Thread time spent reading and decoding source tiles",
            registry=r,
        )
        self.open_datasets = Gauge(
            "gateway_open_datasets",
            "Source files held open (parsed structure and one descriptor each)",
            registry=r,
            multiprocess_mode="livesum",
        )
        build = Gauge("gateway_build_info", "Version", ["version"], registry=r, multiprocess_mode="max")
        build.labels(__version__).set(1)
        self._source: StatsSource | None = None
        self._seen: dict[tuple[str, str], float] = {}
        #: (kind, method class, status) -> its values of requests, latency, response_bytes.
        #: Bounded: kinds, method classes and statuses are small fixed sets.
        self._children: dict[tuple[str, str, int], tuple[Increments, Observes, Increments]] = {}
        self.sync_per_request = multiprocess_dir is not None

    def attach(self, source: StatsSource | None) -> None:
        """Read cache statistics from ``source`` (the lifespan's store) from now on."""
        self._source = source
        self._seen.clear()

    def _advance(self, key: tuple[str, str], total: float) -> float:
        """The increase of a cumulative statistic since the last sync."""
        delta = total - self._seen.get(key, 0)
        self._seen[key] = total
        return delta if delta > 0 else 0

    def sync(self) -> None:
        """Copy the store's statistics into the metrics (called from the event loop only)."""
        if self.multiprocess_dir is not None:
            self.in_flight.set(self.active_requests)
        source = self._source
        if source is None:
            return
        for cache, (stats, nbytes, entries) in source.cache_stats().items():
            for field, result in _LOOKUP_RESULTS:
                delta = self._advance((cache, field), getattr(stats, field))
                if delta:
                    self.cache_lookups.labels(cache, result).inc(delta)
            computed = self._advance((cache, "computed_bytes"), stats.computed_bytes)
            if computed:
                self.cache_computed_bytes.labels(cache).inc(computed)
            self.cache_bytes.labels(cache).set(nbytes)
            self.cache_entries.labels(cache).set(entries)
            if cache == "tiles":
                reads = self._advance(("tiles", "reads"), stats.misses)
                if reads:
                    self.source_reads.inc(reads)
                if computed:
                    self.source_bytes.inc(computed)
                seconds = self._advance(("tiles", "seconds"), stats.compute_seconds)
                if seconds:
                    self.source_seconds.inc(seconds)
        self.open_datasets.set(source.open_datasets())

    def observe(self, kind: str, method: str, status: int, seconds: float, body_bytes: int) -> None:
        """Count one answered request (``kind``: one of ``KINDS``)."""
        method = method if method in METHODS else "other"
        children = self._children.get((kind, method, status))
        if children is None:
            instruments = self.instruments
            children = (
                instruments.requests.labels(kind, method, str(status)),
                instruments.latency.labels(kind),
                instruments.response_bytes.labels(kind),
            )
            self._children[kind, method, status] = children
        requests, latency, sent = children
        requests.inc()
        latency.observe(seconds)
        if body_bytes:
            sent.inc(body_bytes)

    def observe_request(
        self,
        kind: str,
        method: str,
        status: int,
        seconds: float,
        body_bytes: int,
        work_seconds: Mapping[str, float],
    ) -> None:
        """Everything one request adds: ``observe``, then the store's per-phase seconds
        (``RequestTiming.seconds``), then, in multiprocess mode, a ``sync``."""
        self.observe(kind, method, status, seconds, body_bytes)
        if work_seconds:
            instruments = self.instruments
            if "locate" in work_seconds:
                instruments.locate.observe(work_seconds["locate"])
            if "read" in work_seconds:
                instruments.chunk_read.observe(work_seconds["read"])
            if "encode" in work_seconds:
                instruments.chunk_encode.observe(work_seconds["encode"])
        if self.sync_per_request:
            self.sync()

    def render(self) -> bytes:
        self.sync()
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def close(self) -> None:
        """At shutdown: a worker's live gauges leave the multiprocess totals."""
        self._source = None
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    headers = {"Cache-Control": "no-store"}
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST, headers=headers)
