"""Where the links the gateway generates (listing, dataset pages, viewer links) point.

Never at the client's own ``Host`` header: a page is a document people copy URLs from and
caches may keep, so a request with ``Host: evil.example`` must not make the gateway hand out
links to ``evil.example``. In order:

1. ``server.public_url`` (``https://zarr.example.org/zarr``) when configured: every link
   starts with it, whatever the request says;
2. from a peer in ``server.trusted_proxies``: the scheme and host the proxy forwards
   (``X-Forwarded-Proto``/``X-Forwarded-Host``, else ``Forwarded``, else the ``Host`` the
   proxy sent), when they are well formed;
3. otherwise the address the client actually connected to (the socket's local address),
   which no request header can change.

With trusted proxies, ``OriginMiddleware`` decides once per request, *before* the forwarded
headers rewrite the scope's client (uvicorn's ``ProxyHeadersMiddleware``, applied here for
trusted proxies only, so that the access log sees the real client): the decision needs the
real peer. Without them, nothing rewrites the scope and no request header counts, so
``base_url`` decides from the settings and the socket alone, when a page needs it: no layer
runs on every request (``with_link_origin``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any, cast

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway.config.settings import ServerSettings

#: The scope key under which OriginMiddleware leaves ``scheme://host[:port]`` ("" if unknown).
ORIGIN_KEY = "gateway.link_origin"
#: A host as a proxy may forward it: a DNS name or IPv4 address, or an IPv6 one in brackets,
#: with an optional port. Anything else (spaces, quotes, slashes, '@') is ignored.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?")
_SCHEMES = ("http", "https")


class TrustedPeers:
    """IP addresses and networks whose forwarded headers count (``*``: any peer)."""

    def __init__(self, entries: Iterable[str]) -> None:
        entries = list(entries)
        self.any = "*" in entries
        self.networks = [ipaddress.ip_network(e, strict=False) for e in entries if e != "*"]

    def __contains__(self, peer: str | None) -> bool:
        if self.any:
            return True
        if not self.networks:  # none trusted: no address to parse (every request asks)
            return False
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:  # no peer, or a unix socket path
            return False
        return any(address in network for network in self.networks)


def _first(value: str | None) -> str:
    return (value or "").split(",", 1)[0].strip()


def _forwarded(value: str | None) -> dict[str, str]:
    """The first element of an RFC 7239 ``Forwarded`` header: ``{"host": ..., "proto": ...}``."""
    pairs: dict[str, str] = {}
    for pair in _first(value).split(";"):
        name, sep, item = pair.partition("=")
        if sep:
            pairs[name.strip().lower()] = item.strip().strip('"')
    return pairs


def _bound_origin(scope: Scope) -> str:
    """``scheme://address:port`` of the socket the client reached ("" when unknown)."""
    server = scope.get("server")
    if not server or server[1] is None:
        return ""
    host, port = str(server[0]), int(server[1])
    shown = f"[{host}]" if ":" in host else host
    return f"{scope.get('scheme', 'http')}://{shown}:{port}"


def forwarded_origin(scope: Scope) -> str | None:
    """``scheme://host`` from a proxy's headers, or None when they are absent or malformed."""
    headers = Headers(scope=scope)
    standard = _forwarded(headers.get("forwarded"))
    proto = _first(headers.get("x-forwarded-proto")) or standard.get("proto") or scope.get("scheme", "http")
    host = _first(headers.get("x-forwarded-host")) or standard.get("host") or headers.get("host", "")
    if proto.lower() not in _SCHEMES or not _HOST.fullmatch(host):
        return None
    return f"{proto.lower()}://{host}"


class OriginMiddleware:
    """Pure ASGI: records the link origin of each request in ``scope[ORIGIN_KEY]``."""

    def __init__(self, app: ASGIApp, server: ServerSettings) -> None:
        self.public = _public_origin(server.public_url)
        self.trusted = TrustedPeers(server.trusted_proxies)
        proxies = list(server.trusted_proxies)
        # the real client and scheme for what follows (access log), from trusted proxies only
        self.app: ASGIApp = cast(ASGIApp, ProxyHeadersMiddleware(cast(Any, app), proxies)) if proxies else app

    def origin(self, scope: Scope) -> str:
        if self.public is not None:
            return self.public
        client = scope.get("client")
        if client and client[0] in self.trusted:
            forwarded = forwarded_origin(scope)
            if forwarded is not None:
                return forwarded
        return _bound_origin(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = dict(scope)
            scope[ORIGIN_KEY] = self.origin(scope)
        await self.app(scope, receive, send)


def with_link_origin(app: ASGIApp, server: ServerSettings) -> ASGIApp:
    """``app`` behind ``OriginMiddleware`` when proxies are trusted; else ``app`` itself."""
    return OriginMiddleware(app, server) if server.trusted_proxies else app


def _public_origin(public_url: str) -> str | None:
    if not public_url:
        return None
    scheme, _, rest = public_url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def base_url(request: Request, server: ServerSettings) -> str:
    """The URL (ending in ``/``) that links to this request's tree start with: the origin,
    then the mount prefix and any ``/s/<token>`` part of ``root_path``.

    With ``public_url``, its path is the mount prefix (it equals ``server.root_path`` when
    both are set), so links are right even when ``root_path`` was left out."""
    scope = request.scope
    origin = scope.get(ORIGIN_KEY)
    if origin is None:  # no proxy is trusted (or in-process use): no header counts
        origin = _public_origin(server.public_url) or _bound_origin(scope)
    root_path: str = scope.get("root_path", "")
    if server.public_url:
        mount = server.public_url[len(_public_origin(server.public_url) or "") :].rstrip("/")
        below = root_path[len(server.root_path) :] if root_path.startswith(server.root_path) else root_path
        root_path = mount + below
    return f"{origin}{root_path}/"
