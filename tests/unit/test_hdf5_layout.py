"""What the gateway does for HDF5 sources: images at paths of their own, volumetric
pass-through, the ``[hdf5]`` settings and the dataset sniffing of the registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import adapters
from adapters.base import Axis, Image, OpenOptions, RawChunkFormat, Source
from gateway.config.settings import ChunkSettings, Settings, SettingsError
from gateway.ngff.layout import build_tree, raw_chunk_format
from gateway.web.app import settings_to_env
from tests.unit.test_layout import FakeLevel, FakePassThroughLevel

SETTINGS = ChunkSettings()
ZYX = ("z", "y", "x")


def image(path: str | None, name: str = "i") -> Image:
    return Image(
        name=name,
        axes=(Axis("y"), Axis("x")),
        levels=(FakeLevel((64, 64), (64, 64)),),
        scale=(1.0, 1.0),
        path=path,
    )


def source(*images: Image) -> Source:
    return Source(path=Path("f.h5"), format="HDF5", images=images)


def test_images_sit_at_their_paths_below_plain_groups() -> None:
    tree = build_tree(source(image("raw/volume"), image("labels")), SETTINGS)
    assert set(tree.images) == {"raw/volume", "labels"}
    plain = {"zarr_format": 3, "node_type": "group", "attributes": {}}
    assert json.loads(tree.documents["zarr.json"]) == plain
    assert json.loads(tree.documents["raw/zarr.json"]) == plain
    assert "ome" in json.loads(tree.documents["raw/volume/zarr.json"])["attributes"]
    assert "raw/volume/0" in tree.arrays and "OME/zarr.json" not in tree.documents


def test_an_image_may_be_the_root() -> None:
    tree = build_tree(source(image(""), image("extra")), SETTINGS)
    assert "ome" in json.loads(tree.documents["zarr.json"])["attributes"]
    assert "extra/0" in tree.arrays and "0" in tree.arrays


@pytest.mark.parametrize("paths", [("a", "a"), ("a", "a/0"), ("a/0", "a")])
def test_colliding_paths_are_refused(paths: tuple[str, str]) -> None:
    with pytest.raises(ValueError):
        build_tree(source(*(image(p) for p in paths)), SETTINGS)


@pytest.mark.parametrize("bad", ["a/.hidden", "a//b", ".."])
def test_unsafe_image_paths_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        image(bad)


def raw(chunk: tuple[int, ...]) -> RawChunkFormat:
    return RawChunkFormat(chunk_shape=chunk, compressor="zstd", endian="little")


@pytest.mark.parametrize(
    ("chunk", "passes"),
    [
        ((64, 64, 64), True),  # volumetric: as many elements as a 128² tile, and more
        ((16, 64, 64), True),
        ((1, 64, 64), False),  # a small 2-D tile stays refused
        ((1, 256, 256), True),
        ((64, 32, 64), False),  # not square
        ((4, 48, 48), False),  # not a power of two
        ((1, 4096, 4096), False),  # beyond max_yx
    ],
)
def test_volumetric_chunks_may_pass_through(chunk: tuple[int, ...], passes: bool) -> None:
    level = FakePassThroughLevel((200, 5000, 5000), chunk, raw_chunk_format=raw(chunk))
    assert (raw_chunk_format(level, SETTINGS, ZYX) is not None) == passes


def test_hdf5_settings_are_parsed_and_validated() -> None:
    settings = Settings.from_mapping({"hdf5": {"lock_free": False, "axes": {"*/a.h5/x": "ZYXC"}}})
    assert settings.hdf5.open_options() == OpenOptions(lock_free=False, axes=(("*/a.h5/x", "ZYXC"),))
    for bad in ("zzyx", "zq", "cz", 3):
        with pytest.raises(SettingsError):
            Settings.from_mapping({"hdf5": {"axes": {"p": bad}}})
    with pytest.raises(SettingsError):
        Settings.from_mapping({"hdf5": {"lock_free": "no"}})


def test_hdf5_settings_reach_worker_processes() -> None:
    settings = Settings.from_mapping({"hdf5": {"lock_free": False, "axes": {"p": "yx"}}})
    again = Settings.from_mapping(json.loads(settings_to_env(settings)))
    assert again.hdf5 == settings.hdf5


def test_ambiguous_suffixes_are_sniffed(tmp_path: Path) -> None:
    (tmp_path / "notes.xml").write_text("<notes/>")
    (tmp_path / "set.xml").write_text('<?xml version="1.0"?>\n<!-- a comment -->\n<SpimData version="0.2"/>')
    (tmp_path / "classic.nc").write_bytes(b"CDF\x01" + bytes(64))
    (tmp_path / "any.h5").write_bytes(np.zeros(8, np.uint8).tobytes())
    assert not adapters.is_dataset_file(tmp_path / "notes.xml")
    assert adapters.is_dataset_file(tmp_path / "set.xml")
    assert not adapters.is_dataset_file(tmp_path / "classic.nc")
    assert adapters.is_dataset_file(tmp_path / "any.h5")  # unambiguous suffix: no sniff


@pytest.mark.parametrize(("z", "passes"), [(None, True), (16, True), (1, False), (8, False), (32, False)])
def test_a_set_depth_passes_only_stored_chunks_of_that_depth(z: int | None, passes: bool) -> None:
    level = FakePassThroughLevel((200, 5000, 5000), (16, 64, 64), raw_chunk_format=raw((16, 64, 64)))
    settings = ChunkSettings(z=z)
    assert (raw_chunk_format(level, settings, ZYX) is not None) == passes
    assert raw_chunk_format(level, settings, ("t", "y", "x")) is not None  # no z: nothing to set
