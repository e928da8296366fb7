"""gateway.config.settings: sizes, the example config, and rejection of bad values (named)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import Settings, SettingsError, load_settings, parse_size
from gateway.config.settings import ChunkSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (1234, 1234),
        ("1234", 1234),
        ("512 MiB", 512 * 1024**2),
        ("512MiB", 512 * 1024**2),
        ("2GB", 2 * 1000**3),
        ("2 gb", 2 * 1000**3),
        ("2 GiB", 2 * 1024**3),
        ("64 KiB", 64 * 1024),
        ("1.5 KiB", 1536),
        ("10 kB", 10_000),
        ("1 TiB", 1024**4),
        (" 7 B ", 7),
    ],
)
def test_parse_size(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["", "MiB", "-1 MiB", "12 XB", "one GB", "1,5 GB", True, False])
def test_parse_size_rejects_garbage(value):
    with pytest.raises(SettingsError):
        parse_size(value)


def test_parse_size_returns_int():
    assert isinstance(parse_size("1.5 KiB"), int)


# -- config.example.toml ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def example():
    return load_settings(EXAMPLE, environ={})


def test_example_config_roots(example):
    assert example.roots == {"lab": Path("/data/lab"), "facility": Path("/srv/imaging/facility")}


def test_example_config_codec(example):
    assert (example.chunks.codec, example.chunks.level) == ("auto", 1)


def test_the_default_codec_is_auto_at_level_1():
    assert (ChunkSettings().codec, ChunkSettings().level) == ("auto", 1)


def test_example_config_sizes_are_bytes(example):
    assert (example.cache.chunk_bytes, example.cache.tile_bytes) == (256 * 1024**2, 512 * 1024**2)


def test_example_config_server(example):
    server = example.server
    assert (server.host, server.port, server.workers, server.threads) == ("127.0.0.1", 8000, 1, 8)


def test_example_config_cors_origins_is_a_tuple(example):
    assert example.server.cors_origins == ("*",)


def test_example_config_stat_interval_is_float(example):
    assert isinstance(example.cache.stat_interval_seconds, float)


def test_example_config_chunk_shape(example):
    chunks = example.chunks
    assert (chunks.yx, chunks.min_yx, chunks.max_yx, chunks.omit_empty) == (512, 128, 2048, True)
    assert chunks.z is None  # follows the source
    assert chunks.target_bytes == 2 * 1024**2


def test_relative_roots_are_relative_to_the_config_file(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text('[roots]\nimages = "pictures"\n')
    assert load_settings(config, environ={}).roots["images"] == (tmp_path / "pictures").resolve()


# -- rejection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mapping",
    [
        {"cache_settings": {}},
        {"server": {"hots": "0.0.0.0"}},
        {"chunks": {"compression": "zstd"}},
        {"cache": {"chunk_size": 5}},
    ],
)
def test_unknown_key_is_rejected(mapping):
    with pytest.raises(SettingsError):
        Settings.from_mapping(mapping)


@pytest.mark.parametrize(
    "mapping",
    [
        {"server": {"port": "8000"}},
        {"server": {"port": True}},
        {"server": {"host": 8000}},
        {"server": {"threads": [4]}},
        {"chunks": {"omit_empty": "yes"}},
        {"chunks": {"omit_empty": 1}},
        {"chunks": {"yx": "512"}},
        {"cache": {"stat_interval_seconds": "1s"}},
        {"cache": {"chunk_bytes": "lots"}},
        {"server": "not a table"},
        {"roots": ["/data"]},
    ],
)
def test_wrong_type_is_rejected(mapping):
    with pytest.raises(SettingsError):
        Settings.from_mapping(mapping)


@pytest.mark.parametrize("codec", ["lz4", "zlib", "ZSTD", "", "blosc2"])
def test_bad_codec_is_rejected(codec):
    with pytest.raises(SettingsError):
        Settings.from_mapping({"chunks": {"codec": codec}})


@pytest.mark.parametrize(
    "mapping",
    [
        {"server": {"port": 70000}},
        {"server": {"port": -1}},
        {"server": {"workers": 0}},
        {"server": {"threads": 0}},
        {"chunks": {"yx": 0}},
        {"chunks": {"yx": 4096}},
        {"chunks": {"yx": 64}},
        {"chunks": {"z": 0}},
        {"cache": {"open_files": 0}},
        {"cache": {"chunk_bytes": -1}},
        {"cache": {"stat_interval_seconds": -0.5}},
    ],
)
def test_out_of_range_value_is_rejected(mapping):
    with pytest.raises(SettingsError):
        Settings.from_mapping(mapping)


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "a b", "lab?", "caf\u00e9", "x\x00"])
def test_bad_root_name_is_rejected(name):
    with pytest.raises(SettingsError):
        Settings.from_mapping({"roots": {name: "/data"}})


@pytest.mark.parametrize("name", ["lab", "lab-2", "my_data", "v1.0", "A"])
def test_good_root_name_is_accepted(name):
    assert name in Settings.from_mapping({"roots": {name: "/data"}}).roots


def test_missing_roots_fail_check(tmp_path):
    with pytest.raises(SettingsError):
        Settings.from_mapping({"roots": {"x": str(tmp_path / "absent")}}).check_roots()


def test_no_roots_fail_check():
    with pytest.raises(SettingsError):
        Settings().check_roots()


def test_cors_origins_as_a_string_is_rejected():
    with pytest.raises(SettingsError):
        Settings.from_mapping({"server": {"cors_origins": "https://viewer.example"}})


def test_float_for_an_integer_setting_is_rejected():
    with pytest.raises(SettingsError):
        Settings.from_mapping({"chunks": {"yx": 512.9}})


@pytest.mark.parametrize(
    ("codec", "level"),
    [("gzip", 22), ("gzip", 10), ("blosc", 10), ("blosc", -1), ("auto", 0), ("auto", 10), ("auto", -1)],
)
def test_level_out_of_the_codec_range_is_rejected(codec, level):
    with pytest.raises(SettingsError):
        ChunkSettings(codec=codec, level=level)


def test_yx_that_is_not_a_power_of_two_is_rejected():
    with pytest.raises(SettingsError):
        ChunkSettings(yx=500)


# -- issue 5 sections ---------------------------------------------------------------------------


def test_example_config_pyramids_labels_rocrate(example):
    assert example.pyramids.enabled and example.pyramids.method == "mean"
    assert example.zarr_v2.prefix == "v2"
    assert example.metadata.window_sample_bytes == 16 * 1024**2
    (label,) = example.labels
    assert (label.image, label.source, label.label_name) == (
        "lab/cells3d/nuclei.tif",
        "lab/cells3d/nuclei_label.tif",
        "nuclei",
    )
    assert example.rocrate[0].organism == "NCBI:txid9606"


@pytest.mark.parametrize(
    "data",
    [
        {"pyramids": {"method": "median"}},
        {"pyramids": {"label_method": "mean"}},
        {"pyramids": {"max_levels": -1}},
        {"zarr_v2": {"prefix": "a/b"}},
        {"labels": {"image": "a", "source": "b"}},
        {"labels": [{"image": "a"}]},
        {"labels": [{"image": "a", "source": "b", "name": "../x"}]},
        {"labels": [{"image": "a", "source": "b", "colour": "red"}]},
        {"rocrate": [{"name": "no dataset"}]},
        {"rocrate": [{"dataset": "*", "name": 3}]},
    ],
)
def test_bad_issue5_sections_are_refused(data):
    with pytest.raises(SettingsError):
        Settings.from_mapping(data)


def test_label_name_defaults_to_the_source_stem():
    settings = Settings.from_mapping(
        {"labels": [{"image": "a/x.tif", "source": "a/dir/cells.labels.ome.tif"}]}
    )
    assert settings.labels[0].label_name == "cells"


def test_every_setting_round_trips_through_json(example):
    """What worker processes receive (gateway.web.app.settings_to_env) is the whole config."""
    import json

    again = Settings.from_mapping(json.loads(json.dumps(example.to_mapping())))
    assert again == example


def test_max_chunk_bytes_is_a_size_that_reaches_the_adapters():
    settings = Settings.from_mapping({"cache": {"max_chunk_bytes": "64 MiB"}})
    assert settings.cache.max_chunk_bytes == 64 * 1024**2
    assert settings.open_options().max_chunk_bytes == 64 * 1024**2
    assert Settings().open_options().max_chunk_bytes == 256 * 1024**2
    with pytest.raises(SettingsError, match="max_chunk_bytes"):
        Settings.from_mapping({"cache": {"max_chunk_bytes": 100}})


def test_chunk_rules_apply_by_url_path_first_match_wins():
    chunks = ChunkSettings(
        rules=[
            {"pattern": "lab/volumes/*.h5", "z": 8, "target_bytes": "1 MiB"},
            {"pattern": "lab/*", "yx": 256},
        ]
    )
    assert (chunks.for_path("lab/volumes/a/b.h5").z, chunks.for_path("lab/volumes/a/b.h5").yx) == (8, 512)
    assert chunks.for_path("lab/volumes/a/b.h5").target_bytes == 1024**2
    assert (chunks.for_path("lab/x.tif").z, chunks.for_path("lab/x.tif").yx) == (None, 256)
    assert chunks.for_path("other/x.tif") == chunks.model_copy(update={"rules": ()})


@pytest.mark.parametrize(
    "rule",
    [{"pattern": "a", "yx": 100}, {"pattern": "a", "yx": 4096}, {"pattern": "a", "z": 0}, {"pattern": ""}],
)
def test_bad_chunk_rules_are_refused(rule):
    with pytest.raises(SettingsError, match="rules"):
        ChunkSettings(rules=[rule])


def test_shards_are_off_unless_set_and_come_from_file_environment_and_rules():
    assert ChunkSettings().shard is None
    assert ChunkSettings(shard=[8, 1, 1]).shard == (8, 1, 1)
    assert load_settings(environ={"OME_ZARR_GATEWAY__CHUNKS__SHARD": "1, 4, 4"}).chunks.shard == (1, 4, 4)
    ruled = ChunkSettings(shard=[1, 2, 2], rules=[{"pattern": "lab/*.h5", "shard": [64, 1, 1]}])
    assert (ruled.for_path("lab/a.h5").shard, ruled.for_path("lab/a.tif").shard) == ((64, 1, 1), (1, 2, 2))


@pytest.mark.parametrize(
    ("shard", "problem"),
    [
        ([0, 1, 1], r"shard\[0\]"),
        ([4, 4], r"shard\[2\]"),
        ([1, 2, 3, 4], "shard"),
        (["8", 1, 1], r"shard\[0\]"),
        ([16, 16, 32], "at most 4096 inner chunks"),
    ],
)
def test_bad_shards_are_refused(shard, problem):
    with pytest.raises(SettingsError, match=problem):
        ChunkSettings(shard=shard)
