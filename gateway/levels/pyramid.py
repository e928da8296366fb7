"""Synthesized pyramid levels: each computed, on demand, from the next finer level.

A ``DownsampledLevel`` is a ``Level`` whose blocks (one block = one served chunk) are
computed from the finer level's region under them — never from level 0 directly — and
kept in the gateway's decoded-tile cache (bounded in bytes, single flight). A chunk of
the coarsest level thus reads each finer block once, each of those reads its own finer
blocks once, and so on: a whole pyramid costs about one pass over the source. Nothing is
written to disk.

Bounded work: a block whose finer region holds no stored data at all (absent TIFF tiles,
unallocated HDF5 chunks: ``adapters.base.may_hold_data``) is fill at once, without reading,
and the question goes down the chain of synthesized levels to the source in one step, so
an empty giant costs a look at its tile table, not a pass over its pixels. Between blocks
the computation checks its work token (``gateway.levels.budget.checkpoint``): it stops when its
requests went away or its time budget ran out.

The rules (the README and the tests' numpy reference use exactly these):

- **Which axes.** y and x halve (while larger than 1). z halves when, in physical units,
  its voxel size is less than 1/√2 of the new level's y/x voxel size — when halving it
  brings the voxel closer to a cube: an isotropic stack halves z with y/x, a stack 4x
  coarser in z keeps z for two levels. t and c never change. Levels are added until the
  coarsest fits in one chunk: its y/x plane, and its z extent too when z is chunked by
  more than one plane (or until ``pyramids.max_levels`` is reached).
- **Edges.** Sizes round up: n → ceil(n / 2). The last pixel of an odd axis comes from the
  valid pixels of its partial block only (implemented by counting the last slab twice,
  which scales every count in the block alike and changes neither a mean nor a mode).
- **mean** (intensity images): the exact sum of the block's valid pixels over their
  count. Integers are rounded half up, floor(sum / count + 1/2), in integer arithmetic
  wide enough never to overflow (8/16/32-bit values are summed in twice their width;
  64-bit values are split into ``v >> 3`` and ``v & 7``, summed apart and recombined).
  Floats are summed in float64 (pairs along z, then y, then x), divided, and cast back to
  their type. bool is averaged as 0/1 (ties give true).
- **mode** (label images): the most frequent value among the block's valid pixels, ties
  to the smallest. **nearest**: the block's first pixel (lowest index on every axis).
  Neither invents a value.
- **Coordinates.** A level's scale is the finer scale times the factor. A mean (or mode)
  pixel sits at the centre of its block, so its translation is the finer translation
  plus (factor - 1) / 2 finer pixels; nearest keeps the finer translation.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from adapters.base import Level, Region, TileCache, may_hold_data
from adapters.units import to_micrometers
from gateway.levels.budget import bound, checkpoint, current_token

Method = Literal["mean", "mode", "nearest"]
#: Methods whose pixels stand for the centre of their block (a half-pixel translation).
CENTRED: frozenset[str] = frozenset({"mean", "mode"})

# Batcher's odd-even merge sort networks: (i, j) pairs compared and swapped in order.
_NETWORKS: dict[int, tuple[tuple[int, int], ...]] = {
    1: (),
    2: ((0, 1),),
    4: ((0, 1), (2, 3), (0, 2), (1, 3), (1, 2)),
    8: (
        (0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (1, 2), (5, 6),
        (0, 4), (1, 5), (2, 6), (3, 7), (2, 4), (3, 5), (1, 2), (3, 4), (5, 6),
    ),
}  # fmt: skip


# ---------------------------------------------------------------------------------------
# The reduction rules (pure functions of an array)


def reduced_shape(shape: Sequence[int], factors: Sequence[int]) -> tuple[int, ...]:
    """Shape after reducing by ``factors`` (sizes round up)."""
    return tuple(-(-int(n) // int(f)) for n, f in zip(shape, factors, strict=True))


def downsample(data: np.ndarray, factors: Sequence[int], method: Method) -> np.ndarray:
    """``data`` reduced by ``factors`` (1 or 2 per axis; any positive integer for
    ``nearest``) with ``method``: a new C-contiguous array of ``data``'s dtype."""
    if len(factors) != data.ndim or any(f < 1 for f in factors):
        raise ValueError(f"bad factors {tuple(factors)} for a {data.ndim}-d array")
    if method == "nearest":
        return np.ascontiguousarray(data[tuple(slice(None, None, f) for f in factors)])
    if any(f > 2 for f in factors):
        raise ValueError(f"{method} reduces by 1 or 2 per axis, not {tuple(factors)}")
    axes = [axis for axis, f in enumerate(factors) if f == 2 and data.shape[axis] > 0]
    if not axes or data.size == 0:
        return np.array(data[tuple(slice(None, None, f) for f in factors)], order="C")
    if method == "mean":
        return _mean(data, axes)
    if method == "mode":
        return _mode(data, axes)
    raise ValueError(f"unknown downsampling method {method!r}")


