"""The TIFF family under the adapter contract: plain TIFF (tiled and striped), an OME-TIFF
pyramid in SubIFDs and an ImageJ hyperstack, referenced by tifffile's own reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from adapters.base import Axis
from adapters.tiff.adapter import TiffAdapter
from tests.adapters.contract import AdapterContract, to_tczyx
from tests.hdf5.writers import pixels

UM = "micrometer"


class TiffContract(AdapterContract):
    """Every TIFF sample: the reference is each level of each tifffile series."""

    adapter_type = TiffAdapter

    @pytest.fixture
    def reference(self, sample: Path) -> list[list[np.ndarray]]:
        with tifffile.TiffFile(sample) as tif:
            return [
                [to_tczyx(level.asarray(), level.axes) for level in series.levels] for series in tif.series
            ]


class TestTiledTiff(TiffContract):
    """Tiles that do not divide the image, zstd without predictor: they pass through."""

    passthrough = True
    axes = ((Axis("y"), Axis("x")),)

    @pytest.fixture
    def sample(self, tmp_path: Path) -> Path:
        path = tmp_path / "tiled.tif"
        tifffile.imwrite(path, pixels((150, 200), "uint16", 1), tile=(64, 64), compression="zstd")
        return path


class TestStripedRgbTiff(TiffContract):
    """RGB samples interleaved in deflated strips that do not divide the height."""

    axes = ((Axis("c"), Axis("y"), Axis("x")),)

    @pytest.fixture
    def sample(self, tmp_path: Path) -> Path:
        path = tmp_path / "striped.tiff"
        data = pixels((97, 83, 3), "uint8", 2)
        tifffile.imwrite(path, data, photometric="rgb", rowsperstrip=16, compression="zlib")
        return path


class TestOmeTiffPyramid(TiffContract):
    """Two channels, three levels in SubIFDs of odd sizes, physical sizes in micrometres."""

    passthrough = True
    axes = ((Axis("c"), Axis("y", UM), Axis("x", UM)),)

    @pytest.fixture
    def sample(self, tmp_path: Path) -> Path:
        path = tmp_path / "pyramid.ome.tif"
        base = pixels((2, 301, 237), "uint16", 3)
        options = {"tile": (64, 64), "compression": "zstd", "photometric": "minisblack"}
        with tifffile.TiffWriter(path, ome=True) as tif:
            metadata = {"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
            tif.write(base, subifds=2, metadata=metadata, **options)
            tif.write(base[:, ::2, ::2], subfiletype=1, **options)
            tif.write(base[:, ::4, ::4], subfiletype=1, **options)
        return path


class TestImageJHyperstack(TiffContract):
    """TZCYX float32 (NaN, infinities, -0.0 included), one strip per plane; the adapter
    serves it as t, c, z, y, x."""

    axes = ((Axis("t"), Axis("c"), Axis("z", UM), Axis("y", UM), Axis("x", UM)),)

    @pytest.fixture
    def sample(self, tmp_path: Path) -> Path:
        path = tmp_path / "hyperstack.tif"
        metadata = {"axes": "TZCYX", "spacing": 1.5, "unit": "um"}
        data = pixels((2, 3, 2, 40, 50), "float32", 4)
        tifffile.imwrite(path, data, imagej=True, resolution=(2.0, 2.0), metadata=metadata)
        return path
