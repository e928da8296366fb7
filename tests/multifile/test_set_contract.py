"""Multi-file sets under the adapter contract (``tests/adapters/contract.py``): opened at
their master, referenced by tifffile's own reading of the whole set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from adapters.base import Axis
from adapters.tiff.adapter import TiffAdapter
from tests.adapters.contract import AdapterContract, to_tczyx
from tests.multifile.sets import ramp, write_companion_set, write_mmstack


class TestCompanionSet(AdapterContract):
    """Bio-Formats' layout: a z-stack, one plane per file, tiled zstd (tiles that do not
    divide the plane): stored tiles of every member pass through."""

    adapter_type = TiffAdapter
    axes = ((Axis("z"), Axis("y"), Axis("x")),)
    passthrough = True

    @pytest.fixture
    def sample(self, tmp_path: Path) -> Path:
        written = write_companion_set(tmp_path, ramp((5, 70, 90)), tile=(32, 48), compression="zstd")
        return written.companion

    @pytest.fixture
    def reference(self, sample: Path) -> list[list[np.ndarray]]:
        member = sample.with_name("set-Z1.ome.tiff")
        with tifffile.TiffFile(member, omexml=sample.read_text()) as tif:
            series = tif.series[0]
            assert series.is_multifile
            return [[to_tczyx(series.asarray(), series.axes)]]


class TestMicroManagerSet(AdapterContract):
    """Micro-Manager's layout: T x Z x C planes in acquisition order, split over three
    files in deflated strips; opened at the first file."""

    adapter_type = TiffAdapter
    axes = ((Axis("t"), Axis("c"), Axis("z", "micrometer"), Axis("y"), Axis("x")),)

    @pytest.fixture
    def sample(self, tmp_path: Path) -> Path:
        stack = write_mmstack(
            tmp_path, ramp((3, 2, 2, 40, 30)), [5, 5, 2], rowsperstrip=16, compression="zlib"
        )
        return stack.files[0]

    @pytest.fixture
    def reference(self, sample: Path) -> list[list[np.ndarray]]:
        with tifffile.TiffFile(sample) as tif:  # tifffile follows the set's files itself
            series = tif.series[0]
            assert series.is_multifile
            return [[to_tczyx(series.asarray(), series.axes)]]
