"""Configuration refused at start (issue 9, item 7): overlapping roots, reserved root names,
malformed public_url / trusted_proxies; and the new [server] limits' defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.config.settings import RESERVED_ROOT_NAMES, Settings, SettingsError
from gateway.web import app as app_module
from gateway.web.auth import SIGNED_PREFIX


def roots_settings(**roots: Path) -> Settings:
    return Settings.from_mapping({"roots": {name: str(path) for name, path in roots.items()}})


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "x" / "private").mkdir(parents=True)
    (tmp_path / "y").mkdir()
    return tmp_path


@pytest.mark.parametrize("order", ["outer first", "inner first"])
def test_nested_roots_are_refused_in_either_order(tree, order):
    pairs = {"pub": tree / "x", "priv": tree / "x" / "private"}
    if order == "inner first":
        pairs = dict(reversed(list(pairs.items())))
    with pytest.raises(SettingsError, match="overlap") as caught:
        roots_settings(**pairs)
    assert "'pub'" in str(caught.value) and "'priv'" in str(caught.value)  # names both


def test_equal_roots_are_refused(tree):
    with pytest.raises(SettingsError, match="same directory") as caught:
        roots_settings(a=tree / "x", b=tree / "x")
    assert "'a'" in str(caught.value) and "'b'" in str(caught.value)


def test_a_root_reached_through_a_symlink_into_another_is_refused(tree):
    link = tree / "y" / "link"
    link.symlink_to(tree / "x" / "private")
    with pytest.raises(SettingsError, match="lies inside"):
        Settings(roots={"pub": tree / "x", "priv": link})  # constructed directly: not yet resolved


def test_a_symlinked_root_equal_to_another_is_refused(tree):
    link = tree / "y" / "same"
    link.symlink_to(tree / "x")
    with pytest.raises(SettingsError, match="same directory"):
        Settings(roots={"a": tree / "x", "b": link})


def test_siblings_with_a_common_name_prefix_are_accepted(tree):
    (tree / "x-more").mkdir()
    settings = roots_settings(x=tree / "x", more=tree / "x-more", y=tree / "y")
    assert set(settings.roots) == {"x", "more", "y"}


@pytest.mark.parametrize("name", sorted(RESERVED_ROOT_NAMES))
def test_reserved_root_names_are_refused(tree, name):
    with pytest.raises(SettingsError, match="reserves"):
        roots_settings(**{name: tree / "y"})


def test_the_v2_prefix_is_refused_as_a_root_name(tree):
    with pytest.raises(SettingsError, match="v2"):
        Settings.from_mapping({"roots": {"old": str(tree / "y")}, "zarr_v2": {"prefix": "old"}})


def test_reserved_names_cover_every_route_of_the_gateway():
    service = set(app_module._service_endpoints(Settings()))
    assert service | {SIGNED_PREFIX.strip("/")} <= RESERVED_ROOT_NAMES


@pytest.mark.parametrize(
    "url",
    [
        "zarr.example.org",
        "ftp://zarr.example.org",
        "https://zarr.example.org/zarr?x=1",
        "https://zarr.example.org/zarr#top",
        "https://user@zarr.example.org/",
        "https://zarr.example.org/a b",
        "https://",
    ],
)
def test_malformed_public_url_is_refused(url):
    with pytest.raises(SettingsError, match="public_url"):
        Settings.from_mapping({"server": {"public_url": url}})


@pytest.mark.parametrize(
    "url", ["https://zarr.example.org", "https://zarr.example.org/zarr/", "http://[::1]:8080/zarr"]
)
def test_public_url_is_accepted(url):
    assert Settings.from_mapping({"server": {"public_url": url}}).server.public_url == url


def test_public_url_path_must_equal_root_path():
    with pytest.raises(SettingsError, match="root_path"):
        Settings.from_mapping({"server": {"public_url": "https://z.example.org/a", "root_path": "/zarr"}})
    same = {"public_url": "https://z.example.org/zarr", "root_path": "/zarr"}
    assert Settings.from_mapping({"server": same}).server.root_path == "/zarr"


@pytest.mark.parametrize("proxy", ["nginx", "10.0.0.300", "10.0.0.0/33", ""])
def test_malformed_trusted_proxy_is_refused(proxy):
    with pytest.raises(SettingsError, match="trusted_proxies"):
        Settings.from_mapping({"server": {"trusted_proxies": [proxy]}})


def test_trusted_proxies_take_addresses_networks_and_star():
    proxies = ["127.0.0.1", "::1", "10.0.0.0/8", "*"]
    assert Settings.from_mapping({"server": {"trusted_proxies": proxies}}).server.trusted_proxies == tuple(
        proxies
    )


@pytest.mark.parametrize(
    "server",
    [
        {"header_timeout_seconds": 0},
        {"keep_alive_seconds": -1},
        {"max_connections": 0},
        {"max_header_bytes": 100},
    ],
)
def test_slow_client_limits_are_checked(server):
    with pytest.raises(SettingsError):
        Settings.from_mapping({"server": server})


def test_max_header_bytes_takes_a_size():
    assert Settings.from_mapping({"server": {"max_header_bytes": "32 KiB"}}).server.max_header_bytes == 32768


def test_defaults_fit_the_systemd_descriptor_limit():
    """deploy/README.md: connections, open files and a margin stay under LimitNOFILE=8192."""
    settings = Settings()
    assert settings.server.max_connections + settings.cache.open_files * 4 + 256 < 8192
    assert settings.server.header_timeout_seconds >= settings.server.keep_alive_seconds


def test_settings_round_trip_through_the_worker_mapping(tree):
    server = {"public_url": "https://z.example.org", "trusted_proxies": ["10.0.0.0/8"], "max_connections": 9}
    settings = Settings.from_mapping({"roots": {"a": str(tree / "y")}, "server": server})
    again = Settings.from_mapping(settings.to_mapping(), base=Path(os.sep))
    assert again.server == settings.server
