"""gateway.cli and gateway.web.listen: the socket ``serve`` listens on (and why it cannot),
the URLs it announces, where its settings come from, options before or after the command."""

from __future__ import annotations

import asyncio
import socket

import pytest

from gateway.cli import _settings_from_paths, build_parser
from gateway.config import SettingsError
from gateway.web.listen import ListenError, bind, reachable_urls


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
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


def test_accepted_connections_have_tcp_nodelay():
    assert asyncio.run(accepted_nodelay(bind("127.0.0.1", 0))) != 0


def test_serve_options_win_over_the_environment_which_wins_over_the_file(tmp_path, monkeypatch):
    config = tmp_path / "gateway.toml"
    config.write_text('[roots]\nlab = "."\n[server]\nport = 7000\nthreads = 3\nworkers = 2\n')
    monkeypatch.setenv("OME_ZARR_GATEWAY__SERVER__PORT", "7001")
    monkeypatch.setenv("OME_ZARR_GATEWAY__SERVER__THREADS", "5")
    options = {"server": {"port": 7002, "host": None, "workers": None, "threads": None}}  # --port only
    server = _settings_from_paths([config], None, options).server
    assert (server.port, server.threads, server.workers) == (7002, 5, 2)


# -- global options before or after the command (issue 12) ------------------------------------


@pytest.mark.parametrize(
    ("argv", "level", "config"),
    [
        (["serve", "d"], "info", None),
        (["--log-level", "debug", "serve", "d"], "debug", None),
        (["serve", "d", "--log-level", "debug"], "debug", None),
        (["serve", "--log-level", "error", "d"], "error", None),
        (["--log-level", "error", "serve", "--log-level", "debug", "d"], "debug", None),  # the later wins
        (["--config", "g.toml", "inspect", "f.tif"], "info", "g.toml"),
        (["inspect", "f.tif", "--config", "g.toml", "--log-level", "warning"], "warning", "g.toml"),
        (["export", "a.tif", "out", "--config", "g.toml"], "info", "g.toml"),
        (["sign", "lab", "--config", "g.toml"], "info", "g.toml"),
    ],
)
def test_global_options_are_taken_before_and_after_the_command(argv, level, config):
    args = build_parser().parse_args(argv)
    assert (args.log_level or "info", args.config) == (level, config)


def test_sign_still_takes_its_config_as_an_argument():
    args = build_parser().parse_args(["sign", "g.toml", "lab/a.tif"])
    assert (args.config_file, args.path, args.config) == ("g.toml", "lab/a.tif", None)


def test_directories_replace_the_roots_of_a_config_given_with_config(tmp_path):
    config = tmp_path / "gateway.toml"
    (tmp_path / "other").mkdir()
    config.write_text('[roots]\nlab = "."\n[chunks]\nyx = 256\n')
    settings = _settings_from_paths([tmp_path / "other"], "mine", None, config)
    assert settings.roots == {"mine": (tmp_path / "other").resolve()}
    assert settings.chunks.yx == 256  # the rest of the file still applies


def test_two_config_files_are_refused(tmp_path):
    with pytest.raises(SettingsError, match="two config files"):
        _settings_from_paths([tmp_path / "a.toml"], None, None, tmp_path / "b.toml")


# -- where the server says it is reachable --------------------------------------------------------


def test_a_taken_port_is_a_listen_error_naming_host_and_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError) as caught:
            bind("127.0.0.1", port)
    assert str(caught.value).startswith(f"cannot listen on 127.0.0.1:{port}: the port is in use")


@pytest.mark.parametrize(
    ("host", "reason"),
    [("203.0.113.77", "is not an address of this machine"), ("no-such-host.invalid", "unknown host")],
)
def test_an_address_that_cannot_be_listened_on_says_why(host, reason):
    with pytest.raises(ListenError, match=reason):
        bind(host, 0)


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "::1", "images.example.org"])
def test_a_given_host_is_its_own_url(host):
    shown = f"[{host}]" if ":" in host else host
    assert reachable_urls(host, 8000) == [f"http://{shown}:8000"]


def test_every_interface_is_shown_as_the_machine_s_addresses_never_as_the_wildcard():
    urls = reachable_urls("0.0.0.0", 8000)
    assert urls and all(url.endswith(":8000") for url in urls)
    assert not any("0.0.0.0" in url for url in urls)
    hosts = [url.removeprefix("http://").rsplit(":", 1)[0].strip("[]") for url in urls]
    others = [host for host in hosts if host not in ("127.0.0.1", "::1")]
    assert others or hosts == ["127.0.0.1"]  # loopback only when nothing else exists
