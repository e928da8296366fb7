"""gateway.ngff.layout: chunk shapes, pass-through decisions and the tree a source becomes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from adapters.base import Axis, Image, RawChunkFormat, Source
from gateway.config.settings import ChunkSettings
from gateway.ngff.layout import OME_XML_KEY, build_tree, choose_chunk_shape, raw_chunk_format

UINT16 = np.dtype("uint16")


@dataclass(frozen=True)
class FakeLevel:
    shape: tuple[int, ...]
    tile_shape: tuple[int, ...]
    dtype: np.dtype = UINT16
    fill_value: int = 0

    def read(self, region):
        return np.zeros([s.stop - s.start for s in region], self.dtype)


@dataclass(frozen=True)
class FakePassThroughLevel(FakeLevel):
    raw_chunk_format: RawChunkFormat | None = None

    def read_raw_chunk(self, coords):
        return None


SETTINGS = ChunkSettings()
YX = ("y", "x")


@pytest.mark.parametrize(("tile", "chunk"), [(256, 256), (128, 128), (1024, 1024), (2048, 2048)])
def test_square_power_of_two_tiles_become_chunks(tile, chunk):
    level = FakeLevel((4096, 4096), (tile, tile))
    assert choose_chunk_shape("yx", level, SETTINGS) == (chunk, chunk)


@pytest.mark.parametrize("tile", [(240, 240), (256, 128), (64, 64), (4096, 4096), (1, 4096)])
def test_other_tiles_give_the_default_chunk(tile):
    level = FakeLevel((4096, 4096), tile)
    assert choose_chunk_shape("yx", level, SETTINGS) == (512, 512)


def test_small_image_gets_one_chunk_of_the_next_power_of_two():
    assert choose_chunk_shape("yx", FakeLevel((100, 70), (100, 70)), SETTINGS) == (128, 128)


def test_t_and_c_are_chunked_by_one():
    level = FakeLevel((3, 4, 1024, 1024), (1, 1, 256, 256))
    assert choose_chunk_shape("tcyx", level, SETTINGS)[:2] == (1, 1)


def test_z_is_chunked_by_the_setting():
    level = FakeLevel((100, 1024, 1024), (1, 256, 256))
    assert choose_chunk_shape("zyx", level, ChunkSettings(z=32))[0] == 32


def test_z_chunk_never_exceeds_the_depth():
    level = FakeLevel((5, 1024, 1024), (1, 256, 256))
    assert choose_chunk_shape("zyx", level, ChunkSettings(z=32))[0] == 5


def test_a_plane_per_page_stack_stays_one_plane_per_chunk():
    level = FakeLevel((100, 1024, 1024), (1, 1024, 1024))
    assert choose_chunk_shape("zyx", level, SETTINGS) == (1, 1024, 1024)


def test_a_volume_chunked_in_z_is_served_in_its_own_blocks():
    level = FakeLevel((512, 1024, 1024), (64, 128, 128))  # 2 MiB of uint16
    assert choose_chunk_shape("zyx", level, SETTINGS) == (64, 128, 128)


def test_volumetric_chunks_smaller_than_min_yx_are_followed():
    level = FakeLevel((512, 1024, 1024), (64, 64, 64))
    assert choose_chunk_shape("tczyx", FakeLevel((2, 3, *level.shape), (1, 1, 64, 64, 64)), SETTINGS) == (
        1,
        1,
        64,
        64,
        64,
    )


@pytest.mark.parametrize(
    ("tile", "dtype", "chunk"),
    [
        ((128, 128, 128), "uint16", (64, 128, 128)),  # 4 MiB: depth halves first
        ((64, 256, 256), "uint16", (64, 128, 128)),  # 8 MiB: y/x halve (the longer)
        ((64, 128, 128), "float64", (64, 64, 64)),
        ((32, 100, 100), "uint16", (32, 128, 128)),  # y/x not servable: 512, then halved
    ],
)
def test_volumetric_chunks_are_kept_within_the_byte_budget(tile, dtype, chunk):
    level = FakeLevel((1024, 4096, 4096), tile, np.dtype(dtype))
    chosen = choose_chunk_shape("zyx", level, SETTINGS)
    assert chosen == chunk
    assert np.prod(chosen) * np.dtype(dtype).itemsize <= SETTINGS.target_bytes


def test_the_byte_budget_is_a_setting():
    level = FakeLevel((512, 1024, 1024), (64, 128, 128))
    assert choose_chunk_shape("zyx", level, ChunkSettings(target_bytes="512 KiB")) == (64, 64, 64)


def test_a_set_z_overrides_the_source_depth_and_the_budget():
    level = FakeLevel((512, 1024, 1024), (64, 128, 128))
    assert choose_chunk_shape("zyx", level, ChunkSettings(z=1)) == (1, 128, 128)
    assert choose_chunk_shape("zyx", level, ChunkSettings(z=256)) == (256, 128, 128)


def test_a_thin_volume_gets_its_depth_in_one_chunk():
    level = FakeLevel((20, 1024, 1024), (64, 128, 128))
    assert choose_chunk_shape("zyx", level, SETTINGS) == (20, 128, 128)


@pytest.mark.parametrize(
    ("tile", "max_z", "chunk"),
    [
        ((64, 128, 128), 16, (16, 128, 128)),  # a quarter of each stored chunk
        ((64, 128, 128), 64, (64, 128, 128)),
        ((64, 128, 128), 20, (16, 128, 128)),  # halved, so slabs stay within one stored chunk
        ((24, 128, 128), 16, (12, 128, 128)),
        ((17, 128, 128), 16, (9, 128, 128)),  # halving rounds up
        ((1, 1024, 1024), 16, (1, 1024, 1024)),  # a plane stack stays in planes
        ((64, 128, 128), 1, (1, 128, 128)),
    ],
)
def test_max_z_halves_deeper_chunks_until_they_fit(tile, max_z, chunk):
    level = FakeLevel((512, 1024, 1024), tile)
    assert choose_chunk_shape("zyx", level, ChunkSettings(max_z=max_z)) == chunk


def test_max_z_bounds_a_set_z_and_leaves_images_without_z_alone():
    level = FakeLevel((512, 1024, 1024), (64, 128, 128))
    assert choose_chunk_shape("zyx", level, ChunkSettings(z=64, max_z=16)) == (16, 128, 128)
    assert choose_chunk_shape("yx", FakeLevel((4096, 4096), (256, 256)), ChunkSettings(max_z=1)) == (256, 256)


def test_raw_chunks_deeper_than_max_z_are_not_passed_through():
    raw = RawChunkFormat((64, 128, 128), "zstd", "little")
    level = FakePassThroughLevel((512, 1024, 1024), (64, 128, 128), raw_chunk_format=raw)
    assert raw_chunk_format(level, ChunkSettings(max_z=64), ("z", *YX)) == raw
    assert raw_chunk_format(level, ChunkSettings(max_z=32), ("z", *YX)) is None


def test_raw_format_is_used_for_servable_tiles():
    raw = RawChunkFormat((256, 256), "zstd", "little")
    assert (
        raw_chunk_format(FakePassThroughLevel((1024, 1024), (256, 256), raw_chunk_format=raw), SETTINGS, YX)
        == raw
    )


def test_raw_format_is_ignored_when_pass_through_is_off():
    raw = RawChunkFormat((256, 256), None, "little")
    level = FakePassThroughLevel((1024, 1024), (256, 256), raw_chunk_format=raw)
    assert raw_chunk_format(level, ChunkSettings(passthrough=False), YX) is None


@pytest.mark.parametrize("chunk", [(240, 240), (256, 128), (64, 64)])
def test_raw_format_is_ignored_for_unservable_tiles(chunk):
    level = FakePassThroughLevel((1024, 1024), chunk, raw_chunk_format=RawChunkFormat(chunk, None, "little"))
    assert raw_chunk_format(level, SETTINGS, YX) is None


def test_raw_format_of_the_wrong_rank_is_ignored():
    raw = RawChunkFormat((1, 256, 256), None, "little")
    assert (
        raw_chunk_format(FakePassThroughLevel((1024, 1024), (256, 256), raw_chunk_format=raw), SETTINGS, YX)
        is None
    )


def test_plain_level_has_no_raw_format():
    assert raw_chunk_format(FakeLevel((1024, 1024), (256, 256)), SETTINGS, YX) is None


# -- build_tree ---------------------------------------------------------------------------------------


def image(name="img", shapes=((300, 200), (150, 100))):
    return Image(
        name=name,
        axes=(Axis("y", "micrometer"), Axis("x", "micrometer")),
        levels=tuple(FakeLevel(s, (64, 64)) for s in shapes),
        scale=(0.5, 0.5),
    )


def source(*images, ome_xml=None):
    return Source(path=Path("x.tif"), format="TIFF", images=images, ome_xml=ome_xml)


def test_single_image_is_a_group_at_the_root():
    tree = build_tree(source(image()), SETTINGS)
    assert sorted(tree.documents) == ["0/zarr.json", "1/zarr.json", "zarr.json"]


def test_multi_image_uses_the_bioformats2raw_layout():
    tree = build_tree(source(image("a"), image("b")), SETTINGS)
    assert {"zarr.json", "OME/zarr.json", "0/zarr.json", "0/0/zarr.json", "1/1/zarr.json"} <= set(
        tree.documents
    )


def test_bioformats2raw_root_declares_the_layout():
    tree = build_tree(source(image("a"), image("b")), SETTINGS)
    assert json.loads(tree.documents["zarr.json"])["attributes"]["ome"]["bioformats2raw.layout"] == 3


def test_ome_xml_is_kept_verbatim():
    tree = build_tree(source(image(), ome_xml="<OME/>"), SETTINGS)
    assert tree.documents[OME_XML_KEY] == b"<OME/>"


def test_array_document_matches_the_level():
    tree = build_tree(source(image()), SETTINGS)
    array = json.loads(tree.documents["1/zarr.json"])
    assert (array["shape"], array["dimension_names"]) == ([150, 100], ["y", "x"])


def test_find_array_splits_the_chunk_key():
    tree = build_tree(source(image()), SETTINGS)
    node, key = tree.find_array("1/c/0/0")
    assert (node.path, key) == ("1", "c/0/0")


@pytest.mark.parametrize("key", ["2/c/0/0", "zarr.json", "1/0/0", "c/0/0"])
def test_find_array_of_a_non_chunk_key_is_none(key):
    assert build_tree(source(image()), SETTINGS).find_array(key) is None


@dataclass(frozen=True)
class FakeShuffledLevel(FakeLevel):
    shuffled_chunk_shape: tuple[int, ...] | None = None


def volume_source(level):
    axes = (Axis("z", "micrometer"), Axis("y", "micrometer"), Axis("x", "micrometer"))
    return source(Image(name="v", axes=axes, levels=(level,), scale=(1.0, 1.0, 1.0)))


@pytest.mark.parametrize(
    ("settings", "dtype", "expected"),
    [
        (ChunkSettings(), UINT16, "blosc"),  # auto, served chunks = the shuffled stored chunks
        (ChunkSettings(z=16), UINT16, "blosc"),  # slabs of them: runs of their byte planes
        (ChunkSettings(z=24), UINT16, "zstd"),  # other served chunks: each would need a shuffle
        (ChunkSettings(yx=64, min_yx=64, max_yx=64), UINT16, "zstd"),
        (ChunkSettings(), np.dtype("uint8"), "zstd"),  # bytes: blosc would bit-shuffle
        (ChunkSettings(codec="zstd"), UINT16, "zstd"),  # as set
        (ChunkSettings(codec="gzip"), UINT16, "gzip"),
    ],
)
def test_auto_serves_blosc_zstd_only_from_shuffled_stored_chunks(settings, dtype, expected):
    level = FakeShuffledLevel((256, 1024, 1024), (64, 128, 128), dtype, shuffled_chunk_shape=(64, 128, 128))
    node = build_tree(volume_source(level), settings).arrays["0"]
    assert node.encoding.to_json(dtype)[-1]["name"] == expected
    assert node.shuffled == (expected == "blosc")


def test_auto_is_zstd_for_levels_without_shuffled_chunks():
    level = FakeLevel((256, 1024, 1024), (64, 128, 128))
    nodes = build_tree(volume_source(level), ChunkSettings()).arrays.values()
    assert {n.encoding.to_json(UINT16)[-1]["name"] for n in nodes} == {"zstd"}
    assert not any(n.shuffled for n in nodes)
