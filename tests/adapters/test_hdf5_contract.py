"""Generic HDF5 under the adapter contract: one dataset per file, chunked and deflated
(with a fill value), contiguous (big-endian), and zstd-chunked (passed through),
referenced by h5py's own reading."""

from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest

from adapters.base import Axis
from adapters.hdf5.adapter import Hdf5Adapter
from tests.adapters.contract import AdapterContract
from tests.hdf5.writers import pixels


class Hdf5Contract(AdapterContract):
    """One dataset ``DATASET`` of ``AXES`` (its default reading: the last two are y, x)."""

    adapter_type = Hdf5Adapter
    DATASET = "volume"

    @pytest.fixture
    def reference(self, sample: Path) -> list[list[np.ndarray]]:
        with h5py.File(sample, "r") as f:
            return [[f[self.DATASET][...]]]


class TestChunkedGzipHdf5(Hdf5Contract):
    """z, y, x int16 in chunks that divide no dimension, deflated, fill value -7 (two
    chunks never written read as fill)."""

    axes = ((Axis("z"), Axis("y"), Axis("x")),)
    passthrough = True  # deflate chunks: zlib streams a gzip codec rewraps

    @pytest.fixture
    def sample(self, tmp_path: Path) -> Path:
        path = tmp_path / "chunked.h5"
        with h5py.File(path, "w") as f:
            dataset = f.create_dataset(
                self.DATASET, (20, 150, 130), "int16", chunks=(8, 64, 64), compression="gzip", fillvalue=-7
            )
            dataset[:16] = pixels((16, 150, 130), "int16", 5)
            dataset[16:, :64] = pixels((4, 64, 130), "int16", 6)
        return path


class TestContiguousHdf5(Hdf5Contract):
    """y, x big-endian float32 stored contiguously (read in virtual row slabs)."""

    axes = ((Axis("y"), Axis("x")),)

    @pytest.fixture
    def sample(self, tmp_path: Path) -> Path:
        path = tmp_path / "contiguous.hdf5"
        with h5py.File(path, "w") as f:
            f.create_dataset(self.DATASET, data=pixels((300, 1500), ">f4", 7))
        return path


class TestZstdChunkedHdf5(Hdf5Contract):
    """z, y, x uint16 chunked one plane deep with the zstd filter: chunks pass through."""

    passthrough = True
    axes = ((Axis("z"), Axis("y"), Axis("x")),)

    @pytest.fixture
    def sample(self, tmp_path: Path) -> Path:
        path = tmp_path / "zstd.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset(
                self.DATASET, data=pixels((3, 100, 90), "uint16", 8), chunks=(1, 32, 32), **hdf5plugin.Zstd()
            )
        return path
