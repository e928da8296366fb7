"""Thumbnails: one plane of an image, composited as a viewer shows it, at most 256 px.

Pure numpy (and imagecodecs for the file format): no store, no HTTP. The store
(``gateway.store.thumbnails``) decides which level and plane to read and hands the rows
over in bands; this module turns them into an 8-bit picture. The rules (the tests'
independent numpy rendering follows exactly these):

- **Level.** The coarsest level whose longer spatial side is at least
  ``TARGET_SIDE * MIN_COVERAGE`` px (a 240 px level is nearer to 256 than its 480 px
  parent); the finest when none is that large.
- **Size.** The level's plane scaled to fit ``TARGET_SIDE`` on its longer side, aspect
  kept, never enlarged (a browser enlarges as well as we could).
- **Plane.** The first t, the middle z (``size // 2`` of that level), every channel.
- **Colour.** Each channel's value ``v`` becomes ``clip((v - start) / (end - start), 0, 1)``
  with its ``omero`` window (a step at ``start`` when ``end <= start``; NaN is 0), times
  its ``omero`` colour; channels add up and the sum is clipped to 1 (additive blending,
  as Neuroglancer and Viv show them). Inactive channels are left out unless none is
  active. An RGB(A) image (8-bit, channels coloured red, green, blue, then alpha) is shown
  as it is: windows are ignored, and the fourth channel is the alpha channel.
- **Resampling.** Output pixel ``(i, j)`` is the mean of the composited pixels in rows
  ``i*H//h`` to ``(i+1)*H//h`` and columns ``j*W//w`` to ``(j+1)*W//w`` (area averaging,
  no aliasing), then rounded to 8 bits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import imagecodecs
import numpy as np

from gateway.levels.budget import checkpoint

#: Longer side of a thumbnail, in pixels.
TARGET_SIDE = 256
#: A level whose longer side is this share of ``TARGET_SIDE`` is large enough.
MIN_COVERAGE = 0.875
#: Composited rows are produced in bands of about this many bytes of float64 values, so
#: a plane with no pyramid (a huge level 0) never sits in memory whole.
BAND_BYTES = 16 * 1024**2
#: Colours of an RGB(A) image's channels, as the adapters name them.
RGB_COLORS = ("FF0000", "00FF00", "0000FF")
_HEX = re.compile(r"[0-9A-Fa-f]{6}")

Format = Literal["png", "webp"]
FORMATS: tuple[Format, ...] = ("png", "webp")
MEDIA_TYPES: dict[Format, str] = {"png": "image/png", "webp": "image/webp"}


@dataclass(frozen=True, slots=True)
class ChannelStyle:
    """How one channel is shown: its colour (0-255 per component) and display window."""

    color: tuple[int, int, int]
    start: float
    end: float
    active: bool = True


@dataclass(frozen=True, slots=True)
class Rendering:
    """How the channels of a plane become a picture: which channels add up (in their
    styles), and which one, if any, is the alpha channel (RGBA images)."""

    styles: tuple[tuple[int, ChannelStyle], ...]  # (channel index, style), in order
    alpha: int | None = None

    @property
    def channels(self) -> range:
        """The channels to read: from the first one used to the last."""
        used = [index for index, _ in self.styles] + ([] if self.alpha is None else [self.alpha])
        return range(min(used), max(used) + 1)


def choose_level(sides: Sequence[int], target: int = TARGET_SIDE) -> int:
    """Index of the level to read, from each level's longer spatial side (finest first)."""
    enough = math.ceil(target * MIN_COVERAGE)
    chosen = 0
    for index, side in enumerate(sides):
        if side >= enough:
            chosen = index
    return chosen


def output_shape(height: int, width: int, target: int = TARGET_SIDE) -> tuple[int, int]:
    """(height, width) of the thumbnail of a ``height`` x ``width`` plane."""
    longer = max(height, width)
    if longer <= target:
        return height, width
    return max(1, round(height * target / longer)), max(1, round(width * target / longer))


def parse_color(value: object) -> tuple[int, int, int]:
    """An ``omero`` colour (``RRGGBB``) as components; white when it is not one."""
    text = str(value or "")
    if not _HEX.fullmatch(text):
        return (255, 255, 255)
    return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))


def styles_from_omero(omero: Mapping[str, Any] | None, count: int) -> tuple[ChannelStyle, ...]:
    """The style of each of ``count`` channels from a served ``omero`` block (white, and
    the window 0 to 1, where it says nothing)."""
    listed = list((omero or {}).get("channels") or [])
    styles = []
    for index in range(count):
        entry = listed[index] if index < len(listed) and isinstance(listed[index], Mapping) else {}
        found = entry.get("window")
        window: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        start, end = _finite(window.get("start"), 0.0), _finite(window.get("end"), 1.0)
        styles.append(
            ChannelStyle(parse_color(entry.get("color")), start, end, entry.get("active") is not False)
        )
    return tuple(styles)


def _finite(value: object, default: float) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def is_rgb(styles: Sequence[ChannelStyle], dtype: np.dtype[Any]) -> bool:
    """Whether channels are the samples of an 8-bit RGB(A) picture (shown as they are)."""
    if dtype != np.uint8 or len(styles) not in (3, 4):
        return False
    return all(styles[i].color == parse_color(RGB_COLORS[i]) for i in range(3))


