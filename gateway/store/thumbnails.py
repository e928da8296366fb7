"""Thumbnails as values of a dataset's store: keys, what one reads, and its rendering.

Every image group of a dataset that has ``omero`` (not a label image, not a float32
variant) has a thumbnail next to its ``zarr.json``:

- ``<image>/thumbnail.png``: the channels composited (``gateway.levels.thumbnail``);
- ``<image>/thumbnail.c<N>.png``: channel ``N`` alone, in its colour;
- ``.webp`` instead of ``.png``: the same picture as a WebP file (lossy: smaller).

A dataset's root ``thumbnail.png`` is its first image's when the root is no image group
(multi-image files), so that a listing can link ``<dataset>/thumbnail.png`` without
opening the file. Over HTTP, ``thumbnail.png?channel=N&format=webp`` names the same keys
(``with_parameters``).

A thumbnail is planned from the served documents (the image group's ``multiscales`` and
``omero``) and the tree's arrays, without reading pixels, so that its entity tag (the
file's identity, the plan) answers ``HEAD`` and ``If-None-Match``; it is rendered in a
worker by reading the chosen level's plane through the very ``Level`` its chunks come
from: the thumbnail shows what clients read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.levels import thumbnail, variants
from gateway.levels.thumbnail import Format, Rendering
from gateway.ngff.keys import THUMBNAIL_NAME
from gateway.ngff.layout import ArrayNode, DatasetTree
from gateway.store.timing import RequestTiming

#: Part of every thumbnail's entity tag: a change of the rendering rules changes it.
RENDERING_VERSION = "1"
#: Data types a thumbnail can show (bool, integers, floats).
RENDERABLE_KINDS = "biuf"


class ThumbnailParameterError(ValueError):
    """A thumbnail's query parameter that names no thumbnail (``channel=x``, ``format=gif``)."""


@dataclass(frozen=True, slots=True)
class ThumbnailKey:
    """Which thumbnail a key names: of which image group, which channel (None: all), and
    in which file format."""

    image: str  # image group path, "" for the root
    channel: int | None = None
    format: Format = "png"

    @property
    def key(self) -> str:
        prefix = f"{self.image}/" if self.image else ""
        channel = "" if self.channel is None else f".c{self.channel}"
        return f"{prefix}thumbnail{channel}.{self.format}"


def parse_key(key: str) -> ThumbnailKey | None:
    """The thumbnail ``key`` names, or None when it names none."""
    head, _, last = key.rpartition("/")
    found = THUMBNAIL_NAME.fullmatch(last)
    if found is None:
        return None
    channel, image_format = found.groups()
    return ThumbnailKey(head, None if channel is None else int(channel), _format(image_format))


def _format(name: str) -> Format:
    return "webp" if name == "webp" else "png"


def with_parameters(key: str, parameters: Mapping[str, Sequence[str]]) -> str:
    """The key of ``<key>?channel=N&format=F`` (``key`` a composite PNG thumbnail's),
    ``key`` itself when it is another key. Other parameters are ignored (cache busters).

    Raises ``ThumbnailParameterError`` for a value that names no thumbnail."""
    found = parse_key(key)
    if found is None or found.channel is not None or found.format != "png":
        return key
    channel = _single(parameters, "channel")
    image_format = _single(parameters, "format")
    if image_format is None:
        image_format = "png"
    if image_format not in thumbnail.FORMATS:
        raise ThumbnailParameterError(
            f"format={image_format!r}: a thumbnail is {' or '.join(thumbnail.FORMATS)}"
        )
    index = None
    if channel is not None:
        if not (channel.isascii() and channel.isdigit()) or len(channel) > 6:
            raise ThumbnailParameterError(f"channel={channel[:20]!r}: a channel is a number from 0")
        index = int(channel)
    return ThumbnailKey(found.image, index, _format(image_format)).key


