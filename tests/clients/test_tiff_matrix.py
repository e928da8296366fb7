"""Bit-exactness of TIFF sources: a matrix of files written by tifffile, read over HTTP.

Every variant below is written once into a temp root, served by one real uvicorn gateway,
and every series and every pyramid level is read with zarr-python 3 over HTTP and compared
bit for bit (values, dtype and the raw bytes, so NaN payloads and -0.0 count) with
tifffile's own decoding of the same series/level.

Each variant declares, per series, what it expects instead of re-deriving it:

- ``axes``: the axes tifffile reports for the series (``series.axes``), asserted;
- ``target``: one letter per tifffile axis saying where it goes in the served array
  (``t``/``c``/``z``/``y``/``x``, or ``-`` for a dimension of size 1 that is dropped).
  Several source axes with the same letter merge into one, major first (e.g. OME channel
  pages x RGB samples → ``c``); the test only sorts them into t, c, z, y, x order;
- ``dims``: the served ``dimension_names``, asserted against the array metadata.

A second set of servers (one per chunk codec, with ``chunks.yx = 256`` and
``chunks.z = 4``) checks that a subset still reads bit-exactly with other chunkings.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pytest
import tifffile
import zarr

from gateway.config.settings import Settings
from tests.pyramid_reference import assert_synthesized_levels, synthesized_paths
from tests.server import serve

ROOT_NAME = "m"
CANONICAL = "tczyx"

# ---------------------------------------------------------------------------------------
# Declarations


@dataclass(frozen=True)
class Series:
    """What one tifffile series must become (see module docstring)."""

    axes: str
    target: str
    dims: tuple[str, ...]
    dtype: str
    levels: int = 1


@dataclass(frozen=True)
class Variant:
    name: str  # file name in the served root
    write: Callable[[Path], None]
    series: tuple[Series, ...]
    xfail: str | None = None
    requires: str | None = None  # an imagecodecs codec the file needs (skipped if absent)
    marks: tuple[Any, ...] = field(default=())

    @property
    def available(self) -> bool:
        return self.requires is None or bool(getattr(imagecodecs, self.requires).available)


def _seed(*parts: object) -> int:
    return zlib.crc32(repr(parts).encode())


def pixels(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """Deterministic pixels over the full range of ``dtype``; floats include NaN, ±inf,
    -0.0, a subnormal and the extremes."""
    rng = np.random.default_rng(_seed(shape, dtype, seed))
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    data = (rng.standard_normal(shape) * 1000).astype(dt)
    flat = data.reshape(-1)
    finfo = np.finfo(dt)
    specials = [np.nan, np.inf, -np.inf, -0.0, finfo.smallest_subnormal, finfo.max, finfo.min, finfo.tiny]
    for i, value in enumerate(specials[: flat.size]):
        flat[(i * 7919) % flat.size] = value
    return data


def smooth(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """uint8 images with structure (what JPEG is made for), plus some noise."""
    rng = np.random.default_rng(_seed(shape, seed))
    grids = np.meshgrid(*(np.linspace(0, 6, n) for n in shape), indexing="ij")
    base = 100 + 60 * np.sin(sum(grids)) + rng.normal(0, 12, shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def imwrite(data: Callable[[], np.ndarray], **kwargs: Any) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        tifffile.imwrite(path, data(), **kwargs)

    return write


def S(axes: str, target: str, dims: str, dtype: str, levels: int = 1) -> Series:
    return Series(axes, target, tuple(dims), dtype, levels)


DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64")

# --- writers that need more than one imwrite call --------------------------------------


def write_ome_pyramid(path: Path) -> None:
    """OME-TIFF, BigTIFF, 2 channels, 4 levels as SubIFDs (ceil halving of odd sizes)."""
    base = pixels((2, 601, 437), "uint16", 1)
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        options = dict(tile=(128, 128), compression="zstd", predictor=True, photometric="minisblack")
        tif.write(
            base,
            subifds=3,
            metadata={"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5},
            **options,
        )
        for k in (1, 2, 3):
            step = 2**k
            tif.write(base[:, ::step, ::step], subfiletype=1, **options)


def write_ome_pyramid_5d(path: Path) -> None:
    """OME-TIFF TCZYX, every plane with 2 SubIFD levels."""
    base = pixels((2, 2, 3, 130, 120), "uint16", 9)
    with tifffile.TiffWriter(path, ome=True) as tif:
        options = dict(tile=(32, 32), compression="zlib", photometric="minisblack")
        tif.write(base, subifds=2, metadata={"axes": "TCZYX"}, **options)
        tif.write(base[..., ::2, ::2], subfiletype=1, **options)
        tif.write(base[..., ::4, ::4], subfiletype=1, **options)


def write_ome_pyramid_rgb(path: Path) -> None:
    """OME-TIFF, RGB (SamplesPerPixel=3) pyramid in SubIFDs with JPEG tiles, 3 levels."""
    base = smooth((700, 500, 3), 2)
    with tifffile.TiffWriter(path, ome=True) as tif:
        options = dict(tile=(256, 256), compression="jpeg", photometric="rgb")
        tif.write(base, subifds=2, metadata={"axes": "YXS"}, **options)
        tif.write(base[::2, ::2], subfiletype=1, **options)
        tif.write(base[::4, ::4], subfiletype=1, **options)


SVS = "Aperio Image Library v10.0.50\n"


def write_svs_like(path: Path) -> None:
    """Aperio-SVS-like: baseline + 2 reduced levels as separate IFDs, thumbnail, label, macro."""
    base = smooth((1000, 800, 3), 3)
    with tifffile.TiffWriter(path) as tif:
        jpeg = dict(compression="jpeg", photometric="rgb", metadata=None)
        tif.write(
            base,
            tile=(240, 240),
            description=SVS + "1000x800 [0,0 1000x800] (240x240) JPEG/RGB Q=70|AppMag = 20|MPP = 0.5",
            **jpeg,
        )
        tif.write(base[::8, ::8], description=SVS + "1000x800 -> 100x125 - ", **jpeg)
        tif.write(base[::4, ::4], tile=(240, 240), description=SVS + "1000x800 -> 200x250 - ", **jpeg)
        tif.write(base[::16, ::16], tile=(16, 16), description=SVS + "1000x800 -> 50x63 - ", **jpeg)
        tif.write(
            base[:100, :80],
            subfiletype=1,
            compression="lzw",
            predictor=True,
            photometric="rgb",
            metadata=None,
            description=SVS + "label 80x100",
        )
        tif.write(base[:60, :200], subfiletype=9, description=SVS + "macro 200x60", **jpeg)


def write_generic_pyramid(path: Path) -> None:
    """Plain TIFF, no metadata: full image then reduced-resolution IFDs (subfiletype 1)."""
    base = pixels((1000, 800), "int16", 4)
    with tifffile.TiffWriter(path) as tif:
        options = dict(tile=(64, 64), compression="zlib", photometric="minisblack", metadata=None)
        tif.write(base, **options)
        tif.write(base[::2, ::2], subfiletype=1, **options)
        tif.write(base[::4, ::4], subfiletype=1, **options)


def write_imagej_one_ifd(path: Path) -> None:
    """ImageJ hyperstack whose planes follow each other but only the first has an IFD, as
    ImageJ writes files over 4 GB: the IFD chain is cut after the first page."""
    data = pixels((4, 3, 20, 30), "uint16", 10)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TCYX"}, photometric="minisblack")
    with tifffile.TiffFile(path) as tif:
        first = tif.pages.first
        assert tif.pages[1].dataoffsets[0] == first.dataoffsets[0] + first.nbytes, "not contiguous"
        assert not tif.is_bigtiff  # classic IFD: 2-byte count, 12-byte entries
        tif.filehandle.seek(first.offset)
        (count,) = struct.unpack(tif.byteorder + "H", tif.filehandle.read(2))
        next_ifd = first.offset + 2 + count * 12
    with open(path, "r+b") as fh:
        fh.seek(next_ifd)
        fh.write(b"\0\0\0\0")


def write_ome_multi(path: Path) -> None:
    """OME-TIFF with three images of different shapes, dtypes and layouts."""
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(pixels((3, 40, 30), "uint16", 5), metadata={"axes": "ZYX"}, photometric="minisblack")
        tif.write(smooth((25, 35, 3), 5), metadata={"axes": "YXS"}, photometric="rgb", compression="lzw")
        tif.write(
            pixels((2, 17, 19), "float32", 5),
            metadata={"axes": "CYX"},
            photometric="minisblack",
            tile=(16, 16),
            compression="zlib",
        )


def write_shaped_multi(path: Path, metadata: dict[str, Any] | None) -> None:
    """Plain TIFF with three series (tifffile "shaped" metadata, or none: generic pages)."""
    kwargs: dict[str, Any] = {} if metadata is not None else {"metadata": None}
    with tifffile.TiffWriter(path) as tif:
        tif.write(pixels((3, 40, 30), "uint16", 6), photometric="minisblack", **kwargs)
        tif.write(pixels((25, 35), "float32", 6), photometric="minisblack", compression="zlib", **kwargs)
        tif.write(pixels((20, 10, 3), "uint8", 6), photometric="rgb", tile=(16, 16), **kwargs)


def sparse_tiles(shape: tuple[int, int], tile: int, missing: set[int], dtype: str) -> Iterator[Any]:
    data = pixels(shape, dtype, 7)
    rows, cols = -(-shape[0] // tile), -(-shape[1] // tile)
    for index in range(rows * cols):
        if index in missing:
            yield None
            continue
        r, c = divmod(index, cols)
        block = np.zeros((tile, tile), dtype=dtype)
        part = data[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
        block[: part.shape[0], : part.shape[1]] = part
        yield block


def write_sparse(
    path: Path, compression: str | None, nodata: str | None = None, dtype: str = "uint16"
) -> None:
    """Tiled file where some tiles have offset and bytecount 0 (never written), optionally
    with a GDAL_NODATA tag (tifffile fills missing tiles with it)."""
    tifffile.imwrite(
        path,
        sparse_tiles((100, 70), 32, {1, 5, 11}, dtype),
        shape=(100, 70),
        dtype=dtype,
        tile=(32, 32),
        compression=compression,
        photometric="minisblack",
        extratags=[(42113, "s", 0, nodata, True)] if nodata else (),
    )


def negative_zero() -> np.ndarray:
    """float32, all -0.0 in the first 512x512 served chunk, ordinary values elsewhere."""
    data = pixels((600, 600), "float32", 8)
    data[:512, :512] = -0.0
    return data


# --- the matrix -------------------------------------------------------------------------

VARIANTS: list[Variant] = [
    # axis layouts
    Variant(
        "yx_plain.tif",
        imwrite(lambda: pixels((64, 48), "uint8"), photometric="minisblack"),
        (S("YX", "yx", "yx", "uint8"),),
    ),
    Variant(
        "zyx_ome.ome.tif",
        imwrite(
            lambda: pixels((5, 60, 50), "uint16"),
            ome=True,
            metadata={"axes": "ZYX"},
            tile=(32, 32),
            compression="zlib",
            photometric="minisblack",
        ),
        (S("ZYX", "zyx", "zyx", "uint16"),),
    ),
    Variant(
        "cyx_ome.ome.tif",
        imwrite(
            lambda: pixels((3, 70, 90), "int16"),
            ome=True,
            compression="lzw",
            predictor=True,
            photometric="minisblack",
            metadata={
                "axes": "CYX",
                "PhysicalSizeX": 0.25,
                "PhysicalSizeY": 0.5,
                "Channel": {"Name": ["DAPI", "GFP", "RFP"], "Color": [-16776961, 16711935, 65535]},
            },
        ),
        (S("CYX", "cyx", "cyx", "int16"),),
    ),
    Variant(
        "tyx_ome_be.ome.tif",
        imwrite(
            lambda: pixels((4, 33, 47), "float32"),
            ome=True,
            byteorder=">",
            compression="zstd",
            metadata={"axes": "TYX"},
            photometric="minisblack",
        ),
        (S("TYX", "tyx", "tyx", "float32"),),
    ),
    Variant(
        "tczyx_ome.ome.tif",
        imwrite(
            lambda: pixels((2, 3, 4, 50, 40), "uint16"),
            ome=True,
            bigtiff=True,
            metadata={"axes": "TCZYX"},
            tile=(16, 16),
            compression="zlib",
            photometric="minisblack",
        ),
        (S("TCZYX", "tczyx", "tczyx", "uint16"),),
    ),
    Variant(
        "tzcyx_ome_xyczt.ome.tif",
        imwrite(
            lambda: pixels((2, 3, 4, 10, 12), "uint8"),
            ome=True,
            metadata={"axes": "TZCYX"},
            photometric="minisblack",
        ),
        (S("TZCYX", "tzcyx", "tczyx", "uint8"),),
    ),
    Variant(
        "tczyx_ome_singleton.ome.tif",
        imwrite(
            lambda: pixels((1, 2, 1, 30, 20), "uint8"),
            ome=True,
            metadata={"axes": "TCZYX"},
            photometric="minisblack",
        ),
        (S("CYX", "cyx", "cyx", "uint8"),),
    ),
    Variant(
        "imagej_hyperstack_be.tif",
        imwrite(
            lambda: pixels((2, 3, 4, 20, 30), "uint16"),
            imagej=True,
            byteorder=">",
            metadata={"axes": "TZCYX", "finterval": 1.5, "unit": "um", "spacing": 2.0},
            resolution=(4.0, 4.0),
            photometric="minisblack",
        ),
        (S("TZCYX", "tzcyx", "tczyx", "uint16"),),
    ),
    Variant(
        "imagej_rgb_zstack.tif",
        imwrite(
            lambda: pixels((3, 20, 30, 3), "uint8"), imagej=True, metadata={"axes": "ZYXS"}, photometric="rgb"
        ),
        (S("ZYXS", "zyxc", "czyx", "uint8"),),
    ),
    Variant("imagej_one_ifd_contiguous.tif", write_imagej_one_ifd, (S("TCYX", "tcyx", "tcyx", "uint16"),)),
    Variant(
        "imagej_zstack_float.tif",
        imwrite(
            lambda: pixels((6, 31, 29), "float32"),
            imagej=True,
            metadata={"axes": "ZYX"},
            photometric="minisblack",
        ),
        (S("ZYX", "zyx", "zyx", "float32"),),
    ),
    Variant(
        "shaped_qyx.tif",
        imwrite(lambda: pixels((6, 40, 30), "int32"), photometric="minisblack", compression="zlib"),
        (S("QYX", "zyx", "zyx", "int32"),),
    ),
    Variant(
        "shaped_qqyx.tif",
        imwrite(lambda: pixels((2, 3, 20, 30), "uint8"), photometric="minisblack"),
        (S("QQYX", "tzyx", "tzyx", "uint8"),),
    ),
    Variant(
        "shaped_qqqyx.tif",
        imwrite(lambda: pixels((2, 3, 4, 9, 11), "uint8"), photometric="minisblack"),
        (S("QQQYX", "ctzyx", "tczyx", "uint8"),),
    ),
    Variant(
        "shaped_leading_singleton.tif",
        imwrite(lambda: pixels((1, 3, 8, 9), "uint16"), photometric="minisblack"),
        (S("QQYX", "-zyx", "zyx", "uint16"),),
    ),
    Variant(
        "shaped_named_zcyx.tif",
        imwrite(lambda: pixels((4, 2, 12, 9), "int16"), photometric="minisblack", metadata={"axes": "ZCYX"}),
        (S("ZCYX", "zcyx", "czyx", "int16"),),
    ),
    Variant(
        "shaped_named_tcyx_c1.tif",
        imwrite(lambda: pixels((3, 1, 12, 9), "uint8"), photometric="minisblack", metadata={"axes": "TCYX"}),
        (S("TCYX", "t-yx", "tyx", "uint8"),),
    ),
    Variant(
        "generic_multipage.tif",
        imwrite(lambda: pixels((4, 40, 30), "uint16"), photometric="minisblack", metadata=None),
        (S("IYX", "zyx", "zyx", "uint16"),),
    ),
    Variant(
        "rgb_contig.tif",
        imwrite(
            lambda: pixels((50, 60, 3), "uint8"),
            photometric="rgb",
            planarconfig="contig",
            compression="lzw",
            predictor=True,
        ),
        (S("YXS", "yxc", "cyx", "uint8"),),
    ),
    Variant(
        "rgb_planar_tiled.tif",
        imwrite(
            lambda: pixels((3, 50, 60), "uint16"),
            photometric="rgb",
            planarconfig="separate",
            tile=(32, 32),
            compression="zlib",
            predictor=True,
        ),
        (S("SYX", "cyx", "cyx", "uint16"),),
    ),
    Variant(
        "rgb_planar_stack.tif",
        imwrite(lambda: pixels((2, 3, 10, 10), "float64"), photometric="rgb", planarconfig="separate"),
        (S("QSYX", "zcyx", "czyx", "float64"),),
    ),
    Variant(
        "rgb_planar_stack_tiled.tif",
        imwrite(
            lambda: pixels((2, 3, 40, 50), "uint16"),
            photometric="rgb",
            planarconfig="separate",
            tile=(16, 16),
            compression="zlib",
        ),
        (S("QSYX", "zcyx", "czyx", "uint16"),),
    ),
    Variant(
        "ome_two_planar_rgb_channels.ome.tif",
        imwrite(
            lambda: pixels((2, 3, 40, 50), "uint8"),
            ome=True,
            photometric="rgb",
            planarconfig="separate",
            metadata={"axes": "CSYX"},
        ),
        (S("CSYX", "ccyx", "cyx", "uint8"),),
    ),
    Variant(
        "rgba.tif",
        imwrite(lambda: pixels((20, 30, 4), "uint8"), photometric="rgb", extrasamples=["unassalpha"]),
        (S("YXS", "yxc", "cyx", "uint8"),),
    ),
    Variant(
        "rgb_stack_contig.tif",
        imwrite(lambda: pixels((3, 20, 30, 3), "uint8"), photometric="rgb", tile=(16, 16)),
        (S("QYXS", "zyxc", "czyx", "uint8"),),
    ),
    Variant(
        "samples5_contig.tif",
        imwrite(lambda: pixels((20, 30, 5), "uint8"), photometric="minisblack", planarconfig="contig"),
        (S("YXS", "yxc", "cyx", "uint8"),),
    ),
    Variant(
        "cmyk_separated.tif",
        imwrite(lambda: pixels((20, 30, 4), "uint8"), photometric="separated"),
        (S("YXS", "yxc", "cyx", "uint8"),),
    ),
    Variant(
        "miniswhite.tif",
        imwrite(lambda: pixels((20, 30), "uint16"), photometric="miniswhite"),
        (S("YX", "yx", "yx", "uint16"),),
    ),
    Variant(
        "volumetric_tiles_planar_rgb.tif",
        imwrite(
            lambda: pixels((3, 8, 32, 32), "uint8"),
            photometric="rgb",
            planarconfig="separate",
            tile=(4, 16, 16),
            volumetric=True,
        ),
        (S("SZYX", "czyx", "czyx", "uint8"),),
    ),
    # three unnamed stack axes + RGB: z, t, then c, which merges with the samples
    Variant(
        "shaped_qqqyxs_rgb.tif",
        imwrite(lambda: pixels((2, 2, 3, 10, 12, 3), "uint8"), photometric="rgb"),
        (S("QQQYXS", "ctzyxc", "tczyx", "uint8"),),
    ),
    Variant(
        "ome_rgb.ome.tif",
        imwrite(lambda: pixels((40, 50, 3), "uint8"), ome=True, photometric="rgb", metadata={"axes": "YXS"}),
        (S("YXS", "yxc", "cyx", "uint8"),),
    ),
    Variant(
        "ome_rgb_timelapse_tiled_be.ome.tif",
        imwrite(
            lambda: pixels((2, 40, 50, 3), "uint8"),
            ome=True,
            photometric="rgb",
            byteorder=">",
            compression="zlib",
            tile=(16, 16),
            metadata={"axes": "TYXS"},
        ),
        (S("TYXS", "tyxc", "tcyx", "uint8"),),
    ),
    Variant(
        "ome_two_rgb_channels.ome.tif",
        imwrite(
            lambda: pixels((2, 20, 30, 3), "uint8"), ome=True, photometric="rgb", metadata={"axes": "CYXS"}
        ),
        (S("CYXS", "cyxc", "cyx", "uint8"),),
    ),
    Variant(
        "volumetric_tiles.tif",
        imwrite(
            lambda: pixels((7, 64, 64), "uint16"),
            photometric="minisblack",
            tile=(4, 32, 32),
            volumetric=True,
            compression="zlib",
        ),
        (S("ZYX", "zyx", "zyx", "uint16"),),
    ),
    Variant(
        "ome_physical_units.ome.tif",
        imwrite(
            lambda: pixels((3, 2, 10, 12), "uint8"),
            ome=True,
            photometric="minisblack",
            metadata={
                "axes": "TZYX",
                "PhysicalSizeX": 120,
                "PhysicalSizeXUnit": "nm",
                "PhysicalSizeY": 0.12,
                "PhysicalSizeYUnit": "µm",
                "PhysicalSizeZ": 1.5,
                "TimeIncrement": 250,
                "TimeIncrementUnit": "ms",
            },
        ),
        (S("TZYX", "tzyx", "tzyx", "uint8"),),
    ),
    Variant(
        "resolution_cm.tif",
        imwrite(
            lambda: pixels((10, 12), "uint8"),
            photometric="minisblack",
            resolution=(20000, 10000),
            resolutionunit="CENTIMETER",
        ),
        (S("YX", "yx", "yx", "uint8"),),
    ),
    Variant(
        "resolution_inch.tif",
        imwrite(
            lambda: pixels((10, 12), "uint8"),
            photometric="minisblack",
            resolution=(50800, 50800),
            resolutionunit="INCH",
        ),
        (S("YX", "yx", "yx", "uint8"),),
    ),
    Variant(
        "resolution_72dpi.tif",
        imwrite(
            lambda: pixels((10, 12), "uint8"),
            photometric="minisblack",
            resolution=(72, 72),
            resolutionunit="INCH",
        ),
        (S("YX", "yx", "yx", "uint8"),),
    ),
    # compressions and predictors
    Variant(
        "comp_lzw_pred_be.tif",
        imwrite(
            lambda: pixels((130, 97), "uint16"),
            compression="lzw",
            predictor=True,
            byteorder=">",
            photometric="minisblack",
        ),
        (S("YX", "yx", "yx", "uint16"),),
    ),
    Variant(
        "comp_deflate_pred_i16.tif",
        imwrite(
            lambda: pixels((130, 97), "int16"),
            compression="zlib",
            predictor=True,
            photometric="minisblack",
            rowsperstrip=13,
        ),
        (S("YX", "yx", "yx", "int16"),),
    ),
    Variant(
        "comp_adobe_deflate.tif",
        imwrite(
            lambda: pixels((130, 97), "uint8"),
            compression="adobe_deflate",
            compressionargs={"level": 9},
            photometric="minisblack",
        ),
        (S("YX", "yx", "yx", "uint8"),),
    ),
    Variant(
        "comp_zstd_pred_u32.tif",
        imwrite(
            lambda: pixels((130, 97), "uint32"),
            compression="zstd",
            predictor=True,
            tile=(64, 64),
            photometric="minisblack",
        ),
        (S("YX", "yx", "yx", "uint32"),),
    ),
    Variant(
        "comp_packbits.tif",
        imwrite(lambda: smooth((130, 97)), compression="packbits", photometric="minisblack"),
        (S("YX", "yx", "yx", "uint8"),),
    ),
    Variant(
        "comp_lzma.tif",
        imwrite(lambda: pixels((40, 33), "int8"), compression="lzma", photometric="minisblack"),
        (S("YX", "yx", "yx", "int8"),),
    ),
    Variant(
        "comp_jpeg_rgb_tiled.tif",
        imwrite(lambda: smooth((300, 200, 3)), compression="jpeg", photometric="rgb", tile=(64, 64)),
        (S("YXS", "yxc", "cyx", "uint8"),),
    ),
    Variant(
        "comp_jpeg_ycbcr_subsampled.tif",
        imwrite(
            lambda: smooth((130, 97, 3)),
            compression="jpeg",
            photometric="ycbcr",
            subsampling=(2, 2),
            rowsperstrip=32,
        ),
        (S("YXS", "yxc", "cyx", "uint8"),),
    ),
    Variant(
        "comp_jpeg_12bit.tif",
        imwrite(
            lambda: smooth((64, 80)).astype("uint16") * 16,
            compression="jpeg",
            bitspersample=12,
            photometric="minisblack",
        ),
        (S("YX", "yx", "yx", "uint16"),),
    ),
    Variant(
        "comp_jpeg_grey.tif",
        imwrite(lambda: smooth((130, 97)), compression="jpeg", photometric="minisblack", rowsperstrip=16),
        (S("YX", "yx", "yx", "uint8"),),
    ),
    Variant(
        "comp_float_pred_f32.tif",
        imwrite(
            lambda: pixels((70, 61), "float32"),
            compression="zlib",
            predictor="floatingpoint",
            photometric="minisblack",
            tile=(32, 32),
        ),
        (S("YX", "yx", "yx", "float32"),),
    ),
    Variant(
        "comp_float_pred_f64_be.tif",
        imwrite(
            lambda: pixels((70, 61), "float64"),
            compression="zlib",
            predictor="floatingpoint",
            byteorder=">",
            photometric="minisblack",
        ),
        (S("YX", "yx", "yx", "float64"),),
    ),
    Variant(
        "comp_lzw_pred_rgb16_be.tif",
        imwrite(
            lambda: pixels((41, 53, 3), "uint16"),
            compression="lzw",
            predictor=True,
            byteorder=">",
            photometric="rgb",
        ),
        (S("YXS", "yxc", "cyx", "uint16"),),
    ),
    Variant(
        "comp_float_pred_f16.tif",
        imwrite(
            lambda: pixels((43, 37), "float16"),
            compression="zlib",
            predictor="floatingpoint",
            photometric="minisblack",
        ),
        (S("YX", "yx", "yx", "float16"),),
    ),
    Variant(
        "comp_webp_rgb.tif",
        imwrite(lambda: smooth((100, 90, 3)), compression="webp", photometric="rgb", tile=(64, 64)),
        (S("YXS", "yxc", "cyx", "uint8"),),
        requires="WEBP",
    ),
    Variant(
        "comp_png.tif",
        imwrite(
            lambda: pixels((100, 90), "uint16"), compression="png", photometric="minisblack", tile=(64, 64)
        ),
        (S("YX", "yx", "yx", "uint16"),),
        requires="PNG",
    ),
    Variant(
        "comp_jpeg2000_rgb.tif",
        imwrite(lambda: smooth((100, 90, 3)), compression="jpeg2000", photometric="rgb", tile=(64, 64)),
        (S("YXS", "yxc", "cyx", "uint8"),),
        requires="JPEG2K",
    ),
    Variant(
        "comp_jpegxl.tif",
        imwrite(lambda: smooth((100, 90)), compression="jpegxl", photometric="minisblack", tile=(64, 64)),
        (S("YX", "yx", "yx", "uint8"),),
        requires="JPEGXL",
    ),
    Variant(
        "comp_jpegxr_rgb.tif",
        imwrite(lambda: smooth((100, 90, 3)), compression="jpegxr", photometric="rgb", tile=(64, 64)),
        (S("YXS", "yxc", "cyx", "uint8"),),
        requires="JPEGXR",
    ),
    Variant(
        "comp_lerc_f32.tif",
        imwrite(
            lambda: pixels((100, 90), "float32"), compression="lerc", photometric="minisblack", tile=(64, 64)
        ),
        (S("YX", "yx", "yx", "float32"),),
        requires="LERC",
    ),
    # bit depths and photometrics other than 8/16/32/64-bit grey
    Variant(
        "bilevel.tif",
        imwrite(lambda: pixels((43, 37), "uint8") > 127, photometric="minisblack"),
        (S("YX", "yx", "yx", "bool"),),
    ),
    Variant(
        "packed_12bit.tif",
        imwrite(lambda: pixels((43, 37), "uint16") >> 4, photometric="minisblack", bitspersample=12),
        (S("YX", "yx", "yx", "uint16"),),
    ),
    Variant(
        "packed_4bit_stack.tif",
        imwrite(lambda: pixels((2, 43, 37), "uint8") >> 4, photometric="minisblack", bitspersample=4),
        (S("QYX", "zyx", "zyx", "uint8"),),
    ),
    Variant(
        "palette.tif",
        imwrite(
            lambda: pixels((43, 37), "uint8"),
            photometric="palette",
            colormap=np.arange(3 * 256, dtype=np.uint16).reshape(3, 256) * 80,
        ),
        (S("YX", "yx", "yx", "uint8"),),
    ),
    # tiles
    Variant(
        "tile_48.tif",
        imwrite(
            lambda: pixels((200, 150), "uint16"), tile=(48, 48), compression="zlib", photometric="minisblack"
        ),
        (S("YX", "yx", "yx", "uint16"),),
    ),
    Variant(
        "tile_240.tif",
        imwrite(
            lambda: pixels((500, 700), "uint8"), tile=(240, 240), compression="lzw", photometric="minisblack"
        ),
        (S("YX", "yx", "yx", "uint8"),),
    ),
    Variant(
        "tile_larger_than_image.tif",
        imwrite(lambda: pixels((100, 70), "int32"), tile=(256, 256), photometric="minisblack"),
        (S("YX", "yx", "yx", "int32"),),
    ),
    Variant(
        "tile_rectangular.tif",
        imwrite(lambda: pixels((3, 100, 150), "uint16"), tile=(32, 64), photometric="minisblack"),
        (S("QYX", "zyx", "zyx", "uint16"),),
    ),
    Variant(
        "tile_128_pow2.tif",
        imwrite(
            lambda: pixels((300, 260), "uint16"),
            tile=(128, 128),
            compression="zstd",
            photometric="minisblack",
        ),
        (S("YX", "yx", "yx", "uint16"),),
    ),
    Variant(
        "tile_16_on_1x1.tif",
        imwrite(lambda: pixels((1, 1), "uint16"), tile=(16, 16), photometric="minisblack"),
        (S("YX", "yx", "yx", "uint16"),),
    ),
    # strips
    Variant(
        "strips_rps1.tif",
        imwrite(lambda: pixels((57, 43), "uint16"), rowsperstrip=1, photometric="minisblack"),
        (S("YX", "yx", "yx", "uint16"),),
    ),
    Variant(
        "strips_rps7_short_last.tif",
        imwrite(
            lambda: pixels((100, 33), "int16"), rowsperstrip=7, compression="zlib", photometric="minisblack"
        ),
        (S("YX", "yx", "yx", "int16"),),
    ),
    Variant(
        "strips_1000x777_rps300.tif",
        imwrite(
            lambda: pixels((1000, 777), "uint16"),
            rowsperstrip=300,
            compression="zlib",
            predictor=True,
            photometric="minisblack",
        ),
        (S("YX", "yx", "yx", "uint16"),),
    ),
    Variant(
        "strips_rgb_planar_rps5.tif",
        imwrite(
            lambda: pixels((3, 23, 17), "uint8"),
            photometric="rgb",
            planarconfig="separate",
            rowsperstrip=5,
            compression="packbits",
        ),
        (S("SYX", "cyx", "cyx", "uint8"),),
    ),
    # edge sizes
    Variant(
        "edge_513x1.tif",
        imwrite(lambda: pixels((513, 1), "float32"), photometric="minisblack"),
        (S("YX", "yx", "yx", "float32"),),
    ),
    Variant(
        "edge_1x513.tif",
        imwrite(lambda: pixels((1, 513), "uint8"), photometric="minisblack"),
        (S("YX", "yx", "yx", "uint8"),),
    ),
    Variant(
        "edge_1x1.tif",
        imwrite(lambda: pixels((1, 1), "int8"), photometric="minisblack"),
        (S("YX", "yx", "yx", "int8"),),
    ),
    Variant(
        "edge_3x5.tif",
        imwrite(lambda: pixels((3, 5), "uint16"), photometric="minisblack"),
        (S("YX", "yx", "yx", "uint16"),),
    ),
    Variant(
        "edge_1000x777_tiled.tif",
        imwrite(
            lambda: pixels((1000, 777), "uint8"),
            tile=(256, 256),
            compression="zstd",
            photometric="minisblack",
        ),
        (S("YX", "yx", "yx", "uint8"),),
    ),
    # pyramids
    Variant("ome_pyramid_subifd.ome.tif", write_ome_pyramid, (S("CYX", "cyx", "cyx", "uint16", levels=4),)),
    Variant(
        "ome_pyramid_tczyx.ome.tif", write_ome_pyramid_5d, (S("TCZYX", "tczyx", "tczyx", "uint16", levels=3),)
    ),
    Variant(
        "ome_pyramid_rgb_jpeg.ome.tif", write_ome_pyramid_rgb, (S("YXS", "yxc", "cyx", "uint8", levels=3),)
    ),
    Variant(
        "svs_like.svs",
        write_svs_like,
        (
            S("YXS", "yxc", "cyx", "uint8", levels=3),
            S("YXS", "yxc", "cyx", "uint8"),
            S("YXS", "yxc", "cyx", "uint8"),
            S("YXS", "yxc", "cyx", "uint8"),
        ),
    ),
    Variant("generic_pyramid.tif", write_generic_pyramid, (S("YX", "yx", "yx", "int16", levels=3),)),
    # several series
    Variant(
        "ome_multi.ome.tif",
        write_ome_multi,
        (
            S("ZYX", "zyx", "zyx", "uint16"),
            S("YXS", "yxc", "cyx", "uint8"),
            S("CYX", "cyx", "cyx", "float32"),
        ),
    ),
    Variant(
        "shaped_multi.tif",
        lambda p: write_shaped_multi(p, {}),
        (S("QYX", "zyx", "zyx", "uint16"), S("YX", "yx", "yx", "float32"), S("YXS", "yxc", "cyx", "uint8")),
    ),
    Variant(
        "generic_multi.tif",
        lambda p: write_shaped_multi(p, None),
        (S("IYX", "zyx", "zyx", "uint16"), S("YX", "yx", "yx", "float32"), S("YXS", "yxc", "cyx", "uint8")),
    ),
    # missing tiles
    Variant("sparse_tiles.tif", lambda p: write_sparse(p, None), (S("YX", "yx", "yx", "uint16"),)),
    Variant("sparse_tiles_zlib.tif", lambda p: write_sparse(p, "zlib"), (S("YX", "yx", "yx", "uint16"),)),
    Variant(
        "sparse_tiles_nodata_65535.tif",
        lambda p: write_sparse(p, "zlib", nodata="65535"),
        (S("YX", "yx", "yx", "uint16"),),
    ),
    Variant(
        "sparse_tiles_nodata_nan.tif",
        lambda p: write_sparse(p, "zstd", nodata="nan", dtype="float32"),
        (S("YX", "yx", "yx", "float32"),),
    ),
    # float special values
    Variant(
        "negative_zero_chunk.tif",
        imwrite(negative_zero, photometric="minisblack"),
        (S("YX", "yx", "yx", "float32"),),
    ),
]

# every dtype in both byte orders: little-endian striped and uncompressed, big-endian
# tiled and deflated
for _dtype in DTYPES:
    VARIANTS.append(
        Variant(
            f"dtype_{_dtype}_le.tif",
            imwrite(
                lambda d=_dtype: pixels((37, 29), d), byteorder="<", rowsperstrip=5, photometric="minisblack"
            ),
            (S("YX", "yx", "yx", _dtype),),
        )
    )
    VARIANTS.append(
        Variant(
            f"dtype_{_dtype}_be.tif",
            imwrite(
                lambda d=_dtype: pixels((2, 37, 29), d),
                byteorder=">",
                tile=(16, 16),
                compression="zlib",
                photometric="minisblack",
            ),
            (S("QYX", "zyx", "zyx", _dtype),),
        )
    )

BY_NAME = {v.name: v for v in VARIANTS}
assert len(BY_NAME) == len(VARIANTS), "variant names must be unique"

#: Read again through servers with other chunk shapes and codecs.
CHUNK_SUBSET = (
    "strips_1000x777_rps300.tif",
    "tczyx_ome.ome.tif",
    "tile_48.tif",
    "shaped_qyx.tif",
    "rgb_contig.tif",
    "volumetric_tiles.tif",
    "ome_pyramid_subifd.ome.tif",
    "dtype_float64_be.tif",
    "sparse_tiles_zlib.tif",
)
CODECS = ("zstd", "blosc", "blosc-zstd", "gzip", "none")


def _params(names: list[str] | tuple[str, ...]) -> list[Any]:
    params = []
    for name in names:
        variant = BY_NAME[name]
        marks = list(variant.marks)
        if not variant.available:
            marks.append(pytest.mark.skip(reason=f"imagecodecs lacks {variant.requires}"))
        if variant.xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=variant.xfail))
        params.append(pytest.param(variant, id=name, marks=marks))
    return params


# ---------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("matrix")
    for variant in VARIANTS:
        if variant.available:
            variant.write(directory / variant.name)
    return directory


@pytest.fixture(scope="module")
def base_url(root: Path) -> Iterator[str]:
    with serve(Settings.from_mapping({"roots": {ROOT_NAME: str(root)}})) as url:
        yield url


@pytest.fixture(scope="module", params=CODECS)
def chunked_url(request: pytest.FixtureRequest, root: Path) -> Iterator[tuple[str, str]]:
    settings = Settings.from_mapping(
        {"roots": {ROOT_NAME: str(root)}, "chunks": {"codec": request.param, "yx": 256, "z": 4}}
    )
    with serve(settings) as url:
        yield request.param, url


@pytest.fixture(scope="module")
def sharded_url(root: Path) -> Iterator[str]:
    """Virtual shards of 2 x 2 x 2 inner chunks (``[chunks] shard``), of 256² y/x."""
    settings = Settings.from_mapping(
        {"roots": {ROOT_NAME: str(root)}, "chunks": {"yx": 256, "shard": [2, 2, 2]}}
    )
    with serve(settings) as url:
        yield url


# ---------------------------------------------------------------------------------------
# Helpers


def to_served(array: np.ndarray, axes: str, target: str) -> np.ndarray:
    """tifffile's array in served axis order, following the declared ``target``."""
    assert len(target) == len(axes) == array.ndim, (axes, target, array.shape)
    for position, letter in enumerate(target):
        if letter == "-":
            assert array.shape[position] == 1, f"axis {axes[position]} is dropped but not of size 1"
    kept = sorted(
        (i for i, letter in enumerate(target) if letter != "-"),
        key=lambda i: (CANONICAL.index(target[i]), i),
    )
    moved = array.reshape(tuple(n for i, n in enumerate(array.shape) if target[i] != "-") or (1,))
    order = [i for i, letter in enumerate(target) if letter != "-"]
    moved = moved.transpose([order.index(i) for i in kept])
    shape: list[int] = []
    names: list[str] = []
    for i in kept:
        if names and names[-1] == target[i]:
            shape[-1] *= array.shape[i]
        else:
            names.append(target[i])
            shape.append(array.shape[i])
    return np.ascontiguousarray(moved).reshape(shape)


