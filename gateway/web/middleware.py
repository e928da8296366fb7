"""CORS for every response, as a pure ASGI wrapper placed *outside* the Starlette app.

Starlette's ``ServerErrorMiddleware`` wraps user middleware, so CORS added the usual way
is missing from unhandled 500s (encode/starlette#1175); browsers then report a CORS
failure instead of the error. Wrapping the whole app fixes that. Preflights are answered
here too: viewers send ``Range`` and sometimes ``Authorization``.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOWED_METHODS = "GET, HEAD, OPTIONS"
ALLOWED_HEADERS = "Range, Authorization, Content-Type, If-None-Match, If-Modified-Since"
EXPOSED_HEADERS = (
    "Content-Length, Content-Range, Content-Type, ETag, Last-Modified, Accept-Ranges, X-Request-ID"
)
PREFLIGHT_MAX_AGE = "86400"


def any_origin_headers() -> tuple[tuple[bytes, bytes], ...]:
    """The CORS headers of every response when any origin is allowed (they depend on
    nothing in the request)."""
    return (
        (b"access-control-allow-origin", b"*"),
        (b"access-control-expose-headers", EXPOSED_HEADERS.encode("latin-1")),
    )


class CORSWrapper:
    """``origins``: the allowed ones, or ``*`` for any. With any (the default), the headers
    added do not depend on the request: they are encoded once, and no request header is read."""

    def __init__(self, app: ASGIApp, origins: Sequence[str] = ("*",), *, added_inside: bool = False) -> None:
        self.app = app
        self.any_origin = "*" in origins
        self.origins = frozenset(origins)
        self.any_origin_headers = any_origin_headers()
        #: with any origin, a layer inside adds ``any_origin_headers`` to every response
        #: (the observing middleware, which adds headers anyway): this one answers preflights
        self.added_inside = added_inside and self.any_origin

    def _allow_origin(self, origin: str | None) -> str | None:
        if self.any_origin:
            return "*"
        return origin if origin in self.origins else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.any_origin and scope["method"] != "OPTIONS":
            await self.app(scope, receive, send if self.added_inside else self._send_for_any_origin(send))
            return
        request_headers = Headers(scope=scope)
        allow_origin = self._allow_origin(request_headers.get("origin"))
        if scope["method"] == "OPTIONS":
            await self._preflight(allow_origin, request_headers)(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if allow_origin is not None:
                    headers["Access-Control-Allow-Origin"] = allow_origin
                    headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
                if not self.any_origin:
                    headers.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _send_for_any_origin(self, send: Send) -> Send:
        added = self.any_origin_headers

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                # a copy: the app's list may be shared (a response built once per node)
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        return send_with_cors

    def _preflight(self, allow_origin: str | None, request_headers: Headers) -> Response:
        headers = {"Allow": ALLOWED_METHODS}
        if allow_origin is not None:
            headers.update(
                {
                    "Access-Control-Allow-Origin": allow_origin,
                    "Access-Control-Allow-Methods": ALLOWED_METHODS,
                    "Access-Control-Allow-Headers": _allowed_headers(request_headers),
                    "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
                }
            )
        if not self.any_origin:
            headers["Vary"] = "Origin"
        return Response(status_code=204, headers=headers)


def _allowed_headers(request_headers: Headers) -> str:
    """Always Range and Authorization; plus whatever else the browser asks to send."""
    requested = request_headers.get("access-control-request-headers", "")
    names = [h.strip() for h in ALLOWED_HEADERS.split(",")]
    known = {n.lower() for n in names}
    names += [h.strip() for h in requested.split(",") if h.strip() and h.strip().lower() not in known]
    return ", ".join(names)


def route_path(scope: Scope) -> str:
    """The request path below the mount point (ASGI's ``path`` includes ``root_path``)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and (path == root_path or path.startswith(root_path + "/")):
        return path[len(root_path) :] or "/"
    return path


class MountPath:
    """Serves the app under a URL prefix that a reverse proxy strips (``server.root_path``).

    The proxy forwards ``/zarr/lab/a.tif/zarr.json`` as ``/lab/a.tif/zarr.json``; the app
    then sees ``root_path="/zarr"`` (and, as ASGI wants, ``path`` with the prefix), so
    the URLs it generates — listing, dataset pages, viewer links — carry the prefix.
    A static setting rather than ``X-Forwarded-Prefix``: no client can change the links
    that pages show, and the proxy config names the same prefix once.
    """

    def __init__(self, app: ASGIApp, root_path: str) -> None:
        self.app = app
        self.root_path = root_path.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            root_path = scope.get("root_path", "") + self.root_path
            scope = dict(scope, root_path=root_path, path=self.root_path + scope["path"])
        await self.app(scope, receive, send)
