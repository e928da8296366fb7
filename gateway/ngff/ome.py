"""OME-Zarr 0.5 attributes: image groups (multiscales, omero) and the bioformats2raw layout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from adapters.base import Channel, Image, Window
from gateway.levels.pyramid import LevelTransform

OME_VERSION = "0.5"
#: Colours for channels that carry none: one channel is grey, several get distinct hues.
DEFAULT_COLORS = ("00FF00", "FF00FF", "00FFFF", "FF0000", "0000FF", "FFFF00", "FFFFFF")
#: Three 8-bit channels without colours are nearly always a colour image's red, green and
#: blue (a brightfield slide, a photograph): bioformats2raw shows them so too.
RGB_COLORS = ("FF0000", "00FF00", "0000FF")


def downsample_factor(full: int, reduced: int) -> float:
    """Scale factor between two level sizes; integer when the size is a floor/ceil of it.

    Pyramids are built by halving (or quartering) with floor or ceil at odd sizes, so
    2967 → 1483 is a factor of exactly 2, not 2.0007.
    """
    if reduced <= 0 or full == reduced:
        return 1.0
    factor = round(full / reduced)
    if factor >= 1 and reduced in (full // factor, -(-full // factor)):
        return float(factor)
    return full / reduced


def level_scales(image: Image) -> list[list[float]]:
    """Each level's pixel size: the source's own where it gives one per level
    (``Image.level_scales``), else level 0's times the downsampling factor."""
    base = image.levels[0].shape
    return [
        list(image.level_scales[index])
        if index < len(image.level_scales)
        else [s * downsample_factor(n0, n) for s, n0, n in zip(image.scale, base, level.shape, strict=True)]
        for index, level in enumerate(image.levels)
    ]


def _axes(image: Image) -> list[dict[str, str]]:
    axes = []
    for axis in image.axes:
        entry: dict[str, str] = {"name": axis.name, "type": axis.type}
        if axis.unit and axis.type != "channel":
            entry["unit"] = axis.unit
        axes.append(entry)
    return axes


def default_window(dtype: np.dtype[Any]) -> Window:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return Window(min=float(info.min), max=float(info.max), start=float(info.min), end=float(info.max))
    return Window(min=0.0, max=1.0, start=0.0, end=1.0)


def default_color(index: int, count: int, dtype: np.dtype[Any]) -> str:
    """The colour of channel ``index`` of ``count`` when the file gives it none: white for
    one channel, red/green/blue for three uint8 channels, else the palette."""
    if count == 1:
        return "FFFFFF"
    if count == len(RGB_COLORS) and dtype == np.uint8:
        return RGB_COLORS[index]
    return DEFAULT_COLORS[index % len(DEFAULT_COLORS)]


def _omero(image: Image) -> dict[str, Any]:
    names = image.axis_names
    count = image.levels[0].shape[names.index("c")] if "c" in names else 1
    known: Sequence[Channel] = image.channels if len(image.channels) == count else ()
    dtype = image.levels[0].dtype
    channels = []
    for index in range(count):
        channel = known[index] if known else Channel()
        window = channel.window or default_window(dtype)
        color = channel.color or default_color(index, count, dtype)
        channels.append(
            {
                "label": channel.label or f"Channel {index}",
                "color": color,
                "active": channel.active,
                "coefficient": 1,
                "family": "linear",
                "inverted": False,
                "window": {
                    "min": window.min,
                    "max": window.max,
                    "start": window.start,
                    "end": window.end,
                },
            }
        )
    rdefs: dict[str, Any] = {"model": "color" if count > 1 else "greyscale"}
    if "z" in names:
        rdefs["defaultZ"] = image.levels[0].shape[names.index("z")] // 2
    if "t" in names:
        rdefs["defaultT"] = 0
    return {"name": image.name, "channels": channels, "rdefs": rdefs}


def native_transforms(image: Image) -> list[LevelTransform]:
    """Scale (from the level shapes) and translation (the image's) of every level."""
    translation = tuple(image.translation) if image.translation is not None else (0.0,) * len(image.axes)
    return [LevelTransform(tuple(scale), translation) for scale in level_scales(image)]


def image_attributes(
    image: Image,
    paths: Sequence[str],
    transforms: Sequence[LevelTransform] | None = None,
    *,
    downsampling: dict[str, Any] | None = None,
    image_label: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``attributes`` of an image group whose level arrays live at ``paths``.

    ``transforms``: each level's scale and translation (default: from the level shapes);
    a translation is written for every level when any level has one. ``downsampling``:
    the multiscale's ``type`` and ``metadata`` (synthesized levels). ``image_label``: the
    group is a label image (``image-label`` instead of ``omero``)."""
    levels = list(transforms) if transforms is not None else native_transforms(image)
    translated = any(any(t.translation) for t in levels)
    datasets = []
    for path, level in zip(paths, levels, strict=True):
        steps: list[dict[str, Any]] = [{"type": "scale", "scale": list(level.scale)}]
        if translated:
            steps.append({"type": "translation", "translation": list(level.translation)})
        datasets.append({"path": path, "coordinateTransformations": steps})
    multiscale: dict[str, Any] = {"name": image.name, "axes": _axes(image), "datasets": datasets}
    if downsampling:
        multiscale.update(downsampling)
    ome: dict[str, Any] = {"version": OME_VERSION, "multiscales": [multiscale]}
    if image_label is not None:
        ome["image-label"] = image_label
    else:
        ome["omero"] = _omero(image)
    return {"ome": ome}


def labels_attributes(names: Sequence[str]) -> dict[str, Any]:
    """``attributes`` of an image's ``labels`` group."""
    return {"ome": {"version": OME_VERSION, "labels": list(names)}}


def bioformats2raw_attributes() -> dict[str, Any]:
    return {"ome": {"version": OME_VERSION, "bioformats2raw.layout": 3}}


def series_attributes(paths: Sequence[str]) -> dict[str, Any]:
    return {"ome": {"version": OME_VERSION, "series": list(paths)}}