def served_names(target: str) -> tuple[str, ...]:
    return tuple(name for name in CANONICAL if name in target)


def assert_bit_exact(served: np.ndarray, expected: np.ndarray, what: str) -> None:
    expected = expected.astype(expected.dtype.newbyteorder("="), copy=False)
    assert served.dtype == expected.dtype, f"{what}: dtype {served.dtype} != {expected.dtype}"
    assert served.shape == expected.shape, f"{what}: shape {served.shape} != {expected.shape}"
    np.testing.assert_array_equal(served, expected, err_msg=what, strict=True)
    as_int = np.dtype(f"u{expected.dtype.itemsize}")
    np.testing.assert_array_equal(
        served.view(as_int), expected.view(as_int), err_msg=f"{what}: bits differ", strict=True
    )


def image_url(base: str, name: str, index: int, count: int) -> str:
    url = f"{base}/{ROOT_NAME}/{name}"
    return f"{url}/{index}" if count > 1 else url


def check_layout(base: str, variant: Variant, tif: tifffile.TiffFile) -> None:
    """Declarations agree with tifffile, and the root has the right layout."""
    assert len(tif.series) == len(variant.series), [s.axes for s in tif.series]
    for series, expect in zip(tif.series, variant.series, strict=True):
        assert series.axes == expect.axes
        assert len(series.levels) == expect.levels
        assert served_names(expect.target) == expect.dims, "declaration is inconsistent"
    root = zarr.open_group(f"{base}/{ROOT_NAME}/{variant.name}", mode="r")
    ome = root.attrs["ome"]
    assert ome["version"] == "0.5"
    if len(variant.series) > 1:
        assert ome.get("bioformats2raw.layout") == 3
        assert "multiscales" not in ome
        listing = zarr.open_group(f"{base}/{ROOT_NAME}/{variant.name}/OME", mode="r")
        assert listing.attrs["ome"]["series"] == [str(i) for i in range(len(variant.series))]
    else:
        assert "multiscales" in ome


