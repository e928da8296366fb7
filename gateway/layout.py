"""The zarr tree a source becomes, and the chunk shape of every array in it.

A single-image source is an OME-Zarr image group at its root (``zarr.json``, arrays
``0``, ``1``...), which is what viewers should be pointed at. A multi-image source uses
the bioformats2raw layout: a root group, one image group per series (``0/``, ``1/``...),
an ``OME/`` group listing them and, for OME-TIFF, the original ``OME/METADATA.ome.xml``.
Images with a path of their own (``Image.path``: HDF5 dataset paths) sit at that path
instead, below plain groups.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapters.base import Image, Level, PassThroughLevel, RawChunkFormat, Source
from gateway import metadata, ome, variants
from gateway.codecs import ChunkEncoding
from gateway.keys import chunk_grid
from gateway.settings import ChunkSettings

OME_XML_KEY = "OME/METADATA.ome.xml"


#: Source chunks larger than this are not passed through (viewers want small chunks).
MAX_PASSTHROUGH_CHUNK_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ArrayNode:
    """One served array: a level of an image, with the chunking and codecs chosen for it.

    ``passthrough``: chunks are the source's own chunks, served untouched where the
    level can (``PassThroughLevel.read_raw_chunk``), else encoded identically.
    """

    path: str
    level: Level
    chunk_shape: tuple[int, ...]
    grid: tuple[int, ...]
    encoding: ChunkEncoding
    passthrough: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        return self.level.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.level.dtype

    @property
    def fill_value(self) -> int | float:
        return self.level.fill_value


@dataclass(frozen=True, slots=True)
class DatasetTree:
    """Every key of a dataset: metadata documents (bytes) and arrays (chunk keys)."""

    documents: dict[str, bytes]
    arrays: dict[str, ArrayNode]
    images: dict[str, Image]  # image group path ("" for the root) → image

    def find_array(self, key: str) -> tuple[ArrayNode, str] | None:
        """The array a chunk key belongs to, and the key relative to that array."""
        head, sep, tail = key.rpartition("/c/")
        if sep:
            node = self.arrays.get(head)
            return (node, "c/" + tail) if node is not None else None
        return None

    def document_keys(self) -> list[str]:
        """Metadata keys, for listing (chunk keys are not enumerated)."""
        return sorted(self.documents)


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


def _is_servable_tile(tile_y: int, tile_x: int, settings: ChunkSettings) -> bool:
    """Square, power of two, within bounds: a source tile that can be a served chunk."""
    return tile_y == tile_x and _is_power_of_two(tile_y) and settings.min_yx <= tile_y <= settings.max_yx


def choose_chunk_shape(axis_names: Sequence[str], level: Level, settings: ChunkSettings) -> tuple[int, ...]:
    """Square power-of-two y/x chunks (what Viv and tiling viewers need), aligned to the
    source tiles when those already are such squares; one plane per chunk in t and c,
    ``settings.z`` planes in z. Small images get one chunk of the next power of two."""
    shape, tiles = level.shape, level.tile_shape
    yx = tiles[-1] if _is_servable_tile(tiles[-2], tiles[-1], settings) else settings.yx
    yx = min(yx, _next_power_of_two(max(shape[-2], shape[-1])))
    chunks = []
    for name, size in zip(axis_names, shape, strict=True):
        if name in ("y", "x"):
            chunks.append(yx)
        elif name == "z":
            chunks.append(max(1, min(settings.z, size)))
        else:
            chunks.append(1)
    return tuple(chunks)


def _is_servable_raw_chunk(chunk_shape: Sequence[int], settings: ChunkSettings) -> bool:
    """A stored chunk worth serving as it is: square power-of-two y/x no larger than
    ``max_yx`` and at least ``min_yx`` — or, for volumetric chunks (HDF5 stores 3-D data
    as e.g. 64³ chunks), smaller y/x when the chunk holds at least as many elements as a
    ``min_yx``² tile: such chunks are as cheap to fetch and Neuroglancer's natural unit."""
    tile_y, tile_x = chunk_shape[-2], chunk_shape[-1]
    if tile_y != tile_x or not _is_power_of_two(tile_y) or tile_y > settings.max_yx:
        return False
    return tile_y >= settings.min_yx or math.prod(chunk_shape) >= settings.min_yx**2


