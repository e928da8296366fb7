"""HTTP endpoints: parse, delegate to the store, set headers. No logic lives here."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gateway import pages
from gateway.errors import READ_ONLY_ALLOW, GatewayHTTPError, not_found
from gateway.store import GatewayStore

READ_METHODS = ("GET", "HEAD")


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
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


async def index(request: Request) -> Response:
    _require_read(request)
    listing = await pages.build_listing(_store(request), str(request.base_url))
    if _wants_json(request):
        return JSONResponse(listing)
    return HTMLResponse(pages.render_listing_html(listing))


async def key(request: Request) -> Response:
    _require_read(request)
    path = request.path_params["path"]
    item = await _store(request).get(path)
    if item is None:
        return not_found(path)
    headers = {"Content-Length": str(len(item.data))}
    body = b"" if request.method == "HEAD" else item.data
    return Response(body, media_type=item.media_type, headers=headers)


ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]

routes = [
    Route("/", index, methods=ALL_METHODS),
    Route("/{path:path}", key, methods=ALL_METHODS),
]
