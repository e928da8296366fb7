"""``create_app(settings)``: the ASGI application, with a lifespan that owns the pool and caches."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp

from adapters.registry import Registry
from gateway.config.settings import ServerSettings, Settings
from gateway.ops import health
from gateway.ops.accesslog import AccessLog, configure_access_logger, flush_access_log
from gateway.ops.metrics import Metrics, metrics_endpoint
from gateway.ops.observe import ObserveMiddleware
from gateway.store.base import ServedStore
from gateway.store.dataset import Workers
from gateway.store.logs import LogLimiter, RepeatFilter
from gateway.store.mounts import Mounts, StoreMount
from gateway.web.auth import AccessControl
from gateway.web.errors import BrowserErrors, exception_handlers, home_path
from gateway.web.hotpath import HotPath
from gateway.web.links import with_link_origin
from gateway.web.middleware import CORSWrapper, MountPath, any_origin_headers
from gateway.web.routes import Endpoint, gateway_routes, store_routes

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
    """Starlette answers an unknown exception before re-raising it; this leaves the answer
    to ObserveMiddleware instead, which logs it once and answers with the request id."""
    raise exc


def _service_endpoints(settings: Settings) -> dict[str, Endpoint]:
    """Probes and metrics, by path (no dataset key is one segment: the names are reserved)."""
    service: dict[str, Endpoint] = {"health": health.health, "ready": health.ready}
    if settings.server.metrics:
        service["metrics"] = metrics_endpoint
    return service


def create_app(
    settings: Settings, metrics_dir: str | None = None, registry: Registry | None = None
) -> ASGIApp:
    """The gateway as an ASGI app. ``metrics_dir``: prometheus_client's multiprocess
    directory, when this process is one of several workers (see gateway.ops.metrics);
    ``registry``: the adapter families served (default: every family shipped).

    From the outside in: the link origin (gateway.web.links), CORS (so that every response,
    errors included, carries it), the observing middleware (Server-Timing, X-Gateway-Instance,
    metrics, the access log; no exception escapes it: a JSON 500 with a request id, logged
    once), the mount prefix, access control, the hot path (gateway.web.hotpath: ready
    values without conditions, in plain ASGI), then Starlette's routes."""
    key = settings.auth.key() if settings.auth.enabled else None  # a bad key fails here, early
    metrics = Metrics(metrics_dir)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        server_log = logging.getLogger(SERVER_LOGGER)
        server_log.addFilter(repeats)  # malformed HTTP: one warning per interval
        executor = ThreadPoolExecutor(settings.server.threads, thread_name_prefix="gateway-io")
        # chunks of synthesized levels: a bounded pool of their own (gateway/levels/budget.py)
        heavy = ThreadPoolExecutor(settings.server.heavy_pool_threads, thread_name_prefix="gateway-heavy")
        mounts = Mounts(settings, Workers(executor, heavy, settings.server.request_seconds), registry)
        app.state.mounts = app.state.keys = mounts
        metrics.attach(mounts)
        try:
            yield
        finally:
            # uvicorn has let in-flight requests finish (or timed them out) by now
            metrics.close()
            open_files = mounts.open_datasets()
            mounts.close()
            executor.shutdown(wait=False, cancel_futures=True)
            heavy.shutdown(wait=False, cancel_futures=True)
            logger.info("closed %d open dataset(s) and the read pools", open_files)
            flush_access_log()
            server_log.removeFilter(repeats)

    log_limiter = LogLimiter()  # repeated faults: one line per (dataset, kind) per interval
    repeats = RepeatFilter()
    service = _service_endpoints(settings)
    app = Starlette(
        routes=gateway_routes(service), lifespan=lifespan, exception_handlers=_handlers(log_limiter)
    )
    app.state.settings = settings
    app.state.server = settings.server
    app.state.metrics = metrics
    server = settings.server
    wrapped: ASGIApp = HotPath(app, reserved=frozenset(service))
    if key is not None:
        wrapped = AccessControl(wrapped, key, settings.auth.protect, settings.view_prefixes)
    if server.root_path:
        wrapped = MountPath(wrapped, server.root_path)
    wrapped = _observed(
        wrapped,
        server,
        log_limiter,
        metrics=metrics if server.metrics else None,
        access_log=AccessLog(server.access_log, server.instance) if server.access_log != "off" else None,
    )
    # outermost: links' origin is decided on the real peer, before forwarded headers apply
    return with_link_origin(wrapped, server)


def create_store_app(store: ServedStore, server: ServerSettings | None = None) -> ASGIApp:
    """One store (any ``ServedStore``: ``open_store(path)``, a wrapper stack of your own)
    served over HTTP at the root of the URL space, with the gateway's HTTP semantics
    (ETags, 304, ranges, JSON errors, CORS, Server-Timing) and nothing else: no roots,
    pages, metrics or access control. The caller owns the store (and closes it)."""
    server = server or ServerSettings()
    log_limiter = LogLimiter()
    app = Starlette(routes=store_routes, exception_handlers=_handlers(log_limiter))
    app.state.keys = StoreMount(store)
    app.state.server = server
    return _observed(HotPath(app), server, log_limiter)


def _handlers(limiter: LogLimiter) -> dict[Any, Any]:
    """Starlette's handlers: ours for known errors; anything else re-raised to the
    observing middleware, which logs it once and answers the generic 500."""
    handlers = exception_handlers(limiter)
    handlers[Exception] = _unexpected_error
    return handlers


def _observed(
    app: ASGIApp,
    server: ServerSettings,
    limiter: LogLimiter,
    *,
    metrics: Metrics | None = None,
    access_log: AccessLog | None = None,
) -> ASGIApp:
    """``app`` behind the observing middleware, CORS and HTML error pages for browsers.
    With any origin allowed, the CORS headers are constant and the observing middleware
    adds them with its own; with a list of origins the CORS middleware decides per request."""
    cors = any_origin_headers() if "*" in server.cors_origins else ()
    observed = ObserveMiddleware(
        app,
        limiter,
        metrics=metrics,
        access_log=access_log,
        server_timing=server.server_timing,
        instance=server.instance,
        response_headers=cors,
    )
    with_cors = CORSWrapper(observed, server.cors_origins, added_inside=True)
    # outside all: every JSON error of every layer becomes a page for a browser
    return BrowserErrors(with_cors, home_path(server.public_url, server.root_path))


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