def check_bit_exact(base: str, variant: Variant, path: Path) -> None:
    with tifffile.TiffFile(path) as tif:
        check_layout(base, variant, tif)
        count = len(variant.series)
        for index, (series, expect) in enumerate(zip(tif.series, variant.series, strict=True)):
            group = zarr.open_group(image_url(base, variant.name, index, count), mode="r")
            assert_series_served(group, series, expect, f"{variant.name} series {index}")


def assert_series_served(group: zarr.Group, series: Any, expect: Series, what: str) -> None:
    """Every level of a tifffile series, read from its served image group, is bit-exact
    and has the declared axes, dtype and level count; the levels synthesized after them
    (small images have none) equal the numpy reference pyramid (tests/pyramid_reference)."""
    multiscale = group.attrs["ome"]["multiscales"][0]
    assert tuple(axis["name"] for axis in multiscale["axes"]) == expect.dims
    paths = [d["path"] for d in multiscale["datasets"]]
    assert paths == [str(k) for k in range(len(paths))]
    assert paths[: expect.levels] == [str(k) for k in range(expect.levels)]
    expected = None
    for k, level in enumerate(series.levels):
        array = group[str(k)]
        assert isinstance(array, zarr.Array)
        assert tuple(array.metadata.dimension_names) == expect.dims, f"{what} level {k}"
        assert array.dtype == np.dtype(expect.dtype), f"{what} level {k}"
        expected = to_served(level.asarray(), expect.axes, expect.target)
        assert_bit_exact(array[...], expected, f"{what} level {k}")
    assert expected is not None
    if len(paths) > expect.levels:
        assert_synthesized_levels(group, expected, expect.levels, what)
    else:
        assert not synthesized_paths(group), what


