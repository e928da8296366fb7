"""HTTP endpoints: parse, delegate to the store, set headers. No logic lives here.

Conditional requests, ranges and caching headers are decided by ``gateway.web.http``; a
folder's or a dataset's page is its URL with a trailing slash (``/<root>/<dir>/``,
``/<root>/<file>/``), which no zarr key has (keys never end in ``/``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gateway.config.settings import ServerSettings
from gateway.store import thumbnails
from gateway.store.mounts import KeySpace, Mounts
from gateway.web import folders, http, links, pages
from gateway.web.disconnect import ClientDisconnected, client_closed, value_unless_disconnected
from gateway.web.errors import READ_ONLY_ALLOW, GatewayHTTPError, error_response, not_found

READ_METHODS = ("GET", "HEAD")
#: Status of an answer nobody receives (nginx's 499): what logs and metrics record.


def _mounts(request: Request) -> Mounts:
    mounts: Mounts = request.app.state.mounts
    return mounts


def _keys(request: Request) -> KeySpace:
    keys: KeySpace = request.app.state.keys
    return keys


def _server(request: Request) -> ServerSettings:
    server: ServerSettings = request.app.state.server
    return server


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
    headers = {"Cache-Control": _server(request).cache_control_pages, "Vary": "Accept"}
    if _wants_json(request):
        return JSONResponse(document, headers=headers)
    return HTMLResponse(html, headers=headers)


def _whole(method: str, entity: http.Entity) -> Response:
    """A 200 with the whole entity, for a request with no conditional or range header:
    its header set is built once per entity (``http.whole_response_headers``)."""
    response = Response(b"" if method == "HEAD" else entity.data)
    response.raw_headers = list(http.whole_response_headers(entity))
    return response


async def _revalidated(request: Request, path: str, condition: str | None) -> Response | None:
    """A 304 for an ``If-None-Match`` that names the current entity, decided from the
    store's description: no pixel is read or encoded. None: answer as usual (no such
    header, ``*``, which only the value itself can answer, or another entity)."""
    if condition is None:
        return None
    description = await _keys(request).describe(path)
    if description is None or not http.revalidates(condition, description.etag):
        return None
    entity = http.entity_of(description, _server(request))
    return Response(b"", status_code=304, headers=http.entity_headers(entity))


async def index(request: Request) -> Response:
    """The list of roots: the folder page of ``/``."""
    _require_read(request)
    response = await folder_page(request, "")
    assert response is not None, "the list of roots always exists"
    return response


async def folder_page(request: Request, path: str) -> Response | None:
    """The page of the folder at ``path`` (``gateway.web.folders``), or None when there
    is no such folder; what it lists that is not known yet is probed once it is sent."""
    mounts = _mounts(request)
    page = await folders.folder_page(request, mounts, path)
    if page is None:
        return None
    response = _page(request, page.document, page.html())
    response.background = page.probe_later(mounts)
    return response


async def dataset_page(request: Request, path: str) -> Response:
    located = await _mounts(request).locate(path[:-1])
    if located is None or located.key:
        return not_found(path)
    settings = _mounts(request).settings
    # the page links these views
    v2 = settings.zarr_v2.prefix if settings.zarr_v2.enabled else None
    browse = settings.browse.prefix if settings.browse.enabled else None
    base = links.base_url(request, settings.server)
    description = pages.describe_dataset(located, base, settings.viewers, v2, browse)
    return _page(request, description, pages.render_dataset_html(description))


async def key(request: Request) -> Response:
    """A folder's or a dataset's page (a path ending in ``/``), else a value of the store
    (a folder's URL without its slash is redirected to its page)."""
    path = request.path_params["path"]
    if path.endswith("/"):
        _require_read(request)
        head, _, rest = path.partition("/")
        if rest and head in _mounts(request).settings.view_prefixes:  # a view's folder or dataset:
            path = rest  # the same page (the page links every view)
        return await folder_page(request, path[:-1]) or await dataset_page(request, path)
    response = await value(request)
    if response.status_code == 404:  # a folder's URL without its slash: to its page
        return await folders.slash_redirect(request, _mounts(request), path) or response
    return response


def _key_path(request: Request) -> str:
    """The path of the value a request names: its path, or for a thumbnail with query
    parameters (``thumbnail.png?channel=N&format=webp``) the key they name."""
    path: str = request.path_params["path"]
    if not request.scope.get("query_string"):
        return path
    query = request.query_params
    return thumbnails.with_parameters(path, {name: query.getlist(name) for name in query})


async def _absent(request: Request, path: str) -> Response:
    """The 404 of an absent value; a 400 for a thumbnail's ``channel`` parameter that
    names no channel of an image that has a thumbnail (a bad parameter, not a bad path)."""
    wanted = thumbnails.parse_key(path)
    if wanted is not None and wanted.channel is not None and "channel" in request.query_params:
        composite = thumbnails.ThumbnailKey(wanted.image, None, wanted.format).key
        if await _keys(request).describe(composite) is not None:
            detail = f"channel={wanted.channel}: the image has no such channel"
            return error_response(400, "unknown_channel", detail)
    return not_found(path)


async def value(request: Request) -> Response:
    """The value at the path: a metadata document, a chunk or a thumbnail, with ETag,
    conditional requests and byte ranges (``gateway.web.http``)."""
    _require_read(request)
    path = _key_path(request)
    conditions = http.conditional_headers(request.scope["headers"])
    revalidated = await _revalidated(request, path, conditions.get("if-none-match"))
    if revalidated is not None:
        return revalidated
    try:
        item = await value_unless_disconnected(_keys(request), path, request.receive)
    except ClientDisconnected:
        return client_closed(path)
    if item is None:
        return await _absent(request, path)
    entity = http.entity_of(item, _server(request))
    if not conditions:
        return _whole(request.method, entity)
    reply = http.plan_response(request.method, conditions, entity)
    if reply.status == 416:
        content_range = reply.headers["Content-Range"]
        detail = f"{path}: no such byte range ({content_range})"
        return error_response(416, "range_not_satisfiable", detail, {"Content-Range": content_range})
    return Response(reply.body, status_code=reply.status, headers=reply.headers)


ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]

Endpoint = Callable[[Request], Awaitable[Response]]


def gateway_routes(service: Mapping[str, Endpoint]) -> list[Route]:
    """The gateway's URL space as one route: ``service`` endpoints by path (``health``,
    ``ready``, ``metrics``: GET and HEAD only), the index at ``/``, then dataset pages
    and keys. One route, because Starlette tries routes in turn, a regular expression
    each, and on the hot path (a cached chunk) one match costs less than five."""

    async def dispatch(request: Request) -> Response:
        path = request.path_params["path"]
        endpoint = service.get(path)
        if endpoint is not None:
            _require_read(request)
            return await endpoint(request)
        if not path:
            return await index(request)
        return await key(request)

    return [Route("/{path:path}", dispatch, methods=ALL_METHODS)]


#: The routes of one store served alone (``create_store_app``): its keys, nothing else.
store_routes = [Route("/{path:path}", value, methods=ALL_METHODS)]
