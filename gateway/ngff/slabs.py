"""Served chunks that are C-order slabs of a stored chunk.

A volume stored in 64 x 128 x 128 chunks and served in 16 x 128 x 128 ones (``[chunks]
z = 16``): each served chunk is a run of whole planes of one stored chunk, so its elements
are one contiguous run of the stored chunk's elements. So are their byte planes when the
stored chunk is byte-shuffled (HDF5's shuffle filter): byte *k* of the served chunk's
elements is a contiguous run of row *k*. The gateway then cuts the served chunk from the
stored chunk still shuffled, decoded once for all its slabs, without unshuffling it.

Pure functions of shapes and coordinates: no store, no file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SlabPosition:
    """Where a served chunk lies in its stored chunk (of ``elements`` elements): the stored
    chunk's grid coordinates, and the served chunk as run ``run`` of the ``runs`` equal
    runs of the stored chunk's elements in C order."""

    stored: tuple[int, ...]
    run: int
    runs: int
    elements: int

    @property
    def start(self) -> int:
        """The served chunk's first element among the stored chunk's."""
        return self.run * self.elements // self.runs

    @property
    def stop(self) -> int:
        return (self.run + 1) * self.elements // self.runs


def slab_axis(stored: tuple[int, ...], served: tuple[int, ...]) -> int | None:
    """The axis along which ``served`` chunks cut ``stored`` chunks into slabs, or None
    when a served chunk is not one contiguous run of a stored chunk's elements.

    Such an axis *k*: the stored chunk is one element thick before it, the served chunk
    divides it along it, and is the same after it. Equal shapes are no slabs (None)."""
    if len(stored) != len(served) or stored == served:
        return None
    axis = next(i for i, (s, c) in enumerate(zip(stored, served, strict=True)) if s != c)
    if any(s != 1 for s in stored[:axis]) or stored[axis + 1 :] != served[axis + 1 :]:
        return None
    return axis if stored[axis] % served[axis] == 0 else None


def slab_position(
    coords: tuple[int, ...], stored: tuple[int, ...], served: tuple[int, ...], axis: int
) -> SlabPosition:
    """Where served chunk ``coords`` lies (``axis`` from ``slab_axis(stored, served)``)."""
    runs = stored[axis] // served[axis]
    outer, run = divmod(coords[axis], runs)
    return SlabPosition((*coords[:axis], outer, *coords[axis + 1 :]), run, runs, math.prod(stored))
