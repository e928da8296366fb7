"""gateway.levels.thumbnail: level choice, windows, colours, compositing, resampling, files."""

from __future__ import annotations

import itertools

import imagecodecs
import numpy as np
import pytest

from gateway.levels import thumbnail
from gateway.levels.budget import WorkCancelled, WorkToken, bound
from gateway.levels.thumbnail import ChannelStyle, Rendering
from tests.thumbnail_reference import area_average, reference_thumbnail

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def style(color: tuple[int, int, int], start: float, end: float, active: bool = True) -> ChannelStyle:
    return ChannelStyle(color, start, end, active)


def render_all(
    planes: np.ndarray, rendering: Rendering, band_bytes: int = thumbnail.BAND_BYTES
) -> np.ndarray:
    first, stop = rendering.channels.start, rendering.channels.stop
    return thumbnail.render(
        lambda a, b: planes[first:stop, a:b], planes.shape[1], planes.shape[2], rendering, band_bytes
    )


# -- which level, what size -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sides", "chosen"),
    [
        ([1000, 500, 250, 125], 2),  # 250 is nearest to 256 from above
        ([600, 300, 150], 1),
        ([448, 224, 112], 1),  # 224 (7/8 of 256) is still large enough
        ([446, 223], 0),  # 223 is not: its parent is read and scaled down
        ([200, 100], 0),  # smaller than a thumbnail: the finest level, never enlarged
        ([40_000], 0),
    ],
)
def test_the_coarsest_level_that_covers_the_thumbnail_is_read(sides, chosen):
    assert thumbnail.choose_level(sides) == chosen


@pytest.mark.parametrize(
    ("plane", "size"),
    [
        ((512, 256), (256, 128)),
        ((100, 50), (100, 50)),
        ((1000, 3), (256, 1)),
        ((3, 1000), (1, 256)),
        ((1, 1), (1, 1)),
    ],
)
def test_the_longer_side_is_fitted_to_256_and_never_enlarged(plane, size):
    assert thumbnail.output_shape(*plane) == size


# -- styles from omero ----------------------------------------------------------------------


def test_styles_come_from_omero_with_defaults_for_what_it_lacks():
    omero = {
        "channels": [
            {"color": "FF8000", "window": {"start": 10, "end": 20}},
            {"color": "not a colour", "window": {"start": "x", "end": None}},
            {"active": False},
            "garbage",
        ]
    }
    styles = thumbnail.styles_from_omero(omero, 5)
    assert styles[0] == style((255, 128, 0), 10.0, 20.0)
    assert styles[1] == style(WHITE, 0.0, 1.0)  # unusable colour and window: defaults
    assert styles[2] == style(WHITE, 0.0, 1.0, active=False)
    assert styles[3] == styles[4] == style(WHITE, 0.0, 1.0)  # garbage, and absent


# -- windows ----------------------------------------------------------------------------------


def test_a_window_maps_start_to_0_and_end_to_1_and_clips_outside():
    values = np.array([0, 100, 150, 200, 300], dtype=np.uint16)
    assert thumbnail.normalized(values, 100, 200).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]


def test_an_empty_window_is_a_step_at_its_start():
    values = np.array([4, 5, 6], dtype=np.int16)
    assert thumbnail.normalized(values, 5, 5).tolist() == [0.0, 1.0, 1.0]


def test_nan_is_dark_and_infinities_clip():
    values = np.array([np.nan, -np.inf, np.inf, 0.5], dtype=np.float32)
    assert thumbnail.normalized(values, 0.0, 1.0).tolist() == [0.0, 0.0, 1.0, 0.5]


