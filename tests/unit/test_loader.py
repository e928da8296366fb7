"""gateway.config.loader: one loader, precedence command line > environment > file > defaults,
and every bad name or value refused at start with the setting's name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.config import SettingsError, load_settings
from gateway.web.app import settings_to_env


def write(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "gateway.toml"
    config.write_text(text)
    return config


def test_environment_values_take_their_settings_types():
    settings = load_settings(
        environ={
            "OME_ZARR_GATEWAY__SERVER__PORT": "9000",
            "OME_ZARR_GATEWAY__SERVER__HOST": "0.0.0.0",
            "OME_ZARR_GATEWAY__SERVER__INSTANCE": "42",  # a string setting stays a string
            "OME_ZARR_GATEWAY__SERVER__CORS_ORIGINS": "https://a.example, https://b.example",
            "OME_ZARR_GATEWAY__CHUNKS__PASSTHROUGH": "false",
            "OME_ZARR_GATEWAY__CACHE__CHUNK_BYTES": "1 GiB",
            "OME_ZARR_GATEWAY__CACHE__STAT_INTERVAL_SECONDS": "2",
            "OME_ZARR_GATEWAY__ROOTS__LAB": "/data/lab",
            "OME_ZARR_GATEWAY_SETTINGS": "{}",  # the worker hand-over, not a setting
            "PATH": "/usr/bin",
        }
    )
    server = settings.server
    assert (server.port, server.host, server.instance) == (9000, "0.0.0.0", "42")
    assert server.cors_origins == ("https://a.example", "https://b.example")
    assert settings.chunks.passthrough is False
    assert settings.cache.chunk_bytes == 1024**3
    assert settings.cache.stat_interval_seconds == 2.0
    assert settings.roots == {"lab": Path("/data/lab")}


def test_environment_names_are_case_insensitive_and_root_names_lower_cased():
    settings = load_settings(
        environ={"ome_zarr_gateway__Server__Port": "9001", "OME_ZARR_GATEWAY__ROOTS__LAB": "/x"}
    )
    assert settings.server.port == 9001
    assert list(settings.roots) == ["lab"]


@pytest.mark.parametrize(
    "name", ["OME_ZARR_GATEWAY__NOPE__PORT", "OME_ZARR_GATEWAY__SERVER__NOPE", "OME_ZARR_GATEWAY__SERVER"]
)
def test_environment_names_that_set_nothing_are_named(name):
    with pytest.raises(SettingsError, match=name):
        load_settings(environ={name: "1"})


def test_environment_lists_and_tables_as_toml():
    settings = load_settings(
        environ={
            "OME_ZARR_GATEWAY__SERVER__CORS_ORIGINS": '["a", "b"]',
            "OME_ZARR_GATEWAY__HDF5__AXES": '{"*/a.h5/v" = "zyx"}',
        }
    )
    assert settings.server.cors_origins == ("a", "b")
    assert settings.hdf5.axes == {"*/a.h5/v": "zyx"}


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("OME_ZARR_GATEWAY__CHUNKS__OMIT_EMPTY", "maybe", "chunks.omit_empty"),
        ("OME_ZARR_GATEWAY__SERVER__PORT", "eighty", "server.port"),
        ("OME_ZARR_GATEWAY__SERVER__PORT", "70000", "server.port"),
        ("OME_ZARR_GATEWAY__CACHE__CHUNK_BYTES", "lots", "cache.chunk_bytes: not a size: 'lots'"),
        ("OME_ZARR_GATEWAY__HDF5__AXES", "{unclosed", "hdf5.axes"),
    ],
)
def test_bad_environment_values_are_named_with_their_variable(variable, value, named):
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={variable: value})
    assert named in str(caught.value).replace(f" ({variable})", "")
    assert variable in str(caught.value)


def test_a_bad_value_from_the_command_line_is_not_blamed_on_the_environment():
    with pytest.raises(SettingsError) as caught:
        load_settings(
            environ={"OME_ZARR_GATEWAY__SERVER__PORT": "8001"}, overrides={"server": {"port": 70000}}
        )
    assert str(caught.value) == "server.port: Input should be less than or equal to 65535"


def test_unknown_key_in_the_file_is_named(tmp_path):
    config = write(tmp_path, '[server]\nport = 8001\nhots = "0.0.0.0"\n')
    with pytest.raises(SettingsError, match=r"^server\.hots: unknown key$"):
        load_settings(config, environ={})


def test_bad_size_in_the_file_is_named(tmp_path):
    config = write(tmp_path, '[cache]\nchunk_bytes = "lots"\n')
    with pytest.raises(SettingsError, match=r"^cache\.chunk_bytes: not a size: 'lots'$"):
        load_settings(config, environ={})


def test_every_bad_key_is_named_at_once(tmp_path):
    config = write(tmp_path, '[server]\nport = "8000"\n[chunks]\nyx = 500\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(config, environ={})
    assert [where for where, _ in caught.value.problems] == ["server.port", "chunks.yx"]


def test_unreadable_or_malformed_file_is_a_settings_error(tmp_path):
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "absent.toml", environ={})
    with pytest.raises(SettingsError, match=r"gateway\.toml"):
        load_settings(write(tmp_path, "[server\n"), environ={})


def test_precedence_command_line_over_environment_over_file_over_defaults(tmp_path):
    config = write(tmp_path, '[roots]\nlab = "data"\n[server]\nport = 7000\nthreads = 3\nhost = "10.0.0.1"\n')
    environ = {"OME_ZARR_GATEWAY__SERVER__PORT": "7001", "OME_ZARR_GATEWAY__SERVER__HOST": "10.0.0.2"}
    settings = load_settings(config, environ, overrides={"server": {"host": "10.0.0.3", "workers": None}})
    assert settings.server.host == "10.0.0.3"  # command line over environment
    assert settings.server.port == 7001  # environment over file
    assert settings.server.threads == 3  # file over default
    assert settings.server.workers == 1  # default (None: an option not given)
    assert settings.roots["lab"] == (tmp_path / "data").resolve()  # relative to the file


def test_environment_sets_a_key_without_dropping_the_files_other_keys(tmp_path):
    config = write(tmp_path, "[cache]\nopen_files = 9\ntile_bytes = 1024\n")
    settings = load_settings(config, {"OME_ZARR_GATEWAY__CACHE__OPEN_FILES": "10"})
    assert (settings.cache.open_files, settings.cache.tile_bytes) == (10, 1024)


def test_directories_replace_configured_roots(tmp_path):
    settings = load_settings(environ={"OME_ZARR_GATEWAY__ROOTS__LAB": "/x"}, roots={"cli": tmp_path})
    assert settings.roots == {"cli": tmp_path}


def test_auth_key_never_in_repr():
    settings = load_settings(environ={"OME_ZARR_GATEWAY__AUTH__SIGNING_KEY": "super-secret-signing-key"})
    assert "super-secret" not in repr(settings)
    assert settings.auth.key() == b"super-secret-signing-key"


LABELS_AND_CRATES = """
[roots]
lab = "data"

