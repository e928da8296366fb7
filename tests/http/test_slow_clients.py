"""Slow clients (issue 9, item 9) against a real server: a request that does not arrive whole
within server.header_timeout_seconds has its connection closed; connections beyond
server.max_connections are closed at once; oversized heads answer 400; half-open connections
do not keep a normal client from being served.

Bounds are generous multiples of the configured timeout: these check that connections are
closed at all, not how fast.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit

import pytest

from gateway.web import serving
from tests.http.support import Gateway, running_gateway

TIMEOUT_SECONDS = 1.0
BOUND_SECONDS = 10 * TIMEOUT_SECONDS
HALF_HEAD = b"GET /data/healthy.tif/zarr.json HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n"
FULL_REQUEST = b"GET /data/healthy.tif/zarr.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


#: Both HTTP protocols the gateway may run (httptools when installed, as uvicorn[standard]
#: brings it; h11 otherwise) carry the deadline, the cap and JSON 400s.
PROTOCOLS = {"h11": serving.DeadlineH11Protocol, "default": serving.HTTP_PROTOCOL}


@contextmanager
def protocol(name: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(serving, "HTTP_PROTOCOL", PROTOCOLS[name])
        yield


@pytest.fixture(scope="module", params=sorted(PROTOCOLS))
def protocol_name(request) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def gateway(protocol_name, tmp_path_factory) -> Iterator[Gateway]:
    server = {"header_timeout_seconds": TIMEOUT_SECONDS, "max_connections": 512}
    with protocol(protocol_name), running_gateway(tmp_path_factory.mktemp("slow"), server=server) as gw:
        yield gw


def connect(base: str) -> socket.socket:
    address = urlsplit(base)
    sock = socket.create_connection((address.hostname, address.port), timeout=BOUND_SECONDS)
    return sock


def closed_by_server(sock: socket.socket, timeout: float = BOUND_SECONDS) -> bool:
    """Whether the server closes the connection within ``timeout`` (EOF or reset), reading
    and discarding whatever it sends first."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def read_response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body) from a keep-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_half_sent_request_head_is_closed(gateway):
    with connect(gateway.base) as sock:
        sock.sendall(HALF_HEAD)
        assert closed_by_server(sock)


def test_silent_connection_is_closed(gateway):
    with connect(gateway.base) as sock:
        assert closed_by_server(sock)


def test_trickled_request_head_is_closed(gateway):
    """A byte at a time, each well within the timeout: the deadline is for the whole head."""
    with connect(gateway.base) as sock:
        deadline = time.monotonic() + BOUND_SECONDS
        for byte in HALF_HEAD * 100:
            if time.monotonic() > deadline:
                pytest.fail("the trickling client was never disconnected")
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                return
            sock.settimeout(TIMEOUT_SECONDS / 10)
            try:
                if sock.recv(1) == b"":
                    return
            except TimeoutError:
                pass
        pytest.fail("the whole trickle was accepted")


def test_trickled_request_body_is_closed(gateway):
    """A read-only service needs no request body; one that never completes is cut off too."""
    with connect(gateway.base) as sock:
        sock.sendall(
            b"POST /data/healthy.tif/zarr.json HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab"
        )
        assert closed_by_server(sock)


def test_keep_alive_connection_serves_one_request_after_another(gateway):
    with connect(gateway.base) as sock:
        for _ in range(3):
            sock.sendall(FULL_REQUEST)
            assert read_response(sock).startswith(b"HTTP/1.1 200")
        # idle after its last response: closed as well (keep-alive or request deadline)
        assert closed_by_server(sock)


def test_oversized_request_head_answers_400(gateway):
    with connect(gateway.base) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
        sock.settimeout(BOUND_SECONDS)
        assert sock.recv(65536).startswith(b"HTTP/1.1 400")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n",  # head too large
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",  # h11 refuses the head
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",  # TLS on the plain port
    ],
    ids=["oversized", "malformed-header", "not-http"],
)
def test_requests_the_parser_refuses_answer_json_with_cors(gateway, request_bytes):
    with connect(gateway.base) as sock:
        sock.sendall(request_bytes)
        sock.settimeout(BOUND_SECONDS)
        response = read_until_closed(sock)
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").lower().split("\r\n")
    assert lines[0].startswith("http/1.1 400")
    assert "content-type: application/json" in lines
    assert "access-control-allow-origin: *" in lines
    assert json.loads(body)["error"] == "bad_request"


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@contextmanager
def half_open(base: str, count: int) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(connect(base))
            sock.sendall(HALF_HEAD)
            sockets.append(sock)
        yield sockets


def test_many_half_open_connections_do_not_stop_a_normal_client(gateway):
    with half_open(gateway.base, 300) as sockets:
        response = gateway.get("data/healthy.tif/zarr.json")
        assert response.status_code == 200
        gateway.assert_healthy()
        # and the server lets go of every one of them (their descriptors with them)
        assert all(closed_by_server(sock) for sock in sockets)


@pytest.fixture(scope="module")
def capped(protocol_name, tmp_path_factory) -> Iterator[Gateway]:
    """A long request deadline, so that a quick close can only come from the connection cap."""
    server = {"header_timeout_seconds": 600.0, "max_connections": 8}
    with protocol(protocol_name), running_gateway(tmp_path_factory.mktemp("capped"), server=server) as gw:
        yield gw


def test_connections_beyond_max_connections_are_closed_at_once(capped):
    with half_open(capped.base, 8), connect(capped.base) as extra:
        assert closed_by_server(extra)
    deadline = time.monotonic() + BOUND_SECONDS
    while capped.get("data/healthy.tif/zarr.json").status_code != 200:  # the slots free up
        assert time.monotonic() < deadline, "never served again after the connections closed"
        time.sleep(0.05)


def test_a_request_at_the_connection_limit_answers_503(capped):
    with half_open(capped.base, 7), connect(capped.base) as last:
        last.sendall(FULL_REQUEST)
        last.settimeout(BOUND_SECONDS)
        assert last.recv(65536).startswith(b"HTTP/1.1 503")
