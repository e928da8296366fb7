"""Access logs (text or JSON lines) with credentials redacted.

uvicorn's own access log is turned off (it would log signed URLs' tokens verbatim); the
gateway logs one line per request to the ``gateway.access`` logger instead (``AccessLog``,
written by the observing middleware, ``gateway.ops.observe``).

A line is written on every request, cached chunks included, so it is made cheaply: the
raw headers are scanned for the two logged, the date is formatted once per second, and
when the logger has the handler ``configure_access_logger`` installs (the CLI's case), the
line goes straight to that handler's stream, without a ``LogRecord`` (the logging
machinery costs more than a cached chunk's other work). Any other setup (a handler of
your own, pytest's ``caplog``) gets the line through ``logging`` as usual.
Tokens never reach it: ``/s/<token>/`` is logged as ``/s/<redacted>/``, query parameters
that look like credentials are redacted, and no header but ``User-Agent`` and ``Referer``
(the latter without its query and with tokens redacted) is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import Scope

ACCESS_LOGGER = "gateway.access"
#: Access lines are written to their stream at most this often, or when this many bytes
#: are pending (see ``AccessLineHandler``).
FLUSH_SECONDS = 1.0
BUFFER_BYTES = 64 * 1024
REDACTED = "<redacted>"
_SIGNED = re.compile(r"/s/[^/?#]+")
_SECRET_PARAMS = frozenset({"token", "access_token", "signature", "sig", "key", "auth", "password"})


def redact_path(path: str) -> str:
    """A path or URL with the token of every ``/s/<token>`` segment replaced."""
    return _SIGNED.sub(f"/s/{REDACTED}", path) if "/s/" in path else path


def redact_query(query: str) -> str:
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, REDACTED if k.lower() in _SECRET_PARAMS else v) for k, v in pairs])


class AccessLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The access log's handler: lines gathered in memory and written to the stream at
    most once per ``FLUSH_SECONDS`` (or when ``BUFFER_BYTES`` are pending), in one write,
    as nginx's ``access_log ... buffer= flush=``. The stream's own buffering cannot do it:
    stdout is unbuffered under ``PYTHONUNBUFFERED=1`` (containers set it), a write per
    line. ``AccessLog`` writes through ``write_line`` without making a ``LogRecord``. A
    graceful stop flushes what is pending (``logging.shutdown``); a crash loses at most
    ``FLUSH_SECONDS`` of lines."""

    terminator = "\n"

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.setFormatter(logging.Formatter("%(message)s"))
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._flush_due = False  # a flush is scheduled

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write_line(self.format(record))
        except Exception:
            self.handleError(record)

    def write_line(self, line: str) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._pending.append(line)
            self._pending_bytes += len(line) + 1
            if self._pending_bytes < BUFFER_BYTES and self._flush_due:
                return
            full = self._pending_bytes >= BUFFER_BYTES
            if not full:
                self._flush_due = True
        if full:
            self.flush()
            return
        try:
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._scheduled_flush)
        except RuntimeError:  # no event loop (a direct call): flush now
            self._scheduled_flush()

    def _scheduled_flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._flush_due = False
        self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines, self._pending, self._pending_bytes = self._pending, [], 0
            if not lines:
                return
            try:
                self.stream.write(self.terminator.join(lines) + self.terminator)
                self.stream.flush()
            except Exception:  # a full disk or a closed pipe must not fail a request
                self.handleError(logging.makeLogRecord({"msg": lines[-1]}))


def flush_access_log() -> None:
    """Write out pending access lines (the app's lifespan does at shutdown: uvicorn's
    logging setup takes handlers made before it out of ``logging.shutdown``'s list)."""
    for handler in logging.getLogger(ACCESS_LOGGER).handlers:
        handler.flush()


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
    logger.addHandler(AccessLineHandler(stream or sys.stdout))
    logger.setLevel(logging.INFO)
    logger.disabled = False


class _Clock:
    """ISO 8601 UTC timestamps with milliseconds; the part up to the second is formatted
    once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{int((now - second) * 1000):03d}+00:00"


def _logged_headers(scope: Scope) -> tuple[str | None, str | None]:
    """(User-Agent, Referer) of the request: the only headers logged."""
    agent = referer = None
    for name, value in scope.get("headers", ()):
        if name == b"user-agent":
            agent = value.decode("latin-1")
        elif name == b"referer":
            referer = value.decode("latin-1")
    return agent, referer


def _string(value: str | None) -> str:
    """A JSON string (or null), ASCII-escaped."""
    return "null" if value is None else _encode_string(value)


_encode_string: Any = json.encoder.encode_basestring_ascii


class AccessLog:
    """Writes one line per request to the ``gateway.access`` logger (``fmt``: text or json).

    Called by ``gateway.ops.observe.ObserveMiddleware`` once the response is over; the
    text format reads nothing it does not print (no header parsing, no wall-clock date)."""

    def __init__(self, fmt: str = "text", instance: str = "") -> None:
        self.json = fmt == "json"
        self.instance = instance
        self.logger = logging.getLogger(ACCESS_LOGGER)
        self._clock = _Clock()

    def _emit(self, line: str) -> None:
        handlers = self.logger.handlers
        if len(handlers) == 1 and type(handlers[0]) is AccessLineHandler and not self.logger.propagate:
            handlers[0].write_line(line)
        else:
            self.logger.info("%s", line)

    def write(
        self,
        scope: Scope,
        status: int,
        body_bytes: int,
        seconds: float,
        kind: str,
        request_id: str | None = None,
    ) -> None:
        """Log one request; ``request_id`` when one was assigned (an unexpected error)."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        client = scope.get("client")
        address = client[0] if client else None
        path = redact_path(scope["path"])
        query = scope.get("query_string", b"")
        if query:
            path = f"{path}?{redact_query(query.decode('latin-1'))}"
        if not self.json:
            suffix = f" request_id={request_id}" if request_id else ""
            line = (
                f'{address or "-"} "{scope["method"]} {path}" {status} {body_bytes} '
                f"{seconds * 1000:.1f}ms {kind}{suffix}"
            )
            self._emit(line)
            return
        agent, referer = _logged_headers(scope)
        if referer:
            referer = redact_path(referer.split("?", 1)[0]) or None
        # a JSON object written field by field (json.dumps of a dict costs more than the
        # rest of a cached chunk's line); strings are escaped by json's own C encoder
        line = (
            f'{{"time":"{self._clock.now()}","client":{_string(address)},'
            f'"method":{_string(scope["method"])},"path":{_string(path)},"status":{status},'
            f'"bytes":{body_bytes},"duration_ms":{seconds * 1000:.3f},"kind":{_string(kind)},'
            f'"user_agent":{_string(agent)},"referer":{_string(referer)}'
        )
        if self.instance:
            line += f',"instance":{_string(self.instance)}'
        if request_id:
            line += f',"request_id":{_string(request_id)}'
        self._emit(line + "}")
