"""Liveness (``/health``) and readiness (``/ready``) for load balancers and orchestrators.

``/health`` answers from the event loop alone: the process is alive and serving HTTP (a
failing liveness probe restarts the process, so it must not depend on storage). ``/ready``
checks what serving needs: every root is a readable directory, checked *in the thread
pool* with a deadline, which also proves the pool runs work (a hung network filesystem or a
saturated pool makes the instance not ready — taken out of rotation, not restarted).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway import __version__
from gateway.http import ERROR_CACHE_CONTROL
from gateway.store import GatewayStore

READY_TIMEOUT_SECONDS = 5.0
_NO_STORE = {"Cache-Control": ERROR_CACHE_CONTROL}


def check_roots(roots: Mapping[str, Path]) -> dict[str, str]:
    """``"ok"`` or the problem, per root (blocking: run in the pool)."""
    results: dict[str, str] = {}
    for name, path in roots.items():
        try:
            if not path.is_dir():
                results[name] = "not a directory"
            elif not os.access(path, os.R_OK | os.X_OK):
                results[name] = "not readable"
            else:
                os.scandir(path).close()
                results[name] = "ok"
        except OSError as exc:
            results[name] = exc.strerror or type(exc).__name__
    return results


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": __version__}, headers=_NO_STORE)


async def ready(request: Request) -> JSONResponse:
    store: GatewayStore = request.app.state.store
    loop = asyncio.get_running_loop()
    try:
        roots = await asyncio.wait_for(
            loop.run_in_executor(store.executor, check_roots, store.catalog.roots), READY_TIMEOUT_SECONDS
        )
    except TimeoutError:
        detail = f"the read pool did not answer in {READY_TIMEOUT_SECONDS:g} s"
        return JSONResponse({"status": "not_ready", "detail": detail}, status_code=503, headers=_NO_STORE)
    except RuntimeError as exc:  # the pool is shut down
        return JSONResponse({"status": "not_ready", "detail": str(exc)}, status_code=503, headers=_NO_STORE)
    ok = all(result == "ok" for result in roots.values())
    document: dict[str, object] = {"status": "ready" if ok else "not_ready", "roots": roots}
    return JSONResponse(document, status_code=200 if ok else 503, headers=_NO_STORE)
