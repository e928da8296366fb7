"""Display windows for channels whose file records none: a cheap, bounded estimate.

A file's own display ranges (ImageJ ``Ranges``/``min``/``max``, Imaris ``ColorRange``,
BigDataViewer ``settings.xml``) always win. For the other channels, the window's
``start``/``end`` are the 0.1 and 99.9 percentiles of one plane — the middle z, the first
t, every channel — of the image's coarsest *native* level, read once when the file is
opened, and only when the source tiles holding that plane (a plane of 64³ HDF5 chunks
decodes 64 planes) hold at most ``window_sample_bytes`` (a synthesized level would cost a
pass over the data, so it is never read for this). ``min``/``max`` are
the data type's range for integers and the sample's range for floats. Otherwise the
window stays the data type's range (``ome.default_window``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np

from adapters.base import AdapterError, Channel, Image, Level, Window

logger = logging.getLogger(__name__)

#: Percentiles of the sample that become the window's start and end.
LOW_PERCENTILE, HIGH_PERCENTILE = 0.1, 99.9
#: At most this many values per channel enter the percentiles (a strided subsample).
MAX_SAMPLES = 1 << 20


def sample_region(axis_names: tuple[str, ...], level: Level) -> tuple[slice, ...]:
    """The plane that is sampled: first t, middle z, every channel, all of y and x."""
    region = []
    for name, size in zip(axis_names, level.shape, strict=True):
        if name == "t":
            region.append(slice(0, 1))
        elif name == "z":
            region.append(slice(size // 2, size // 2 + 1))
        else:
            region.append(slice(0, size))
    return tuple(region)


def channel_window(values: np.ndarray, dtype: np.dtype[np.generic]) -> Window | None:
    """The window of one channel's sample (None when it holds no finite spread)."""
    flat = values.reshape(-1)
    if flat.size > MAX_SAMPLES:
        flat = flat[:: math.ceil(flat.size / MAX_SAMPLES)]
    if dtype.kind == "f":
        flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return None
    low, high = (float(v) for v in np.percentile(flat, [LOW_PERCENTILE, HIGH_PERCENTILE]))
    smallest, largest = float(flat.min()), float(flat.max())
    if high <= low:
        low, high = smallest, largest
    if high <= low:
        return None
    if dtype.kind in "iu":
        info = np.iinfo(dtype)  # type: ignore[type-var]  # an integer type, checked above
        return Window(float(info.min), float(info.max), float(math.floor(low)), float(math.ceil(high)))
    return Window(smallest, largest, low, high)


def with_estimated_windows(image: Image, level: Level, budget_bytes: int) -> Image:
    """``image`` with windows estimated from ``level`` (its coarsest native level) for the
    channels that have none; unchanged when the sample would exceed ``budget_bytes``,
    the type is not numeric, or the sample cannot be read."""
    names = image.axis_names
    count = level.shape[names.index("c")] if "c" in names else 1
    known = image.channels if len(image.channels) == count else tuple(Channel() for _ in range(count))
    if all(channel.window is not None for channel in known) or level.dtype.kind not in "iuf":
        return image
    region = sample_region(names, level)
    nbytes = math.prod(s.stop - s.start for s in region) * level.dtype.itemsize
    # one plane out of source chunks deeper than one plane (HDF5's 64³) decodes them whole
    depth = math.prod(
        min(t, n) for name, t, n in zip(names, level.tile_shape, level.shape, strict=True) if name in "tz"
    )
    if nbytes * depth > budget_bytes:
        return image
    try:
        sample = level.read(region)
    except (AdapterError, OSError) as exc:
        logger.warning("%s: no window estimate (%s)", image.name, exc)
        return image
    channels = []
    for index, channel in enumerate(known):
        if channel.window is None:
            values = np.take(sample, index, axis=names.index("c")) if "c" in names else sample
            channel = replace(channel, window=channel_window(values, level.dtype))
        channels.append(channel)
    return replace(image, channels=tuple(channels))
