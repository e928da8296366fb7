"""Imaris 5.5 under the adapter contract: two timepoints, two channels, two levels whose
``Data`` arrays are padded with junk to whole blocks, referenced by h5py reading each
``Data`` cropped to its ``ImageSizeZ/Y/X``."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from adapters.base import Axis
from adapters.hdf5.adapter import Hdf5Adapter
from tests.adapters.contract import AdapterContract
from tests.hdf5.writers import ImarisSpec, pixels, write_imaris

UM = "micrometer"


def _size(group: h5py.Group, name: str) -> int:
    return int(b"".join(group.attrs[name]).decode())


class TestImaris(AdapterContract):
    adapter_type = Hdf5Adapter
    passthrough = True  # deflate chunks: zlib streams a gzip codec rewraps
    axes = ((Axis("t"), Axis("c"), Axis("z", UM), Axis("y", UM), Axis("x", UM)),)

    @pytest.fixture
    def sample(self, tmp_path: Path) -> Path:
        path = tmp_path / "cells.ims"
        write_imaris(path, ImarisSpec(data=pixels((2, 2, 6, 70, 50), "uint16", 9)))
        return path

    @pytest.fixture
    def reference(self, sample: Path) -> list[list[np.ndarray]]:
        levels = []
        with h5py.File(sample, "r") as f:
            for r in range(len(f["DataSet"])):
                level = f[f"DataSet/ResolutionLevel {r}"]
                stack = []
                for t in range(len(level)):
                    planes = []
                    for c in range(len(level[f"TimePoint {t}"])):
                        group = level[f"TimePoint {t}/Channel {c}"]
                        z, y, x = (_size(group, f"ImageSize{a}") for a in "ZYX")
                        planes.append(group["Data"][:z, :y, :x])
                    stack.append(np.stack(planes))
                levels.append(np.stack(stack))
        return [levels]
