"""An unexpected exception (a bug, not a bad file) is a JSON 500 with CORS, and serving goes on."""

from __future__ import annotations

import pytest

from gateway.store import dataset as gateway_store
from tests.http.support import assert_json_error, running_gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("unexpected")) as gw:
        yield gw


@pytest.fixture
def exploding_chunks(monkeypatch):
    def explode(node, coords, omit_empty, timing=None):
        raise RuntimeError("boom in render_chunk")

    monkeypatch.setattr(gateway_store, "render_chunk", explode)


def test_unexpected_exception_is_json_500(gateway, exploding_chunks):
    document = assert_json_error(gateway.raw("GET", "/data/healthy.tif/0/c/0/1"), 500)
    assert document["error"] == "internal_error"


def test_unexpected_exception_detail_names_the_exception(gateway, exploding_chunks):
    document = assert_json_error(gateway.raw("GET", "/data/healthy.tif/0/c/0/1"), 500)
    assert "RuntimeError" in document["detail"]


def test_unexpected_exception_response_has_cors(gateway, exploding_chunks):
    response = gateway.raw("GET", "/data/healthy.tif/0/c/0/1", {"Origin": "https://viewer.example"})
    assert response.headers["access-control-allow-origin"] == "*"


def test_failed_chunk_is_computed_again_once_the_fault_is_gone(gateway, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(gateway_store, "render_chunk", lambda *args: 1 / 0)
        assert gateway.raw("GET", "/data/healthy.tif/0/c/1/0").status == 500
    assert gateway.raw("GET", "/data/healthy.tif/0/c/1/0").status == 200
