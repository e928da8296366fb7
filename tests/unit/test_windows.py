"""gateway.levels.windows: display windows estimated from one bounded plane."""

from __future__ import annotations

import numpy as np

from adapters.base import Axis, Channel, Image, Window
from gateway.levels.windows import channel_window, sample_region, with_estimated_windows


class Plane:
    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.tile_shape = data.shape
        self.fill_value = 0
        self.reads = 0

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        self.reads += 1
        return self.data[region]


def image(data: np.ndarray, names: str, channels: tuple[Channel, ...] = ()) -> tuple[Image, Plane]:
    level = Plane(data)
    axes = tuple(Axis(n) for n in names)  # type: ignore[arg-type]
    return Image("i", axes, (level,), (1.0,) * len(names), channels=channels), level


def test_sample_is_the_middle_plane_of_the_first_time_point():
    level = Plane(np.zeros((3, 2, 9, 4, 4), np.uint8))
    assert sample_region(("t", "c", "z", "y", "x"), level) == (
        slice(0, 1),
        slice(0, 2),
        slice(4, 5),
        slice(0, 4),
        slice(0, 4),
    )


def test_integer_window_spans_the_type_and_the_percentiles():
    values = np.arange(1000, dtype=np.uint16)
    window = channel_window(values, values.dtype)
    assert window == Window(0, 65535, 0, 999)
    assert channel_window(np.full(10, 7, np.uint8), np.dtype(np.uint8)) is None


def test_float_window_ignores_nan():
    values = np.array([np.nan, 0.0, 0.5, 1.0, np.inf], np.float32)
    window = channel_window(values, values.dtype)
    assert window is not None and window.min == 0.0 and window.max == 1.0


def test_known_windows_are_kept_and_only_missing_ones_estimated():
    data = np.stack([np.arange(100, dtype=np.uint8).reshape(10, 10)] * 2)
    known = Window(0, 255, 5, 50)
    img, level = image(data, "cyx", (Channel(label="a", window=known), Channel(label="b")))
    out = with_estimated_windows(img, level, 1 << 20)
    assert out.channels[0].window == known
    assert out.channels[1].window == Window(0, 255, 0, 99)
    assert out.channels[1].label == "b"


def test_a_plane_over_the_budget_is_not_read():
    img, level = image(np.zeros((100, 100), np.uint16), "yx")
    assert with_estimated_windows(img, level, 100) is img
    assert level.reads == 0


def test_a_plane_of_deep_source_chunks_counts_them_whole():
    data = np.zeros((64, 32, 32), np.uint8)
    img, level = image(data, "zyx")
    level.tile_shape = (64, 32, 32)  # one 64-plane chunk: reading the middle plane decodes it all
    assert with_estimated_windows(img, level, 32 * 32 * 10) is img
    assert level.reads == 0