@pytest.mark.parametrize(
    ("dtype", "values", "window"),
    [
        ("uint8", [0, 64, 128, 255], (0, 255)),
        ("uint16", [100, 1000, 5000, 65535], (1000, 5000)),
        ("int16", [-3000, -1000, 0, 3000], (-1000, 1000)),
        ("float32", [-1.5, 0.0, 0.25, 2.0], (0.0, 1.0)),
        ("uint32", [4_000_000_000, 4_000_000_050, 4_000_000_100, 0], (4_000_000_000, 4_000_000_100)),
    ],
)
def test_one_grey_channel_in_each_dtype(dtype, values, window):
    planes = np.array(values, dtype=dtype).reshape(1, 2, 2)
    picture = render_all(planes, Rendering(((0, style(WHITE, *window)),)))
    expected = reference_thumbnail(planes, ["FFFFFF"], [window])
    assert picture.dtype == np.uint8 and picture.shape == (2, 2, 3)
    np.testing.assert_array_equal(picture, expected)
    assert (picture[..., 0] == picture[..., 1]).all() and (picture[..., 1] == picture[..., 2]).all()


# -- colours, compositing ---------------------------------------------------------------------


def test_channels_add_up_in_their_colours():
    planes = np.zeros((2, 1, 3), dtype=np.uint16)
    planes[0] = [[0, 50, 100]]  # red, window 0-100
    planes[1] = [[100, 50, 0]]  # green, window 0-100
    rendering = Rendering(((0, style(RED, 0, 100)), (1, style(GREEN, 0, 100))))
    picture = render_all(planes, rendering)
    assert picture[0].tolist() == [[0, 255, 0], [128, 128, 0], [255, 0, 0]]


def test_the_sum_of_channels_is_clipped_not_wrapped():
    planes = np.full((2, 1, 1), 255, dtype=np.uint8)
    rendering = Rendering(((0, style((255, 128, 0), 0, 255)), (1, style((255, 128, 0), 0, 255))))
    assert render_all(planes, rendering)[0, 0].tolist() == [255, 255, 0]


def test_five_channels_match_the_reference():
    rng = np.random.default_rng(1)
    planes = rng.integers(0, 4096, (5, 37, 53), dtype=np.uint16)
    colors = ["FF0000", "00FF00", "0000FF", "FF00FF", "FFFF00"]
    windows = [(0, 4095), (500, 3000), (1000, 1000), (4000, 100), (0, 8000)]
    styles = tuple(
        thumbnail.styles_from_omero(
            {
                "channels": [
                    {"color": c, "window": {"start": s, "end": e}}
                    for c, (s, e) in zip(colors, windows, strict=True)
                ]
            },
            5,
        )
    )
    rendering = thumbnail.rendering_for(styles, np.dtype("uint16"))
    np.testing.assert_array_equal(render_all(planes, rendering), reference_thumbnail(planes, colors, windows))


def test_inactive_channels_are_left_out_unless_none_is_active():
    planes = np.full((2, 1, 1), 10, dtype=np.uint8)
    styles = (style(RED, 0, 10), style(GREEN, 0, 10, active=False))
    assert render_all(planes, thumbnail.rendering_for(styles, planes.dtype))[0, 0].tolist() == [255, 0, 0]
    hidden = (style(RED, 0, 10, active=False), style(GREEN, 0, 10, active=False))
    assert render_all(planes, thumbnail.rendering_for(hidden, planes.dtype))[0, 0].tolist() == [255, 255, 0]


def test_one_channel_alone_is_shown_in_its_colour_even_when_inactive():
    planes = np.stack([np.full((1, 2), 10), np.full((1, 2), 5), np.full((1, 2), 7)]).astype(np.uint8)
    styles = (style(RED, 0, 10), style(GREEN, 0, 10, active=False), style(BLUE, 0, 10))
    rendering = thumbnail.rendering_for(styles, planes.dtype, channel=1)
    assert rendering.channels == range(1, 2)
    picture = thumbnail.render(lambda a, b: planes[1:2, a:b], 1, 2, rendering)
    assert picture[0, 0].tolist() == [0, 128, 0]


# -- RGB(A) pictures ----------------------------------------------------------------------------


def rgb_styles(count: int, window: tuple[float, float] = (30, 90)) -> tuple[ChannelStyle, ...]:
    colors = [RED, GREEN, BLUE, WHITE][:count]
    return tuple(style(c, *window) for c in colors)  # estimated windows that must be ignored


