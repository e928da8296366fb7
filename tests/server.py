"""A real uvicorn server on a free loopback port, in a background thread, for tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from gateway.config.settings import ServerSettings, Settings
from gateway.web.app import create_app
from gateway.web.serving import uvicorn_config


class ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # not in the main thread
        pass


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """Start the gateway on 127.0.0.1:<free port>; yield its base URL; stop it."""
    with serve_app(create_app(settings), settings.server) as base:
        yield base


@contextmanager
def serve_app(app: ASGIApp, server_settings: ServerSettings) -> Iterator[str]:
    """Serve any ASGI app as ``ome-zarr-gateway serve`` serves the gateway."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # the configuration `ome-zarr-gateway serve` runs with (request deadline, connection cap)
    config = uvicorn_config(app, server_settings, "warning", lifespan="on")
    server = ThreadedServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("gateway server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