def _single(parameters: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = parameters.get(name) or []
    if len(values) > 1:
        raise ThumbnailParameterError(f"{name} is given {len(values)} times")
    return values[0] if values else None


@dataclass(frozen=True, slots=True)
class ThumbnailPlan:
    """What a thumbnail reads and how it shows it, decided without reading pixels.

    ``key``: the canonical key (a root alias names its image's); ``region``: the plane of
    ``node``'s level that is read, every axis but y and x as read (first t, middle z, the
    channels used), y and x whole; ``height`` x ``width``: that plane's size."""

    key: str
    node: ArrayNode
    axes: tuple[str, ...]
    region: tuple[slice, ...]
    height: int
    width: int
    rendering: Rendering
    format: Format

    @property
    def media_type(self) -> str:
        return thumbnail.MEDIA_TYPES[self.format]

    @property
    def configuration(self) -> str:
        """What decides the bytes besides the file (for the entity tag)."""
        region = ",".join(f"{s.start}:{s.stop}" for s in self.region)
        return f"thumbnail {RENDERING_VERSION};{self.node.path};{region};{self.rendering!r};{self.format}"


def _group(documents: Mapping[str, bytes], image: str) -> dict[str, Any] | None:
    """The ``ome`` attributes of an image group that has a thumbnail, else None."""
    if variants.is_variant_group(image):
        return None
    document = documents.get(f"{image}/zarr.json" if image else "zarr.json")
    if document is None:
        return None
    ome = json.loads(document).get("attributes", {}).get("ome", {})
    if "omero" not in ome or not ome.get("multiscales"):
        return None
    return dict(ome)


def thumbnail_images(tree: DatasetTree) -> list[str]:
    """Image groups that have a thumbnail, in the order of their paths (numbers as numbers)."""
    return [path for path in _in_order(tree.images) if _plan_image(tree, ThumbnailKey(path)) is not None]


def _in_order(paths: Iterable[str]) -> list[str]:
    return sorted(paths, key=lambda p: [(0, int(s), "") if s.isdigit() else (1, 0, s) for s in p.split("/")])


def plan(tree: DatasetTree, wanted: ThumbnailKey) -> ThumbnailPlan | None:
    """The plan of the thumbnail ``wanted`` names in ``tree``; None when there is none
    (no such image group, no such channel, a type no picture can show). The root of a
    dataset whose root is no image stands for its first image that has a thumbnail."""
    found = _plan_image(tree, wanted)
    if found is not None or wanted.image or _group(tree.documents, "") is not None:
        return found
    for image in _in_order(tree.images):
        found = _plan_image(tree, ThumbnailKey(image, wanted.channel, wanted.format))
        if found is not None or _plan_image(tree, ThumbnailKey(image)) is not None:
            return found  # the first image's (None: it has no such channel)
    return None


def _plan_image(tree: DatasetTree, wanted: ThumbnailKey) -> ThumbnailPlan | None:
    image = wanted.image
    ome = _group(tree.documents, image)
    if ome is None:
        return None
    multiscale = ome["multiscales"][0]
    names = [axis["name"] for axis in multiscale["axes"]]
    prefix = f"{image}/" if image else ""
    nodes = [tree.arrays.get(f"{prefix}{entry['path']}") for entry in multiscale["datasets"]]
    levels = [node for node in nodes if node is not None]
    if not levels or len(levels) < len(nodes) or ("y" not in names and "x" not in names):
        return None
    if levels[0].dtype.kind not in RENDERABLE_KINDS:
        return None
    count = levels[0].shape[names.index("c")] if "c" in names else 1
    if wanted.channel is not None and wanted.channel >= count:
        return None
    styles = thumbnail.styles_from_omero(ome["omero"], count)
    rendering = thumbnail.rendering_for(styles, levels[0].dtype, wanted.channel)
    node = levels[thumbnail.choose_level([_longer_side(names, n.shape) for n in levels])]
    region = _plane(names, node.shape, rendering.channels)
    size = dict(zip(names, node.shape, strict=True))
    key = ThumbnailKey(image, wanted.channel, wanted.format).key
    return ThumbnailPlan(
        key, node, tuple(names), region, size.get("y", 1), size.get("x", 1), rendering, wanted.format
    )


def _longer_side(names: Sequence[str], shape: Sequence[int]) -> int:
    size = dict(zip(names, shape, strict=True))
    return max(size.get("y", 1), size.get("x", 1))


def _plane(names: Sequence[str], shape: Sequence[int], channels: range) -> tuple[slice, ...]:
    """First t, middle z, the channels used, all of y and x."""
    region = []
    for name, size in zip(names, shape, strict=True):
        if name == "t":
            region.append(slice(0, 1))
        elif name == "z":
            region.append(slice(size // 2, size // 2 + 1))
        elif name == "c":
            region.append(slice(channels.start, channels.stop))
        else:
            region.append(slice(0, size))
    return tuple(region)


def render(plan: ThumbnailPlan, timing: RequestTiming | None = None) -> bytes:
    """The thumbnail's file: its plane read in bands of rows, composited, encoded.

    Sync and blocking (a worker thread); ``timing`` receives the read and encode times."""
    timing = timing or RequestTiming()
    y_axis = plan.axes.index("y") if "y" in plan.axes else None
    channels = len(plan.rendering.channels)
    reading = [0.0]

    def read_rows(start: int, stop: int) -> np.ndarray:
        started = time.perf_counter()
        region = list(plan.region)
        if y_axis is not None:
            region[y_axis] = slice(start, stop)
        data = plan.node.level.read(tuple(region))
        reading[0] += time.perf_counter() - started
        # t and z are one plane each, and axes are in t, c, z, y, x order: (C, rows, W)
        return data.reshape(channels, stop - start, plan.width)

    started = time.perf_counter()
    encoded = thumbnail.encode(
        thumbnail.render(read_rows, plan.height, plan.width, plan.rendering), plan.format
    )
    timing.add("read", reading[0])
    timing.add("encode", time.perf_counter() - started - reading[0])
    return encoded
