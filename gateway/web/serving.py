"""uvicorn as the gateway runs it: one ``uvicorn.Config`` for the CLI and the tests, and an
HTTP protocol that closes connections whose request does not arrive in time.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but has no timeout for
reading a request: a connection that opens and sends nothing, or half a request head, is
held forever, each one a file descriptor (1,000 half-sent requests stayed open; the systemd
unit's ``LimitNOFILE=8192`` would run out at about 8k). ``DeadlineH11Protocol`` arms a
deadline whenever the server waits for a request (connection opened, previous response
sent) and disarms it once the request is fully received; at the deadline the connection is
closed. It also closes, at once, connections beyond ``max_connections``, so descriptors
held by connections stay bounded whatever clients do.

The deadline is a mixin (``RequestDeadline``) over uvicorn's own protocols, set
explicitly: uvicorn's httptools protocol (C parser; ``uvicorn[standard]``, a dependency)
when httptools imports, else its h11 one, so neither runs without the deadline. Both
protocols' 400s for requests their parser refuses are JSON with CORS, like the app's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools not installed: uvicorn's pure-Python h11 protocol only
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

from gateway.config.settings import ServerSettings
from gateway.web.http import ERROR_CACHE_CONTROL

logger = logging.getLogger(__name__)


class GatewayConfig(uvicorn.Config):
    """``uvicorn.Config`` carrying the request deadline and the connection cap to the
    protocol (a subclass, not a generated protocol class: worker processes receive the
    configuration pickled)."""

    def __init__(
        self,
        app: Any,
        *,
        request_timeout_seconds: float,
        max_connections: int,
        max_header_bytes: int,
        any_origin: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(app, h11_max_incomplete_event_size=max_header_bytes, **options)
        self.request_timeout_seconds = request_timeout_seconds
        self.max_connections = max_connections
        self.max_header_bytes = max_header_bytes
        self.any_origin = any_origin


class RequestDeadline(asyncio.Protocol):
    """Mixin for a uvicorn HTTP protocol: a whole request must arrive within
    ``request_timeout_seconds`` of the server starting to wait for it, its head within
    ``max_header_bytes`` (else 400); at most ``max_connections`` connections are kept (the
    newest beyond it is closed unread). All come from a GatewayConfig (defaults under a
    plain ``uvicorn.Config``)."""

    request_timeout_seconds: float = 10.0
    max_connections: int = 1024
    max_header_bytes: int = 16 * 1024

    # provided by the uvicorn protocol this is mixed into
    config: uvicorn.Config
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    connections: set[Any]
    cycle: Any

    send_400_response: Callable[[str], None]

    _deadline: asyncio.TimerHandle | None = None
    _waited_cycle: object = None  # the cycle (request) that was current when waiting began
    _head_bytes = 0  # of the awaited request's head so far

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.request_timeout_seconds = getattr(self.config, "request_timeout_seconds", 10.0)
        self.max_connections = getattr(self.config, "max_connections", 1024)
        self.max_header_bytes = getattr(self.config, "max_header_bytes", 16 * 1024)
        if len(self.connections) > self.max_connections:
            logger.debug("over %d connections: closing a new one", self.max_connections)
            self.transport.close()
            return
        self._wait()

    def data_received(self, data: bytes) -> None:
        if self._deadline is not None and self.cycle is self._waited_cycle and self._head_too_large(data):
            logger.debug("request head over %d bytes: answering 400", self.max_header_bytes)
            self._disarm()
            self.send_400_response("Request head too large.")
            return
        super().data_received(data)
        self._disarm_if_received()

    def _head_too_large(self, data: bytes) -> bool:
        """Count the bytes of the awaited request's head (h11 bounds only an *incomplete*
        head; one that arrives whole in one read would pass at any size)."""
        end = data.find(b"\r\n\r\n")
        self._head_bytes += len(data) if end < 0 else end + 4
        return self._head_bytes > self.max_header_bytes

    def on_response_complete(self) -> None:
        self._wait()  # before: a pipelined request parsed in there disarms it again
        super().on_response_complete()  # type: ignore[misc]
        self._disarm_if_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _wait(self) -> None:
        """The server now waits for a (next) request: start its deadline."""
        self._disarm()
        self._waited_cycle = self.cycle
        self._head_bytes = 0
        self._deadline = self.loop.call_later(self.request_timeout_seconds, self._expired)

    def _disarm_if_received(self) -> None:
        cycle = self.cycle
        if self._deadline is not None and cycle is not self._waited_cycle and not cycle.more_body:
            self._disarm()  # a new request arrived, its body (if any) included

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            logger.debug("no complete request in %g s: closing the connection", self.request_timeout_seconds)
            self.transport.close()


def error_400(msg: str, any_origin: bool) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of the 400 for a request the HTTP parser refuses (bad head, head too
    large): JSON like every other gateway error, never cached, with CORS when any origin is
    allowed (the request's Origin is not known: its head did not parse)."""
    body = json.dumps({"error": "bad_request", "detail": msg}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", ERROR_CACHE_CONTROL.encode()),
        (b"connection", b"close"),
    ]
    if any_origin:
        headers.append((b"access-control-allow-origin", b"*"))
    return headers, body


