"""gateway.ops.observe.ObserveMiddleware: one layer times, counts, logs and answers escaped
exceptions (a generic 500 with a request id, the exception logged once under that id)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from gateway.ops.accesslog import ACCESS_LOGGER, AccessLog
from gateway.ops.metrics import Metrics
from gateway.ops.observe import ObserveMiddleware, request_id
from gateway.store.logs import LogLimiter
from gateway.store.timing import current_timing

SIGNED_CHUNK = "/s/SECRET/lab/a.tif/0/c/0/0"
SHARED_HEADERS = [(b"content-type", b"application/octet-stream"), (b"content-length", b"3")]


async def _chunk(scope, receive, send):
    current_timing().kind = "chunk"
    await send({"type": "http.response.start", "status": 200, "headers": SHARED_HEADERS})
    await send({"type": "http.response.body", "body": b"abc"})


async def _exploding_before_start(scope, receive, send):
    raise RuntimeError("boom in a middleware /secret/internal/path")


async def _exploding_after_start(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise RuntimeError("boom mid-response")


def call(app, path=SIGNED_CHUNK, headers=()):
    """Run ``app`` for one GET; the messages it sent."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": list(headers),
        "query_string": b"",
        "client": ("10.0.0.7", 5000),
    }
    asyncio.run(app(scope, receive, send))
    return sent


def response_headers(sent) -> dict[bytes, bytes]:
    return dict(sent[0]["headers"])


def body(sent) -> dict:
    return json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def observe(app, **options) -> ObserveMiddleware:
    return ObserveMiddleware(app, options.pop("limiter", LogLimiter()), **options)


@pytest.fixture
def access_lines(caplog):
    """The access log's lines (the logger may have been configured off by another test)."""
    access = logging.getLogger(ACCESS_LOGGER)
    saved = access.disabled, access.propagate, access.level
    access.disabled, access.propagate = False, True
    access.setLevel(logging.INFO)
    with caplog.at_level(logging.INFO):
        yield lambda: [r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER]
    access.disabled, access.propagate, access.level = saved


def error_records(caplog):
    return [r for r in caplog.records if r.name == "gateway.ops.observe"]


def test_server_timing_and_instance_are_added_to_a_copy_of_the_headers():
    sent = call(observe(_chunk, instance="node1-8001"))
    headers = response_headers(sent)
    assert headers[b"x-gateway-instance"] == b"node1-8001"
    assert b'chunk-cache;desc="hit"' in headers[b"server-timing"]
    assert headers[b"content-length"] == b"3"
    assert len(SHARED_HEADERS) == 2  # the app's list, maybe shared between requests, is untouched


def test_no_headers_are_added_when_both_are_off():
    sent = call(observe(_chunk, server_timing=False))
    assert sent[0]["headers"] is SHARED_HEADERS


def test_requests_are_counted_by_kind_method_and_status():
    metrics = Metrics()
    app = observe(_chunk, metrics=metrics)
    for _ in range(3):
        call(app)
    call(observe(_exploding_before_start, metrics=metrics))
    sample = metrics.registry.get_sample_value
    assert sample("gateway_requests_total", {"kind": "chunk", "method": "GET", "status": "200"}) == 3
    assert sample("gateway_requests_total", {"kind": "other", "method": "GET", "status": "500"}) == 1
    assert sample("gateway_response_bytes_total", {"kind": "chunk"}) == 9
    assert sample("gateway_request_duration_seconds_count", {"kind": "chunk"}) == 3
    assert sample("gateway_requests_in_flight", {}) == 0


def test_in_flight_counts_the_request_being_handled():
    metrics = Metrics()
    seen = []

    async def app(scope, receive, send):
        seen.append(metrics.registry.get_sample_value("gateway_requests_in_flight", {}))
        await _chunk(scope, receive, send)

    call(observe(app, metrics=metrics))
    assert seen == [1]


def test_exception_before_the_response_is_a_generic_json_500_with_a_request_id():
    sent = call(observe(_exploding_before_start))
    assert sent[0]["status"] == 500
    document = body(sent)
    assert document == {
        "error": "internal_error",
        "detail": "internal error",
        "request_id": response_headers(sent)[b"x-request-id"].decode(),
    }
    assert "boom" not in json.dumps(document) and "secret" not in json.dumps(document)
    assert response_headers(sent)[b"cache-control"] == b"no-store"


def test_exception_after_the_response_started_sends_nothing_more(caplog):
    with caplog.at_level(logging.ERROR):
        sent = call(observe(_exploding_after_start))
    assert [m["type"] for m in sent] == ["http.response.start"]
    assert len(error_records(caplog)) == 1