def raw_chunk_format(level: Level, settings: ChunkSettings) -> RawChunkFormat | None:
    """The source chunk format to pass through, if the level has one worth serving as is."""
    if not settings.passthrough or not isinstance(level, PassThroughLevel):
        return None
    raw = level.raw_chunk_format
    if raw is None or len(raw.chunk_shape) != len(level.shape):
        return None
    if math.prod(raw.chunk_shape) * level.dtype.itemsize > MAX_PASSTHROUGH_CHUNK_BYTES:
        return None
    if not _is_servable_raw_chunk(raw.chunk_shape, settings):
        return None
    return raw


def _array_node(path: str, level: Level, axis_names: Sequence[str], settings: ChunkSettings) -> ArrayNode:
    raw = raw_chunk_format(level, settings)
    if raw is not None:
        encoding = ChunkEncoding.for_raw_chunks(raw, settings.level)
        chunk_shape = raw.chunk_shape
    else:
        encoding = ChunkEncoding.from_settings(settings.codec, settings.level)
        chunk_shape = choose_chunk_shape(axis_names, level, settings)
    return ArrayNode(
        path=path,
        level=level,
        chunk_shape=chunk_shape,
        grid=chunk_grid(level.shape, chunk_shape),
        encoding=encoding,
        passthrough=raw is not None,
    )


def build_tree(source: Source, settings: ChunkSettings) -> DatasetTree:
    documents: dict[str, bytes] = {}
    arrays: dict[str, ArrayNode] = {}
    images: dict[str, Image] = {}
    named = any(image.path is not None for image in source.images)
    multi = len(source.images) > 1 and not named
    for prefix, image in variants.image_groups(source.images):  # images, and float32 variants
        if f"{prefix}zarr.json" in documents or prefix.rstrip("/") in arrays:
            raise ValueError(f"two nodes of the tree would be at {prefix!r}")
        paths = [str(k) for k in range(len(image.levels))]
        images[prefix.rstrip("/")] = image
        documents[f"{prefix}zarr.json"] = metadata.dumps(
            metadata.group_document(ome.image_attributes(image, paths))
        )
        for path, level in zip(paths, image.levels, strict=True):
            node = _array_node(f"{prefix}{path}", level, image.axis_names, settings)
            if node.path in arrays or f"{node.path}/zarr.json" in documents:
                raise ValueError(f"two nodes of the tree would be at {node.path!r}")
            arrays[node.path] = node
            documents[f"{node.path}/zarr.json"] = metadata.dumps(
                metadata.array_document(
                    shape=level.shape,
                    dtype=level.dtype,
                    chunk_shape=node.chunk_shape,
                    fill_value=level.fill_value,
                    encoding=node.encoding,
                    dimension_names=image.axis_names,
                )
            )
    if named:
        _add_parent_groups(documents, arrays)
    if multi:
        series = [str(i) for i in range(len(source.images))]
        documents["zarr.json"] = metadata.dumps(metadata.group_document(ome.bioformats2raw_attributes()))
        documents["OME/zarr.json"] = metadata.dumps(metadata.group_document(ome.series_attributes(series)))
    if source.ome_xml:
        documents[OME_XML_KEY] = source.ome_xml.encode()
    return DatasetTree(documents=documents, arrays=arrays, images=images)


def _add_parent_groups(documents: dict[str, bytes], arrays: dict[str, ArrayNode]) -> None:
    """Plain group documents for the groups above images placed at paths of their own
    (``group/dataset/`` of an HDF5 file), up to the root."""
    for key in [k for k in documents if k.endswith("zarr.json")]:
        parts = key.split("/")[:-1]
        for depth in range(len(parts)):
            parent = "/".join(parts[:depth])
            if parent in arrays:
                raise ValueError(f"an array and a group would both be at {parent!r}")
            document = f"{parent}/zarr.json" if parent else "zarr.json"
            documents.setdefault(document, metadata.dumps(metadata.group_document()))
