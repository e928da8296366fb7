"""gateway.cli: the listening socket the ``serve`` command binds, and where its settings come from."""

from __future__ import annotations

import asyncio
import socket

from gateway.cli import _bind, _settings_from_paths


async def accepted_nodelay(sock: socket.socket) -> int:
    """TCP_NODELAY of a connection asyncio accepts on ``sock`` (as uvicorn does)."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[int] = loop.create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport):
            accepted = transport.get_extra_info("socket")
            result.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await loop.create_server(Probe, sock=sock)
    try:
        _reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        value = await asyncio.wait_for(result, 10)
        writer.close()
        await writer.wait_closed()
        return value
    finally:
        server.close()
        await server.wait_closed()


def test_bound_socket_listens_where_asked():
    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


def test_accepted_connections_have_tcp_nodelay():
    assert asyncio.run(accepted_nodelay(_bind("127.0.0.1", 0))) != 0


def test_serve_options_win_over_the_environment_which_wins_over_the_file(tmp_path, monkeypatch):
    config = tmp_path / "gateway.toml"
    config.write_text('[roots]\nlab = "."\n[server]\nport = 7000\nthreads = 3\nworkers = 2\n')
    monkeypatch.setenv("OME_ZARR_GATEWAY__SERVER__PORT", "7001")
    monkeypatch.setenv("OME_ZARR_GATEWAY__SERVER__THREADS", "5")
    options = {"server": {"port": 7002, "host": None, "workers": None, "threads": None}}  # --port only
    server = _settings_from_paths([config], None, options).server
    assert (server.port, server.threads, server.workers) == (7002, 5, 2)
