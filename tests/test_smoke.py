"""End-to-end smoke test: a file written by tifffile, served by uvicorn, read by zarr-python."""

from __future__ import annotations

import numpy as np
import tifffile
import zarr


def test_tiff_roundtrip_over_http(serve_dir) -> None:
    root, start = serve_dir
    data = np.arange(3 * 100 * 70, dtype=np.uint16).reshape(3, 100, 70)
    tifffile.imwrite(root / "stack.tif", data, tile=(32, 32), compression="zlib", photometric="minisblack")
    with start() as base:
        group = zarr.open_group(f"{base}/data/stack.tif", mode="r")
        assert group.attrs["ome"]["version"] == "0.5"
        np.testing.assert_array_equal(group["0"][:], data)
