"""The zarr tree a source becomes, and the chunk shape of every array in it.

A single-image source is an OME-Zarr image group at its root (``zarr.json``, arrays
``0``, ``1``...), which is what viewers should be pointed at. A multi-image source uses
the bioformats2raw layout: a root group, one image group per series (``0/``, ``1/``...),
an ``OME/`` group listing them and, for OME-TIFF, the original ``OME/METADATA.ome.xml``.
Images with a path of their own (``Image.path``: HDF5 dataset paths) sit at that path
instead, below plain groups. Images on plates (``Source.plates``) are the fields of OME-Zarr
plates (``gateway/ngff/hcs.py``; where they sit: ``gateway/levels/placement.py``).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import numpy as np

from adapters.base import Image, Level, NoTileCache, PassThroughLevel, RawChunkFormat, Source, TileCache
from gateway.config.settings import ChunkSettings, MetadataSettings, PyramidSettings, Settings
from gateway.levels import pyramid, variants
from gateway.levels.labels import LabelAttachment
from gateway.levels.windows import with_estimated_windows
from gateway.ngff import consolidated, hcs, metadata, ome, rocrate, zarr_v2
from gateway.ngff.codecs import ChunkEncoding
from gateway.ngff.keys import chunk_grid
from gateway.ngff.slabs import slab_axis

logger = logging.getLogger(__name__)

OME_XML_KEY = "OME/METADATA.ome.xml"


#: Source chunks larger than this are not passed through (viewers want small chunks).
MAX_PASSTHROUGH_CHUNK_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ArrayNode:
    """One served array: a level of an image, with the chunking and codecs chosen for it.

    ``passthrough``: chunks are the source's own chunks, served untouched where the
    level can (``PassThroughLevel.read_raw_chunk``), else encoded identically.
    ``shuffled``: chunks are encoded from the stored chunks still byte-shuffled, where
    the level gives them so (``Level.read_shuffled_chunk``), into the same bytes; whole,
    or cut into slabs of whole planes (``gateway.ngff.slabs``).
    ``shard_shape``: set when the array is served sharded (``gateway.ngff.shards``): its
    keys then name shards of this shape, blocks of the chunks above (its inner chunks).
    """

    path: str
    level: Level
    chunk_shape: tuple[int, ...]
    grid: tuple[int, ...]
    encoding: ChunkEncoding
    passthrough: bool = False
    shuffled: bool = False
    shard_shape: tuple[int, ...] | None = None
    axis_names: tuple[str, ...] = ()

    @property
    def key_grid(self) -> tuple[int, ...]:
        """The grid the array's chunk keys index: shards when sharded, else chunks."""
        return self.grid if self.shard_shape is None else chunk_grid(self.shape, self.shard_shape)

    @property
    def chunks_per_shard(self) -> tuple[int, ...]:
        assert self.shard_shape is not None
        return tuple(s // c for s, c in zip(self.shard_shape, self.chunk_shape, strict=True))

    @property
    def shape(self) -> tuple[int, ...]:
        return self.level.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.level.dtype

    @property
    def fill_value(self) -> int | float:
        return self.level.fill_value

    @property
    def sends_stored_bytes(self) -> bool:
        """Whether its chunks are the source's stored bytes as they are (pass-through, at
        most behind a blosc header; not rewrapped as gzip, which inflates): as cheap to
        read again as to keep, the page cache holding them."""
        return self.passthrough and not self.encoding.inflates_to_wrap

    @property
    def making(self) -> str:
        """How a chunk's bytes are made, in words (``inspect``): what serving it costs."""
        codec = self.encoding.describe(self.dtype)
        if self.passthrough and self.encoding.inflates_to_wrap:
            return f"sent as gzip members of the stored deflate data ({codec})"
        if self.passthrough and self.encoding.wraps_stream:
            return f"sent as stored, each stream in a blosc frame ({codec})"
        if self.passthrough:
            return f"sent as stored ({codec})"
        if self.shuffled and getattr(self.level, "shuffled_chunk_shape", None) != self.chunk_shape:
            return f"cut in slabs of whole planes from the stored chunks still shuffled ({codec})"
        if self.shuffled:
            return f"made from the stored chunks still shuffled ({codec})"
        if self.encoding.compressor is None:
            return f"copied from the decoded source ({codec})"
        return f"compressed afresh ({codec})"

    @property
    def chunk_nbytes(self) -> int:
        """Decoded bytes of one chunk (edge chunks are full size)."""
        return math.prod(self.chunk_shape) * self.level.dtype.itemsize


@dataclass(frozen=True, slots=True)
class DatasetTree:
    """Every key of a dataset: metadata documents (bytes) and arrays (chunk keys).

    ``v2``: the same arrays seen as Zarr v2 / OME-Zarr 0.4 (``gateway/ngff/zarr_v2.py``), whose
    chunk keys are ``<array>/<i>/<j>...`` (``key_style`` "v2"), unsharded (v2 has no shards).
    ``browse``: the browsing view's tree (``browse_tree``), None where it would be this one."""

    documents: dict[str, bytes]
    arrays: dict[str, ArrayNode]
    images: dict[str, Image]  # image group path ("" for the root) → image
    v2: DatasetTree | None = None
    browse: DatasetTree | None = None
    key_style: Literal["v3", "v2"] = "v3"

    def find_array(self, key: str) -> tuple[ArrayNode, str] | None:
        """The array a chunk key belongs to, and the key relative to that array in the v3
        form (``c/<i>/<j>...``), whatever this tree's key style."""
        if self.key_style == "v2":
            parts = key.split("/")
            for ndim in range(1, min(len(parts), 33)):
                node = self.arrays.get("/".join(parts[:-ndim]))
                if node is not None and len(node.shape) == ndim:
                    return node, "c/" + "/".join(parts[-ndim:])
            return None
        head, sep, tail = key.rpartition("/c/")
        if sep:
            node = self.arrays.get(head)
            return (node, "c/" + tail) if node is not None else None
        return None

    def document_keys(self) -> list[str]:
        """Metadata keys, for listing (chunk keys are not enumerated)."""
        return sorted(self.documents)

    def unsharded(self) -> DatasetTree:
        """The chunks of this tree's arrays without shards, and no documents: what the
        Zarr v2 view's chunks come from (v2 has no shards; the view has its documents)."""
        arrays = unsharded(self.arrays)
        return self if arrays is self.arrays else DatasetTree(documents={}, arrays=arrays, images=self.images)


def unsharded(arrays: dict[str, ArrayNode]) -> dict[str, ArrayNode]:
    """``arrays`` without shards (the same dict when none is sharded)."""
    if all(node.shard_shape is None for node in arrays.values()):
        return arrays
    return {path: replace(node, shard_shape=None) for path, node in arrays.items()}


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


def _is_servable_tile(tile_y: int, tile_x: int, settings: ChunkSettings) -> bool:
    """Square, power of two, within bounds: a source tile that can be a served chunk."""
    return tile_y == tile_x and _is_power_of_two(tile_y) and settings.min_yx <= tile_y <= settings.max_yx


def choose_chunk_shape(axis_names: Sequence[str], level: Level, settings: ChunkSettings) -> tuple[int, ...]:
    """Square power-of-two y/x chunks (what Viv and tiling viewers need), aligned to the
    source tiles when those already are such squares; one plane per chunk in t and c.
    Small images get one chunk of the next power of two.

    In z, ``settings.z`` planes when set; else the source's own chunk depth, so that a
    volume chunked in z (HDF5, TIFF tiles with depth) is served in 3-D blocks, each read
    from as few source chunks as possible. Such blocks are kept within
    ``settings.target_bytes``; a plane-per-page stack (depth 1) stays one plane per chunk."""
    shape, tiles = level.shape, level.tile_shape
    z_axis = axis_names.index("z") if "z" in axis_names else None
    depth = settings.z if settings.z is not None else (tiles[z_axis] if z_axis is not None else 1)
    volumetric = settings.z is None and depth > 1
    if _is_servable_tile(tiles[-2], tiles[-1], settings) or (
        volumetric and _is_servable_raw_chunk((depth, tiles[-2], tiles[-1]), settings)
    ):
        yx = tiles[-1]
    else:
        yx = settings.yx
    yx = min(yx, _next_power_of_two(max(shape[-2], shape[-1])))
    if z_axis is not None:
        depth = max(1, min(depth, shape[z_axis]))
    if volumetric:
        depth, yx = _within_budget(depth, yx, level.dtype.itemsize, settings.target_bytes)
    if settings.max_z is not None:
        depth = _halved_to(depth, settings.max_z)
    chunks = []
    for name in axis_names:
        if name in ("y", "x"):
            chunks.append(yx)
        elif name == "z":
            chunks.append(depth)
        else:
            chunks.append(1)
    return tuple(chunks)


def _within_budget(depth: int, yx: int, itemsize: int, target_bytes: int) -> tuple[int, int]:
    """``depth`` x ``yx`` x ``yx`` shrunk to at most ``target_bytes``, halving the longer of
    depth and y/x (towards cubes, which 3-D views fetch best; depth first on a tie): halves
    of a chunk still align with the source chunk it is read from."""
    while depth * yx * yx * itemsize > target_bytes and (depth > 1 or yx > 1):
        if depth >= yx and depth > 1:
            depth = -(-depth // 2)
        else:
            yx //= 2
    return depth, yx


def _halved_to(depth: int, bound: int) -> int:
    """``depth`` halved (rounding up) until it is at most ``bound``: slabs of a stored
    chunk's depth, each of whole planes of one stored chunk where that depth is even."""
    while depth > bound:
        depth = -(-depth // 2)
    return depth


def _is_servable_raw_chunk(chunk_shape: Sequence[int], settings: ChunkSettings) -> bool:
    """A stored chunk worth serving as it is: square power-of-two y/x no larger than
    ``max_yx`` and at least ``min_yx`` — or, for volumetric chunks (HDF5 stores 3-D data
    as e.g. 64³ chunks), smaller y/x when the chunk holds at least as many elements as a
    ``min_yx``² tile: such chunks are as cheap to fetch and Neuroglancer's natural unit."""
    tile_y, tile_x = chunk_shape[-2], chunk_shape[-1]
    if tile_y != tile_x or not _is_power_of_two(tile_y) or tile_y > settings.max_yx:
        return False
    return tile_y >= settings.min_yx or math.prod(chunk_shape) >= settings.min_yx**2


def raw_chunk_format(
    level: Level, settings: ChunkSettings, axis_names: Sequence[str]
) -> RawChunkFormat | None:
    """The source chunk format to pass through, if the level has one worth serving as is
    (and of the depth ``settings.z`` asks for, when set)."""
    if not settings.passthrough or not isinstance(level, PassThroughLevel):
        return None
    raw = level.raw_chunk_format
    if raw is None or len(raw.chunk_shape) != len(level.shape):
        return None
    if "z" in axis_names:
        depth = raw.chunk_shape[axis_names.index("z")]
        if (settings.z is not None and depth != settings.z) or (
            settings.max_z is not None and depth > settings.max_z
        ):
            return None
    if (raw.compressor == "zlib" or raw.shuffled) and not _frames_stream(raw, settings.codec):
        return None
    if math.prod(raw.chunk_shape) * level.dtype.itemsize > MAX_PASSTHROUGH_CHUNK_BYTES:
        return None
    if not _is_servable_raw_chunk(raw.chunk_shape, settings):
        return None
    return raw


def _frames_stream(raw: RawChunkFormat, codec: str) -> bool:
    """Whether stored streams that are no zarr chunk as they are (zlib; zstd of shuffled
    bytes) are served framed (``ChunkEncoding.for_raw_chunks``) under ``codec``: in blosc
    frames by ``auto`` (no codec work on the server; clients decode what h5py would), as
    gzip members where gzip is asked for (unshuffled zlib only). Another codec asked for
    is one the readers decode faster: chunks are transcoded."""
    return codec == "auto" or (codec == "gzip" and raw.compressor == "zlib" and not raw.shuffled)


def _array_node(path: str, level: Level, axis_names: Sequence[str], settings: ChunkSettings) -> ArrayNode:
    raw = raw_chunk_format(level, settings, axis_names)
    if raw is not None:
        encoding = ChunkEncoding.for_raw_chunks(raw, settings.level, settings.codec)
        chunk_shape = raw.chunk_shape
    else:
        chunk_shape = choose_chunk_shape(axis_names, level, settings)
        encoding = served_encoding(level, chunk_shape, settings)
    grid = chunk_grid(level.shape, chunk_shape)
    return ArrayNode(
        path=path,
        level=level,
        chunk_shape=chunk_shape,
        grid=grid,
        encoding=encoding,
        passthrough=raw is not None,
        shuffled=raw is None
        and _gives_shuffled(level, chunk_shape)
        and encoding.takes_byte_planes(level.dtype),
        shard_shape=shard_shape(axis_names, chunk_shape, grid, settings.shard),
        axis_names=tuple(axis_names),
    )


def array_json(node: ArrayNode) -> bytes:
    """The ``zarr.json`` of the array ``node``."""
    return metadata.dumps(
        metadata.array_document(
            shape=node.shape,
            dtype=node.dtype,
            chunk_shape=node.chunk_shape,
            fill_value=node.fill_value,
            encoding=node.encoding,
            dimension_names=node.axis_names,
            shard_shape=node.shard_shape,
        )
    )


def served_encoding(level: Level, chunk_shape: tuple[int, ...], settings: ChunkSettings) -> ChunkEncoding:
    """The encoding of a level served in chunks of ``chunk_shape`` (not passed through):
    ``settings.codec``; ``auto`` is blosc-zstd where the level gives those chunks still
    byte-shuffled (then it costs no more CPU than zstd-1, and is 20-30% smaller), zstd
    elsewhere (where blosc-zstd would shuffle: 5-20% more CPU)."""
    if settings.codec != "auto":
        return ChunkEncoding.from_settings(settings.codec, settings.level)
    blosc = ChunkEncoding.from_settings("blosc-zstd", settings.level)
    if _gives_shuffled(level, chunk_shape) and blosc.takes_byte_planes(level.dtype):
        return blosc
    return ChunkEncoding.from_settings("zstd", settings.level)


def _gives_shuffled(level: Level, chunk_shape: tuple[int, ...]) -> bool:
    """Whether ``level`` gives chunks of ``chunk_shape`` still byte-shuffled: its stored
    chunks, or slabs of them (``gateway.ngff.slabs``). Level-like objects without
    ``shuffled_chunk_shape``, test doubles, give none."""
    stored = getattr(level, "shuffled_chunk_shape", None)
    return stored is not None and (stored == chunk_shape or slab_axis(stored, chunk_shape) is not None)


def shard_shape(
    axis_names: Sequence[str],
    chunk_shape: Sequence[int],
    grid: Sequence[int],
    shard: tuple[int, int, int] | None,
) -> tuple[int, ...] | None:
    """The shard of an array whose chunks are ``chunk_shape`` (its inner chunks), from
    ``[chunks] shard`` (inner chunks along z, y, x; one in t and c), no larger than the
    array's grid of chunks needs; None when not sharded."""
    if shard is None:
        return None
    per_axis = dict(zip("zyx", shard, strict=True))
    return tuple(
        c * min(per_axis.get(name, 1), n) for name, c, n in zip(axis_names, chunk_shape, grid, strict=True)
    )


@dataclass(frozen=True, slots=True)
class TreeOptions:
    """What besides chunking shapes a tree (the defaults add nothing: direct use, tests).

    ``label_groups``: image group paths of this source that are label images themselves
    (declared as another image's labels): their pyramids use ``label_method``."""

    pyramids: PyramidSettings = field(default_factory=lambda: PyramidSettings(enabled=False))
    metadata: MetadataSettings = field(
        default_factory=lambda: MetadataSettings(estimate_windows=False, consolidated=False)
    )
    tiles: TileCache = field(default_factory=NoTileCache)
    labels: tuple[LabelAttachment, ...] = ()
    label_groups: frozenset[str] = frozenset()
    rocrate: dict[str, Any] | None = None
    zarr_v2: bool = False
    #: the chunk settings of the browsing view (``browse_tree``); None: no such view
    browse: ChunkSettings | None = None

    @classmethod
    def from_settings(cls, settings: Settings, tiles: TileCache | None = None, **extra: Any) -> TreeOptions:
        return cls(
            pyramids=settings.pyramids,
            metadata=settings.metadata,
            tiles=tiles or NoTileCache(),
            zarr_v2=settings.zarr_v2.enabled,
            **extra,
        )


class _TreeBuilder:
    """Collects a tree's documents and arrays, refusing two nodes at one place."""

    def __init__(self, settings: ChunkSettings, options: TreeOptions) -> None:
        self.settings = settings
        self.options = options
        self.documents: dict[str, bytes] = {}
        self.arrays: dict[str, ArrayNode] = {}
        self.images: dict[str, Image] = {}

    def chunks_of(self, axis_names: Sequence[str]) -> Callable[[Level], tuple[int, ...]]:
        return lambda level: _array_node("", level, axis_names, self.settings).chunk_shape

    def add_group(self, prefix: str, attributes: dict[str, Any]) -> None:
        if f"{prefix}zarr.json" in self.documents or prefix.rstrip("/") in self.arrays:
            raise ValueError(f"two nodes of the tree would be at {prefix!r}")
        self.documents[f"{prefix}zarr.json"] = metadata.dumps(metadata.group_document(attributes))

    def add_image(
        self,
        prefix: str,
        image: Image,
        transforms: Sequence[pyramid.LevelTransform],
        *,
        downsampling: dict[str, Any] | None = None,
        image_label: dict[str, Any] | None = None,
    ) -> None:
        paths = [str(k) for k in range(len(image.levels))]
        attributes = ome.image_attributes(
            image, paths, transforms, downsampling=downsampling, image_label=image_label
        )
        self.add_group(prefix, attributes)
        self.images[prefix.rstrip("/")] = image
        for path, level in zip(paths, image.levels, strict=True):
            node = _array_node(f"{prefix}{path}", level, image.axis_names, self.settings)
            if node.path in self.arrays or f"{node.path}/zarr.json" in self.documents:
                raise ValueError(f"two nodes of the tree would be at {node.path!r}")
            self.arrays[node.path] = node
            self.documents[f"{node.path}/zarr.json"] = array_json(node)

    def pyramid_of(self, group: str, image: Image, method: pyramid.Method) -> pyramid.Pyramid:
        """The image's native levels, extended as the pyramid settings say."""
        transforms = ome.native_transforms(image)
        settings = self.options.pyramids
        if not settings.enabled:
            return pyramid.Pyramid(image.levels, tuple(transforms), method)
        return pyramid.extend(
            image.levels,
            transforms,
            axis_names=image.axis_names,
            units=[axis.unit for axis in image.axes],
            method=method,
            chunks_of=self.chunks_of(image.axis_names),
            tiles=self.options.tiles,
            key=("pyramid", group),
            max_levels=settings.max_levels,
        )


def downsampling_attributes(levels: pyramid.Pyramid) -> dict[str, Any] | None:
    """The multiscale's ``type`` and ``metadata`` when levels were synthesized."""
    if not levels.synthesized:
        return None
    native = len(levels.levels) - levels.synthesized
    described: dict[str, Any] = {
        "description": "levels computed on demand by ome-zarr-gateway, each from the next finer level",
        "method": f"ome-zarr-gateway {levels.method}",
        "synthesized_levels": [str(k) for k in range(native, len(levels.levels))],
        "edges": "sizes rounded up; edge pixels from the valid pixels of their block",
    }
    if levels.method == "mean":
        described["rounding"] = "integers: floor(mean + 1/2); floats: float64 mean cast to the type"
    attributes: dict[str, Any] = {"metadata": described}
    if native == 1:  # every reduced level is ours: the pyramid's method is known
        attributes["type"] = levels.method
    return attributes


def build_tree(source: Source, settings: ChunkSettings, options: TreeOptions | None = None) -> DatasetTree:
    options = options or TreeOptions()
    builder = _TreeBuilder(settings, options)
    named = any(image.path is not None for image in source.images)
    multi = len(source.images) > 1 and not named
    placed = list(variants.group_prefixes(source.images, source.plates))
    for prefix, image in placed:
        group = prefix.rstrip("/")
        is_label = group in options.label_groups
        if options.metadata.estimate_windows and not is_label:
            image = with_estimated_windows(image, image.levels[-1], options.metadata.window_sample_bytes)
        method: pyramid.Method = options.pyramids.label_method if is_label else options.pyramids.method
        levels = builder.pyramid_of(group, image, method)
        image = replace(image, levels=levels.levels)
        builder.add_image(prefix, image, levels.transforms, downsampling=downsampling_attributes(levels))
        _add_labels(builder, prefix, image, levels, [a for a in options.labels if a.image_path == group])
        if variants.needs_variant(image.levels[0].dtype):
            builder.add_image(
                f"{prefix}{variants.VARIANT_NAME}/",
                variants.float32_variant(image),
                levels.transforms,
                downsampling=downsampling_attributes(levels),
            )
    for prefix, attributes in hcs.plate_groups(source.plates, len(source.images), source.path.name).items():
        builder.add_group(prefix, attributes)
    documents, arrays = builder.documents, builder.arrays
    if named:
        _add_parent_groups(documents, arrays)
    if source.plates:  # the bioformats2raw series: where each Image of the OME-XML went
        series = [prefix.rstrip("/") for prefix, _ in placed]
        documents["OME/zarr.json"] = metadata.dumps(metadata.group_document(ome.series_attributes(series)))
    elif multi:
        series = [str(i) for i in range(len(source.images))]
        documents["zarr.json"] = metadata.dumps(metadata.group_document(ome.bioformats2raw_attributes()))
        documents["OME/zarr.json"] = metadata.dumps(metadata.group_document(ome.series_attributes(series)))
    if source.ome_xml:
        documents[OME_XML_KEY] = source.ome_xml.encode()
        # a single image is an image group at the root (what viewers are pointed at), not
        # the bioformats2raw layout; its OME group is a plain group holding the XML
        documents.setdefault("OME/zarr.json", metadata.dumps(metadata.group_document()))
    if options.rocrate is not None:
        documents[rocrate.FILENAME] = metadata.dumps(options.rocrate)
    browse = browse_tree(documents, arrays, builder.images, options.browse) if options.browse else None
    if options.metadata.consolidated:
        documents = consolidated.consolidate(documents, options.metadata.consolidated_max_bytes)
        if browse is not None:
            browse = replace(
                browse,
                documents=consolidated.consolidate(browse.documents, options.metadata.consolidated_max_bytes),
            )
    v2 = None
    if options.zarr_v2:
        plain = unsharded(arrays)
        v2 = DatasetTree(zarr_v2.v2_documents(documents, plain), plain, builder.images, key_style="v2")
    return DatasetTree(documents=documents, arrays=arrays, images=builder.images, v2=v2, browse=browse)


def browse_tree(
    documents: dict[str, bytes],
    arrays: dict[str, ArrayNode],
    images: dict[str, Image],
    settings: ChunkSettings,
) -> DatasetTree | None:
    """The browsing view of a tree (``BrowseSettings``): the same levels and groups, each
    array whose chunks ``settings`` cut otherwise (slabs of at most ``settings.max_z``
    planes) chunked and encoded by ``settings``, the others as they are. None when no
    array is cut: the view is then the tree itself."""
    cut: dict[str, ArrayNode] = {}
    for path, node in arrays.items():
        browsing = _array_node(path, node.level, node.axis_names, settings)
        if browsing.chunk_shape != node.chunk_shape:
            cut[path] = browsing
    if not cut:
        return None
    documents = documents | {f"{path}/zarr.json": array_json(node) for path, node in cut.items()}
    return DatasetTree(documents=documents, arrays=arrays | cut, images=images)


def label_mismatch(image: Image, label: Image) -> str | None:
    """Why ``label`` cannot be a label image of ``image`` (None when it can): an integer
    type, the image's axes (the channel axis may be left out) and its level-0 size."""
    dtype = label.levels[0].dtype
    if dtype.kind not in "iu":
        return f"its data type {dtype} is not an integer type"
    names = image.axis_names
    expected = names if "c" in label.axis_names else tuple(n for n in names if n != "c")
    if label.axis_names != expected:
        return f"its axes {''.join(label.axis_names)} do not match the image's {''.join(names)}"
    keep = [i for i, n in enumerate(names) if n in label.axis_names]
    shape = tuple(image.levels[0].shape[i] for i in keep)
    if label.levels[0].shape != shape:
        return f"its shape {label.levels[0].shape} differs from the image's {shape}"
    return None


def _add_labels(
    builder: _TreeBuilder,
    prefix: str,
    image: Image,
    levels: pyramid.Pyramid,
    attachments: Sequence[LabelAttachment],
) -> None:
    served: list[str] = []
    for attachment in attachments:
        problem = label_mismatch(image, attachment.image)
        if problem is not None:
            logger.error(
                "%s is not served as label %r of %r: %s",
                attachment.origin,
                attachment.name,
                prefix.rstrip("/") or image.name,
                problem,
            )
            continue
        keep = [i for i, n in enumerate(image.axis_names) if n in attachment.image.axis_names]
        shapes = [tuple(level.shape[i] for i in keep) for level in image.levels]
        steps = [
            tuple(max(1, round(ome.downsample_factor(a, b))) for a, b in zip(finer, coarser, strict=True))
            for finer, coarser in itertools.pairwise(shapes)
        ]
        base = levels.transforms[0]
        base_transform = pyramid.LevelTransform(
            tuple(base.scale[i] for i in keep), tuple(base.translation[i] for i in keep)
        )
        label = attachment.image
        labelled = pyramid.follow(
            label.levels[0],
            base_transform,
            steps,
            method=cast(pyramid.Method, builder.options.pyramids.label_method),
            chunks_of=builder.chunks_of(label.axis_names),
            tiles=builder.options.tiles,
            key=("label", prefix, attachment.name),
        )
        label_image = replace(
            label,
            name=attachment.name,
            levels=labelled.levels,
            axes=tuple(a for a in image.axes if a.name in label.axis_names),
            scale=base_transform.scale,
            translation=None,
            channels=(),
            path=None,
        )
        builder.add_image(
            f"{prefix}labels/{attachment.name}/",
            label_image,
            labelled.transforms,
            image_label={"source": {"image": "../../"}},
        )
        served.append(attachment.name)
    if served:
        builder.add_group(f"{prefix}labels/", ome.labels_attributes(served))


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
