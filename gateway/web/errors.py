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

Browsers get the same errors as an HTML page (``BrowserErrors``): a person who follows a
stale link or opens an unreadable file reads a page with a way back, not raw JSON. The
choice is by ``Accept``, made once at the edge for every error of every layer (routes,
access control, the last-resort 500), so each layer keeps answering JSON.
"""

from __future__ import annotations

import html
import json
import logging
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.base import AdapterError
from gateway.levels.budget import BudgetExceeded, WorkCancelled
from gateway.store.catalog import PartOfDatasetError, SourceUnavailableError
from gateway.store.logs import LogLimiter, dataset_label, one_line
from gateway.store.thumbnails import ThumbnailParameterError
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
    # a member of a multi-file set: no dataset of its own, the detail names the one it is part of
    (PartOfDatasetError, 404, "part_of_dataset"),
    (SourceUnavailableError, 500, "source_unreadable"),
    (AdapterError, 500, "source_error"),
    (OSError, 500, "io_error"),
    # bounded work (gateway/levels/budget.py): the chunk needed more than server.request_seconds
    (BudgetExceeded, 503, "budget_exceeded"),
    (WorkCancelled, 503, "work_cancelled"),
    # a thumbnail's query parameter that names no thumbnail (``?channel=x``)
    (ThumbnailParameterError, 400, "bad_thumbnail_parameter"),
)


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSON error; never cached (a missing file may appear, a broken one be mended)."""
    return JSONResponse(
        {"error": code, "detail": detail},
        status_code=status,
        # a browser gets the same error as HTML (BrowserErrors): the answer varies on Accept
        headers={"Cache-Control": ERROR_CACHE_CONTROL, "Vary": "Accept", **(headers or {})},
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


# -- errors for people ------------------------------------------------------------------------

#: An error body larger than this is passed through as it is (ours are a few hundred bytes).
MAX_ERROR_BODY_BYTES = 64 * 1024
#: Media ranges of an ``Accept`` header looked at (a browser sends fewer than ten).
MAX_ACCEPT_ITEMS = 64


def _quality(accept_items: list[tuple[str, float]], media_type: str) -> float:
    """The quality ``Accept`` gives ``media_type``: that of its most specific range."""
    kind = media_type.split("/", 1)[0]
    best, specificity = 0.0, -1
    for media_range, q in accept_items:
        rank = 2 if media_range == media_type else 1 if media_range == f"{kind}/*" else 0
        if (rank or media_range == "*/*") and rank > specificity:
            best, specificity = q, rank
    return best


def _accept_items(accept: str) -> list[tuple[str, float]]:
    items = []
    for item in accept.split(",")[:MAX_ACCEPT_ITEMS]:
        media_range, *params = item.split(";")
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        items.append((media_range.strip().lower(), q))
    return items


def prefers_html(accept: str) -> bool:
    """Whether ``Accept`` ranks ``text/html`` above ``application/json``: a browser's
    navigation (``text/html,...,*/*;q=0.8``). Equal ranks (``*/*``, none: curl, zarr
    clients, ``fetch``) keep JSON, what programs are written against."""
    if "html" not in accept.lower():
        return False
    items = _accept_items(accept)
    return _quality(items, "text/html") > _quality(items, "application/json")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Client Closed Request" if status == 499 else "Error"


def render_error_html(status: int, error: dict[str, Any], home: str = "/") -> str:
    """An error document (``{"error", "detail"[, "request_id"]}``) as a page: the same
    status and message, and a link back to ``home``."""
    title = f"{status} {_reason(status)}"
    detail = str(error.get("detail") or error.get("error") or "")
    code = html.escape(str(error.get("error", "")))
    request = error.get("request_id")
    quoted = f" — request id <code class=request-id>{html.escape(str(request))}</code>" if request else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>{title} — ome-zarr-gateway</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}.detail{{font-size:1.1rem}}
code{{background:#f4f4f4;padding:.1rem .3rem}}.code{{color:#666}}</style></head>
<body><p><a class="home" href="{html.escape(home)}">all datasets</a></p>
<h1>{title}</h1>
<p class="detail">{html.escape(detail)}</p>
<p class="code">error <code>{code}</code>{quoted}</p>
</body></html>
"""


def _wants_html(scope: Scope) -> bool:
    """Whether a browser asks (every request passes here: a scan of the header names, and
    nothing more unless ``Accept`` mentions HTML)."""
    for name, value in scope["headers"]:
        if name == b"accept":
            if b"html" not in value or b"format=json" in scope.get("query_string", b""):
                return False  # what a page link names as JSON stays JSON, errors included
            return prefers_html(value.decode("latin-1"))
    return False


class BrowserErrors:
    """Pure ASGI, outermost: a JSON error (4xx/5xx) answered to a request whose ``Accept``
    prefers HTML becomes an HTML page with the same status, message and headers (CORS,
    ``WWW-Authenticate``, ``Allow``...). Requests that do not prefer HTML — every client
    of the data — pass straight through, with no wrapper around ``send``.

    ``home``: where the page's link back leads (the mount prefix's ``/``)."""

    def __init__(self, app: ASGIApp, home: str = "/") -> None:
        self.app = app
        self.home = home

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not _wants_html(scope):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()
        passing = False  # not a JSON error: messages go out as they come

        async def to_html(message: Message) -> None:
            nonlocal start, passing
            if passing:
                await send(message)
                return
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", ()))
                is_json = headers.get(b"content-type", b"").startswith(b"application/json")
                if message["status"] < 400 or not is_json:
                    passing = True
                    await send(message)
                    return
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if len(body) > MAX_ERROR_BODY_BYTES:  # not one of ours: leave it as it is
                passing = True
                await send(start)
                await send({**message, "body": bytes(body)})
                return
            if message.get("more_body", False):
                return
            await self._send_page(start, bytes(body), send)

        await self.app(scope, receive, to_html)

    async def _send_page(self, start: Message, body: bytes, send: Send) -> None:
        try:
            error = json.loads(body)
            if not isinstance(error, dict):
                raise ValueError("not an error document")
        except ValueError:
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        page = render_error_html(start["status"], error, self.home).encode()
        headers = [
            (name, value)
            for name, value in start.get("headers", ())
            if name not in (b"content-type", b"content-length")
        ]
        if not any(name == b"vary" and b"accept" in value.lower() for name, value in headers):
            headers.append((b"vary", b"Accept"))
        headers += [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(page)).encode()),
        ]
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": page})


def home_path(public_url: str, root_path: str) -> str:
    """The path of the gateway's ``/`` as browsers see it: ``public_url``'s path, else the
    mount prefix (``server.root_path``)."""
    if public_url:
        _scheme, _, rest = public_url.partition("://")
        _host, _, path = rest.partition("/")
        return "/" + path.strip("/") + ("/" if path.strip("/") else "")
    return root_path.rstrip("/") + "/"
