"""HTTP endpoints: parse, delegate to the store, set headers. No logic lives here.

Conditional requests, ranges and caching headers are decided by ``gateway.web.http``; a
dataset's page is its URL with a trailing slash (``/<root>/<file>/``), which no zarr key
has (keys never end in ``/``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gateway import __version__
from gateway.config.settings import ServerSettings
from gateway.store.dataset import Description, GatewayStore, StoreItem
from gateway.web import http, links, pages
from gateway.web.disconnect import ClientDisconnected, unless_disconnected
from gateway.web.errors import READ_ONLY_ALLOW, GatewayHTTPError, error_response, not_found

READ_METHODS = ("GET", "HEAD")
#: Status of an answer nobody receives (nginx's 499): what logs and metrics record.
CLIENT_CLOSED = 499


def _store(request: Request) -> GatewayStore:
    store: GatewayStore = request.app.state.store
    return store


def _require_read(request: Request) -> None:
    if request.method not in READ_METHODS:
        raise GatewayHTTPError(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed: this gateway is read-only",
            headers={"Allow": READ_ONLY_ALLOW},
        )


def _wants_json(request: Request) -> bool:
    if "format" in request.query_params:
        return request.query_params["format"] == "json"
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _page(request: Request, document: dict[str, object], html: str) -> Response:
    headers = {"Cache-Control": _store(request).settings.server.cache_control_pages, "Vary": "Accept"}
    if _wants_json(request):
        return JSONResponse(document, headers=headers)
    return HTMLResponse(html, headers=headers)


def _entity(path: str, item: StoreItem | Description, server: ServerSettings) -> http.Entity:
    """The HTTP entity of a value (a description alone: an entity without its bytes)."""
    cache_control = server.cache_control_chunks if item.kind == "chunk" else server.cache_control_metadata
    etag = http.entity_tag(item.identity, path, item.configuration, __version__)
    data = item.data if isinstance(item, StoreItem) else b""
    return http.Entity(data, item.media_type, etag, http.modified_seconds(item.identity), cache_control)


async def _revalidated(request: Request, path: str) -> Response | None:
    """A 304 for an ``If-None-Match`` that names the current entity, decided from the
    store's description: no pixel is read or encoded. None: answer as usual (no such
    header, ``*``, which only the value itself can answer, or another entity)."""
    condition = request.headers.get("if-none-match")
    if condition is None or condition.strip() == "*":
        return None
    store = _store(request)
    description = await store.describe(path)
    if description is None:
        return None
    entity = _entity(path, description, store.settings.server)
    if not http.etag_matches(condition, entity.etag):
        return None
    return Response(b"", status_code=304, headers=http.entity_headers(entity))


async def index(request: Request) -> Response:
    _require_read(request)
    store = _store(request)
    listing = await pages.build_listing(store, links.base_url(request, store.settings.server))
    return _page(request, listing, pages.render_listing_html(listing))


async def dataset_page(request: Request, path: str) -> Response:
    located = await _store(request).locate(path[:-1])
    if located is None or located.key:
        return not_found(path)
    settings = _store(request).settings
    description = pages.describe_dataset(located, links.base_url(request, settings.server), settings.viewers)
    return _page(request, description, pages.render_dataset_html(description))


async def key(request: Request) -> Response:
    _require_read(request)
    path = request.path_params["path"]
    if path.endswith("/"):
        return await dataset_page(request, path)
    revalidated = await _revalidated(request, path)
    if revalidated is not None:
        return revalidated
    try:  # a client hanging up stops waiting, and so frees the work (gateway/disconnect.py)
        item = await unless_disconnected(request.receive, _store(request).get(path))
    except ClientDisconnected:
        return error_response(CLIENT_CLOSED, "client_closed_request", f"{path}: the client went away")
    if item is None:
        return not_found(path)
    entity = _entity(path, item, _store(request).settings.server)
    reply = http.plan_response(request.method, request.headers, entity)
    if reply.status == 416:
        content_range = reply.headers["Content-Range"]
        detail = f"{path}: no such byte range ({content_range})"
        return error_response(416, "range_not_satisfiable", detail, {"Content-Range": content_range})
    return Response(reply.body, status_code=reply.status, headers=reply.headers)


ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]

routes = [
    Route("/", index, methods=ALL_METHODS),
    Route("/{path:path}", key, methods=ALL_METHODS),
]
