"""Hostile HDF5 and TIFF files for the bounded-decoding and sparse-index tests, written by
h5py (with hdf5plugin's filters) and tifffile into a directory the caller gives.

A bomb chunk is written as stored bytes (``write_direct_chunk``, or a TIFF tile's offset
and byte count patched) built by ``tests.hostile.frames``: kilobytes that declare, or
inflate to, gigabytes. Every other chunk holds honest, never-fill pixels.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np
import tifffile

from tests.hostile.frames import (
    blosc_lying_header,
    blosc_zstd_frame,
    deflate_stream,
    lz4_h5_frame,
    zstd_rle_frame,
)

MiB = 1024**2
GiB = 1024 * MiB
BOMB = 2 * GiB  # what a bomb chunk declares or inflates to
CHUNK = (256, 256)  # uint8: 64 KiB decoded
CHUNK_BYTES = CHUNK[0] * CHUNK[1]
GIANT_CHUNK = (64, 64)  # the sparse giants' chunks (uint16)

#: name → (h5py filter options, the bomb's stored bytes, what the refusal says)
BOMBS: dict[str, tuple[dict[str, Any], Callable[[], bytes], str]] = {
    "zstd": (dict(hdf5plugin.Zstd()), lambda: zstd_rle_frame(BOMB), "zstd data declares 2147483648"),
    "zstd-understated": (
        dict(hdf5plugin.Zstd()),
        lambda: zstd_rle_frame(BOMB, declared=CHUNK_BYTES),
        "cannot be decoded",
    ),
    "blosc": (dict(hdf5plugin.Blosc(cname="zstd")), lambda: blosc_zstd_frame(BOMB), "blosc data declares"),
    "blosc-lying": (dict(hdf5plugin.Blosc(cname="zstd")), lambda: blosc_lying_header(BOMB), "blosc"),
    "lz4-lying": (dict(hdf5plugin.LZ4()), lambda: lz4_h5_frame(MiB, declared=BOMB), "lz4 data declares"),
    "lz4": (dict(hdf5plugin.LZ4()), lambda: lz4_h5_frame(BOMB), "lz4 data declares"),
    "deflate": ({"compression": "gzip"}, lambda: deflate_stream(BOMB), "cannot be decoded"),
}


def honest_pixels(shape: Sequence[int]) -> np.ndarray:
    """uint8 pixels 1..251, never the fill value 0."""
    return (np.arange(int(np.prod(shape)), dtype=np.uint32) % 251 + 1).astype(np.uint8).reshape(shape)


def write_bomb_h5(path: Path, name: str, shape: tuple[int, int] = (256, 512)) -> np.ndarray:
    """Dataset ``x`` of uint8 in 256 x 256 chunks: chunk (0, 0) is bomb ``name``, every
    other chunk honest. Returns the honest pixels (wrong only in chunk (0, 0))."""
    options, bomb, _ = BOMBS[name]
    honest = honest_pixels(shape)
    with h5py.File(path, "w") as f:
        dataset = f.create_dataset("x", shape=shape, dtype=np.uint8, chunks=CHUNK, **options)
        dataset[...] = honest
        dataset.id.write_direct_chunk((0, 0), bomb())
    return honest


def write_zstd_tiff_bomb(path: Path, shape: tuple[int, int] = (256, 512)) -> np.ndarray:
    """A uint8 TIFF of zstd 256 x 256 tiles whose tile 0 is a bomb frame (appended to the
    file, its offset and byte count patched). Returns the honest pixels."""
    honest = honest_pixels(shape)
    tifffile.imwrite(path, honest, tile=CHUNK, compression="zstd", photometric="minisblack")
    bomb = zstd_rle_frame(BOMB)
    with tifffile.TiffFile(path) as tif:
        order, tags = tif.byteorder, tif.pages[0].tags
        formats = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8
        patches = [
            (tags[n].valueoffset, formats[int(tags[n].dtype)]) for n in ("TileOffsets", "TileByteCounts")
        ]
    with open(path, "r+b") as fh:
        end = fh.seek(0, 2)
        fh.write(bomb)
        for (where, kind), value in zip(patches, (end, len(bomb)), strict=True):
            fh.seek(where)  # the first entry of each array: tile 0
            fh.write(struct.pack(order + kind, value))
    return honest


def write_giant_chunk_h5(path: Path, edge: int = 32768) -> None:
    """One honest chunk of ``edge``^2 bytes of 7 (1 GiB by default): 32 KB of zstd."""
    with h5py.File(path, "w") as f:
        dataset = f.create_dataset(
            "x", shape=(edge, edge), dtype=np.uint8, chunks=(edge, edge), **hdf5plugin.Zstd()
        )
        dataset.id.write_direct_chunk((0, 0), zstd_rle_frame(edge * edge, byte=7))


def giant_block(coords: tuple[int, int]) -> np.ndarray:
    """The uint16 pixels of the stored chunk at ``coords`` of a sparse giant."""
    values = (np.arange(GIANT_CHUNK[0] * GIANT_CHUNK[1]) + 7 * coords[0] + coords[1]) % 60000 + 10
    return values.astype(np.uint16).reshape(GIANT_CHUNK)


def write_sparse_giant(path: Path, edge: int, stored: Sequence[tuple[int, int]], fill: int = 9) -> None:
    """Dataset ``x``: ``edge`` x ``edge`` uint16 in 64 x 64 deflate chunks, fill value
    ``fill``, only the chunks at ``stored`` written (a file of a few KB)."""
    with h5py.File(path, "w") as f:
        dataset = f.create_dataset(
            "x", shape=(edge, edge), dtype=np.uint16, chunks=GIANT_CHUNK, compression="gzip", fillvalue=fill
        )
        for coords in stored:
            y, x = coords[0] * GIANT_CHUNK[0], coords[1] * GIANT_CHUNK[1]
            dataset[y : y + GIANT_CHUNK[0], x : x + GIANT_CHUNK[1]] = giant_block(coords)