def _along(ndim: int, axis: int, index: slice) -> tuple[slice, ...]:
    where = [slice(None)] * ndim
    where[axis] = index
    return tuple(where)


def _pair_sums(data: np.ndarray, axis: int, dtype: np.dtype[Any]) -> np.ndarray:
    """Sums of neighbouring pairs along ``axis`` in ``dtype``; an odd last element counts
    twice (its partial block then weighs like a full one, see the module docstring)."""
    n = data.shape[axis]
    half = n // 2
    shape = list(data.shape)
    shape[axis] = (n + 1) // 2
    out = np.empty(shape, dtype)
    pairs = out[_along(data.ndim, axis, slice(0, half))]
    first = data[_along(data.ndim, axis, slice(0, 2 * half, 2))]
    second = data[_along(data.ndim, axis, slice(1, 2 * half, 2))]
    if data.dtype == dtype:
        np.add(first, second, out=pairs)
    else:  # widen the first, then add the second: 30 % faster than a widening add
        pairs[...] = first
        pairs += second
    if n % 2:
        np.multiply(
            data[_along(data.ndim, axis, slice(n - 1, n))],
            2,
            out=out[_along(data.ndim, axis, slice(half, half + 1))],
            dtype=dtype,
        )
    return out


def _block_sum(data: np.ndarray, axes: Sequence[int], dtype: np.dtype[Any]) -> np.ndarray:
    total = data
    for axis in axes:  # in axis order: z, then y, then x
        total = _pair_sums(total, axis, dtype)
    return total


