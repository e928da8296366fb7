"""The per-request metrics: one definition, kept in two ways.

Every answered request adds to three metrics (requests, latency, bytes sent) and to up to
three more (the store's locate, read and encode seconds). prometheus_client's objects take a
lock per update, and a ``Histogram`` looks for its bucket with a Python loop: about 12 µs
per request, where serving a cached chunk costs a few hundred in all. So in single-process
mode the values are plain numbers (``Tally``), turned into metric families only when a
scrape collects them. In multiprocess mode every update must reach the worker's files,
which the scrape sums: there prometheus_client's objects are used
(``prometheus_instruments``). Both offer the same ``Instruments``, so ``Metrics`` observes
in one way, and a scrape shows the same names, help texts, labels and buckets in either
mode (without the ``_created`` series, which the tally does not keep).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import accumulate
from typing import Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import INF, floatToGoString

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WORK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric as a scrape shows it: a histogram when it has ``buckets``, else a counter
    (``name`` without ``_total``, as prometheus_client takes it)."""

    name: str
    documentation: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def bounds(self) -> tuple[float, ...]:
        """The buckets' upper bounds, ``+Inf`` last (as prometheus_client completes them)."""
        return (*self.buckets, INF)


REQUESTS = MetricSpec("gateway_requests", "HTTP requests answered", ("kind", "method", "status"))
LATENCY = MetricSpec(
    "gateway_request_duration_seconds",
    "Time from request to the end of the response",
    ("kind",),
    LATENCY_BUCKETS,
)
RESPONSE_BYTES = MetricSpec("gateway_response_bytes", "Response body bytes sent", ("kind",))
LOCATE = MetricSpec(
    "gateway_locate_seconds",
    "Per request: finding the dataset (stat, and opening the file when not open)",
    buckets=WORK_BUCKETS,
)
CHUNK_READ = MetricSpec(
    "gateway_chunk_read_seconds",
    "Per computed chunk: reading its region from the source (decoding included)",
    buckets=WORK_BUCKETS,
)
CHUNK_ENCODE = MetricSpec(
    "gateway_chunk_encode_seconds", "Per computed chunk: encoding", buckets=WORK_BUCKETS
)


class Increments(Protocol):
    """A counter's value: prometheus_client's ``Counter`` or a ``Tally`` cell."""

    def inc(self, amount: float = 1, /) -> None: ...


class Observes(Protocol):
    """A histogram's value: prometheus_client's ``Histogram`` or a ``Tally`` cell."""

    def observe(self, amount: float, /) -> None: ...


V = TypeVar("V", covariant=True)


class Labelled(Protocol[V]):
    """A metric with labels: the value for one set of label values."""

    def labels(self, *values: str) -> V: ...


@dataclass(frozen=True, slots=True)
class Instruments:
    """What a request is counted in (``REQUESTS``, ``LATENCY``, ... in order)."""

    requests: Labelled[Increments]
    latency: Labelled[Observes]
    response_bytes: Labelled[Increments]
    locate: Observes
    chunk_read: Observes
    chunk_encode: Observes


def prometheus_instruments(registry: CollectorRegistry) -> Instruments:
    """The instruments as prometheus_client's objects (multiprocess mode: their values go
    to the worker's files)."""

    def counter(spec: MetricSpec) -> Counter:
        return Counter(spec.name, spec.documentation, spec.labels, registry=registry)

    def histogram(spec: MetricSpec) -> Histogram:
        return Histogram(spec.name, spec.documentation, spec.labels, buckets=spec.buckets, registry=registry)

    return Instruments(
        counter(REQUESTS),
        histogram(LATENCY),
        counter(RESPONSE_BYTES),
        histogram(LOCATE),
        histogram(CHUNK_READ),
        histogram(CHUNK_ENCODE),
    )


class Count:
    """A counter's value (prometheus_client's ``Counter`` keeps a float too)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class Distribution:
    """A histogram's count per bucket (not cumulative: one increment per observation) and
    sum. Its size is fixed by the buckets, whatever the number of observations."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        # the first bound >= amount: the bucket prometheus_client's loop would find
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount


C = TypeVar("C", Count, Distribution)


class Cells(Generic[C]):
    """One metric's values, one per set of label values seen. Label values come from small
    fixed sets, so the cells are bounded. An unlabelled metric has its one cell from the
    start (it is shown at zero, as prometheus_client shows it)."""

    def __init__(self, spec: MetricSpec, new: Callable[[], C]) -> None:
        self.spec = spec
        self.new: Callable[[], C] = new
        self.by_labels: dict[tuple[str, ...], C] = {}
        if not spec.labels:
            self.labels()

    def labels(self, *values: str) -> C:
        cell = self.by_labels.get(values)
        if cell is None:
            cell = self.by_labels[values] = self.new()
        return cell


def counter_family(cells: Cells[Count]) -> Metric:
    spec = cells.spec
    family = CounterMetricFamily(spec.name, spec.documentation, labels=spec.labels)
    for values, cell in cells.by_labels.items():
        family.add_metric(values, cell.value)
    return family


def histogram_family(cells: Cells[Distribution]) -> Metric:
    spec = cells.spec
    family = HistogramMetricFamily(spec.name, spec.documentation, labels=spec.labels)
    les = [floatToGoString(bound) for bound in spec.bounds]  # type: ignore[no-untyped-call]
    for values, cell in cells.by_labels.items():
        family.add_metric(values, list(zip(les, accumulate(cell.counts), strict=True)), cell.sum)
    return family


def distributions(spec: MetricSpec) -> Cells[Distribution]:
    return Cells(spec, partial(Distribution, spec.bounds))


class Tally:
    """The instruments as plain numbers, and a prometheus_client collector that shows them
    (single-process mode; register it in the app's registry).

    No lock: one thread touches the numbers, the event loop's. ``ObserveMiddleware`` counts
    a request on it, and a scrape collects on it too (``metrics_endpoint`` is async and
    renders without awaiting), so a scrape never sees half of a request's update."""

    def __init__(self) -> None:
        self.requests = Cells(REQUESTS, Count)
        self.latency = distributions(LATENCY)
        self.response_bytes = Cells(RESPONSE_BYTES, Count)
        self.work = (distributions(LOCATE), distributions(CHUNK_READ), distributions(CHUNK_ENCODE))

    def instruments(self) -> Instruments:
        locate, read, encode = (cells.labels() for cells in self.work)
        return Instruments(self.requests, self.latency, self.response_bytes, locate, read, encode)

    def collect(self) -> Iterator[Metric]:
        yield counter_family(self.requests)
        yield histogram_family(self.latency)
        yield counter_family(self.response_bytes)
        for cells in self.work:
            yield histogram_family(cells)
