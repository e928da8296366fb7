"""An unexpected exception (a bug, not a bad file) is a generic JSON 500 with CORS and a
request id, logged once under that id, and serving goes on."""

from __future__ import annotations

import json
import logging

import pytest

from gateway.ops.accesslog import ACCESS_LOGGER
from gateway.store import dataset as gateway_store
from tests.http.support import running_gateway

CHUNK = "/data/healthy.tif/0/c/0/1"
MESSAGE = "boom in render_chunk at /internal/secret/path"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("unexpected")) as gw:
        yield gw


@pytest.fixture
def exploding_chunks(monkeypatch):
    def explode(node, coords, omit_empty, timing=None):
        raise RuntimeError(MESSAGE)

    monkeypatch.setattr(gateway_store, "render_chunk", explode)


@pytest.fixture
def server_log(caplog):
    """The server's records: its error log and its access log (which another test may
    have configured off, or away from the root logger)."""
    access = logging.getLogger(ACCESS_LOGGER)
    saved = access.disabled, access.propagate, access.level
    access.disabled, access.propagate = False, True
    access.setLevel(logging.INFO)
    with caplog.at_level(logging.INFO):
        yield caplog
    access.disabled, access.propagate, access.level = saved


def internal_error(response) -> dict:
    """The generic 500: exactly these fields, the header's request id, never cached."""
    assert response.status == 500, response.body[:300]
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    document = json.loads(response.body)
    assert document == {
        "error": "internal_error",
        "detail": "internal error",
        "request_id": response.headers["x-request-id"],
    }
    return document


def test_unexpected_exception_is_a_generic_json_500(gateway, exploding_chunks):
    internal_error(gateway.raw("GET", CHUNK))


def test_unexpected_exception_text_is_not_in_the_response(gateway, exploding_chunks):
    response = gateway.raw("GET", CHUNK)
    for leak in ("boom", "RuntimeError", "secret", "render_chunk"):
        assert leak not in response.body.decode()


def test_unexpected_exception_response_has_cors(gateway, exploding_chunks):
    response = gateway.raw("GET", CHUNK, {"Origin": "https://viewer.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "X-Request-ID" in response.headers["access-control-expose-headers"]


def test_each_failed_request_gets_its_own_id(gateway, exploding_chunks):
    ids = {internal_error(gateway.raw("GET", CHUNK))["request_id"] for _ in range(3)}
    assert len(ids) == 3


def test_a_safe_request_id_of_the_request_is_kept(gateway, exploding_chunks):
    response = gateway.raw("GET", CHUNK, {"X-Request-ID": "nginx-5f2b9c"})
    assert internal_error(response)["request_id"] == "nginx-5f2b9c"


def test_an_unsafe_request_id_of_the_request_is_replaced(gateway, exploding_chunks):
    response = gateway.raw("GET", CHUNK, {"X-Request-ID": "<script>alert(1)</script>"})
    assert "<" not in internal_error(response)["request_id"]


def test_exception_is_logged_once_under_the_id_the_client_got(tmp_path, monkeypatch, server_log):
    """A fresh server: its log limiter has seen no fault yet."""
    monkeypatch.setattr(gateway_store, "render_chunk", lambda *args: 1 / 0)
    with running_gateway(tmp_path) as fresh:
        server_log.clear()
        given = internal_error(fresh.raw("GET", CHUNK))["request_id"]
    errors = [r for r in server_log.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    (error,) = errors
    assert error.exc_info is not None and error.exc_info[0] is ZeroDivisionError
    assert error.getMessage().startswith(f"request {given}: GET {CHUNK} failed: ZeroDivisionError")
    access = [r.getMessage() for r in server_log.records if r.name == ACCESS_LOGGER]
    (line,) = [line for line in access if given in line]
    assert line.startswith(f'127.0.0.1 "GET {CHUNK}" 500 ')
    assert line.endswith(f" request_id={given}")


def test_failed_chunk_is_computed_again_once_the_fault_is_gone(gateway, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(gateway_store, "render_chunk", lambda *args: 1 / 0)
        assert gateway.raw("GET", "/data/healthy.tif/0/c/1/0").status == 500
    assert gateway.raw("GET", "/data/healthy.tif/0/c/1/0").status == 200
