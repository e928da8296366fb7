from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.env import convert_value, load_settings, mapping_from_env, merge
from gateway.config.settings import SettingsError


def test_mapping_from_env_types_values():
    mapping = mapping_from_env(
        {
            "OME_ZARR_GATEWAY__SERVER__PORT": "9000",
            "OME_ZARR_GATEWAY__SERVER__HOST": "0.0.0.0",
            "OME_ZARR_GATEWAY__SERVER__CORS_ORIGINS": "https://a.example, https://b.example",
            "OME_ZARR_GATEWAY__CHUNKS__PASSTHROUGH": "false",
            "OME_ZARR_GATEWAY__CACHE__CHUNK_BYTES": "1 GiB",
            "OME_ZARR_GATEWAY__CACHE__STAT_INTERVAL_SECONDS": "2",
            "OME_ZARR_GATEWAY__ROOTS__LAB": "/data/lab",
            "OME_ZARR_GATEWAY_SETTINGS": "{}",  # the worker hand-over, not a setting
            "PATH": "/usr/bin",
        }
    )
    assert mapping == {
        "server": {
            "port": 9000,
            "host": "0.0.0.0",
            "cors_origins": ["https://a.example", "https://b.example"],
        },
        "chunks": {"passthrough": False},
        "cache": {"chunk_bytes": "1 GiB", "stat_interval_seconds": 2.0},
        "roots": {"lab": "/data/lab"},
    }


@pytest.mark.parametrize(
    "name", ["OME_ZARR_GATEWAY__NOPE__PORT", "OME_ZARR_GATEWAY__SERVER__NOPE", "OME_ZARR_GATEWAY__SERVER"]
)
def test_unknown_names_are_errors(name):
    with pytest.raises(SettingsError, match=name):
        mapping_from_env({name: "1"})


def test_lists_and_tables_as_toml():
    assert convert_value('["a", "b"]', ("x",), "v") == ["a", "b"]
    assert convert_value('{"*/a.h5/v" = "zyx"}', {}, "v") == {"*/a.h5/v": "zyx"}
    with pytest.raises(SettingsError):
        convert_value("maybe", True, "v")


def test_merge_is_per_key():
    assert merge({"server": {"port": 1, "host": "h"}}, {"server": {"port": 2}}) == {
        "server": {"port": 2, "host": "h"}
    }


def test_precedence_env_over_file_over_defaults(tmp_path: Path):
    config = tmp_path / "c.toml"
    config.write_text('[roots]\nlab = "data"\n[server]\nport = 7000\nthreads = 3\n')
    settings = load_settings(config, {"OME_ZARR_GATEWAY__SERVER__PORT": "7001"})
    assert settings.server.port == 7001  # env over file
    assert settings.server.threads == 3  # file over default
    assert settings.server.workers == 1  # default
    assert settings.roots["lab"] == (tmp_path / "data").resolve()
    assert settings.with_overrides(port=7002).server.port == 7002  # the CLI, last


def test_directories_replace_configured_roots(tmp_path: Path):
    settings = load_settings(None, {"OME_ZARR_GATEWAY__ROOTS__LAB": "/x"}, {"cli": tmp_path})
    assert settings.roots == {"cli": tmp_path}


def test_auth_key_never_in_repr():
    settings = load_settings(None, {"OME_ZARR_GATEWAY__AUTH__SIGNING_KEY": "super-secret-signing-key"})
    assert "super-secret" not in repr(settings)
    assert settings.auth.key() == b"super-secret-signing-key"
