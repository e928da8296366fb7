"""``ObserveMiddleware``: everything that watches a request, in one pure-ASGI layer.

Each layer of a middleware stack wraps ``send`` once more, and that costs on the hot path
(a cached chunk is a few dozen microseconds of gateway work). So one wrapper does it all:
it starts the request's ``RequestTiming`` (the store records into it, ``gateway.store.timing``),
adds ``Server-Timing`` and ``X-Gateway-Instance`` to the response's start, and once the
response is over counts it in the metrics and writes its access-log line.

It is also the last resort for errors. An exception that escapes the app (Starlette
re-raises what no handler knows; a pure-ASGI middleware's has no handler) is logged here
once, with its traceback and a request id, and answered with a generic JSON 500 that
carries the same id; the CORS wrapper outside decorates it. (Known errors are answered
earlier, by the handlers of ``gateway.web.errors``.)
"""

from __future__ import annotations

import logging
import re
import secrets
import time

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.ops.accesslog import AccessLog, redact_path
from gateway.ops.metrics import Metrics, classify
from gateway.store.logs import LogLimiter, dataset_label
from gateway.store.timing import RequestTiming, end_timing, start_timing

logger = logging.getLogger(__name__)

#: A request id taken from the request as it is: safe in a log line and a header.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id(scope: Scope) -> str:
    """The request's own ``X-Request-ID`` when it is a safe token (a proxy's, such as
    nginx's ``$request_id``: the proxy's log and ours then correlate); else a new one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            given: str = value.decode("latin-1")
            if _SAFE_REQUEST_ID.fullmatch(given):
                return given
            break
    return secrets.token_hex(8)


class ObserveMiddleware:
    """Timing, Server-Timing, X-Gateway-Instance, metrics, the access log and the last
    resort for errors, with one ``send`` wrapper per request.

    ``metrics`` and ``access_log`` are left out (None) when switched off. Headers that do
    not depend on the request are encoded once, here."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: LogLimiter,
        *,
        metrics: Metrics | None = None,
        access_log: AccessLog | None = None,
        server_timing: bool = True,
        instance: str = "",
        response_headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.metrics = metrics
        self.access_log = access_log
        self.server_timing = server_timing
        #: added to every response: the instance, and ``response_headers`` (CORS for any
        #: origin: constant, so added with these instead of by a layer of its own)
        instance_header = ((b"x-gateway-instance", instance.encode("latin-1")),) if instance else ()
        self.constant_headers = (*instance_header, *response_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timing, token = start_timing()
        status = 0  # none sent yet
        body_bytes = 0
        server_timing = self.server_timing
        constant_headers = self.constant_headers
        adds_headers = server_timing or bool(constant_headers)

        async def observed(message: Message) -> None:
            nonlocal status, body_bytes
            if message["type"] == "http.response.body":
                body_bytes += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                status = int(message["status"])
                if adds_headers:
                    # a copy: the app's list may be shared (a response built once per node)
                    headers = [*message.get("headers", ()), *constant_headers]
                    if server_timing:
                        headers.append((b"server-timing", timing.header().encode("latin-1")))
                    message["headers"] = headers
            await send(message)

        metrics = self.metrics
        if metrics is not None:
            metrics.active_requests += 1
        failed_as: str | None = None  # the request id an exception was logged under
        try:
            await self.app(scope, receive, observed)
        except Exception as exc:
            failed_as = request_id(scope)
            log_unexpected_error(scope, exc, failed_as, self.limiter)
            if not status:  # else the client sees a cut response, as it must
                await internal_error_response(failed_as)(scope, receive, observed)
        finally:
            if metrics is not None:
                metrics.active_requests -= 1
            end_timing(token)
            self._record(scope, status or 500, body_bytes, timing, failed_as)

    def _record(
        self, scope: Scope, status: int, body_bytes: int, timing: RequestTiming, failed_as: str | None
    ) -> None:
        """Metrics and the access-log line; a fault here is logged, never raised (the
        response is over, and uvicorn would log it once per request)."""
        try:
            seconds = time.perf_counter() - timing.started
            kind = classify(scope["path"], timing.kind)
            if self.metrics is not None:
                self.metrics.observe_request(
                    kind, scope["method"], status, seconds, body_bytes, timing.seconds
                )
            if self.access_log is not None:
                self.access_log.write(scope, status, body_bytes, seconds, kind, failed_as)
        except Exception as exc:
            log_unexpected_error(scope, exc, failed_as or request_id(scope), self.limiter)


#: The header (and JSON field) naming the request id an unexpected error was logged under.
REQUEST_ID_HEADER = "X-Request-ID"


def internal_error_response(request_id: str) -> JSONResponse:
    """The 500 for an exception no handler knows: generic, as its text may hold paths or
    internals; ``request_id`` is what a user quotes to find the logged traceback."""
    return JSONResponse(
        {"error": "internal_error", "detail": "internal error", "request_id": request_id},
        status_code=500,
        headers={"Cache-Control": "no-store", REQUEST_ID_HEADER: request_id},
    )


def log_unexpected_error(scope: Scope, exc: Exception, request_id: str, limiter: LogLimiter) -> None:
    """One line with the traceback, the request id first (a long exception text is cut at
    the end), at most once per (dataset, exception class) per interval of ``limiter``."""
    path = redact_path(str(scope.get("path", "")))
    message = f"request {request_id}: {scope.get('method', '')} {path} failed: {type(exc).__name__}: {exc}"
    key = ("unexpected", dataset_label(path), type(exc).__name__)
    limiter.log(logger, logging.ERROR, key, message, exc_info=exc)
