"""``create_app(settings)``: the ASGI application, with a lifespan that owns the pool and caches."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp

from gateway.errors import error_response, exception_handlers
from gateway.middleware import CORSWrapper
from gateway.routes import routes
from gateway.settings import Settings
from gateway.store import GatewayStore

logger = logging.getLogger(__name__)

#: Environment variable through which uvicorn worker processes receive the settings.
SETTINGS_ENV = "OME_ZARR_GATEWAY_SETTINGS"


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", f"{type(exc).__name__}: {exc}")


def create_app(settings: Settings) -> ASGIApp:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        executor = ThreadPoolExecutor(settings.server.threads, thread_name_prefix="gateway-io")
        app.state.store = GatewayStore(settings, executor)
        try:
            yield
        finally:
            app.state.store.close()
            executor.shutdown(wait=False, cancel_futures=True)

    handlers = exception_handlers()
    handlers[Exception] = _unexpected_error
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.settings = settings
    return CORSWrapper(app, settings.server.cors_origins)


def settings_to_env(settings: Settings) -> str:
    """Settings as JSON, for worker processes started by uvicorn (see create_app_from_env)."""
    return json.dumps(
        {
            "roots": {name: str(path) for name, path in settings.roots.items()},
            "server": {k: getattr(settings.server, k) for k in settings.server.__slots__},
            "chunks": {k: getattr(settings.chunks, k) for k in settings.chunks.__slots__},
            "cache": {k: getattr(settings.cache, k) for k in settings.cache.__slots__},
            "viewers": {k: getattr(settings.viewers, k) for k in settings.viewers.__slots__},
            "hdf5": {k: getattr(settings.hdf5, k) for k in settings.hdf5.__slots__},
        }
    )


def create_app_from_env() -> ASGIApp:
    """uvicorn factory for multi-worker runs: settings come from ``SETTINGS_ENV``."""
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise RuntimeError(f"{SETTINGS_ENV} is not set; use `ome-zarr-gateway serve`")
    return create_app(Settings.from_mapping(json.loads(raw), base=Path("/")))