def _mean(data: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    dtype = data.dtype
    shift = len(axes)
    count = 1 << shift  # every block counts this many (partial blocks are scaled up)
    if dtype.kind == "b":
        return _mean(data.view(np.uint8), axes).astype(bool)
    if dtype.kind == "f":
        total = _block_sum(data, axes, np.dtype(np.float64))
        total /= count  # exact: a power of two
        with np.errstate(over="ignore", invalid="ignore"):
            return total.astype(dtype)
    if dtype.kind not in "iu":
        raise ValueError(f"cannot average {dtype}")
    if dtype.itemsize <= 4:
        wide = np.dtype(f"{dtype.kind}{2 * dtype.itemsize}")
        total = _block_sum(data, axes, wide)
        total += count // 2
        total >>= shift  # floor(sum / count + 1/2): arithmetic shift floors negatives too
        return total.astype(dtype)
    # 64-bit: v = 8 * (v >> 3) + (v & 7). The high parts sum without overflow (each is at
    # most max/8, and there are at most 8), the low parts are tiny.
    high = _block_sum(data >> 3, axes, dtype)
    low = _block_sum((data & 7).astype(np.int64), axes, np.dtype(np.int64))
    low += count // 2
    low >>= shift
    high *= 8 >> shift  # 8 * high / count: exact, and within range (see above)
    high += low.astype(dtype)
    return high


def _mode(data: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    values = [data]
    for axis in axes:
        n = data.shape[axis]
        split: list[np.ndarray] = []
        for block in values:
            split.append(block[_along(data.ndim, axis, slice(0, None, 2))])
            if n % 2:
                odd = np.minimum(np.arange(1, n + 1, 2), n - 1)  # the last slab twice
                split.append(np.take(block, odd, axis=axis))
            else:
                split.append(block[_along(data.ndim, axis, slice(1, None, 2))])
        values = split
    ordered = _sorted(values)
    best = ordered[0].copy()
    best_count = np.ones(best.shape, np.uint8)
    run = np.ones(best.shape, np.uint8)
    for previous, current in itertools.pairwise(ordered):
        run = np.where(current == previous, run + 1, 1).astype(np.uint8)
        better = run > best_count  # strictly: ties keep the smaller (earlier) value
        np.copyto(best, current, where=better)
        np.maximum(best_count, run, out=best_count)
    return best


def _sorted(values: list[np.ndarray]) -> list[np.ndarray]:
    """Element-wise sort of same-shaped arrays with a sorting network (no per-pixel sort;
    more than 8 values, which pyramids never need, fall back to numpy's sort)."""
    if len(values) not in _NETWORKS:
        return list(np.sort(np.stack(values), axis=0))
    out = [np.array(v) for v in values]
    for i, j in _NETWORKS[len(out)]:
        low = np.minimum(out[i], out[j])
        np.maximum(out[i], out[j], out=out[j])
        out[i] = low
    return out


# ---------------------------------------------------------------------------------------
# A level computed from the next finer one


class DownsampledLevel(Level):
    """A ``Level`` reduced from ``finer`` by ``factors`` with ``method``, computed by
    blocks of ``block_shape`` (its served chunks, and its ``tile_shape``) through the tile
    cache ``tiles`` under keys ``(key, block coordinates)``. Blocks are read-only arrays."""

    __slots__ = ("_key", "_tiles", "factors", "finer", "method")

    def __init__(
        self,
        finer: Level,
        factors: Sequence[int],
        method: Method,
        block_shape: Sequence[int],
        tiles: TileCache,
        key: Hashable,
    ) -> None:
        if len(factors) != len(finer.shape) or len(block_shape) != len(finer.shape):
            raise ValueError("factors and block shape need one entry per axis")
        self.finer = finer
        self.factors = tuple(int(f) for f in factors)
        self.method: Method = method
        self._tiles = tiles
        self._key = key
        super().__init__(
            shape=reduced_shape(finer.shape, self.factors),
            dtype=finer.dtype,
            tile_shape=tuple(max(1, int(b)) for b in block_shape),
            fill_value=finer.fill_value,  # the mean, mode or sample of fill is fill
        )

    def read(self, region: Region) -> np.ndarray:
        out_shape = self._check_region(region)
        if 0 in out_shape:
            return np.empty(out_shape, dtype=self.dtype)
        block_shape = self.tile_shape
        grid, blocks = self.blocks(region)
        if len(grid) == 1:
            origin = [i * b for i, b in zip(grid[0], block_shape, strict=True)]
            return blocks[0][
                tuple(slice(s.start - o, s.stop - o) for s, o in zip(region, origin, strict=True))
            ]
        out = np.empty(out_shape, dtype=self.dtype)
        for coords, block in zip(grid, blocks, strict=True):
            src, dst = [], []
            for s, b, i in zip(region, block_shape, coords, strict=True):
                lo, hi = max(s.start, i * b), min(s.stop, (i + 1) * b)
                src.append(slice(lo - i * b, hi - i * b))
                dst.append(slice(lo - s.start, hi - s.start))
            out[tuple(dst)] = block[tuple(src)]
        return out

    def any_stored(self, region: Region) -> bool:
        """Whether the finer region under ``region`` may hold stored data (asked of the
        finer level, and so on down to the source: one cheap look, no pixels read)."""
        return may_hold_data(self.finer, self.finer_region(region))

    def block_region(self, coords: Sequence[int]) -> Region:
        """The region of this level that block ``coords`` covers (clipped at the edges)."""
        return tuple(
            slice(i * b, min((i + 1) * b, n))
            for i, b, n in zip(coords, self.tile_shape, self.shape, strict=True)
        )

    def finer_region(self, region: Region) -> Region:
        """The region of the finer level that ``region`` of this level is computed from."""
        return tuple(
            slice(s.start * f, min(s.stop * f, n))
            for s, f, n in zip(region, self.factors, self.finer.shape, strict=True)
        )

    def _compute(self, keys: list[Hashable]) -> Mapping[Hashable, np.ndarray]:
        if len(keys) > 1 and not _fanning_out.active:
            return _fan_out(self._block, keys)
        return {key: self._block(key) for key in keys}

    def _block(self, key: Hashable) -> np.ndarray:
        checkpoint()  # the request that wants this may have gone, or run out of time
        coords: tuple[int, ...] = key[1]  # type: ignore[index]
        region = self.block_region(coords)
        shape = tuple(s.stop - s.start for s in region)
        source = self.finer_region(region)
        if not may_hold_data(self.finer, source):  # nothing stored under it: fill, known without reading
            block = np.full(shape, self.fill_value, self.dtype)
        else:
            parts = aligned_parts(source, self.finer.tile_shape, self.factors, self.dtype.itemsize)
            if len(parts) == 1:
                block = downsample(self.finer.read(source), self.factors, self.method)
            else:
                block = self._reduce_parts(source, parts, shape)
        block.flags.writeable = False
        return block

    def _reduce_parts(self, source: Region, parts: list[Region], shape: tuple[int, ...]) -> np.ndarray:
        """The block under ``source`` reduced part by part (each part a few finer tiles):
        the reductions are local, so each part's result is its share of the block, and no
        copy of the whole finer region is ever assembled (a level-1 block of a volume read
        16 MiB into one fresh array, then summed through three more: page faults and
        memory traffic cost more than the arithmetic)."""
        if isinstance(self.finer, DownsampledLevel):
            _, _held = self.finer.blocks(source)  # computed side by side, kept while the parts read them
        out = np.empty(shape, self.dtype)
        for part in parts:
            checkpoint()
            target = tuple(
                slice((p.start - s.start) // f, -(-(p.stop - s.start) // f))
                for p, s, f in zip(part, source, self.factors, strict=True)
            )
            if may_hold_data(self.finer, part):
                out[target] = downsample(self.finer.read(part), self.factors, self.method)
            else:
                out[target] = self.fill_value
        return out

    def blocks(self, region: Region) -> tuple[list[tuple[int, ...]], list[np.ndarray]]:
        """The coordinates of the blocks ``region`` touches, and the blocks, computed side by
        side (the fan-out pool) unless cached."""
        ranges = [
            range(s.start // b, (s.stop - 1) // b + 1) for s, b in zip(region, self.tile_shape, strict=True)
        ]
        grid = [tuple(p) for p in itertools.product(*ranges)]
        return grid, self._tiles.get_many([(self._key, g) for g in grid], self._compute)


#: A synthesized block reduces its finer region in parts of about this size at least,
#: aligned with the finer level's tiles (a stored chunk decoded is reduced while it is in
#: the CPU's caches, and never copied into a region-sized array first) ...
MIN_PART_BYTES = 1 << 20
#: ... and in at most this many (more, smaller parts would cost more Python than they save).
MAX_PARTS = 512


def aligned_parts(
    source: Region, tile_shape: Sequence[int], factors: Sequence[int], itemsize: int
) -> list[Region]:
    """``source`` cut at the finer level's tile boundaries (grown, innermost axis first,
    to ``MIN_PART_BYTES``), every cut at a multiple of the reduction factor so that each
    part reduces exactly as its share of the whole would: ``[source]`` itself when it is
    one part or would be more than ``MAX_PARTS``."""
    extents = [s.stop - s.start for s in source]
    steps = [math.lcm(int(t), int(f)) for t, f in zip(tile_shape, factors, strict=True)]

    def part_bytes() -> int:
        return math.prod(min(step, n) for step, n in zip(steps, extents, strict=True)) * itemsize

    while part_bytes() < MIN_PART_BYTES:
        growable = [axis for axis, (step, n) in enumerate(zip(steps, extents, strict=True)) if step < n]
        if not growable:
            break
        steps[growable[-1]] *= 2
    cuts = [
        [s.start, *range((s.start // step + 1) * step, s.stop, step), s.stop]
        for s, step in zip(source, steps, strict=True)
    ]
    count = math.prod(len(c) - 1 for c in cuts)
    if count <= 1 or count > MAX_PARTS:
        return [tuple(source)]
    return [
        tuple(slice(c[i], c[i + 1]) for c, i in zip(cuts, index, strict=True))
        for index in itertools.product(*(range(len(c) - 1) for c in cuts))
    ]


# ---------------------------------------------------------------------------------------
# Blocks of a synthesized level computed in parallel


#: Threads that compute the blocks of one synthesized chunk side by side. A cold coarse
#: chunk reads its whole footprint in the source (a volume's coarsest level: every stored
#: chunk), which one thread did alone while the other cores idled; bounded, made once.
FAN_OUT_THREADS = max(2, os.cpu_count() or 2)
_fan_out_pool: ThreadPoolExecutor | None = None
_fan_out_lock = threading.Lock()


class _FanningOut(threading.local):
    active = False  # set in the fan-out threads: their own blocks are computed in turn


_fanning_out = _FanningOut()


def _fan_out(compute: Callable[[Hashable], np.ndarray], keys: list[Hashable]) -> dict[Hashable, np.ndarray]:
    """``compute`` of every key, in the fan-out pool, with the caller's work token (its
    deadline and cancellation reach every block). One level deep: a block computed there
    computes its own finer blocks in turn, so no fan-out thread ever waits for the pool
    (no deadlock however deep the pyramid)."""
    global _fan_out_pool
    with _fan_out_lock:
        if _fan_out_pool is None:
            _fan_out_pool = ThreadPoolExecutor(FAN_OUT_THREADS, thread_name_prefix="gateway-pyramid")
    token = current_token()

    def job(key: Hashable) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            _fanning_out.active = True
            try:
                return compute(key)
            finally:
                _fanning_out.active = False

        return run if token is None else bound(token, run)

    tasks = {key: _fan_out_pool.submit(job(key)) for key in keys}
    try:
        return {key: task.result() for key, task in tasks.items()}
    finally:
        for task in tasks.values():
            task.cancel()  # after a failure: what has not started never will


def is_synthesized(level: Level) -> bool:
    """Whether reading ``level`` computes a synthesized level (heavy work: one chunk may
    read a whole pyramid below it), seen through wrappers that keep their ``source``."""
    while not isinstance(level, DownsampledLevel):
        inner = getattr(level, "source", None)
        if inner is None or inner is level:
            return False
        level = inner
    return True


# ---------------------------------------------------------------------------------------
# Planning: which levels to add, and where their pixels sit


@dataclass(frozen=True, slots=True)
class LevelTransform:
    """Physical size and offset of one pixel of a level (NGFF scale and translation)."""

    scale: tuple[float, ...]
    translation: tuple[float, ...]

    def reduced(self, factors: Sequence[int], centred: bool) -> LevelTransform:
        """The transform of a level reduced from this one by ``factors``."""
        scale = tuple(s * f for s, f in zip(self.scale, factors, strict=True))
        translation = tuple(
            t + (f - 1) / 2 * s if centred else t
            for t, s, f in zip(self.translation, self.scale, factors, strict=True)
        )
        return LevelTransform(scale, translation)


class LevelProbe(Level):
    """The shape and tiling a level would have, for choosing its chunks before it exists."""

    __slots__ = ()

    def read(self, region: Region) -> np.ndarray:
        raise NotImplementedError("a probe holds no data")


#: The served chunk shape of a level (the layout's choice, given its shape and tiles).
ChunksOf = Callable[[Level], tuple[int, ...]]


def _comparable(size: float, unit: str | None, other_unit: str | None) -> float:
    """``size`` in the unit of ``other_unit`` where both are known lengths, else as is."""
    if unit and other_unit and unit != other_unit:
        ours, theirs = to_micrometers(size, unit), to_micrometers(1.0, other_unit)
        if ours is not None and theirs:
            return ours / theirs
    return size


def step_factors(
    axis_names: Sequence[str],
    units: Sequence[str | None],
    shape: Sequence[int],
    scale: Sequence[float],
) -> tuple[int, ...]:
    """Factors of the next level (see the module docstring: y/x halve, z when comparable)."""
    factors = [1] * len(axis_names)
    plane = [i for i, name in enumerate(axis_names) if name in ("y", "x")]
    for i in plane:
        if shape[i] > 1:
            factors[i] = 2
    if "z" in axis_names:
        z = axis_names.index("z")
        if shape[z] > 1 and plane:
            new_plane = min(scale[i] * factors[i] for i in plane)
            z_size = _comparable(scale[z], units[z], units[plane[0]])
            if z_size * math.sqrt(2) < new_plane:
                factors[z] = 2
    return tuple(factors)


def fits_one_chunk(axis_names: Sequence[str], shape: Sequence[int], chunks: Sequence[int]) -> bool:
    """Whether a level of ``shape`` is one chunk in every spatial axis: y and x, and z when
    it is chunked in blocks of several planes (a volume served in 3-D chunks gets levels
    until a 3-D view has its overview in one chunk; a plane-chunked one stops at the plane)."""
    y, x = axis_names.index("y"), axis_names.index("x")
    if max(shape[y], shape[x]) > max(chunks[y], chunks[x]):
        return False
    z = axis_names.index("z") if "z" in axis_names else None
    return z is None or chunks[z] <= 1 or shape[z] <= chunks[z]


@dataclass(frozen=True, slots=True)
class Pyramid:
    """An image's levels and their transforms, after synthesis; ``synthesized``: how many
    trailing levels were added (0: all native), by ``method``."""

    levels: tuple[Level, ...]
    transforms: tuple[LevelTransform, ...]
    method: Method
    synthesized: int = 0


def extend(
    levels: Sequence[Level],
    transforms: Sequence[LevelTransform],
    *,
    axis_names: Sequence[str],
    units: Sequence[str | None],
    method: Method,
    chunks_of: ChunksOf,
    tiles: TileCache,
    key: Hashable,
    max_levels: int = 0,
) -> Pyramid:
    """``levels`` followed by synthesized levels until the coarsest fits in one chunk (at
    most ``max_levels`` in all when that is positive)."""
    levels = list(levels)
    transforms = list(transforms)
    added = 0
    while max_levels <= 0 or len(levels) < max_levels:
        coarsest = levels[-1]
        chunks = chunks_of(coarsest)
        if fits_one_chunk(axis_names, coarsest.shape, chunks):
            break
        factors = step_factors(axis_names, units, coarsest.shape, transforms[-1].scale)
        if all(f == 1 for f in factors):
            break
        probe = LevelProbe(
            shape=reduced_shape(coarsest.shape, factors), dtype=coarsest.dtype, tile_shape=chunks
        )
        block = chunks_of(probe)
        levels.append(DownsampledLevel(coarsest, factors, method, block, tiles, (key, len(levels))))
        transforms.append(transforms[-1].reduced(factors, method in CENTRED))
        added += 1
    return Pyramid(tuple(levels), tuple(transforms), method, added)


def follow(
    base: Level,
    base_transform: LevelTransform,
    steps: Sequence[Sequence[int]],
    *,
    method: Method,
    chunks_of: ChunksOf,
    tiles: TileCache,
    key: Hashable,
) -> Pyramid:
    """A pyramid over ``base`` reduced by the given per-level ``steps`` (a label image
    following its image's levels). Steps of 2 use ``method``; a power of two larger than
    2 is taken in halvings (served levels only at the requested ones); any other factor
    falls back to nearest."""
    levels: list[Level] = [base]
    transforms = [base_transform]
    current: Level = base
    for index, factors in enumerate(steps, start=1):
        remaining = [int(f) for f in factors]
        transform = transforms[-1]
        if all(f & (f - 1) == 0 for f in remaining):
            while any(f > 1 for f in remaining):
                step = tuple(2 if f > 1 else 1 for f in remaining)
                current = _reduced(current, step, method, chunks_of, tiles, (key, index, sum(remaining)))
                transform = transform.reduced(step, method in CENTRED)
                remaining = [f // s for f, s in zip(remaining, step, strict=True)]
        else:
            current = _reduced(current, remaining, "nearest", chunks_of, tiles, (key, index, 0))
            transform = transform.reduced(remaining, False)
        levels.append(current)
        transforms.append(transform)
    return Pyramid(tuple(levels), tuple(transforms), method, len(steps))


def _reduced(
    finer: Level, factors: Sequence[int], method: Method, chunks_of: ChunksOf, tiles: TileCache, key: Hashable
) -> DownsampledLevel:
    probe = LevelProbe(
        shape=reduced_shape(finer.shape, factors), dtype=finer.dtype, tile_shape=chunks_of(finer)
    )
    return DownsampledLevel(finer, factors, method, chunks_of(probe), tiles, key)
