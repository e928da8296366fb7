"""Imaris ``.ims`` (the Imaris 5.5 HDF5 layout).

``DataSet/ResolutionLevel i/TimePoint t/Channel c/Data`` are (z, y, x) arrays, padded
beyond the image: the ``ImageSizeX/Y/Z`` attributes of each ``Channel c`` group give the
real size of that level. Levels, timepoints and channels become levels and the t and c
axes (a missing ``Data`` reads as fill). Metadata lives in ``DataSetInfo``: the extent
``ExtMin0..2``/``ExtMax0..2`` and ``Unit`` of ``Image`` give the voxel size
((ExtMax - ExtMin) / size) and origin, ``Channel i`` the name, ``Color`` ("r g b" in 0..1)
and ``ColorRange``, ``TimeInfo`` the timestamps. Imaris writes every attribute as an array
of single characters; they are decoded as text.

Every resolution level covers the whole extent: its voxel is the extent over *its own*
size (Imaris halves sizes with floor, so 51 planes become 25, 12, 6 — not 2^n times level
0's voxel), and every level starts at ExtMin. "(name not specified)", Imaris' placeholder
where no name was given, names nothing. Groups and datasets are reached through
``Hdf5Context.get`` (links followed only inside the allowed directories).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np

from adapters.base import Axis, AxisName, Channel, Image, Level, UnsupportedSourceError, Window
from adapters.hdf5.chunks import Hdf5Array, open_context_array
from adapters.hdf5.file import H5File, Hdf5Context, attr_numbers, attr_text, exists
from adapters.hdf5.levels import StackedLevel
from adapters.units import space_unit

LEVEL = re.compile(r"ResolutionLevel (\d+)")
TIMEPOINT = re.compile(r"TimePoint (\d+)")
CHANNEL = re.compile(r"Channel (\d+)")
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")
#: What Imaris writes where no name was given (compared in lower case): not a name.
PLACEHOLDER_NAMES = frozenset({"(name not specified)"})


def is_imaris(file: H5File) -> bool:
    return attr_text(file.h5.attrs, "ImarisDataSet") is not None or exists(file, "DataSet/ResolutionLevel 0")


def _numbered(group: Any, pattern: re.Pattern[str]) -> dict[int, str]:
    """Member names matching ``pattern`` by number; {} when ``group`` is not a group."""
    found: dict[int, str] = {}
    if not isinstance(group, h5py.Group):
        return found
    for name in group:
        match = pattern.fullmatch(name)
        if match:
            found[int(match.group(1))] = name
    return found


def imaris_images(ctx: Hdf5Context) -> list[Image]:
    with ctx.file.locked():
        dataset = ctx.get("DataSet")
        if not isinstance(dataset, h5py.Group):
            raise UnsupportedSourceError("no DataSet group")
        levels = _numbered(dataset, LEVEL)
        if 0 not in levels:
            raise UnsupportedSourceError("no ResolutionLevel 0")
        first = f"DataSet/{levels[0]}"
        first_level = ctx.get(first)
        timepoints = sorted(_numbered(first_level, TIMEPOINT))
        if not timepoints:
            raise UnsupportedSourceError("no TimePoint in ResolutionLevel 0")
        channels = sorted(
            set().union(*(_numbered(ctx.get(f"{first}/TimePoint {t}"), CHANNEL) for t in timepoints))
        )
        if not channels:
            raise UnsupportedSourceError("no Channel in ResolutionLevel 0")
        info = ctx.get("DataSetInfo")
        info = info if isinstance(info, h5py.Group) else None
        image = ctx.get("DataSetInfo/Image") if info is not None else None
        image_attrs: Any = image.attrs if image is not None else {}
        base_size = _image_size(image_attrs, ("X", "Y", "Z"))
    outer_names = [n for n, count in (("t", len(timepoints)), ("c", len(channels))) if count > 1]
    size0 = _level_size(ctx, f"DataSet/{levels[0]}", timepoints, channels) or base_size
    keep_z = size0 is None or size0[0] > 1
    built: list[Level] = []
    for index in range(len(levels)):
        if index not in levels:
            break
        try:
            default = base_size if index == 0 else None
            level = _level(
                ctx, f"DataSet/{levels[index]}", timepoints, channels, outer_names, keep_z, default
            )
        except UnsupportedSourceError as exc:
            if index == 0:
                raise
            ctx.warn(f"ResolutionLevel {index} ignored: {exc}")
            break
        built.append(level)
    names: list[AxisName] = [*outer_names, *(("z",) if keep_z else ()), "y", "x"]  # type: ignore[list-item]
    zyx = built[0].shape[len(outer_names) :]
    zyx = zyx if keep_z else (1, *zyx)
    with ctx.file.locked():
        meta = _metadata(ctx, image_attrs, info, base_size or zyx, channels, timepoints, built[0].dtype)
    scale = tuple(meta["scale"].get(n, 1.0) for n in names)
    level_scales = tuple(_level_scale(names, scale, built[0].shape, level.shape) for level in built)
    origin = tuple(meta["origin"].get(n, 0.0) for n in names)
    axes = tuple(Axis(n, meta["units"].get(n)) for n in names)
    return [
        Image(
            name=meta["name"] or ctx.file.path.name,
            axes=axes,
            levels=tuple(built),
            scale=scale,
            translation=origin if any(origin) else None,
            channels=meta["channels"],
            level_scales=level_scales,
        )
    ]


def _level_scale(
    names: Sequence[str], scale: Sequence[float], base: Sequence[int], shape: Sequence[int]
) -> tuple[float, ...]:
    """The voxel of a level of ``shape``: level 0's voxel times level 0's size over this
    level's, on z, y and x — the extent over this level's size (t and c keep theirs)."""
    return tuple(
        s * n0 / n if name in ("z", "y", "x") and n > 0 else s
        for name, s, n0, n in zip(names, scale, base, shape, strict=True)
    )


def _named(text: str | None) -> str | None:
    """``text``, unless it is blank or Imaris' placeholder for no name."""
    if text is None or not text.strip() or text.strip().lower() in PLACEHOLDER_NAMES:
        return None
    return text


