"""``Server-Timing``: the store's per-request timings (``gateway.store.timing``) as a header."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.store.timing import end_timing, start_timing


class ServerTimingMiddleware:
    """Creates each request's ``RequestTiming``; adds ``Server-Timing`` when ``header``."""

    def __init__(self, app: ASGIApp, header: bool = True) -> None:
        self.app = app
        self.header = header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timing, token = start_timing()

        async def send_with_timing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.header:
                MutableHeaders(scope=message)["Server-Timing"] = timing.header()
            await send(message)

        try:
            await self.app(scope, receive, send_with_timing)
        finally:
            end_timing(token)
