"""gateway.web.errors.ErrorGuard: no exception leaves the app; each is logged once per interval."""

from __future__ import annotations

import asyncio
import json
import logging

from gateway.ops.logs import LogLimiter
from gateway.web.errors import ErrorGuard


async def _exploding_before_start(scope, receive, send):
    raise RuntimeError("boom in a middleware")


async def _exploding_after_start(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise RuntimeError("boom mid-response")


def call(app, path="/s/SECRET/lab/a.tif/0/c/0/0"):
    """Run ``app`` for one GET; the messages it sent."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    asyncio.run(app(scope, receive, send))
    return sent


def test_exception_before_the_response_is_a_json_500():
    sent = call(ErrorGuard(_exploding_before_start, LogLimiter()))
    assert sent[0]["status"] == 500
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body == {"error": "internal_error", "detail": "RuntimeError: boom in a middleware"}


def test_exception_after_the_response_started_sends_nothing_more():
    sent = call(ErrorGuard(_exploding_after_start, LogLimiter()))
    assert [m["type"] for m in sent] == ["http.response.start"]


def test_exception_is_logged_with_its_traceback_and_no_token(caplog):
    with caplog.at_level(logging.ERROR, logger="gateway.web.errors"):
        call(ErrorGuard(_exploding_before_start, LogLimiter()))
    (record,) = caplog.records
    assert record.exc_info is not None and "boom" in record.getMessage()
    assert "SECRET" not in record.getMessage()


def test_repeated_exception_is_logged_once_per_interval(caplog):
    guard = ErrorGuard(_exploding_before_start, LogLimiter(interval_seconds=3600))
    with caplog.at_level(logging.ERROR, logger="gateway.web.errors"):
        statuses = [call(guard, f"/lab/a.tif/0/c/0/{i}")[0]["status"] for i in range(20)]
    assert statuses == [500] * 20
    assert len(caplog.records) == 1
