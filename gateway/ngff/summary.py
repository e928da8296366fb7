"""What a dataset is served as, in a few facts per image, read back from its documents.

``inspect`` prints these: they come from the very ``zarr.json`` documents clients get
(levels the gateway synthesizes included, channel colours and windows as ``omero`` has
them), not from the adapter's view of the file, so what is printed is what is served.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class AxisSummary:
    """One axis of an image and its level-0 pixel size; ``unit`` None: uncalibrated."""

    name: str
    type: str
    unit: str | None
    scale: float


@dataclass(frozen=True, slots=True)
class ChannelSummary:
    label: str
    color: str  # RRGGBB, as in ``omero``
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class LevelSummary:
    path: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]  # inner chunks when the array is sharded
    synthesized: bool


@dataclass(frozen=True, slots=True)
class ImageSummary:
    """An image group: ``path`` ("" for the dataset's root), its axes, levels (finest
    first) and channels (none for a label image, which has no ``omero``)."""

    path: str
    name: str
    dtype: str
    axes: tuple[AxisSummary, ...]
    levels: tuple[LevelSummary, ...]
    channels: tuple[ChannelSummary, ...]
    is_label: bool

    @property
    def shape(self) -> tuple[int, ...]:
        return self.levels[0].shape

    @property
    def synthesized(self) -> int:
        return sum(level.synthesized for level in self.levels)

    @property
    def calibrated(self) -> bool:
        """Whether any axis but the channel axis has a physical unit."""
        return any(axis.unit for axis in self.axes if axis.type != "channel")


def summarize(documents: Mapping[str, bytes]) -> list[ImageSummary]:
    """Every image group of a dataset's documents (``DatasetTree.documents``), by path."""
    images = []
    for key in sorted(documents):
        if key != "zarr.json" and not key.endswith("/zarr.json"):
            continue
        attributes = json.loads(documents[key]).get("attributes", {}).get("ome", {})
        if "multiscales" in attributes:
            images.append(_image(documents, key[: -len("zarr.json")], attributes))
    return images


def _image(documents: Mapping[str, bytes], prefix: str, ome: dict[str, Any]) -> ImageSummary:
    multiscale = ome["multiscales"][0]
    synthesized = set(multiscale.get("metadata", {}).get("synthesized_levels", ()))
    levels = []
    dtype = ""
    for dataset in multiscale["datasets"]:
        array = json.loads(documents[f"{prefix}{dataset['path']}/zarr.json"])
        dtype = dtype or array["data_type"]
        levels.append(
            LevelSummary(
                dataset["path"], tuple(array["shape"]), _chunk_shape(array), dataset["path"] in synthesized
            )
        )
    scale = next(
        t["scale"] for t in multiscale["datasets"][0]["coordinateTransformations"] if t["type"] == "scale"
    )
    axes = tuple(
        AxisSummary(axis["name"], axis.get("type", ""), axis.get("unit"), float(s))
        for axis, s in zip(multiscale["axes"], scale, strict=True)
    )
    channels = tuple(
        ChannelSummary(c.get("label", ""), c.get("color", ""), c["window"]["start"], c["window"]["end"])
        for c in ome.get("omero", {}).get("channels", ())
    )
    path = prefix.rstrip("/")
    return ImageSummary(
        path=path,
        name=multiscale.get("name") or path or "image",
        dtype=dtype,
        axes=axes,
        levels=tuple(levels),
        channels=channels,
        is_label="image-label" in ome,
    )


def _chunk_shape(array: dict[str, Any]) -> tuple[int, ...]:
    """The chunks a reader decodes: the inner chunks of a sharded array."""
    for codec in array.get("codecs", ()):
        if codec.get("name") == "sharding_indexed":
            return tuple(codec["configuration"]["chunk_shape"])
    return tuple(array["chunk_grid"]["configuration"]["chunk_shape"])


#: Channels named on one line; more are counted.
CHANNELS_SHOWN = 8


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape)


def pixel_size_text(image: ImageSummary) -> str:
    """``z 0.29 micrometer, y 0.26 micrometer, …``, or ``uncalibrated`` where the file
    gives no physical unit (a scale of 1 without a unit is a pixel, not a micrometer)."""
    if not image.calibrated:
        return "uncalibrated (no physical unit)"
    return ", ".join(
        f"{axis.name} {axis.scale:g} {axis.unit}" if axis.unit else f"{axis.name} uncalibrated"
        for axis in image.axes
        if axis.type != "channel"
    )


def channel_text(channel: ChannelSummary) -> str:
    return f"{channel.label} #{channel.color} window [{channel.start:g}, {channel.end:g}]"


def describe(image: ImageSummary) -> list[str]:
    """A few lines on one image: shape, type and axes; pixel size; levels; channels."""
    axes = "".join(axis.name for axis in image.axes)
    kind = "label image" if image.is_label else "image"
    where = f" at {image.path}/" if image.path else ""
    lines = [f"{kind} {image.name!r}{where}: {shape_text(image.shape)} {image.dtype} ({axes})"]
    lines.append(f"  pixel size: {pixel_size_text(image)}")
    made = f" ({image.synthesized} synthesized)" if image.synthesized else ""
    shapes = ", ".join(shape_text(level.shape) for level in image.levels)
    lines.append(f"  levels: {len(image.levels)}{made}: {shapes}")
    if image.channels:
        shown = "; ".join(channel_text(c) for c in image.channels[:CHANNELS_SHOWN])
        more = len(image.channels) - CHANNELS_SHOWN
        lines.append(f"  channels: {shown}" + (f"; and {more} more" if more > 0 else ""))
    return lines
