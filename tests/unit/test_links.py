"""gateway.web.links: the origin links start with (public_url, trusted proxies, bound address)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request

from gateway.config.settings import ServerSettings
from gateway.web.links import (
    ORIGIN_KEY,
    OriginMiddleware,
    TrustedPeers,
    base_url,
    forwarded_origin,
    with_link_origin,
)


def scope(
    headers: dict[str, str] | None = None,
    client: str = "203.0.113.9",
    server: tuple[str, int] = ("192.0.2.1", 8000),
    root_path: str = "",
) -> dict[str, Any]:
    return {
        "type": "http",
        "scheme": "http",
        "client": (client, 50000),
        "server": server,
        "root_path": root_path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }


def origin(settings: ServerSettings, **kwargs: Any) -> str:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    return OriginMiddleware(app, settings).origin(scope(**kwargs))


def test_an_untrusted_host_header_is_ignored():
    assert origin(ServerSettings(), headers={"Host": "evil.example"}) == "http://192.0.2.1:8000"


def test_forwarded_headers_from_an_untrusted_peer_are_ignored():
    headers = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    assert origin(ServerSettings(), headers=headers, client="127.0.0.1") == "http://192.0.2.1:8000"


def test_forwarded_headers_from_a_trusted_proxy_count():
    server = ServerSettings(trusted_proxies=("10.0.0.0/8",))
    headers = {"Host": "internal:8000", "X-Forwarded-Host": "zarr.example.org", "X-Forwarded-Proto": "https"}
    assert origin(server, headers=headers, client="10.1.2.3") == "https://zarr.example.org"


def test_the_host_a_trusted_proxy_sends_counts_without_x_forwarded_host():
    server = ServerSettings(trusted_proxies=("127.0.0.1",))
    headers = {"Host": "zarr.example.org:8443", "X-Forwarded-Proto": "https"}
    assert origin(server, headers=headers, client="127.0.0.1") == "https://zarr.example.org:8443"


def test_rfc7239_forwarded_from_a_trusted_proxy():
    server = ServerSettings(trusted_proxies=("*",))
    headers = {
        "Host": "internal",
        "Forwarded": 'for=1.2.3.4;host="zarr.example.org";proto=https, for=5.6.7.8',
    }
    assert origin(server, headers=headers) == "https://zarr.example.org"


@pytest.mark.parametrize(
    "host", ["evil.example/path", "a b", "user@evil.example", '"><script>', "", "x" * 300]
)
def test_a_malformed_forwarded_host_falls_back_to_the_bound_address(host):
    server = ServerSettings(trusted_proxies=("*",))
    assert origin(server, headers={"Host": host}) == "http://192.0.2.1:8000"


def test_a_malformed_forwarded_proto_falls_back():
    assert forwarded_origin(scope({"Host": "a.example", "X-Forwarded-Proto": "javascript"})) is None


def test_public_url_wins_over_every_header():
    server = ServerSettings(public_url="https://zarr.example.org/zarr", trusted_proxies=("*",))
    headers = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    assert origin(server, headers=headers) == "https://zarr.example.org"


def test_ipv6_bound_address_is_bracketed():
    assert origin(ServerSettings(), server=("::1", 8000)) == "http://[::1]:8000"


def test_trusted_peers():
    peers = TrustedPeers(["10.0.0.0/8", "::1"])
    assert "10.9.9.9" in peers and "::1" in peers
    assert "11.0.0.1" not in peers and None not in peers and "/run/gw.sock" not in peers


def request(root_path: str, origin_value: str) -> Request:
    return Request({**scope(root_path=root_path), ORIGIN_KEY: origin_value})


def test_base_url_keeps_the_mount_prefix_and_the_token():
    server = ServerSettings(root_path="/zarr")
    assert base_url(request("/zarr/s/TOKEN", "http://h:1"), server) == "http://h:1/zarr/s/TOKEN/"


@pytest.mark.parametrize("root_path", ["", "/zarr"])
def test_base_url_from_public_url_carries_its_path(root_path):
    server = ServerSettings(public_url="https://zarr.example.org/zarr/", root_path=root_path)
    got = base_url(request(f"{root_path}/s/TOKEN", "https://zarr.example.org"), server)
    assert got == "https://zarr.example.org/zarr/s/TOKEN/"


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        (ServerSettings(), "http://192.0.2.1:8000/"),
        (ServerSettings(public_url="https://zarr.example.org/zarr"), "https://zarr.example.org/zarr/"),
    ],
)
def test_without_trusted_proxies_no_layer_runs_and_headers_still_do_not_count(server, expected):
    """No proxy trusted: the app is not wrapped, and base_url decides from the settings and
    the socket, never from the request's Host."""
    app = object()
    assert with_link_origin(app, server) is app  # type: ignore[arg-type]
    untouched = Request(scope(headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"}))
    assert base_url(untouched, server) == expected


def test_trusted_proxies_get_the_origin_layer():
    app = object()
    assert isinstance(with_link_origin(app, ServerSettings(trusted_proxies=["10.0.0.1"])), OriginMiddleware)  # type: ignore[arg-type]
