"""Access control for sites without an authenticating proxy: signed, expiring path grants.

A token grants one path prefix (``lab``: a whole root; ``lab/2024``: a folder;
``lab/2024/cells.ome.tif``: one dataset; ``""``: everything) until an expiry, signed with HMAC-SHA256
under the site's key: ``v1.<expiry>.<base64url prefix>.<base64url MAC>``. It travels

- in the URL path, ``/s/<token>/<root>/<file>/...``: browser viewers (Neuroglancer, Viv)
  add no headers, but they keep a URL's path, so a dataset URL carries its grant and every
  URL the gateway generates under it (pages, viewer links) keeps the prefix;
- or as ``Authorization: Bearer <token>``, for scripts.

Nothing is stored server-side, so any instance verifies any token. ``AccessControl``
(pure ASGI, inside CORS so 401/403 carry CORS headers) removes the token from what the app
sees: the ``/s/<token>`` part becomes part of ``root_path``, so routes, logs and errors never
see it; the access log redacts it too. Responses to a credential are ``private`` with a
``max-age`` no longer than the grant's remaining life, so no shared cache (nginx) keeps them.

The list of roots (``/``) needs no credential: it shows every caller the public roots, and
the protected ones only to a request whose grant covers them (``Access``, left in the
scope for the pages). A token never narrows what is public: it adds what it grants.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Collection
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.web.errors import error_response
from gateway.web.middleware import route_path

TOKEN_VERSION = "v1"
SIGNED_PREFIX = "/s/"
#: Paths every caller may reach (probes; /metrics is kept off the public side by the proxy).
PUBLIC_PATHS = frozenset({"/health", "/ready", "/metrics"})
REALM = "ome-zarr-gateway"
_MAX_AGE = re.compile(r"max-age=(\d+)")
#: A token is short; anything longer is junk, refused before any parsing.
MAX_TOKEN_CHARS = 2048
#: Expiry digits: 16 reach the year 300 million and stay exact as floats; more is junk
#: (and ``int()`` of thousands of digits raises).
MAX_EXPIRY_DIGITS = 16
#: Unpadded base64url, as minted: ASCII only, so no decoder sees other characters.
_B64URL = re.compile(r"[A-Za-z0-9_-]*", re.ASCII)
#: The scope key under which ``AccessControl`` leaves the request's ``Access`` (absent
#: when no root is protected: then everything is allowed).
ACCESS_KEY = "gateway.access"


class TokenError(ValueError):
    """A token that is malformed, not signed with our key, or expired."""


@dataclass(frozen=True, slots=True)
class Grant:
    """Access to ``prefix`` (a URL path under the mount point, without leading ``/``)
    until ``expires`` (seconds since the epoch)."""

    prefix: str
    expires: int

    def covers(self, path: str) -> bool:
        """Whether ``path`` (``lab/a.tif/0/c/0/0``, no leading ``/``) lies under the prefix.

        Segment-wise (``lab`` does not cover ``lab2``) and refusing ``.``/``..`` segments,
        so no path can climb out of its grant (the catalog refuses them too)."""
        segments = path.split("/")
        if any(s in (".", "..") for s in segments) or "" in segments[:-1]:
            return False
        prefix = self.prefix.strip("/")
        if not prefix:
            return True
        return path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True, slots=True)
class Access:
    """What one request may reach: every unprotected root, and what its grant covers."""

    protected: frozenset[str]
    grant: Grant | None = None

    def protects(self, path: str) -> bool:
        """Whether ``path`` (no leading ``/``) lies in a protected root."""
        return "*" in self.protected or path.split("/", 1)[0] in self.protected

    def allows(self, path: str) -> bool:
        """Whether this request may read ``path``: public, or granted."""
        return not self.protects(path) or (self.grant is not None and self.grant.covers(path))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, prefix: str, expires: int) -> bytes:
    message = f"{TOKEN_VERSION}\n{prefix}\n{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).digest()


def mint_token(key: bytes, prefix: str, expires: int) -> str:
    """A token granting ``prefix`` until ``expires``; URL-path safe (no ``/``)."""
    if not 0 <= expires < 10**MAX_EXPIRY_DIGITS:
        raise ValueError(f"expiry {expires} is not a time a token can carry")
    prefix = prefix.strip("/")
    return f"{TOKEN_VERSION}.{expires}.{_b64(prefix.encode())}.{_b64(_mac(key, prefix, expires))}"


def read_token(key: bytes, token: str, now: float | None = None) -> Grant:
    """The grant a token carries; raises TokenError if it is not valid now.

    Whatever a client sends (non-ASCII digits such as ``²``, thousands of digits, padding,
    junk) is a TokenError, never another exception: a token arrives unauthenticated."""
    parts = token.split(".", 4) if len(token) <= MAX_TOKEN_CHARS else []
    if len(parts) != 4 or parts[0] != TOKEN_VERSION or not _is_expiry(parts[1]):
        raise TokenError("malformed token")
    if not (_B64URL.fullmatch(parts[2]) and _B64URL.fullmatch(parts[3])):
        raise TokenError("malformed token")
    try:
        prefix = _unb64(parts[2]).decode()
        mac = _unb64(parts[3])
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise TokenError("malformed token") from exc
    expires = int(parts[1])
    if not hmac.compare_digest(mac, _mac(key, prefix, expires)):
        raise TokenError("invalid signature")
    if expires <= (time.time() if now is None else now):
        raise TokenError("token expired")
    return Grant(prefix, expires)


def _is_expiry(text: str) -> bool:
    """ASCII decimal digits, not too many (``str.isdigit`` alone admits ``²`` and ``٣``)."""
    return 0 < len(text) <= MAX_EXPIRY_DIGITS and text.isascii() and text.isdigit()


def signed_path(token: str, path: str) -> str:
    """``/s/<token>/<path>``: the URL path that carries a token."""
    return f"{SIGNED_PREFIX}{token}/{path.lstrip('/')}"


def private_cache_control(value: str | None, max_age: int) -> str:
    """``Cache-Control`` for a response to a credential: never in a shared cache, and not
    kept past the grant's expiry."""
    if not value or "no-store" in value:
        return value or "private, no-cache"
    directives = [d.strip() for d in value.split(",") if d.strip() and d.strip().lower() != "public"]
    match = _MAX_AGE.search(value)
    directives = [d for d in directives if not d.lower().startswith(("max-age", "s-maxage"))]
    age = min(int(match.group(1)), max_age) if match else max_age
    return ", ".join(["private", *directives, f"max-age={max(age, 0)}"])


