"""An in-memory ``Level`` for unit tests: a numpy array that records what is read of it."""

from __future__ import annotations

import numpy as np


class ArrayLevel:
    """``data`` as a level; ``tile_shape`` defaults to the whole array."""

    def __init__(
        self, data: np.ndarray, tile_shape: tuple[int, ...] | None = None, fill_value: float = 0
    ) -> None:
        self.data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.tile_shape = tile_shape or data.shape
        self.fill_value = fill_value
        self.reads: list[tuple[slice, ...]] = []

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        self.reads.append(region)
        return self.data[region]
