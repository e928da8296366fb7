"""Liveness (``/health``) and readiness (``/ready``) for load balancers and orchestrators.

``/health`` answers from the event loop alone: the process is alive and serving HTTP (a
failing liveness probe restarts the process, so it must not depend on storage). ``/ready``
checks what serving needs: every root is a readable directory, checked *in the thread
pool* with a deadline, which also proves the pool runs work (a hung network filesystem or a
saturated pool makes the instance not ready — taken out of rotation, not restarted).
The pool probed is the read pool that serves metadata and native chunks
(``Workers.io``); chunks of synthesized levels run in a pool of their own
(``Workers.heavy``), so a burst of heavy pyramid work cannot make ``/ready`` lie: while the
read pool answers, healthy files are served.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway import __version__
from gateway.config.settings import AuthSettings
from gateway.store.mounts import Mounts

READY_TIMEOUT_SECONDS = 5.0
_NO_STORE = {"Cache-Control": "no-store"}  # never cache a probe's answer


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


def visible_roots(results: Mapping[str, str], auth: AuthSettings) -> dict[str, object]:
    """What ``/ready`` may say of the roots to anyone: the public roots by name; protected
    ones only as counts (their names are what a token would have to reveal)."""
    hidden = {name for name in results if "*" in auth.protect or name in auth.protect}
    shown: dict[str, object] = {"roots": {n: r for n, r in results.items() if n not in hidden}}
    if hidden:
        ok = sum(results[name] == "ok" for name in hidden)
        shown["protected_roots"] = {"count": len(hidden), "ok": ok}
    return shown


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": __version__}, headers=_NO_STORE)


async def ready(request: Request) -> JSONResponse:
    mounts: Mounts = request.app.state.mounts
    try:
        roots = await asyncio.wait_for(mounts.run(check_roots, mounts.catalog.roots), READY_TIMEOUT_SECONDS)
    except TimeoutError:
        detail = f"the read pool did not answer in {READY_TIMEOUT_SECONDS:g} s"
        return JSONResponse({"status": "not_ready", "detail": detail}, status_code=503, headers=_NO_STORE)
    except RuntimeError as exc:  # the pool is shut down
        return JSONResponse({"status": "not_ready", "detail": str(exc)}, status_code=503, headers=_NO_STORE)
    ok = all(result == "ok" for result in roots.values())
    document: dict[str, object] = {"status": "ready" if ok else "not_ready"}
    document.update(visible_roots(roots, mounts.settings.auth))
    return JSONResponse(document, status_code=200 if ok else 503, headers=_NO_STORE)
