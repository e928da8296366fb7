"""A raw HTTP/1.1 client: the request target and headers go out byte for byte (http.client
refuses spaces and control characters, httpx normalises ``..``), over a keep-alive socket
with TCP_NODELAY (without it each loopback request waits ~40 ms on delayed ACKs)."""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Reply:
    """``status`` 0: no HTTP answer (``error`` says why: timeout, closed, reset)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    error: str = ""

    @property
    def is_json(self) -> bool:
        if not self.headers.get("content-type", "").startswith("application/json"):
            return False
        try:
            json.loads(self.body)
        except ValueError:
            return False
        return True

    @property
    def has_cors(self) -> bool:
        return "access-control-allow-origin" in self.headers


class RawConnection:
    """One keep-alive connection to ``base``; reconnects after errors or ``close``."""

    def __init__(self, base: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send_raw(self, head: bytes, method: str = "GET", timeout: float | None = None) -> Reply:
        """Send ``head`` (a complete request head, ``\\r\\n\\r\\n`` included) and read the answer."""
        started = time.monotonic()
        try:
            if self.sock is None:
                self.sock = self._connect()
            self.sock.settimeout(timeout or self.timeout)
            self.sock.sendall(head)
            response = http.client.HTTPResponse(self.sock, method=method)
            response.begin()
            body = response.read()
            headers = {k.lower(): v for k, v in response.getheaders()}
            if response.will_close:
                self.close()
            return Reply(response.status, headers, body, time.monotonic() - started)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return Reply(0, seconds=time.monotonic() - started, error=type(exc).__name__)

    def request(
        self,
        method: str,
        target: str | bytes,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Reply:
        raw_target = target if isinstance(target, bytes) else target.encode("utf-8", "surrogateescape")
        lines = [
            method.encode() + b" " + raw_target + b" HTTP/1.1",
            f"Host: {self.host}:{self.port}".encode(),
        ]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}".encode("latin-1", "replace"))
        return self.send_raw(b"\r\n".join(lines) + b"\r\n\r\n", method, timeout)

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