class AccessControl:
    """Requires a grant for protected roots; strips ``/s/<token>`` into ``root_path``.

    ``views``: URL prefixes of other views of the same datasets (the Zarr v2 view's
    ``v2/``, the browsing view's ``browse/``): their paths are judged, and granted, as the
    dataset paths below the prefix.
    """

    def __init__(
        self, app: ASGIApp, key: bytes, protect: Collection[str], views: Collection[str] = ()
    ) -> None:
        self.app = app
        self.key = key
        self.protect_all = "*" in protect
        self.protected = frozenset(protect)
        self.views = frozenset(views)
        self.public = Access(self.protected)  # what a request without a token may reach

    def _dataset_path(self, path: str) -> str:
        head, sep, rest = path.partition("/")
        return rest if sep and head in self.views else path

    def _protected(self, path: str) -> bool:
        root = path.split("/", 1)[0]
        if not root:  # the list of roots: each caller sees what it may (``Access``)
            return False
        return self.protect_all or root in self.protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        token: str | None = None
        if path.startswith(SIGNED_PREFIX):
            token, _, rest = path[len(SIGNED_PREFIX) :].partition("/")
            scope = dict(
                scope, root_path=scope.get("root_path", "") + SIGNED_PREFIX.rstrip("/") + "/" + token
            )
            path = "/" + rest
        else:
            authorization = Headers(scope=scope).get("authorization", "")
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                token = credentials.strip()
        target = self._dataset_path(path.lstrip("/"))
        if token is None:
            if self._protected(target):
                await self._deny(scope, receive, send, 401, "unauthorized", "a token is required")
                return
            scope[ACCESS_KEY] = self.public
            await self.app(scope, receive, send)
            return
        try:
            grant = read_token(self.key, token)
        except TokenError as exc:
            await self._deny(scope, receive, send, 403, "forbidden", f"{exc}", error="invalid_token")
            return
        if self._protected(target) and not grant.covers(target):
            await self._deny(scope, receive, send, 403, "forbidden", "the token does not grant this path")
            return
        scope[ACCESS_KEY] = Access(self.protected, grant)
        remaining = int(grant.expires - time.time())

        async def send_private(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Cache-Control"] = private_cache_control(headers.get("cache-control"), remaining)
            await send(message)

        await self.app(scope, receive, send_private)

    @staticmethod
    async def _deny(
        scope: Scope, receive: Receive, send: Send, status: int, code: str, detail: str, error: str = ""
    ) -> None:
        challenge = f'Bearer realm="{REALM}"' + (f', error="{error}"' if error else "")
        response = error_response(status, code, detail, {"WWW-Authenticate": challenge})
        await response(scope, receive, send)
