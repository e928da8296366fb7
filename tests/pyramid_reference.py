"""The documented downsampling rules, written again with plain numpy for the tests.

Independent of ``gateway/levels/pyramid.py`` (which counts an odd edge's last slab twice and
sorts with a network): here a partial block is averaged over its *valid* pixels with
Python-integer arithmetic where 64-bit sums could overflow, and the mode counts every
pair. The rules (README, "Synthesized pyramids"):

- sizes round up; an odd edge's last pixel comes from its valid pixels only;
- mean: integers floor(sum / count + 1/2); floats summed in float64 along each reduced
  axis in turn (pairs), divided by the count, cast to the type; bool as 0/1;
- mode: the most frequent valid value, ties to the smallest; nearest: the first pixel.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import zarr


def _blocks(data: np.ndarray, factors: Sequence[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The values of each block position (one array per offset, output-shaped) and
    whether that offset is a valid pixel there."""
    out_shape = tuple(-(-n // f) for n, f in zip(data.shape, factors, strict=True))
    values, valid = [], []
    for offsets in itertools.product(*(range(f) for f in factors)):
        index = np.ix_(*(np.arange(m) * f + o for m, f, o in zip(out_shape, factors, offsets, strict=True)))
        inside = np.ones(out_shape, bool)
        clipped = []
        for axis, (m, f, o, n) in enumerate(zip(out_shape, factors, offsets, data.shape, strict=True)):
            positions = np.arange(m) * f + o
            ok = positions < n
            shape = [1] * len(out_shape)
            shape[axis] = m
            inside &= ok.reshape(shape)
            clipped.append(np.minimum(positions, n - 1))
        values.append(data[np.ix_(*clipped)])
        valid.append(inside)
        del index
    return values, valid


def _mean_float(data: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    total = data.astype(np.float64)
    count = np.ones(data.shape, np.float64)
    for axis, f in enumerate(factors):
        if f == 1:
            continue
        n = total.shape[axis]
        lead = np.take(total, np.arange(0, n, 2), axis=axis)
        lead_count = np.take(count, np.arange(0, n, 2), axis=axis)
        follow = np.take(total, np.arange(1, n, 2), axis=axis)
        follow_count = np.take(count, np.arange(1, n, 2), axis=axis)
        paired = [slice(None)] * data.ndim
        paired[axis] = slice(0, n // 2)
        lead[tuple(paired)] += follow
        lead_count[tuple(paired)] += follow_count
        total, count = lead, lead_count
    with np.errstate(over="ignore", invalid="ignore"):
        return (total / count).astype(data.dtype)


def reduce_reference(data: np.ndarray, factors: Sequence[int], method: str) -> np.ndarray:
    """One level down from ``data`` by ``factors`` (1 or 2 per axis) with ``method``."""
    if method == "nearest":
        return data[tuple(slice(None, None, f) for f in factors)].copy()
    if method == "mean" and data.dtype.kind == "f":
        return _mean_float(data, factors)
    if method == "mean" and data.dtype.kind == "b":
        return reduce_reference(data.astype(np.uint8), factors, method).astype(bool)
    values, valid = _blocks(data, factors)
    if method == "mean":
        wide: Any = object if data.dtype.itemsize == 8 else np.int64
        total = sum(np.where(ok, v.astype(wide), 0) for v, ok in zip(values, valid, strict=True))
        count = sum(ok.astype(np.int64) for ok in valid)
        result = (2 * np.asarray(total, dtype=wide) + count) // (2 * count)
        return np.asarray(result).astype(data.dtype)
    if method == "mode":
        counts = [
            np.where(ok_i, sum((v_i == v_j) & ok_j for v_j, ok_j in zip(values, valid, strict=True)), -1)
            for v_i, ok_i in zip(values, valid, strict=True)
        ]
        best, best_count = values[0].copy(), counts[0].copy()
        for v, c in zip(values[1:], counts[1:], strict=True):
            better = (c > best_count) | ((c == best_count) & (v < best))
            best = np.where(better, v, best)
            best_count = np.where(better, c, best_count)
        return best.astype(data.dtype)
    raise ValueError(method)


def reference_pyramid(level0: np.ndarray, shapes: Sequence[Sequence[int]], method: str) -> list[np.ndarray]:
    """Levels of the given shapes (level 0 first), each reduced from the one before."""
    levels = [level0]
    for finer, coarser in itertools.pairwise(shapes):
        factors = [1 if a == b else 2 for a, b in zip(finer, coarser, strict=True)]
        assert all(-(-a // f) == b for a, b, f in zip(finer, coarser, factors, strict=True)), (finer, coarser)
        levels.append(reduce_reference(levels[-1], factors, method))
    return levels


def synthesized_paths(group: zarr.Group) -> list[str]:
    """The level paths a served image group declares as synthesized."""
    multiscale = group.attrs["ome"]["multiscales"][0]
    return list((multiscale.get("metadata") or {}).get("synthesized_levels", []))


def assert_synthesized_levels(
    group: zarr.Group, finest: np.ndarray, first: int, what: str, method: str = "mean"
) -> None:
    """Every synthesized level of ``group`` (from level ``first`` on) equals the reference
    chain computed from ``finest`` (level ``first - 1``'s pixels), bit-exactly."""
    multiscale = group.attrs["ome"]["multiscales"][0]
    paths = [d["path"] for d in multiscale["datasets"]]
    assert synthesized_paths(group) == paths[first:], what
    shapes = [finest.shape] + [group[p].shape for p in paths[first:]]
    expected = reference_pyramid(finest, shapes, method)
    for path, want in zip(paths[first:], expected[1:], strict=True):
        served = group[path][...]
        assert served.dtype == want.dtype, f"{what} level {path}"
        np.testing.assert_array_equal(served, want, err_msg=f"{what} level {path}", strict=True)
