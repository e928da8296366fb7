"""What a client must read from a served HDF5 dataset: h5py's own reading of it."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import zarr


def read_data(path: Path, name: str = "data") -> np.ndarray:
    """h5py's reading of dataset ``name``, in native byte order."""
    with h5py.File(path, "r") as f:
        data = np.asarray(f[name][()])
    return data.astype(data.dtype.newbyteorder("="))


def assert_zarr_reads_exactly(url: str, path: Path, compressor: str, chunks: tuple[int, ...]) -> None:
    """zarr-python reads the array at ``url`` (level 0 of dataset ``data`` of ``path``)
    bit for bit as h5py does, in ``chunks`` compressed by ``compressor``."""
    array = zarr.open_array(url, mode="r")
    assert [c.to_dict()["name"] for c in array.metadata.codecs] == ["bytes", compressor]
    assert array.chunks == chunks
    served, want = array[...], read_data(path)
    assert served.dtype == want.dtype and served.tobytes() == want.tobytes()
