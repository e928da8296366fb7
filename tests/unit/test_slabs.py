"""Served chunks as C-order slabs of stored chunks (``gateway.ngff.slabs``), checked
against numpy: a slab's elements are exactly the run ``start:stop`` of its stored chunk's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gateway.ngff.slabs import slab_axis, slab_position


@pytest.mark.parametrize(
    ("stored", "served", "axis"),
    [
        ((64, 128, 128), (16, 128, 128), 0),
        ((64, 128, 128), (1, 128, 128), 0),
        ((1, 1, 64, 128, 128), (1, 1, 16, 128, 128), 2),  # t, c of one element
        ((1, 8, 64, 64), (1, 2, 64, 64), 1),
        ((1, 1, 128), (1, 1, 32), 2),  # rows of one line
        ((64, 128, 128), (64, 128, 128), None),  # the stored chunk itself
        ((64, 128, 128), (24, 128, 128), None),  # does not divide it
        ((64, 128, 128), (16, 64, 128), None),  # cut in y too: not contiguous
        ((64, 128, 128), (64, 64, 128), None),  # rows of planes: not one run
        ((2, 64, 128), (2, 16, 128), None),  # two elements before the cut
        ((64, 128, 128), (128, 128, 128), None),  # larger
        ((64, 128), (64, 128, 1), None),  # another rank
    ],
)
def test_slab_axis(stored, served, axis):
    assert slab_axis(stored, served) == axis


@pytest.mark.parametrize(
    ("stored", "served"), [((8, 4, 6), (2, 4, 6)), ((1, 1, 6, 3, 5), (1, 1, 3, 3, 5)), ((1, 6, 4), (1, 1, 4))]
)
def test_every_slab_is_its_run_of_the_stored_chunks_elements(stored, served):
    grid_of_stored = (2, 1, 3)[: len(stored)] + (1,) * max(0, len(stored) - 3)
    shape = tuple(n * g for n, g in zip(stored, grid_of_stored, strict=True))
    array = np.arange(np.prod(shape)).reshape(shape)
    axis = slab_axis(stored, served)
    assert axis is not None
    served_grid = tuple(n // c for n, c in zip(shape, served, strict=True))
    for coords in itertools.product(*(range(g) for g in served_grid)):
        where = slab_position(coords, stored, served, axis)
        stored_chunk = array[
            tuple(slice(i * c, (i + 1) * c) for i, c in zip(where.stored, stored, strict=True))
        ]
        slab = array[tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, served, strict=True))]
        assert np.array_equal(stored_chunk.reshape(-1)[where.start : where.stop], slab.reshape(-1)), coords