# ---------------------------------------------------------------------------------------
# Tests


def test_matrix_is_large_enough() -> None:
    assert len(VARIANTS) >= 25
    assert {s.dtype for v in VARIANTS for s in v.series} >= set(DTYPES)


@pytest.mark.parametrize("variant", _params([v.name for v in VARIANTS]))
def test_bit_exact(variant: Variant, root: Path, base_url: str) -> None:
    check_bit_exact(base_url, variant, root / variant.name)


@pytest.mark.parametrize("variant", _params(CHUNK_SUBSET))
def test_bit_exact_with_chunk_settings(variant: Variant, root: Path, chunked_url: tuple[str, str]) -> None:
    codec, base = chunked_url
    check_bit_exact(base, variant, root / variant.name)
    count = len(variant.series)
    group = zarr.open_group(image_url(base, variant.name, 0, count), mode="r")
    array = group["0"]
    codecs = array.metadata.to_dict()["codecs"]
    names = [c["name"] for c in codecs]
    assert names == (["bytes"] if codec == "none" else ["bytes", codec.split("-")[0]])
    if codec == "blosc-zstd":
        assert codecs[1]["configuration"]["cname"] == "zstd"
    chunks = dict(zip(array.metadata.dimension_names, array.chunks, strict=True))
    # square power-of-two y/x chunks of at most chunks.yx (smaller for small images or
    # 128-pixel source tiles)
    assert chunks["y"] == chunks["x"] <= 256
    assert chunks["x"] & (chunks["x"] - 1) == 0
    if "z" in chunks:
        assert chunks["z"] == min(4, dict(zip(array.metadata.dimension_names, array.shape, strict=True))["z"])
    for name in ("t", "c"):
        assert chunks.get(name, 1) == 1


