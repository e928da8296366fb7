"""Stop waiting when the client hangs up.

Starlette does not cancel a plain endpoint when its client disconnects: the request would
keep its computation alive to the end of its work budget. ``unless_disconnected`` awaits
the work while listening on the ASGI ``receive`` channel; on ``http.disconnect`` it
cancels the work, which releases the request's claim on a shared computation (the last
claim gone, the computation is abandoned: ``gateway.store.cache``).

Only for endpoints that do not read the request body (GET, HEAD): the listener consumes
the body messages.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from starlette.responses import JSONResponse
from starlette.types import Receive

from gateway.store.base import NOT_READY
from gateway.store.entity import StoreItem
from gateway.store.mounts import KeySpace
from gateway.web.errors import error_response

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client went away before the answer was ready."""


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


#: nginx's status for a request whose client went away before the answer (logs, metrics).
CLIENT_CLOSED = 499


async def unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """The result of ``work``; raises ``ClientDisconnected`` (after cancelling ``work``)
    when the client disconnects first."""
    task = asyncio.ensure_future(work)
    listener = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((task, listener), return_when=asyncio.FIRST_COMPLETED)
    finally:  # on our own cancellation too (server shutdown)
        for pending in (listener, task):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
    if task.cancelled() or not task.done():
        raise ClientDisconnected()
    return task.result()


async def value_unless_disconnected(keys: KeySpace, path: str, receive: Receive) -> StoreItem | None:
    """The value at ``path`` (None: absent): at once when the store has it (a document, a
    cached chunk: no task), else its work awaited while the client stays (a client hanging
    up raises ``ClientDisconnected`` and so frees the work)."""
    item = keys.get_now(path)
    if item is NOT_READY:
        return await unless_disconnected(receive, keys.get(path))
    return item


def client_closed(path: str) -> JSONResponse:
    """The answer logged for a request whose client went away (nobody reads it)."""
    return error_response(CLIENT_CLOSED, "client_closed_request", f"{path}: the client went away")