def rendering_for(
    styles: Sequence[ChannelStyle], dtype: np.dtype[Any], channel: int | None = None
) -> Rendering:
    """What to composite: one channel alone (``channel``), else every active channel, an
    RGB(A) image's samples with their full range (and its fourth as alpha)."""
    if channel is not None:
        return Rendering(((channel, styles[channel]),))
    if is_rgb(styles, dtype):
        full = tuple((i, ChannelStyle(styles[i].color, 0.0, 255.0)) for i in range(3))
        return Rendering(full, alpha=3 if len(styles) == 4 else None)
    active = [(i, s) for i, s in enumerate(styles) if s.active] or list(enumerate(styles))
    return Rendering(tuple(active))


def normalized(values: np.ndarray, start: float, end: float) -> np.ndarray:
    """``values`` through a display window, as float64 in [0, 1] (NaN: 0)."""
    data = values.astype(np.float64, copy=False)
    if end <= start:
        out = (data >= start).astype(np.float64)
    else:
        out = np.clip((data - start) / (end - start), 0.0, 1.0)
    return np.nan_to_num(out, nan=0.0, copy=False)


def composite(planes: np.ndarray, rendering: Rendering) -> np.ndarray:
    """Channels ``rendering.channels`` of a plane, ``(C, H, W)``, as a float64 picture
    ``(H, W, 3)`` (or ``4`` with alpha) in [0, 1]."""
    first = rendering.channels.start
    height, width = planes.shape[1:]
    picture = np.zeros((height, width, 3), dtype=np.float64)
    for index, style in rendering.styles:
        value = normalized(planes[index - first], style.start, style.end)
        for component in range(3):
            if style.color[component]:
                picture[..., component] += value * (style.color[component] / 255.0)
    np.clip(picture, 0.0, 1.0, out=picture)
    if rendering.alpha is None:
        return picture
    alpha = normalized(planes[rendering.alpha - first], 0.0, 255.0)
    return np.concatenate([picture, alpha[..., None]], axis=2)


def box_edges(size: int, parts: int) -> np.ndarray:
    """Where each of ``parts`` boxes over ``size`` pixels starts (and, last, where they end)."""
    return np.arange(parts + 1, dtype=np.int64) * size // parts


def box_mean(picture: np.ndarray, height: int, width: int) -> np.ndarray:
    """``picture`` ``(H, W, K)`` averaged over boxes into ``(height, width, K)``."""
    return _reduce(picture, box_edges(picture.shape[0], height), box_edges(picture.shape[1], width))


def _reduce(picture: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The mean of ``picture`` over the boxes between consecutive ``rows`` and ``cols`` edges."""
    summed = np.add.reduceat(picture, rows[:-1], axis=0)
    summed = np.add.reduceat(summed, cols[:-1], axis=1)
    counts = np.diff(rows)[:, None, None] * np.diff(cols)[None, :, None]
    result: np.ndarray = summed / counts
    return result


def to_uint8(picture: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.rint(np.clip(picture, 0.0, 1.0) * 255.0).astype(np.uint8)
    return result


ReadRows = Callable[[int, int], np.ndarray]


def render(
    read_rows: ReadRows,
    height: int,
    width: int,
    rendering: Rendering,
    band_bytes: int = BAND_BYTES,
) -> np.ndarray:
    """The 8-bit thumbnail ``(h, w, 3 or 4)`` of a ``height`` x ``width`` plane.
    ``read_rows(start, stop)`` returns rows ``start:stop`` of the channels
    ``rendering.channels``, ``(C, rows, W)``; they are asked for in bands of whole output
    rows, about ``band_bytes`` each, and the work token is checked between bands."""
    out_h, out_w = output_shape(height, width)
    rows = box_edges(height, out_h)
    depth = 3 if rendering.alpha is None else 4
    row_bytes = max(1, width * 8 * (depth + 1))  # the picture and one normalized channel
    per_band = max(1, band_bytes // (row_bytes * -(-height // out_h)))
    cols = box_edges(width, out_w)
    out = np.empty((out_h, out_w, depth), dtype=np.uint8)
    for first in range(0, out_h, per_band):
        last = min(out_h, first + per_band)
        checkpoint()
        start, stop = int(rows[first]), int(rows[last])
        picture = composite(read_rows(start, stop), rendering)
        out[first:last] = to_uint8(_reduce(picture, rows[first : last + 1] - start, cols))
    return out


#: Quality of WebP thumbnails: the small ones (a tenth of the PNG's size on a noisy
#: picture), where PNG is the exact one.
WEBP_QUALITY = 90


def encode(picture: np.ndarray, image_format: Format) -> bytes:
    """An 8-bit ``(h, w, 3|4)`` picture as a PNG (lossless) or a WebP (lossy) file.
    imagecodecs (already the TIFF codec backend) has both encoders, in C; a second
    imaging library would add nothing."""
    data = np.ascontiguousarray(picture)
    if image_format == "webp":
        return bytes(imagecodecs.webp_encode(data, WEBP_QUALITY, lossless=False))
    return bytes(imagecodecs.png_encode(data))