def _image_size(attrs: Any, keys: Sequence[str]) -> tuple[int, int, int] | None:
    """(z, y, x) from attributes named X, Y, Z (or ImageSizeX...) written as text."""
    values = []
    for key in keys:
        numbers = attr_numbers(attrs, key)
        if not numbers or numbers[0] < 1:
            return None
        values.append(int(numbers[0]))
    x, y, z = values
    return z, y, x


def _level_size(
    ctx: Hdf5Context, path: str, timepoints: Sequence[int], channels: Sequence[int]
) -> tuple[int, int, int] | None:
    """(z, y, x) image size of a level: ``ImageSizeX/Y/Z`` of its first channel group."""
    with ctx.file.locked():
        for t in timepoints:
            for c in channels:
                group = ctx.get(f"{path}/TimePoint {t}/Channel {c}")
                if isinstance(group, h5py.Group):
                    size = _image_size(group.attrs, ("ImageSizeX", "ImageSizeY", "ImageSizeZ"))
                    if size is not None:
                        return size
    return None


def _level(
    ctx: Hdf5Context,
    path: str,
    timepoints: Sequence[int],
    channels: Sequence[int],
    outer_names: Sequence[str],
    keep_z: bool,
    default: tuple[int, int, int] | None,
) -> StackedLevel:
    members: dict[tuple[int, ...], Hdf5Array | None] = {}
    for t_index, t in enumerate(timepoints):
        for c_index, c in enumerate(channels):
            outer = tuple(i for i, n in ((t_index, "t"), (c_index, "c")) if n in outer_names)
            with ctx.file.locked():
                data = ctx.dataset(f"{path}/TimePoint {t}/Channel {c}/Data")
                if not isinstance(data, h5py.Dataset) or data.ndim != 3:
                    members[outer] = None
                    continue
            members[outer] = open_context_array(ctx, data, warn=t_index == c_index == 0)
    present = [m for m in members.values() if m is not None]
    if not present:
        raise UnsupportedSourceError(f"{path} holds no Data")
    stored = present[0].shape
    # the image size of this level; without ImageSize attributes, DataSetInfo's (level 0)
    # or else the whole (padded) array
    zyx = _level_size(ctx, path, timepoints, channels) or default or stored
    if any(n > s for n, s in zip(zyx, stored, strict=True)):
        raise UnsupportedSourceError(f"{path}: image size {zyx} exceeds the stored {stored}")
    outer_shape = [len(timepoints) if n == "t" else len(channels) for n in outer_names]
    inner, dims = (zyx, (0, 1, 2)) if keep_z else (zyx[1:], (1, 2))
    return StackedLevel(members, outer_shape, inner, dims)


