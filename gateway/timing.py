"""Per-request timings: what the store spent locating, reading and encoding, as ``Server-Timing``.

``ServerTimingMiddleware`` (pure ASGI) gives each request a ``RequestTiming`` through a
context variable: request-scoped, set and reset around each request, so nothing outlives
it. The store records into it (``current_timing()``) without knowing about HTTP; the
metrics and access-log middlewares read it (the kind of what was served). Work done in the
thread pool records into the object captured by its closure: the request that computes a
chunk reports its read and encode times; one served from the chunk cache reports
``chunk-cache;desc=hit``.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Phases, in the order the header lists them.
PHASES = ("locate", "read", "encode")


@dataclass(slots=True)
class RequestTiming:
    """Seconds spent per phase of one request, and what it served (``kind``)."""

    started: float = field(default_factory=time.perf_counter)
    seconds: dict[str, float] = field(default_factory=dict)
    kind: str | None = None  # metadata | chunk | document, set by the store

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    def since(self, phase: str, started: float) -> float:
        """Record the time since ``started`` (a ``perf_counter`` value); return now."""
        now = time.perf_counter()
        self.add(phase, now - started)
        return now

    def header(self) -> str:
        """``Server-Timing`` value: durations in milliseconds, total until the headers."""
        parts = [f"{phase};dur={self.seconds[phase] * 1000:.3f}" for phase in PHASES if phase in self.seconds]
        if self.kind == "chunk" and "read" not in self.seconds:
            parts.append('chunk-cache;desc="hit"')
        parts.append(f"total;dur={(time.perf_counter() - self.started) * 1000:.3f}")
        return ", ".join(parts)


_current: ContextVar[RequestTiming | None] = ContextVar("gateway_request_timing", default=None)


def current_timing() -> RequestTiming | None:
    """The timing of the request being handled in this context, if any."""
    return _current.get()


class ServerTimingMiddleware:
    """Creates each request's ``RequestTiming``; adds ``Server-Timing`` when ``header``."""

    def __init__(self, app: ASGIApp, header: bool = True) -> None:
        self.app = app
        self.header = header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timing = RequestTiming()
        token = _current.set(timing)

        async def send_with_timing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.header:
                MutableHeaders(scope=message)["Server-Timing"] = timing.header()
            await send(message)

        try:
            await self.app(scope, receive, send_with_timing)
        finally:
            _current.reset(token)
