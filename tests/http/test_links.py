"""Links on pages against a real server (issue 9, item 7): never the client's Host header;
server.public_url when set; forwarded headers only from server.trusted_proxies; and /ready
names no protected root."""

from __future__ import annotations

import http.client
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.web.auth import mint_token, signed_path
from tests.http.support import Gateway, RawResponse, running_gateway, write_healthy

HOSTILE = "evil-host.example"
KEY = "k" * 32


def get(gateway: Gateway, target: str, headers: Mapping[str, str]) -> RawResponse:
    """GET with exactly these headers: ``Host`` too, when given (http.client adds its own
    otherwise, and a second one is refused)."""
    connection = http.client.HTTPConnection(urlsplit(gateway.base).netloc, timeout=30)
    try:
        connection.putrequest("GET", target, skip_host="Host" in headers, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return RawResponse(response.status, httpx.Headers(response.getheaders()), response.read())
    finally:
        connection.close()


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("links")) as gw:
        yield gw


@pytest.fixture(scope="module")
def public(tmp_path_factory):
    server = {"public_url": "https://zarr.example.org/zarr", "trusted_proxies": ["127.0.0.1"]}
    with running_gateway(tmp_path_factory.mktemp("public"), server=server) as gw:
        yield gw


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    server = {"trusted_proxies": ["127.0.0.1"], "root_path": "/zarr"}
    with running_gateway(tmp_path_factory.mktemp("proxied"), server=server) as gw:
        yield gw


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/data/",
        "/data/healthy.tif/",
        "/?format=json",
        "/data/?format=json",
        "/data/healthy.tif/?format=json",
    ],
)
@pytest.mark.parametrize(
    "headers",
    [
        {"Host": HOSTILE},
        {"Host": HOSTILE, "X-Forwarded-Host": HOSTILE, "X-Forwarded-Proto": "https"},
        {"Forwarded": f"host={HOSTILE};proto=https"},
    ],
)
def test_pages_show_no_trace_of_a_hostile_host(plain, path, headers):
    response = get(plain, path, headers)
    assert response.status == 200
    assert HOSTILE.encode() not in response.body
    assert plain.base.encode() in response.body  # the address the client connected to


def test_public_url_builds_the_links(public):
    page = get(public, "/data/healthy.tif/?format=json", {"Host": HOSTILE}).json()
    assert page["url"] == "https://zarr.example.org/zarr/data/healthy.tif/"
    roots = get(public, "/?format=json", {"X-Forwarded-Host": HOSTILE}).json()
    assert [f["url"] for f in roots["folders"]] == ["https://zarr.example.org/zarr/data/"]
    listing = get(public, "/data/?format=json", {"X-Forwarded-Host": HOSTILE}).json()
    assert [d["url"] for d in listing["datasets"]] == ["https://zarr.example.org/zarr/data/healthy.tif"]


def test_a_trusted_proxy_forwards_scheme_and_host(proxied):
    headers = {"Host": "127.0.0.1", "X-Forwarded-Host": "zarr.example.org", "X-Forwarded-Proto": "https"}
    page = get(proxied, "/data/healthy.tif/?format=json", headers).json()
    assert page["url"] == "https://zarr.example.org/zarr/data/healthy.tif/"


def test_a_malformed_forwarded_host_from_a_trusted_proxy_is_not_used(proxied):
    page = get(proxied, "/data/healthy.tif/?format=json", {"X-Forwarded-Host": '"><b>x'}).json()
    assert page["url"] == f"{proxied.base}/zarr/data/healthy.tif/"


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(tmp_path):
    server = {"trusted_proxies": ["10.0.0.0/8"]}  # the test client is 127.0.0.1
    with running_gateway(tmp_path, server=server) as gw:
        headers = {"X-Forwarded-Host": HOSTILE, "X-Forwarded-Proto": "https"}
        page = get(gw, "/data/healthy.tif/?format=json", headers).json()
    assert page["url"] == f"{gw.base}/data/healthy.tif/"


# -- /ready under [auth] protect ---------------------------------------------------------------


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    folders = {name: tmp_path_factory.mktemp(name) for name in ("secretlab", "openlab")}
    for folder in folders.values():
        write_healthy(folder / "healthy.tif")
    return {name: str(folder) for name, folder in folders.items()}


def ready_text(root, roots, protect):
    auth = {"protect": protect, "signing_key": KEY}
    with running_gateway(root, roots=roots, auth=auth) as gw:
        response = gw.get("/ready")
        assert response.status_code == 200
        # a token still opens the protected root (the listing too)
        token = mint_token(KEY.encode(), "", int(time.time()) + 60)
        assert gw.get(signed_path(token, "secretlab/healthy.tif/zarr.json")).status_code == 200
        return response.text, response.json()


def test_ready_names_no_root_when_all_are_protected(tmp_path, roots):
    text, document = ready_text(tmp_path, roots, ["*"])
    assert "secretlab" not in text and "openlab" not in text
    assert document == {"status": "ready", "roots": {}, "protected_roots": {"count": 2, "ok": 2}}


def test_ready_names_only_public_roots(tmp_path, roots):
    text, document = ready_text(tmp_path, roots, ["secretlab"])
    assert "secretlab" not in text
    assert document["roots"] == {"openlab": "ok"}
    assert document["protected_roots"] == {"count": 1, "ok": 1}
