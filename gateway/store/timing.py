"""Per-request timings: what the store spent locating, reading and encoding.

No HTTP here: ``gateway.ops.observe`` turns a ``RequestTiming`` into ``Server-Timing``.

The observing middleware (``gateway.ops.observe``) gives each request a ``RequestTiming``
through a context variable: request-scoped, set and reset around each request, so nothing
outlives it. The store records into it (``current_timing()``) without knowing about HTTP;
the metrics and the access log read it (the kind of what was served). Work done in the
thread pool records into the object captured by its closure: the request that computes a
chunk reports its read and encode times; one served from the chunk cache reports
``chunk-cache;desc=hit``.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

#: Phases, in the order the header lists them.
PHASES = ("locate", "read", "encode")


@dataclass(slots=True)
class RequestTiming:
    """Seconds spent per phase of one request, and what it served (``kind``)."""

    started: float = field(default_factory=time.perf_counter)
    seconds: dict[str, float] = field(default_factory=dict)
    kind: str | None = None  # metadata | chunk | document | thumbnail, set by the store

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    def since(self, phase: str, started: float) -> float:
        """Record the time since ``started`` (a ``perf_counter`` value); return now."""
        now = time.perf_counter()
        self.add(phase, now - started)
        return now

    def header(self) -> str:
        """``Server-Timing`` value: durations in milliseconds, total until the headers."""
        seconds = self.seconds
        if len(seconds) == 1 and "locate" in seconds:  # the hot path: a ready value
            total = (time.perf_counter() - self.started) * 1000
            locate = seconds["locate"] * 1000
            if self.kind == "chunk":
                return f'locate;dur={locate:.3f}, chunk-cache;desc="hit", total;dur={total:.3f}'
            return f"locate;dur={locate:.3f}, total;dur={total:.3f}"
        parts = [f"{phase};dur={self.seconds[phase] * 1000:.3f}" for phase in PHASES if phase in self.seconds]
        if self.kind == "chunk" and "read" not in self.seconds:
            parts.append('chunk-cache;desc="hit"')
        parts.append(f"total;dur={(time.perf_counter() - self.started) * 1000:.3f}")
        return ", ".join(parts)


_current: ContextVar[RequestTiming | None] = ContextVar("gateway_request_timing", default=None)


def start_timing() -> tuple[RequestTiming, Token[RequestTiming | None]]:
    """A new timing for the request starting in this context; ``end_timing(token)`` after it."""
    timing = RequestTiming()
    return timing, _current.set(timing)


def end_timing(token: Token[RequestTiming | None]) -> None:
    _current.reset(token)


def current_timing() -> RequestTiming | None:
    """The timing of the request being handled in this context, if any."""
    return _current.get()
