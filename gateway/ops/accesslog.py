"""Access logs (text or JSON lines) with credentials redacted.

uvicorn's own access log is turned off (it would log signed URLs' tokens verbatim); this
pure ASGI middleware logs one line per request to the ``gateway.access`` logger instead.
Tokens never reach it: ``/s/<token>/`` is logged as ``/s/<redacted>/``, query parameters
that look like credentials are redacted, and no header but ``User-Agent`` and ``Referer``
(the latter without its query and with tokens redacted) is logged.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.ops.metrics import classify
from gateway.store.timing import current_timing
from gateway.web.middleware import ResponseRecord

ACCESS_LOGGER = "gateway.access"
REDACTED = "<redacted>"
_SIGNED = re.compile(r"/s/[^/?#]+")
_SECRET_PARAMS = frozenset({"token", "access_token", "signature", "sig", "key", "auth", "password"})


def redact_path(path: str) -> str:
    """A path or URL with the token of every ``/s/<token>`` segment replaced."""
    return _SIGNED.sub(f"/s/{REDACTED}", path)


def redact_query(query: str) -> str:
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, REDACTED if k.lower() in _SECRET_PARAMS else v) for k, v in pairs])


def configure_access_logger(fmt: str, stream: object = None) -> None:
    """Access lines go, unprefixed, to stdout (journald and container runtimes collect it);
    everything else keeps the root logger's format on stderr."""
    logger = logging.getLogger(ACCESS_LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = False
    if fmt == "off":
        logger.disabled = True
        return
    handler = logging.StreamHandler(stream or sys.stdout)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.disabled = False


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, fmt: str = "text", instance: str = "") -> None:
        self.app = app
        self.json = fmt == "json"
        self.instance = instance
        self.logger = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        response = ResponseRecord()
        try:
            await self.app(scope, receive, response.observing(send))
        finally:
            if self.logger.isEnabledFor(logging.INFO):
                self._log(scope, response.status, response.body_bytes, time.perf_counter() - started)

    def _log(self, scope: Scope, status: int, body_bytes: int, seconds: float) -> None:
        headers = Headers(scope=scope)
        timing = current_timing()
        client = scope.get("client")
        path = redact_path(scope["path"])
        query = redact_query(scope.get("query_string", b"").decode("latin-1"))
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "client": client[0] if client else None,
            "method": scope["method"],
            "path": path + (f"?{query}" if query else ""),
            "status": status,
            "bytes": body_bytes,
            "duration_ms": round(seconds * 1000, 3),
            "kind": classify(scope["path"], timing.kind if timing else None),
            "user_agent": headers.get("user-agent"),
            "referer": redact_path(headers.get("referer", "").split("?", 1)[0]) or None,
        }
        if self.instance:
            record["instance"] = self.instance
        if self.json:
            self.logger.info(json.dumps(record, separators=(",", ":")))
            return
        self.logger.info(
            '%s "%s %s" %d %d %.1fms %s',
            record["client"] or "-",
            record["method"],
            record["path"],
            status,
            body_bytes,
            seconds * 1000,
            record["kind"],
        )
