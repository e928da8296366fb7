"""An in-memory ``Level`` for unit tests: a numpy array that records what is read of it."""

from __future__ import annotations

import numpy as np

from adapters.base import Level


class ArrayLevel(Level):
    """``data`` as a level; ``tile_shape`` defaults to the whole array."""

    def __init__(
        self, data: np.ndarray, tile_shape: tuple[int, ...] | None = None, fill_value: float = 0
    ) -> None:
        super().__init__(
            shape=data.shape,
            dtype=data.dtype,
            tile_shape=tile_shape or tuple(max(1, n) for n in data.shape),
            fill_value=fill_value,
        )
        self.data = data
        self.reads: list[tuple[slice, ...]] = []

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        self.reads.append(region)
        return self.data[region]
