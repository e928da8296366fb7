"""gateway.levels.variants: which images get a float32 variant, and the level that converts."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.base import Axis, Image, full_region
from gateway.levels.variants import VARIANT_NAME, Float32Level, image_groups, is_variant_group, needs_variant
from tests.levels import ArrayLevel


def image(dtype: str) -> Image:
    data = np.arange(32 * 32).reshape(32, 32).astype(dtype)
    return Image("img", (Axis("y"), Axis("x")), (ArrayLevel(data, (16, 16)),), (1.0, 1.0))


@pytest.mark.parametrize("dtype", ["float64", "int64", "uint64", "float16", ">f8"])
def test_types_no_viewer_shows_need_a_variant(dtype):
    assert needs_variant(np.dtype(dtype))


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", ">u2"])
def test_viewable_types_need_none(dtype):
    assert not needs_variant(np.dtype(dtype))


def test_float32_level_converts_on_read():
    data = np.array([[1.5, -2.25], [1e300, 3.0]])
    level = Float32Level(ArrayLevel(data, fill_value=np.nan))
    assert level.dtype == np.float32
    out = level.read(full_region(level.shape))
    assert out.dtype == np.float32
    with np.errstate(over="ignore"):
        want = data.astype(np.float32)
    np.testing.assert_array_equal(out, want)
    assert np.isnan(level.fill_value)


def test_float32_level_keeps_shape_and_tiles():
    level = Float32Level(ArrayLevel(np.zeros((5, 7), dtype=np.int64), (16, 16)))
    assert (level.shape, level.tile_shape) == ((5, 7), (16, 16))


def test_single_image_with_variant():
    groups = list(image_groups([image("float64")]))
    assert [prefix for prefix, _ in groups] == ["", f"{VARIANT_NAME}/"]
    assert groups[1][1].levels[0].dtype == np.float32


def test_several_images_get_numbered_groups_and_variants_inside():
    groups = [prefix for prefix, _ in image_groups([image("uint8"), image("int64")])]
    assert groups == ["0/", "1/", f"1/{VARIANT_NAME}/"]


def test_viewable_image_has_no_variant():
    assert [prefix for prefix, _ in image_groups([image("uint16")])] == [""]


def test_is_variant_group():
    assert is_variant_group(VARIANT_NAME) and is_variant_group(f"2/{VARIANT_NAME}")
    assert not is_variant_group("") and not is_variant_group("0")