def test_exception_is_logged_once_with_its_traceback_its_id_and_no_token(caplog):
    with caplog.at_level(logging.ERROR):
        sent = call(observe(_exploding_before_start))
    (record,) = error_records(caplog)
    given = body(sent)["request_id"]
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert record.getMessage().startswith(f"request {given}: GET /s/<redacted>/lab/a.tif/0/c/0/0 failed")
    assert "boom in a middleware" in record.getMessage()
    assert "SECRET" not in record.getMessage()


def test_repeated_exception_is_logged_once_per_interval(caplog):
    app = observe(_exploding_before_start, limiter=LogLimiter(interval_seconds=3600))
    with caplog.at_level(logging.ERROR):
        statuses = [call(app, f"/lab/a.tif/0/c/0/{i}")[0]["status"] for i in range(20)]
    assert statuses == [500] * 20
    assert len(error_records(caplog)) == 1


def test_access_line_of_a_failed_request_carries_its_id(access_lines):
    sent = call(observe(_exploding_before_start, access_log=AccessLog("text")))
    given = body(sent)["request_id"]
    (line,) = access_lines()
    assert line.startswith('10.0.0.7 "GET /s/<redacted>/lab/a.tif/0/c/0/0" 500 ')
    assert line.endswith(f" request_id={given}")


def test_json_access_line_of_a_failed_request_carries_its_id(access_lines):
    sent = call(observe(_exploding_before_start, access_log=AccessLog("json", "node1")))
    (line,) = access_lines()
    record = json.loads(line)
    assert record["request_id"] == body(sent)["request_id"]
    assert (record["status"], record["instance"], record["kind"]) == (500, "node1", "other")


def test_access_line_of_a_served_request_has_no_id(access_lines):
    call(observe(_chunk, access_log=AccessLog("text")))
    (line,) = access_lines()
    assert line.startswith('10.0.0.7 "GET /s/<redacted>/lab/a.tif/0/c/0/0" 200 3 ')
    assert line.endswith("ms chunk")


def test_a_fault_while_recording_is_logged_not_raised(caplog, monkeypatch):
    metrics = Metrics()

    def broken(*args):
        raise ValueError("metrics bug")

    monkeypatch.setattr(metrics, "observe_request", broken)
    with caplog.at_level(logging.ERROR):
        sent = call(observe(_chunk, metrics=metrics))
    assert sent[0]["status"] == 200
    (record,) = error_records(caplog)
    assert record.exc_info is not None and record.exc_info[0] is ValueError


@pytest.mark.parametrize("given", ["abc-123", "0f8fad5b-d9cb-469f-a165-70867728950e", "1-678.a_b", "x" * 64])
def test_a_safe_request_id_from_the_request_is_kept(given):
    assert request_id({"headers": [(b"x-request-id", given.encode())]}) == given


@pytest.mark.parametrize("given", ["", "x" * 65, "a b", "a\r\nb", "<script>", "Root=1-678", "é"])
def test_an_unsafe_request_id_is_replaced(given):
    made = request_id({"headers": [(b"x-request-id", given.encode())]})
    assert made != given and len(made) == 16 and int(made, 16) >= 0


def test_request_ids_are_made_unique():
    assert len({request_id({"headers": []}) for _ in range(100)}) == 100


def test_the_request_id_of_the_request_names_its_500():
    sent = call(observe(_exploding_before_start), headers=[(b"x-request-id", b"from-nginx-42")])
    assert body(sent)["request_id"] == "from-nginx-42"
    assert response_headers(sent)[b"x-request-id"] == b"from-nginx-42"


def test_access_lines_are_written_in_batches_within_the_flush_interval(monkeypatch):
    """Like nginx's access_log buffer=/flush=: under load many lines in one write (even to
    an unbuffered stdout), none later than FLUSH_SECONDS; without an event loop, at once;
    at once too when BUFFER_BYTES are pending."""
    import asyncio
    import io

    from gateway.ops import accesslog

    class Stream(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            Stream.writes += 1
            return super().write(text)

    stream = Stream()
    handler = accesslog.AccessLineHandler(stream)
    handler.write_line("direct")
    assert Stream.writes == 1

    monkeypatch.setattr(accesslog, "FLUSH_SECONDS", 0.05)

    async def burst() -> int:
        for n in range(100):
            handler.write_line(f"line {n}")
        during = Stream.writes
        await asyncio.sleep(0.2)
        return during

    assert asyncio.run(burst()) == 1  # nothing written while the burst was logged
    assert Stream.writes == 2  # the whole burst in one write, once the interval was over
    assert stream.getvalue().splitlines() == ["direct", *[f"line {n}" for n in range(100)]]

    monkeypatch.setattr(accesslog, "BUFFER_BYTES", 100)

    async def big() -> int:
        handler.write_line("x" * 120)
        return Stream.writes

    assert asyncio.run(big()) == 3  # over the buffer: written at once
    handler.flush()
    assert stream.getvalue().endswith("x" * 120 + "\n")
