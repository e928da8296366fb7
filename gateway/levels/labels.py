"""Label images declared in the configuration (``[[labels]]``), resolved for one dataset.

An entry names an image and a label source by URL path (``<root>/<file>`` or
``<root>/<file>/<image group>``). When the dataset holding the image is opened, each of
its entries is resolved: the label source is this same file (an HDF5 dataset beside the
raw one) or another file under a root, opened alongside (its tiles keyed apart, closed
with the dataset, and a change of it reopens the dataset). Whether the label image fits
the image (integer type, same axes, same size) is decided when the tree is built
(``layout.label_mismatch``); a misfit or an unreadable source is logged as an error and
not served, and the image is served without it.

A dataset that is itself a declared label source has its label images' pyramids built
with the label method (mode or nearest) when served on its own too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import adapters
from adapters.base import AdapterError, Image, OpenOptions, Source, TileCache
from gateway.config.settings import LabelSettings
from gateway.levels import variants

logger = logging.getLogger(__name__)

#: URL path → (dataset URL path, file, key inside the dataset), or None (the catalog's
#: lookup, with its containment rules).
ResolveFile = Callable[[str], "tuple[str, Path, str] | None"]


class KeyedTiles:
    """A tile cache view whose keys are prefixed, so that another file opened into the
    same namespace (a label source) never shares keys with the dataset's own file."""

    def __init__(self, tiles: TileCache, prefix: Hashable) -> None:
        self._tiles = tiles
        self._prefix = prefix

    def get_many(
        self,
        keys: Sequence[Hashable],
        compute: Callable[[list[Hashable]], Mapping[Hashable, np.ndarray]],
        remember: bool = True,
    ) -> list[np.ndarray]:
        prefix = self._prefix

        def compute_prefixed(prefixed: list[Hashable]) -> dict[Hashable, np.ndarray]:
            inner = [k[1] for k in prefixed]  # type: ignore[index]
            values = compute(inner)
            return {(prefix, k): values[k] for k in inner}

        return self._tiles.get_many([(prefix, k) for k in keys], compute_prefixed, remember)


@dataclass(slots=True)
class ResolvedLabels:
    attachments: list[LabelAttachment] = field(default_factory=list)
    label_groups: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class LabelAttachment:
    """A label image (``image``: its level 0 is used) to serve as ``labels/<name>`` of
    the image group at ``image_path`` of this source; ``origin`` names it in logs."""

    image_path: str
    name: str
    image: Image
    origin: str


def _inside(url_path: str, dataset: str) -> str | None:
    """The image group path of ``url_path`` in ``dataset`` (``""``: its root), or None."""
    path = url_path.strip("/")
    if path == dataset:
        return ""
    if path.startswith(dataset + "/"):
        return path[len(dataset) + 1 :]
    return None


def find_image(source: Source, group: str) -> Image | None:
    """The image of ``source`` at image group path ``group``."""
    return next(
        (
            image
            for prefix, image in variants.group_prefixes(source.images, source.plates)
            if prefix.rstrip("/") == group
        ),
        None,
    )


def resolve(
    url_path: str,
    source: Source,
    entries: Sequence[LabelSettings],
    *,
    resolve_file: ResolveFile,
    tiles: TileCache,
    options: OpenOptions,
) -> ResolvedLabels:
    """The label images of the dataset at ``url_path`` (opened as ``source``); label
    sources in other files are opened and attached to ``source`` (``Source.attach``)."""
    resolved = ResolvedLabels()
    opened: dict[Path, Source] = {}
    for index, entry in enumerate(entries):
        own_group = _inside(entry.source, url_path)
        if own_group is not None:
            resolved.label_groups.add(own_group)
        group = _inside(entry.image, url_path)
        if group is None:
            continue
        where = f"label source {entry.source!r}"
        label_source: Source | None
        if own_group is not None:
            label_source = source
            inner = own_group
        else:
            found = resolve_file(entry.source.strip("/"))
            if found is None:
                logger.error("%s (for %s) is not a file under a root; not served", where, entry.image)
                continue
            _dataset, path, inner = found
            label_source = opened.get(path) or _open(
                path, KeyedTiles(tiles, ("label", index)), options, source, where
            )
            if label_source is None:
                continue
            opened[path] = label_source
        label = find_image(label_source, inner)
        if label is None:
            logger.error("%s holds no image at %r; not served as a label of %s", where, inner, entry.image)
            continue
        resolved.attachments.append(LabelAttachment(group, entry.label_name, label, entry.source))
    return resolved


def _open(path: Path, tiles: TileCache, options: OpenOptions, owner: Source, where: str) -> Source | None:
    try:
        stat = os.stat(path)
        label_source = adapters.open_source(path, tiles, options)
    except (AdapterError, OSError) as exc:
        logger.error("%s cannot be opened: %s; not served", where, exc)
        return None
    owner.attach(label_source, stat)
    return label_source
