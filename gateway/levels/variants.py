"""Served variants of images whose data type a viewer cannot show.

Neuroglancer decodes uint8/int8/uint16/int16/uint32/int32/uint64/float32 and shows uint64
only as segmentation; Viv/vizarr read (u)int8 to (u)int32, float32 and float64. An image of any
other type (float64, int64, uint64, float16, bool) gets a **float32 variant**: an OME-Zarr
image group named ``float32`` inside its own group (``<image>/float32/``), whose levels are
the image's levels converted on read. The conversion is exact for float16, bool and
integers up to 2**24 in magnitude, rounds beyond that, and turns float64 values outside
float32's range into ±inf. The original arrays are untouched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from adapters.base import Image, Level, Region, may_hold_data
from adapters.plates import Plate
from gateway.levels import placement

VARIANT_NAME = "float32"
VARIANT_DTYPE = np.dtype("float32")

#: Data types every targeted viewer shows as an image (Neuroglancer ∩ Viv).
VIEWABLE = frozenset(np.dtype(t) for t in ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32"))
#: What Neuroglancer can show as an image layer.
NEUROGLANCER_IMAGE = VIEWABLE
#: What Viv (and vizarr, built on it) can load.
VIV = VIEWABLE | {np.dtype("float64")}


def needs_variant(dtype: np.dtype[Any]) -> bool:
    return dtype.newbyteorder("=") not in VIEWABLE and dtype.kind in "biuf"


class Float32Level(Level):
    """A level read as float32 (same shape and tiles as ``source``, converted on read)."""

    __slots__ = ("source",)

    def __init__(self, source: Level) -> None:
        super().__init__(
            shape=source.shape,
            dtype=VARIANT_DTYPE,
            tile_shape=source.tile_shape,
            fill_value=float(np.float32(source.fill_value)),
        )
        self.source = source

    def any_stored(self, region: Region) -> bool:
        return may_hold_data(self.source, region)  # fill converts to the variant's fill

    def read(self, region: Region) -> np.ndarray:
        with np.errstate(over="ignore"):  # beyond float32's range is ±inf, as documented
            return self.source.read(region).astype(VARIANT_DTYPE)


def float32_variant(image: Image) -> Image:
    return replace(
        image,
        name=f"{image.name} ({VARIANT_NAME})",
        levels=tuple(Float32Level(level) for level in image.levels),
    )


def group_prefixes(images: Sequence[Image], plates: Sequence[Plate] = ()) -> Iterator[tuple[str, Image]]:
    """(group prefix, image) of a source's images: ``""`` for a single image, ``"<i>/"``
    for each of several, ``"<path>/"`` for images with a place of their own, and the
    fields of ``plates`` (the source's) where ``placement`` puts them."""
    if plates:
        yield from zip(placement.image_prefixes(plates, len(images)), images, strict=True)
        return
    multi = len(images) > 1
    for index, image in enumerate(images):
        if image.path is not None:  # an image with a place of its own (HDF5 dataset paths)
            prefix = f"{image.path}/" if image.path else ""
        else:
            prefix = f"{index}/" if multi else ""
        yield prefix, image


def image_groups(images: Sequence[Image]) -> Iterator[tuple[str, Image]]:
    """(group prefix, image) of every image group a source's tree holds, each image
    followed by its variant if any."""
    for prefix, image in group_prefixes(images):
        yield prefix, image
        if needs_variant(image.levels[0].dtype):
            yield f"{prefix}{VARIANT_NAME}/", float32_variant(image)


def is_variant_group(path: str) -> bool:
    """Whether an image group path (``"float32"``, ``"2/float32"``) is a variant."""
    return path.rpartition("/")[2] == VARIANT_NAME
