"""The one table from errors to HTTP statuses, and JSON error bodies.

Every error response is ``{"error": <code>, "detail": <text>}`` with the right status;
handlers are registered for our own exception classes (so they run inside the CORS
middleware), and a 5xx is logged once, with its traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from adapters.base import AdapterError
from gateway.catalog import SourceUnavailableError
from gateway.http import ERROR_CACHE_CONTROL
from gateway.middleware import route_path

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


async def handle_known_error(request: Request, exc: Exception) -> JSONResponse:
    for cls, status, code in STATUS_TABLE:
        if isinstance(exc, cls):
            if status >= 500:
                # the path below root_path: a signed URL's token is never logged
                path = route_path(request.scope)
                logger.error("%s %s failed: %s", request.method, path, exc, exc_info=exc)
            return error_response(status, code, str(exc))
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


def exception_handlers() -> dict[Any, Any]:
    handlers: dict[Any, Any] = {GatewayHTTPError: handle_gateway_error, HTTPException: handle_starlette_error}
    for cls, _status, _code in STATUS_TABLE:
        handlers[cls] = handle_known_error
    return handlers
