"""gateway.ngff.ome: OME-Zarr 0.5 image attributes (multiscales, omero) and the bioformats2raw layout."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np
import pytest

from adapters.base import Axis, Channel, Image, Window
from gateway.ngff.ome import (
    DEFAULT_COLORS,
    bioformats2raw_attributes,
    default_window,
    downsample_factor,
    image_attributes,
    level_scales,
    series_attributes,
)

HEX6 = re.compile(r"[0-9A-F]{6}")


UINT16 = np.dtype("uint16")


@dataclass(frozen=True)
class FakeLevel:
    shape: tuple[int, ...]
    dtype: np.dtype = UINT16
    fill_value: int = 0

    @property
    def tile_shape(self):
        return self.shape

    def read(self, region):
        return np.zeros([s.stop - s.start for s in region], self.dtype)


UNITS = {"t": "second", "z": "micrometer", "y": "micrometer", "x": "micrometer"}


def image(
    shapes=((3, 2967, 2220), (3, 1483, 1110), (3, 741, 555)), axes="cyx", channels=(), units=UNITS, **kwargs
):
    options = dict(
        name="img",
        axes=tuple(Axis(a, units.get(a)) for a in axes),
        levels=tuple(FakeLevel(s) for s in shapes),
        scale=tuple(1.0 if a == "c" else 0.5 for a in axes),
        channels=channels,
    )
    options.update(kwargs)
    return Image(**options)


def attrs(img):
    return image_attributes(img, [str(i) for i in range(len(img.levels))])["ome"]


@pytest.mark.parametrize(
    ("full", "reduced", "factor"),
    [
        (2967, 1483, 2.0),  # floor of a half
        (2967, 1484, 2.0),  # ceil of a half
        (2967, 741, 4.0),
        (2967, 742, 4.0),
        (100, 50, 2.0),
        (100, 33, 3.0),  # floor of a third: a factor-3 pyramid
        (3, 1, 3.0),
        (5, 5, 1.0),
        (5, 0, 1.0),
    ],
)
def test_downsample_factor_is_integer_for_floor_or_ceil(full, reduced, factor):
    assert downsample_factor(full, reduced) == factor


@pytest.mark.parametrize(("full", "reduced"), [(100, 40), (100, 30), (1000, 300)])
def test_downsample_factor_is_exact_ratio_otherwise(full, reduced):
    assert downsample_factor(full, reduced) == pytest.approx(full / reduced)


def test_level_scales_multiply_the_pixel_size():
    assert level_scales(image()) == [[1.0, 0.5, 0.5], [1.0, 1.0, 1.0], [1.0, 2.0, 2.0]]


def test_channel_axis_is_never_scaled():
    assert all(scale[0] == 1.0 for scale in level_scales(image()))


def test_version_is_the_string_0_5():
    assert attrs(image())["version"] == "0.5"


def test_datasets_in_order_with_one_scale_each():
    datasets = attrs(image())["multiscales"][0]["datasets"]
    assert [d["path"] for d in datasets] == ["0", "1", "2"]
    assert [[t["type"] for t in d["coordinateTransformations"]] for d in datasets] == [["scale"]] * 3


def test_scales_do_not_decrease_down_the_pyramid():
    datasets = attrs(image())["multiscales"][0]["datasets"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in datasets]
    pairs = itertools.pairwise(scales)
    assert all(a <= b for lower, higher in pairs for a, b in zip(lower, higher, strict=True))


def test_translation_follows_the_scale_when_present():
    img = image(translation=(0.0, 10.0, 20.0))
    transforms = attrs(img)["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    assert [t["type"] for t in transforms] == ["scale", "translation"]


def test_zero_translation_is_omitted():
    img = image(translation=(0.0, 0.0, 0.0))
    transforms = attrs(img)["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    assert [t["type"] for t in transforms] == ["scale"]


def test_axes_have_types_and_units():
    axes = attrs(image(shapes=((2, 4, 3, 8, 8),), axes="tczyx"))["multiscales"][0]["axes"]
    assert axes == [
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]


def test_axis_without_unit_has_no_unit_key():
    img = image(shapes=((8, 8),), axes="yx", units={})
    axes = attrs(img)["multiscales"][0]["axes"]
    assert all("unit" not in axis for axis in axes)


def test_omero_has_one_channel_per_c():
    assert len(attrs(image())["omero"]["channels"]) == 3


def test_omero_default_colours_are_six_hex_digits():
    colours = [c["color"] for c in attrs(image())["omero"]["channels"]]
    assert all(HEX6.fullmatch(c) for c in colours)


def test_omero_default_colours_differ_between_channels():
    colours = [c["color"] for c in attrs(image())["omero"]["channels"]]
    assert len(set(colours)) == 3


def test_every_default_colour_is_six_hex_digits():
    assert all(HEX6.fullmatch(c) for c in DEFAULT_COLORS)


def test_single_channel_is_white():
    img = image(shapes=((8, 8),), axes="yx")
    assert [c["color"] for c in attrs(img)["omero"]["channels"]] == ["FFFFFF"]


def test_known_channels_are_used():
    channels = (Channel("DAPI", "0000FF"), Channel("GFP", "00FF00"), Channel("RFP", "FF0000", active=False))
    omero = attrs(image(channels=channels))["omero"]["channels"]
    assert [(c["label"], c["color"], c["active"]) for c in omero] == [
        ("DAPI", "0000FF", True),
        ("GFP", "00FF00", True),
        ("RFP", "FF0000", False),
    ]


def test_window_has_min_max_start_end():
    window = attrs(image())["omero"]["channels"][0]["window"]
    assert window == {"min": 0.0, "max": 65535.0, "start": 0.0, "end": 65535.0}


def test_known_window_is_used():
    channels = tuple(Channel(window=Window(0, 4095, 100, 2000)) for _ in range(3))
    window = attrs(image(channels=channels))["omero"]["channels"][1]["window"]
    assert window == {"min": 0, "max": 4095, "start": 100, "end": 2000}


def test_float_default_window_is_unit_range():
    assert default_window(np.dtype("f4")) == Window(0.0, 1.0, 0.0, 1.0)


def test_signed_default_window_spans_the_type():
    assert default_window(np.dtype("i1")) == Window(-128.0, 127.0, -128.0, 127.0)


def test_channels_of_the_wrong_count_are_ignored():
    omero = attrs(image(channels=(Channel("only one"),)))["omero"]["channels"]
    assert [c["label"] for c in omero] == ["Channel 0", "Channel 1", "Channel 2"]


def test_default_z_is_the_middle_plane():
    img = image(shapes=((9, 8, 8),), axes="zyx")
    assert attrs(img)["omero"]["rdefs"]["defaultZ"] == 4


def test_bioformats2raw_layout_attributes():
    assert bioformats2raw_attributes() == {"ome": {"version": "0.5", "bioformats2raw.layout": 3}}


def test_series_attributes_list_the_groups():
    assert series_attributes(["0", "1"]) == {"ome": {"version": "0.5", "series": ["0", "1"]}}
