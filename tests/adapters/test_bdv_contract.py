"""BigDataViewer (XML + HDF5) under the adapter contract: two view setups (channels), two
timepoints, two levels, referenced by h5py reading each ``t/s/level/cells`` dataset."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from adapters.base import Axis
from adapters.hdf5.bdv import BdvAdapter
from tests.adapters.contract import AdapterContract
from tests.hdf5.writers import BdvSetup, pixels, write_bdv

TIMEPOINTS = (0, 1)
SETUPS = 2
LEVELS = 2
UM = "micrometer"


class TestBigDataViewer(AdapterContract):
    adapter_type = BdvAdapter
    passthrough = True  # deflate chunks: zlib streams a gzip codec rewraps
    axes = ((Axis("t"), Axis("c"), Axis("z", UM), Axis("y", UM), Axis("x", UM)),)

    @pytest.fixture
    def sample(self, tmp_path: Path) -> Path:
        path = tmp_path / "dataset.xml"
        setups = [
            BdvSetup(pixels((len(TIMEPOINTS), 9, 61, 50), "uint16", s), f"setup {s}", channel=s)
            for s in range(SETUPS)
        ]
        write_bdv(path, "dataset.h5", setups, timepoints=TIMEPOINTS)
        return path

    @pytest.fixture
    def reference(self, sample: Path) -> list[list[np.ndarray]]:
        """Setups are channels; BigDataViewer stores uint16 as int16 (Java has no unsigned
        types), viewed back here."""
        with h5py.File(sample.with_suffix(".h5"), "r") as f:

            def cells(t: int, s: int, level: int) -> np.ndarray:
                return f[f"t{t:05d}/s{s:02d}/{level}/cells"][...].view(np.uint16)

            levels = [
                np.stack([np.stack([cells(t, s, level) for s in range(SETUPS)]) for t in TIMEPOINTS])
                for level in range(LEVELS)
            ]
        return [levels]