@pytest.mark.parametrize("variant", _params(CHUNK_SUBSET))
def test_bit_exact_sharded(variant: Variant, root: Path, sharded_url: str) -> None:
    check_bit_exact(sharded_url, variant, root / variant.name)
    group = zarr.open_group(image_url(sharded_url, variant.name, 0, len(variant.series)), mode="r")
    array = group["0"]
    assert [c["name"] for c in array.metadata.to_dict()["codecs"]] == ["sharding_indexed"]
    assert array.shards is not None
    for name, chunk, shard, size in zip(
        array.metadata.dimension_names, array.chunks, array.shards, array.shape, strict=True
    ):
        per_shard = 2 if name in "zyx" else 1
        assert shard == chunk * min(per_shard, -(-size // chunk)), name


def test_ome_channels_and_scale(base_url: str) -> None:
    group = zarr.open_group(f"{base_url}/{ROOT_NAME}/cyx_ome.ome.tif", mode="r")
    ome = group.attrs["ome"]
    labels = [c["label"] for c in ome["omero"]["channels"]]
    colors = [c["color"].upper() for c in ome["omero"]["channels"]]
    assert labels == ["DAPI", "GFP", "RFP"]
    # OME colours are signed RGBA integers: -16776961 = 0xFF0000FF, 16711935 = 0x00FF00FF
    assert colors == ["FF0000", "00FF00", "0000FF"]
    scale = ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [1.0, 0.5, 0.25]


UM, NM, S_, MS = "micrometer", "nanometer", "second", "millisecond"


@pytest.mark.parametrize(
    ("name", "index", "units", "scales"),
    [
        # OME: PhysicalSize* with their units, TimeIncrement; SubIFD levels halve y/x
        ("ome_physical_units.ome.tif", 0, {"t": MS, "z": UM, "y": UM, "x": NM}, [[250, 1.5, 0.12, 120]]),
        (
            "ome_pyramid_subifd.ome.tif",
            0,
            {"y": UM, "x": UM},
            [[1, 0.5 * 2**k, 0.5 * 2**k] for k in range(4)],
        ),
        # ImageJ: 1/resolution in `unit` (um → micrometer), spacing for z, finterval in seconds
        ("imagej_hyperstack_be.tif", 0, {"t": S_, "z": UM, "y": UM, "x": UM}, [[1.5, 1, 2, 0.25, 0.25]]),
        # SVS: MPP on the baseline; levels 1000 → 250 → 63 rows are factors 4 and 16
        ("svs_like.svs", 0, {"y": UM, "x": UM}, [[1, 0.5, 0.5], [1, 2, 2], [1, 8, 8]]),
        ("svs_like.svs", 2, {}, [[1, 1, 1]]),
        # plain TIFF: resolution tags in cm or inch; 72 dpi is a placeholder, not a size
        ("resolution_cm.tif", 0, {"y": UM, "x": UM}, [[1, 0.5]]),
        ("resolution_inch.tif", 0, {"y": UM, "x": UM}, [[0.5, 0.5]]),
        ("resolution_72dpi.tif", 0, {}, [[1, 1]]),
        ("shaped_qyx.tif", 0, {}, [[1, 1, 1]]),
    ],
)
def test_physical_metadata(
    name: str, index: int, units: dict[str, str], scales: list[list[float]], base_url: str
) -> None:
    count = len(BY_NAME[name].series)
    group = zarr.open_group(image_url(base_url, name, index, count), mode="r")
    multiscale = group.attrs["ome"]["multiscales"][0]
    assert {a["name"]: a["unit"] for a in multiscale["axes"] if "unit" in a} == units
    served = [d["coordinateTransformations"][0]["scale"] for d in multiscale["datasets"]]
    # native levels (synthesized ones follow: tests/test_pyramids.py checks their scales)
    assert served[: len(scales)] == [pytest.approx(level, rel=1e-9) for level in scales]


@pytest.mark.parametrize(
    ("name", "path", "index", "level"),
    [
        ("tczyx_ome.ome.tif", "0/", 0, 0),
        ("ome_pyramid_subifd.ome.tif", "2/", 0, 2),
        ("ome_multi.ome.tif", "1/0/", 1, 0),
    ],
)
@pytest.mark.parametrize("served", ["base_url", "sharded_url"])
def test_tensorstore_reads_bit_exact(
    name: str, path: str, index: int, level: int, served: str, root: Path, request: pytest.FixtureRequest
) -> None:
    ts = pytest.importorskip("tensorstore", reason="tensorstore is not installed")
    base_url = request.getfixturevalue(served)
    store = ts.open({"driver": "zarr3", "kvstore": f"{base_url}/{ROOT_NAME}/{name}/{path}"}).result()
    variant = BY_NAME[name]
    expect = variant.series[index]
    with tifffile.TiffFile(root / name) as tif:
        expected = to_served(tif.series[index].levels[level].asarray(), expect.axes, expect.target)
    assert tuple(store.domain.labels) == expect.dims
    assert_bit_exact(store.read().result(), expected, f"tensorstore {name}/{path}")