[[labels]]
image = "lab/cells.tif"
source = "lab/cells_labels.tif"

[[labels]]
image = "lab/run.h5/raw"
source = "lab/run.h5/segmentation"
name = "cells"

[[rocrate]]
dataset = "lab/*"
organism = "NCBI:txid9606"
"""


def test_arrays_of_tables_from_the_file(tmp_path):
    settings = load_settings(write(tmp_path, LABELS_AND_CRATES), environ={})
    assert [label.label_name for label in settings.labels] == ["cells_labels", "cells"]
    assert settings.labels[1].source == "lab/run.h5/segmentation"
    assert [(crate.dataset, crate.organism) for crate in settings.rocrate] == [("lab/*", "NCBI:txid9606")]


def test_a_bad_entry_of_an_array_of_tables_is_named_by_its_index(tmp_path):
    config = write(tmp_path, LABELS_AND_CRATES + '\n[[labels]]\nimage = "lab/x.tif"\n')
    with pytest.raises(SettingsError, match=r"labels\[2\]\.source"):
        load_settings(config, environ={})


def test_arrays_of_tables_from_the_environment_replace_the_files(tmp_path):
    environ = {"OME_ZARR_GATEWAY__LABELS": '[{image = "lab/a.tif", source = "lab/b.tif", name = "b"}]'}
    settings = load_settings(write(tmp_path, LABELS_AND_CRATES), environ)
    assert [(label.image, label.label_name) for label in settings.labels] == [("lab/a.tif", "b")]
    assert len(settings.rocrate) == 1  # untouched


def test_settings_round_trip_through_the_worker_environment(tmp_path):
    """What `serve --workers N` hands to uvicorn's workers (gateway.web.app.create_app_from_env)."""
    (tmp_path / "data").mkdir()
    config = write(
        tmp_path,
        LABELS_AND_CRATES
        + '[cache]\nchunk_bytes = "1 GiB"\n[hdf5.axes]\n"*/a.h5/x" = "zyx"\n[auth]\nsigning_key = "k" \n',
    )
    settings = load_settings(config, {"OME_ZARR_GATEWAY__SERVER__CORS_ORIGINS": "https://a, https://b"})
    again = type(settings).from_mapping(json.loads(settings_to_env(settings)), base=Path("/"))
    assert again == settings
    assert again.auth.signing_key == "k" and again.server.cors_origins == ("https://a", "https://b")
