"""``HotPath``: a store's values answered before Starlette's routing.

Most requests of a viewer or a dask job ask for a chunk without conditions, or
revalidate what they hold with ``If-None-Match``. For those, Starlette's error
middlewares, router, ``Request`` and ``Response`` cost about as much as the rest of the
answer; this layer answers them in plain ASGI, with the header set built once per
entity: a value the store has at once (a document, a cached chunk) without a task, one
that needs work (a chunk to read and encode) by awaiting it as ``routes.value`` does,
errors through the app's own exception handlers. Everything else — pages, service
paths, other conditional and range requests, absent values — goes to the app unchanged
(the answers are the same: tests/web/test_hot_path.py compares them). It sits inside
access control and the mount prefix, so what it serves is exactly what the app would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from gateway.config.settings import ServerSettings
from gateway.store.entity import Description
from gateway.store.mounts import KeySpace
from gateway.web import http
from gateway.web.disconnect import ClientDisconnected, client_closed, value_unless_disconnected
from gateway.web.middleware import route_path

_READ_METHODS = ("GET", "HEAD")


class HotPath:
    """Answers ``GET``/``HEAD`` of a value without conditions, and ``304`` for a
    revalidation of a described one; hands every other request to ``app``.

    ``reserved``: paths that are not keys (the service endpoints). The key space is the
    app's ``state.keys`` (set by its lifespan, or at creation for a lone store)."""

    def __init__(self, app: Starlette, reserved: Container[str] = ()) -> None:
        self.app = app
        self.reserved = reserved
        self._keys: KeySpace | None = None  # the app's, once its lifespan has set it
        self._server: ServerSettings | None = None

    def _key_space(self) -> tuple[KeySpace, ServerSettings] | None:
        if self._keys is None or self._server is None:
            state = self.app.state
            self._keys = getattr(state, "keys", None)
            self._server = getattr(state, "server", None)
            if self._keys is None or self._server is None:
                return None
        return self._keys, self._server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in _READ_METHODS:
            path = route_path(scope)[1:]
            # a query may name another value (a thumbnail's ``?channel=``): the app decides
            if path and path[-1] != "/" and not scope.get("query_string") and path not in self.reserved:
                space = self._key_space()
                if space is not None and await self._answered(scope, receive, send, path, *space):
                    return
        await self.app(scope, receive, send)

    async def _answered(
        self, scope: Scope, receive: Receive, send: Send, path: str, keys: KeySpace, server: ServerSettings
    ) -> bool:
        """Whether the request was answered here: a value without conditions (200, or the
        error its work raised), or an ``If-None-Match`` alone that names the current
        entity (304)."""
        conditions = http.conditional_headers(scope["headers"])
        if not conditions:
            try:
                item = await value_unless_disconnected(keys, path, receive)
            except ClientDisconnected:
                await client_closed(path)(scope, receive, send)
                return True
            except Exception as exc:
                handler = self._exception_handler(exc)
                if handler is None:
                    raise  # the observing middleware's 500
                await (await handler(Request(scope, receive), exc))(scope, receive, send)
                return True
            if item is None:
                return False  # absent: the app's 404 (or a folder's redirect)
            headers: Sequence[tuple[bytes, bytes]] = http.whole_item_headers(item, server)
            body = b"" if scope["method"] == "HEAD" else item.data
            status = 200
        elif len(conditions) == 1 and "if-none-match" in conditions:
            description = keys.describe_now(path)
            if not isinstance(description, Description):
                return False
            if not http.revalidates(conditions["if-none-match"], description.etag):
                return False  # the app answers: a 200, or ``*`` that only the value can
            entity = http.entity_of(description, server)
            headers = [
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in http.entity_headers(entity).items()
            ]
            body = b""
            status = 304
        else:
            return False
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True

    def _exception_handler(self, exc: Exception) -> Callable[[Request, Exception], Awaitable[Any]] | None:
        """The app's handler of ``exc`` (Starlette's rule: the nearest class in its MRO)."""
        handlers = self.app.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers:
                return handlers[cls]  # type: ignore[no-any-return]
        return None
