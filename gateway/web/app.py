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
from starlette.routing import Route
from starlette.types import ASGIApp

from gateway.config.settings import Settings
from gateway.ops import health
from gateway.ops.accesslog import AccessLogMiddleware, configure_access_logger
from gateway.ops.auth import AccessControl
from gateway.ops.logs import LogLimiter, RepeatFilter
from gateway.ops.metrics import Metrics, MetricsMiddleware, metrics_endpoint
from gateway.store.dataset import GatewayStore
from gateway.web.errors import ErrorGuard, exception_handlers, unexpected_error_response
from gateway.web.links import OriginMiddleware
from gateway.web.middleware import CORSWrapper, InstanceHeader, MountPath
from gateway.web.routes import routes
from gateway.web.timing import ServerTimingMiddleware

logger = logging.getLogger(__name__)

#: Environment variable through which uvicorn worker processes receive the settings.
SETTINGS_ENV = "OME_ZARR_GATEWAY_SETTINGS"
#: ... and the log level.
LOG_LEVEL_ENV = "OME_ZARR_GATEWAY_LOG_LEVEL"
#: uvicorn's own logger: it warns once per malformed HTTP request, before the app sees it.
SERVER_LOGGER = "uvicorn.error"
#: prometheus_client's multiprocess directory (set by the CLI for multi-worker runs).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """The JSON 500 Starlette sends; not logged here: Starlette re-raises the exception
    after answering, and ErrorGuard logs it once (rate-limited, with its traceback)."""
    return unexpected_error_response(exc)


def _service_routes(settings: Settings) -> list[Route]:
    """Probes and metrics, before the catch-all key route (no dataset key is one segment)."""
    service = [
        Route("/health", health.health, methods=["GET", "HEAD"]),
        Route("/ready", health.ready, methods=["GET", "HEAD"]),
    ]
    if settings.server.metrics:
        service.append(Route("/metrics", metrics_endpoint, methods=["GET", "HEAD"]))
    return service


def create_app(settings: Settings, metrics_dir: str | None = None) -> ASGIApp:
    """The gateway as an ASGI app. ``metrics_dir``: prometheus_client's multiprocess
    directory, when this process is one of several workers (see gateway.ops.metrics).

    From the outside in: the link origin (gateway.web.links), CORS (so that every response,
    errors included, carries it), the error guard (no exception escapes: a JSON 500, logged once), X-Gateway-Instance,
    Server-Timing, the access log, metrics, the mount prefix, access control, then
    Starlette's routes."""
    key = settings.auth.key() if settings.auth.enabled else None  # a bad key fails here, early
    metrics = Metrics(metrics_dir)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        server_log = logging.getLogger(SERVER_LOGGER)
        server_log.addFilter(repeats)  # malformed HTTP: one warning per interval
        executor = ThreadPoolExecutor(settings.server.threads, thread_name_prefix="gateway-io")
        # chunks of synthesized levels: a bounded pool of their own (gateway/budget.py)
        heavy = ThreadPoolExecutor(settings.server.heavy_pool_threads, thread_name_prefix="gateway-heavy")
        store = GatewayStore(settings, executor, heavy)
        app.state.store = store
        metrics.attach(store)
        try:
            yield
        finally:
            # uvicorn has let in-flight requests finish (or timed them out) by now
            metrics.close()
            open_files = store.open_datasets()
            store.close()
            executor.shutdown(wait=False, cancel_futures=True)
            heavy.shutdown(wait=False, cancel_futures=True)
            logger.info("closed %d open dataset(s) and the read pools", open_files)
            server_log.removeFilter(repeats)

    log_limiter = LogLimiter()  # repeated faults: one line per (dataset, kind) per interval
    repeats = RepeatFilter()
    handlers = exception_handlers(log_limiter)
    handlers[Exception] = _unexpected_error
    app = Starlette(
        routes=[*_service_routes(settings), *routes], lifespan=lifespan, exception_handlers=handlers
    )
    app.state.settings = settings
    app.state.metrics = metrics
    server = settings.server
    wrapped: ASGIApp = app
    if key is not None:
        views = (settings.zarr_v2.prefix,) if settings.zarr_v2.enabled else ()
        wrapped = AccessControl(wrapped, key, settings.auth.protect, views)
    if server.root_path:
        wrapped = MountPath(wrapped, server.root_path)
    wrapped = MetricsMiddleware(wrapped, metrics)
    if server.access_log != "off":
        wrapped = AccessLogMiddleware(wrapped, server.access_log, server.instance)
    wrapped = ServerTimingMiddleware(wrapped, header=server.server_timing)
    if server.instance:
        wrapped = InstanceHeader(wrapped, server.instance)
    wrapped = CORSWrapper(ErrorGuard(wrapped, log_limiter), server.cors_origins)
    # outermost: links' origin is decided on the real peer, before forwarded headers apply
    return OriginMiddleware(wrapped, server)


def settings_to_env(settings: Settings) -> str:
    """Settings as JSON, for worker processes started by uvicorn (see create_app_from_env)."""
    return json.dumps(settings.to_mapping())


def create_app_from_env() -> ASGIApp:
    """uvicorn factory for multi-worker runs: settings come from ``SETTINGS_ENV``."""
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise RuntimeError(f"{SETTINGS_ENV} is not set; use `ome-zarr-gateway serve`")
    settings = Settings.from_mapping(json.loads(raw), base=Path("/"))
    # a spawned worker starts with unconfigured logging: set it up as the CLI did
    logging.basicConfig(
        level=os.environ.get(LOG_LEVEL_ENV, "INFO").upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    configure_access_logger(settings.server.access_log)
    return create_app(settings, metrics_dir=os.environ.get(MULTIPROC_ENV) or None)
