"""gateway.ops.request_metrics: per-request metrics kept as plain numbers (single-process
mode) scrape exactly as prometheus_client's objects showed them, and stay bounded."""

from __future__ import annotations

import random
import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gateway.ops.metrics import Metrics
from gateway.ops.request_metrics import LATENCY, Distribution

#: The families of the per-request metrics, as named in the exposition.
REQUEST_FAMILIES = (
    "gateway_requests_total",
    "gateway_request_duration_seconds",
    "gateway_response_bytes_total",
    "gateway_locate_seconds",
    "gateway_chunk_read_seconds",
    "gateway_chunk_encode_seconds",
)

#: (kind, method, status, seconds, body bytes, the store's seconds per phase)
OBSERVATIONS = [
    ("chunk", "GET", 200, 0.004, 3000, {"locate": 0.0002, "read": 0.003, "encode": 0.0005}),
    ("chunk", "GET", 200, 0.005, 3000, {"locate": 0.0001}),  # on a bound: counted in it
    ("metadata", "HEAD", 304, 0.0015, 0, {"locate": 0.001}),
    ("chunk", "GET", 404, 0.2, 61, {}),
    ("other", "PROPFIND", 405, 45.0, 0, {}),  # past the last bound: +Inf only
    ("chunk", "GET", 200, 0.0049, 2999, {"locate": 20.0, "read": 0.25, "encode": 0.0}),
]


def previous_exposition(observations) -> str:
    """What the previous implementation showed: prometheus_client's objects, defined as
    they were (written out here, so that a changed name, help text or bucket fails)."""
    registry = CollectorRegistry()
    requests = Counter(
        "gateway_requests", "HTTP requests answered", ["kind", "method", "status"], registry=registry
    )
    latency = Histogram(
        "gateway_request_duration_seconds",
        "Time from request to the end of the response",
        ["kind"],
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        registry=registry,
    )
    sent = Counter("gateway_response_bytes", "Response body bytes sent", ["kind"], registry=registry)
    work_buckets = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
    locate_help = "Per request: finding the dataset (stat, and opening the file when not open)"
    read_help = "Per computed chunk: reading its region from the source (decoding included)"
    work = {
        "read": Histogram("gateway_chunk_read_seconds", read_help, buckets=work_buckets, registry=registry),
        "encode": Histogram(
            "gateway_chunk_encode_seconds",
            "Per computed chunk: encoding",
            buckets=work_buckets,
            registry=registry,
        ),
        "locate": Histogram("gateway_locate_seconds", locate_help, buckets=work_buckets, registry=registry),
    }
    for kind, method, status, seconds, body_bytes, work_seconds in observations:
        method = method if method in ("GET", "HEAD", "OPTIONS") else "other"
        requests.labels(kind, method, str(status)).inc()
        latency.labels(kind).observe(seconds)
        sent_by_kind = sent.labels(kind)  # shown (at zero) from a kind's first request
        if body_bytes:
            sent_by_kind.inc(body_bytes)
        for phase, phase_seconds in work_seconds.items():
            work[phase].observe(phase_seconds)
    return generate_latest(registry).decode()


def families(text: str) -> dict[str, str]:
    """The exposition's families (HELP, TYPE and sample lines) by name, without the
    ``_created`` series (only prometheus_client's objects keep creation times)."""
    blocks = (block for block in re.split(r"(?m)^(?=# HELP )", text) if block)
    found = {block.split()[2]: block for block in blocks}
    return {name: found.get(name, "") for name in REQUEST_FAMILIES}


def observed(observations) -> Metrics:
    metrics = Metrics()
    for observation in observations:
        metrics.observe_request(*observation)
    return metrics


@pytest.mark.parametrize("count", [0, 1, len(OBSERVATIONS)])
def test_exposition_is_the_previous_one(count):
    metrics = observed(OBSERVATIONS[:count])
    expected = families(previous_exposition(OBSERVATIONS[:count]))
    assert all(expected.values())  # every family is there, even before any request
    assert families(metrics.render().decode()) == expected


def test_histogram_buckets_are_cumulative():
    text = observed(OBSERVATIONS).render().decode()
    chunk = 'gateway_request_duration_seconds_{}{{kind="chunk"{}}} {}'
    for suffix, le, value in [
        ("bucket", ',le="0.0025"', "0.0"),
        ("bucket", ',le="0.005"', "3.0"),
        ("bucket", ',le="0.1"', "3.0"),
        ("bucket", ',le="0.25"', "4.0"),
        ("bucket", ',le="+Inf"', "4.0"),
        ("count", "", "4.0"),
    ]:
        assert chunk.format(suffix, le, value) in text.splitlines()
    assert 'gateway_request_duration_seconds_bucket{kind="other",le="30.0"} 0.0' in text
    assert 'gateway_request_duration_seconds_bucket{kind="other",le="+Inf"} 1.0' in text
    assert 'gateway_requests_total{kind="other",method="other",status="405"} 1.0' in text


def test_many_requests_leave_the_exposition_the_same_size():
    kinds, methods, statuses = ("chunk", "metadata", "page"), ("GET", "HEAD", "BREW", "PUT"), (200, 304, 404)
    combinations = [(k, m, s) for k in kinds for m in methods for s in statuses]
    rng = random.Random(7)

    def serve(rounds: int) -> Metrics:
        for _ in range(rounds):
            for kind, method, status in combinations:
                seconds = rng.expovariate(50)
                metrics.observe_request(kind, method, status, seconds, 100, {"read": seconds / 2})
        return metrics

    metrics = Metrics()
    first = families(serve(1).render().decode())
    later = families(serve(300).render().decode())
    assert [block.count("\n") for block in later.values()] == [block.count("\n") for block in first.values()]
    # 3 kinds x 3 method classes (GET, HEAD, other) x 3 statuses
    assert later["gateway_requests_total"].count("\ngateway_requests_total{") == 27
    assert (
        'gateway_request_duration_seconds_count{kind="page"} 3612.0'
        in later["gateway_request_duration_seconds"]
    )


def test_a_distribution_keeps_counts_per_bucket_not_samples():
    distribution = Distribution(LATENCY.bounds)
    for index in range(10_000):
        distribution.observe(index / 1000)
    assert len(distribution.counts) == len(LATENCY.buckets) + 1
    assert sum(distribution.counts) == 10_000
    assert distribution.counts[LATENCY.buckets.index(10.0)] == 4999  # 5.001 to 9.999 s
    assert distribution.counts[-1] == 0  # nothing above 30 s