def _metadata(
    ctx: Hdf5Context,
    image_attrs: Any,
    info: h5py.Group | None,
    zyx: Sequence[int],
    channels: Sequence[int],
    timepoints: Sequence[int],
    dtype: np.dtype[Any],
) -> dict[str, Any]:
    meta: dict[str, Any] = {"scale": {}, "units": {}, "origin": {}, "channels": (), "name": None}
    unit = space_unit(attr_text(image_attrs, "Unit") or "um")
    for letter, axis, size in zip(("z", "y", "x"), (2, 1, 0), zyx, strict=True):
        low = attr_numbers(image_attrs, f"ExtMin{axis}")
        high = attr_numbers(image_attrs, f"ExtMax{axis}")
        if not low or not high or size < 1:
            continue
        voxel = (high[0] - low[0]) / size
        if voxel > 0 and np.isfinite(voxel):
            meta["scale"][letter] = voxel
            meta["units"][letter] = unit
            meta["origin"][letter] = low[0]
    meta["name"] = _named(attr_text(image_attrs, "Name"))
    if info is None:
        return meta
    meta["channels"] = tuple(_channel(ctx.get(f"DataSetInfo/Channel {c}"), c, dtype) for c in channels)
    interval = _time_interval(ctx.get("DataSetInfo/TimeInfo"), len(timepoints))
    if interval is not None:
        meta["scale"]["t"] = interval
        meta["units"]["t"] = "second"
    return meta


def _channel(group: Any, index: int, dtype: np.dtype[Any]) -> Channel:
    if not isinstance(group, h5py.Group):
        return Channel(label=f"Channel {index}")
    attrs = group.attrs
    color = None
    rgb = attr_numbers(attrs, "Color")
    if rgb and len(rgb) >= 3 and all(0 <= v <= 1 for v in rgb[:3]):
        color = "".join(f"{round(v * 255):02X}" for v in rgb[:3])
    window = None
    color_range = attr_numbers(attrs, "ColorRange")
    if color_range and len(color_range) >= 2 and color_range[1] > color_range[0]:
        start, end = color_range[0], color_range[1]
        low, high = (
            (float(np.iinfo(dtype).min), float(np.iinfo(dtype).max)) if dtype.kind in "iu" else (start, end)
        )
        window = Window(min=min(low, start), max=max(high, end), start=start, end=end)
    return Channel(label=_named(attr_text(attrs, "Name")) or f"Channel {index}", color=color, window=window)


def _time_interval(group: Any, count: int) -> float | None:
    """Mean interval between the timestamps ``TimeInfo/TimePoint1..count``, in seconds."""
    if count < 2 or not isinstance(group, h5py.Group):
        return None
    stamps = []
    for i in (1, count):
        text = attr_text(group.attrs, f"TimePoint{i}")
        parsed = _timestamp(text) if text else None
        if parsed is None:
            return None
        stamps.append(parsed)
    interval = (stamps[1] - stamps[0]).total_seconds() / (count - 1)
    return interval if interval > 0 else None


def _timestamp(text: str) -> dt.datetime | None:
    for fmt in TIME_FORMATS:
        try:
            return dt.datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    return None
