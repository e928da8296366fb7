"""One chunk of an array node: read from its level, padded to the chunk shape, encoded;
or one shard of a sharded array node: its inner chunks so, and their index.

Sync and blocking: the store runs it in a worker thread. A pass-through array first asks
its level for the stored bytes of the chunk as they are (no decode, no encode; zlib and
shuffled zstd streams framed as a blosc block, or as a gzip member); a ``shuffled`` one for
the stored chunk decoded all but its byte shuffle (or its slab of it), which blosc-zstd
compresses as it is.
Either falls back to reading and encoding the chunk.
"""

from __future__ import annotations

import time
from typing import Any, cast

import numpy as np

from adapters.base import PassThroughLevel, may_hold_data
from gateway.levels.budget import checkpoint
from gateway.ngff import shards, slabs
from gateway.ngff.keys import chunk_region
from gateway.ngff.layout import ArrayNode
from gateway.store.timing import RequestTiming


def is_all_fill(data: np.ndarray, fill_value: float) -> bool:
    """Whether every element has exactly the fill value's bits.

    Bitwise, because a client fills an absent chunk with exactly those bits: ``-0.0`` is
    not the fill value 0, nor is a NaN with another payload the fill value NaN.

    A sparse sample is looked at first: real data differs from the fill almost
    everywhere, and the full comparison costs ~2% of a transcoded chunk.
    """
    if data.size > FILL_SAMPLE_MIN:
        sample = data[tuple(slice(None, None, FILL_SAMPLE_STEP) for _ in range(data.ndim))]  # a view
        if not _all_fill(sample, fill_value):
            return False
    return _all_fill(data, fill_value)


def planes_all_fill(planes: np.ndarray, fill_value: float, dtype: np.dtype[Any]) -> bool:
    """``is_all_fill`` of a chunk given as its little-endian byte planes (uint8,
    (itemsize, elements)): every plane holds only its byte of the fill value."""
    fill = np.array([fill_value], dtype=dtype.newbyteorder("<")).view(np.uint8).reshape(-1, 1)
    zero = not fill.any()
    if planes.shape[1] > FILL_SAMPLE_MIN:  # as many elements as a 3-D chunk's sample
        sample = planes[:, :: FILL_SAMPLE_STEP**3]
        if sample.any() if zero else not (sample == fill).all():
            return False
    return not planes.any() if zero else bool((planes == fill).all())


#: A stored chunk compressed this much or more may hold only the fill value (2 MiB of zeros
#: deflate to ~2 KiB, real data to more than half): it is decoded to find out, so that an
#: empty chunk sent as stored is absent, as an encoded one is. Others are sent unread.
MAY_BE_FILL_RATIO = 64

#: Chunks above this many elements are sampled first, every this-many-th along each axis.
FILL_SAMPLE_MIN = 4096
FILL_SAMPLE_STEP = 7


def _all_fill(data: np.ndarray, fill_value: float) -> bool:
    if data.dtype.kind in "fc":
        unsigned = np.dtype(f"u{data.dtype.itemsize}")
        fill_bits = np.array(fill_value, dtype=data.dtype).view(unsigned)
        bits = data.view(unsigned)
        return not bits.any() if fill_bits == 0 else bool((bits == fill_bits).all())
    if fill_value == 0:
        return not data.any()
    return bool((data == fill_value).all())


def chunk_configuration(node: ArrayNode) -> str:
    """What decides a chunk's (or a shard's) bytes besides the source and the key (for ETags)."""
    mode = "passthrough" if node.passthrough else "shuffled" if node.shuffled else "encoded"
    sharded = "" if node.shard_shape is None else f";shard {node.shard_shape}"
    return f"{node.encoding.identity};{node.chunk_shape};{mode}{sharded}"


def render_chunk(
    node: ArrayNode, coords: tuple[int, ...], omit_empty: bool, timing: RequestTiming | None = None
) -> bytes | None:
    """Read, pad and encode one chunk; None when it holds only the fill value.

    A pass-through array first asks for the stored bytes of the chunk as they are.
    ``timing`` (of the request that computes the chunk) receives the read and encode times."""
    timing = timing or RequestTiming()
    started = time.perf_counter()
    if node.passthrough:  # the layout only sets it for a PassThroughLevel
        raw = cast(PassThroughLevel, node.level).read_raw_chunk(coords)
        if raw is not None and omit_empty and len(raw) * MAY_BE_FILL_RATIO <= node.chunk_nbytes:
            region = chunk_region(coords, node.chunk_shape, node.shape)
            if is_all_fill(node.level.read(region), node.fill_value):
                timing.since("read", started)
                return None
        served = None if raw is None else node.encoding.from_stored(raw, node.chunk_nbytes, node.dtype)
        if served is not None:
            timing.since("read", started)
            return served
    if node.shuffled:
        planes = _shuffled_planes(node, coords)
        if planes is not None:
            started = timing.since("read", started)
            if omit_empty and planes_all_fill(planes, node.fill_value, node.dtype):
                return None
            encoded = node.encoding.encode_byte_planes(planes, node.dtype)
            timing.since("encode", started)
            return encoded
    region = chunk_region(coords, node.chunk_shape, node.shape)
    if omit_empty and not may_hold_data(node.level, region):
        timing.since("read", started)
        return None  # nothing stored under it (absent tiles, an empty pyramid block): fill
    data = node.level.read(region)
    started = timing.since("read", started)
    if omit_empty and is_all_fill(data, node.fill_value):
        return None
    if data.shape != node.chunk_shape:
        padded = np.full(node.chunk_shape, node.fill_value, dtype=data.dtype)
        padded[tuple(slice(0, n) for n in data.shape)] = data
        data = padded
    encoded = node.encoding.encode(data)
    timing.since("encode", started)
    return encoded


def _shuffled_planes(node: ArrayNode, coords: tuple[int, ...]) -> np.ndarray | None:
    """Chunk ``coords`` of a ``shuffled`` node as its byte planes: the stored chunk's, or
    the served slab's run of them. The stored chunk of a slab is kept decoded in the tile
    cache, cut into its slabs' runs, where its other slabs find it: one inflate for all."""
    stored = node.level.shuffled_chunk_shape
    axis = None if stored is None else slabs.slab_axis(stored, node.chunk_shape)
    if stored is None or axis is None:
        return node.level.read_shuffled_chunk(coords)
    where = slabs.slab_position(coords, stored, node.chunk_shape, axis)
    runs = node.level.read_shuffled_chunk(where.stored, where.runs)
    return None if runs is None else runs[where.run]


def render_shard(
    node: ArrayNode, coords: tuple[int, ...], omit_empty: bool, timing: RequestTiming | None = None
) -> bytes | None:
    """One shard of a sharded array: its inner chunks rendered as the unsharded array's
    chunks are (pass-through ones untouched), then the index; None when all are fill.

    Inner chunks are rendered one after another in this thread, with a budget check
    between them (a shard may hold thousands)."""
    assert node.shard_shape is not None
    chunks: list[bytes | None] = []
    for inner in shards.inner_chunks(coords, node.chunks_per_shard, node.grid):
        checkpoint()
        chunks.append(None if inner is None else render_chunk(node, inner, omit_empty, timing))
    return shards.assemble(chunks)