class DeadlineH11Protocol(RequestDeadline, H11Protocol):
    """uvicorn's h11 protocol (pure Python) with the request deadline and the connection cap."""

    def send_400_response(self, msg: str) -> None:
        headers, body = error_400(msg, getattr(self.config, "any_origin", True))
        for event in (
            h11.Response(status_code=400, headers=headers),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            try:
                self.transport.write(self.conn.send(event))
            except h11.LocalProtocolError:  # h11 cannot answer in this state: just close
                break
        self.transport.close()


#: The protocol the gateway serves HTTP/1.1 with: the fastest one installed, with the
#: deadline (a module-level class: worker processes receive the configuration pickled).
HTTP_PROTOCOL: type[asyncio.Protocol] = DeadlineH11Protocol

if HttpToolsProtocol is not None:

    class DeadlineHttpToolsProtocol(RequestDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol (C parser, ``uvicorn[standard]``) with the request
        deadline and the connection cap."""

        def send_400_response(self, msg: str) -> None:
            headers, body = error_400(msg, getattr(self.config, "any_origin", True))
            head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\n" + head + b"\r\n" + body)
            self.transport.close()

    HTTP_PROTOCOL = DeadlineHttpToolsProtocol


def uvicorn_config(
    app: Any, server: ServerSettings, log_level: str = "info", **options: Any
) -> uvicorn.Config:
    """The uvicorn configuration the gateway runs with (``app``: an ASGI app, or an import
    string with ``factory=True`` in ``options``).

    - ``proxy_headers=False``: forwarded headers are the app's business, from configured
      proxies only (gateway.web.links); uvicorn's default would trust any loopback peer.
    - ``access_log=False``: uvicorn's access log would print signed URLs' tokens; the
      gateway logs requests itself, redacted (gateway.ops.accesslog).
    - ``limit_concurrency``: with ``max_connections`` open connections or requests in
      progress (which can outlive a client that hung up), further requests answer 503.
    """
    return GatewayConfig(
        app,
        request_timeout_seconds=server.header_timeout_seconds,
        max_connections=server.max_connections,
        max_header_bytes=server.max_header_bytes,
        any_origin="*" in server.cors_origins,
        log_level=log_level,
        access_log=False,
        proxy_headers=False,
        http=HTTP_PROTOCOL,
        ws="none",  # no websockets here; an upgrade would outlive the request deadline
        timeout_keep_alive=server.keep_alive_seconds,
        limit_concurrency=server.max_connections,
        timeout_graceful_shutdown=10,
        **options,
    )
