#!/usr/bin/env python3
"""The bare app of ``bench_hot.py``: the ceiling of the gateway's hot path.

One Starlette route answering from a dict of the bytes and headers the gateway served, run
exactly as ``ome-zarr-gateway serve`` runs the gateway: the settings loaded from the same
config file by the same loader, the socket bound as the CLI binds it
(``gateway.web.listen.bind``: TCP_NODELAY, its backlog), ``gateway.web.serving.uvicorn_config``
(HTTP protocol, event loop, keep-alive, limits, uvicorn's access log off) and the same log level. Whatever the gateway spends beyond
this is its own work per request.

    python bench/bare_app.py CHUNKS.pickle CONFIG.toml PORT    # started and stopped by bench_hot.py
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import load_settings
from gateway.web.listen import bind
from gateway.web.serving import uvicorn_config

#: URL path -> (body, response headers without the ones uvicorn and Starlette set themselves)
Chunks = dict[str, tuple[bytes, dict[str, str]]]

LOG_LEVEL = "info"  # the CLI's default, which the gateway runs with in bench_hot.py


def create_app(chunks: Chunks) -> Starlette:
    """A plain Starlette app: one route, a dict lookup, a ``Response`` per request."""

    async def chunk(request: Request) -> Response:
        body, headers = chunks["/" + request.path_params["path"]]
        return Response(body, headers=headers)

    return Starlette(routes=[Route("/{path:path}", chunk)])


def main(argv: list[str]) -> None:
    dump, config, port = Path(argv[0]), Path(argv[1]), int(argv[2])
    chunks: Chunks = pickle.loads(dump.read_bytes())
    server = load_settings(config, os.environ).server
    sock = bind("127.0.0.1", port)
    uvicorn.Server(uvicorn_config(create_app(chunks), server, LOG_LEVEL)).run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1:])
