"""The one table from errors to HTTP statuses, and JSON error bodies.

Every error response is ``{"error": <code>, "detail": <text>}`` (plus ``request_id`` for an
unexpected one) with the right status; handlers are registered for our own exception
classes (so they run inside the CORS middleware). Logging stays readable under faults
(``gateway.store.logs``): a known source error (a broken or truncated file) is one line per
(dataset, error kind) per interval, without a traceback; an error the gateway did not
expect (a bug) is logged once, with its traceback and a request id, also at most once per
(dataset, exception class) per interval, and answered with a generic 500 that carries the
same id and none of the exception's text (``gateway.ops.observe``, where every
request's outcome is observed).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from adapters.base import AdapterError
from gateway.levels.budget import BudgetExceeded, WorkCancelled
from gateway.store.catalog import SourceUnavailableError
from gateway.store.logs import LogLimiter, dataset_label, one_line
from gateway.web.http import ERROR_CACHE_CONTROL
from gateway.web.middleware import route_path

logger = logging.getLogger(__name__)


class GatewayHTTPError(Exception):
    """An error with a status and code decided where it is raised (routes)."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


#: exception class → (status, error code). Order matters: the first match wins.
STATUS_TABLE: tuple[tuple[type[Exception], int, str], ...] = (
    (SourceUnavailableError, 500, "source_unreadable"),
    (AdapterError, 500, "source_error"),
    (OSError, 500, "io_error"),
    # bounded work (gateway/budget.py): the chunk needed more than server.request_seconds
    (BudgetExceeded, 503, "budget_exceeded"),
    (WorkCancelled, 503, "work_cancelled"),
)


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSON error; never cached (a missing file may appear, a broken one be mended)."""
    return JSONResponse(
        {"error": code, "detail": detail},
        status_code=status,
        headers={"Cache-Control": ERROR_CACHE_CONTROL, **(headers or {})},
    )


def not_found(path: str) -> JSONResponse:
    return error_response(404, "not_found", f"no such key: {path}")


async def handle_gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayHTTPError)
    return error_response(exc.status, exc.code, exc.detail, exc.headers)


def known_error_response(request: Request, exc: Exception, limiter: LogLimiter) -> JSONResponse:
    """The JSON answer to an error of ``STATUS_TABLE``. A 5xx is logged as one line (a known
    fault of a source file: no traceback), at most once per (dataset, code, exception class)
    per interval of ``limiter``."""
    for cls, status, code in STATUS_TABLE:
        if isinstance(exc, cls):
            if status >= 500:
                # the path below root_path: a signed URL's token is never logged
                path = route_path(request.scope)
                dataset = exc.url_path if isinstance(exc, SourceUnavailableError) else dataset_label(path)
                message = f"{request.method} {path} failed: {code}: {exc}"
                limiter.log(logger, logging.ERROR, (dataset, code, type(exc).__name__), message)
            return error_response(status, code, one_line(str(exc)))
    raise exc


READ_ONLY_ALLOW = "GET, HEAD, OPTIONS"


async def handle_starlette_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (e.g. a method no route knows, such as TRACE) as JSON."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed: this gateway is read-only",
            {"Allow": READ_ONLY_ALLOW},
        )
    return error_response(exc.status_code, "http_error", str(exc.detail))


def exception_handlers(limiter: LogLimiter | None = None) -> dict[Any, Any]:
    """Starlette's exception handlers for our error classes, logging through ``limiter``."""
    log_limiter = LogLimiter() if limiter is None else limiter

    async def handle_known_error(request: Request, exc: Exception) -> JSONResponse:
        return known_error_response(request, exc, log_limiter)

    handlers: dict[Any, Any] = {GatewayHTTPError: handle_gateway_error, HTTPException: handle_starlette_error}
    for cls, _status, _code in STATUS_TABLE:
        handlers[cls] = handle_known_error
    return handlers