def test_an_rgb_picture_is_shown_as_it_is_whatever_its_windows():
    rng = np.random.default_rng(2)
    planes = rng.integers(0, 256, (3, 20, 30), dtype=np.uint8)
    rendering = thumbnail.rendering_for(rgb_styles(3), planes.dtype)
    assert rendering.alpha is None
    np.testing.assert_array_equal(render_all(planes, rendering), np.moveaxis(planes, 0, -1))


def test_an_rgba_picture_keeps_its_alpha():
    rng = np.random.default_rng(3)
    planes = rng.integers(0, 256, (4, 10, 12), dtype=np.uint8)
    rendering = thumbnail.rendering_for(rgb_styles(4), planes.dtype)
    assert rendering.alpha == 3
    picture = render_all(planes, rendering)
    assert picture.shape == (10, 12, 4)
    np.testing.assert_array_equal(picture, np.moveaxis(planes, 0, -1))


def test_sixteen_bit_channels_in_rgb_colours_are_windowed_like_any_other():
    planes = np.full((3, 1, 1), 60, dtype=np.uint16)
    rendering = thumbnail.rendering_for(rgb_styles(3), planes.dtype)
    assert render_all(planes, rendering)[0, 0].tolist() == [128, 128, 128]  # (60-30)/(90-30)


# -- resampling, bands ------------------------------------------------------------------------


def test_area_averaging_matches_the_reference_for_odd_sizes():
    rng = np.random.default_rng(4)
    picture = rng.random((517, 301, 3))
    np.testing.assert_allclose(thumbnail.box_mean(picture, 256, 149), area_average(picture, 256, 149))


@pytest.mark.parametrize("band_bytes", [1, 50_000, thumbnail.BAND_BYTES])
def test_rows_are_read_in_bands_once_each_and_give_the_same_picture(band_bytes):
    rng = np.random.default_rng(5)
    planes = rng.integers(0, 1000, (2, 700, 300), dtype=np.uint16)
    rendering = Rendering(((0, style(RED, 0, 999)), (1, style(GREEN, 100, 900))))
    bands: list[tuple[int, int]] = []

    def read_rows(start: int, stop: int) -> np.ndarray:
        bands.append((start, stop))
        return planes[:, start:stop]

    picture = thumbnail.render(read_rows, 700, 300, rendering, band_bytes)
    assert picture.shape == (256, 110, 3)
    assert bands[0][0] == 0 and bands[-1][1] == 700
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bands))  # contiguous, no re-read
    if band_bytes == 1:
        assert len(bands) == 256  # one output row per band at least
    expected = reference_thumbnail(planes, ["FF0000", "00FF00"], [(0, 999), (100, 900)])
    assert np.abs(picture.astype(int) - expected).max() <= 1  # float sums in another order


def test_a_cancelled_rendering_stops_at_the_next_band():
    token = WorkToken(60.0)
    planes = np.zeros((1, 600, 10), dtype=np.uint8)
    bands = []

    def read_rows(start: int, stop: int) -> np.ndarray:
        bands.append(start)
        token.cancel()  # the client went away while the first band was read
        return planes[:, start:stop]

    rendering = Rendering(((0, style(WHITE, 0, 1)),))
    work = bound(token, lambda: thumbnail.render(read_rows, 600, 10, rendering, band_bytes=1))
    with pytest.raises(WorkCancelled):
        work()
    assert bands == [0]


# -- files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [3, 4])
def test_a_png_decodes_to_the_same_pixels(depth):
    rng = np.random.default_rng(6)
    picture = rng.integers(0, 256, (31, 17, depth), dtype=np.uint8)
    data = thumbnail.encode(picture, "png")
    assert data.startswith(b"\x89PNG")
    np.testing.assert_array_equal(imagecodecs.imread(data), picture)


@pytest.mark.parametrize("depth", [3, 4])
def test_a_webp_decodes_to_nearly_the_same_pixels(depth):
    y, x = np.mgrid[0:64, 0:96]
    picture = np.stack([y * 4, x * 2, (x + y), 128 + (x % 2)][:depth], axis=-1).astype(np.uint8)
    data = thumbnail.encode(picture, "webp")
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    decoded = imagecodecs.imread(data)
    assert decoded.shape == picture.shape
    assert np.abs(decoded.astype(int) - picture).mean() < 3  # lossy, quality 90
