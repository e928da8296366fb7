"""A TIFF cut short, said in words: what its metadata promised and what the file holds.

A copy interrupted, a disk filled during acquisition: the file ends before its last pages,
or before the OME-XML written at its end. tifffile copes quietly — it serves what it can
parse (a 60-plane stack whose pages stop at 32 as *one* plane, an OME-TIFF whose OME-XML
is gone as a plain TIFF without its pyramid) and logs the details. Served like that, the
dataset looks whole and is not. ``check`` compares the file with its own metadata while
tifffile still has it open, and the source's warnings say what is missing.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import tifffile

#: The ImageDescription tag (OME-XML, ImageJ and tifffile metadata live in it).
IMAGE_DESCRIPTION = 270
#: Name endings of OME-TIFF files.
OME_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.tf2", ".ome.tf8", ".ome.btf")
#: Tags one IFD may hold before the scan gives up (a damaged count could claim 65,535).
MAX_TAGS = 4096


def check(tif: tifffile.TiffFile, path: Path, label: str, warnings: list[str]) -> str:
    """Warnings (put first in ``warnings``) for every sign that the file was cut short;
    the format label to show: ``label``, or "OME-TIFF (truncated)" for an OME-TIFF whose
    OME-XML was cut off (tifffile then reads it as a plain TIFF)."""
    size = int(tif.filehandle.size)
    found: list[str] = []
    description = _description_beyond_end(tif, size)
    ome_named = path.name.lower().endswith(OME_SUFFIXES)
    if description is not None:
        offset, length = description
        lost = "OME-XML" if ome_named else "metadata"
        found.append(
            f"the file is truncated: its first page's ImageDescription ({lost}, {length:,} bytes at "
            f"offset {offset:,}) lies beyond the end of the file ({size:,} bytes)"
        )
    found += _fewer_planes_than_described(tif)
    for index, series in enumerate(_series(tif)):
        for level_index, level in enumerate(series.levels):
            found += _planes_cut_off(level, index, level_index, size)
    truncated = bool(found)
    if ome_named and not tif.is_ome and truncated:
        found.insert(
            0,
            "this is a truncated OME-TIFF: its OME-XML cannot be read, so it is served as a plain "
            "TIFF, without its OME metadata (pyramid levels, channel names, physical sizes)",
        )
        label = "OME-TIFF (truncated)"
    warnings[:0] = found
    return label


def _series(tif: tifffile.TiffFile) -> list[tifffile.TiffPageSeries]:
    try:
        return list(tif.series)
    except Exception:  # listed once already by the adapter, which reports the failure
        return []


def _description_beyond_end(tif: tifffile.TiffFile, size: int) -> tuple[int, int] | None:
    """(offset, length) of the first page's ImageDescription when its value lies beyond
    the end of the file (tifffile then drops the tag, and the metadata with it)."""
    first = tif.pages.first
    if IMAGE_DESCRIPTION in first.tags:
        return None
    tiff = tif.tiff
    handle = tif.filehandle
    try:
        handle.seek(first.offset)
        (count,) = struct.unpack(tiff.tagnoformat, handle.read(tiff.tagnosize))
        if count > MAX_TAGS:
            return None
        entries = handle.read(count * tiff.tagsize)
        for start in range(0, len(entries) - tiff.tagsize + 1, tiff.tagsize):
            entry = entries[start : start + tiff.tagsize]
            code, _type = struct.unpack(tiff.tagformat1, entry[:4])
            if code != IMAGE_DESCRIPTION:
                continue
            length, value = struct.unpack(tiff.tagformat2, entry[4:])
            if length <= tiff.tagoffsetthreshold:
                return None  # stored in the entry itself
            (offset,) = struct.unpack(tiff.offsetformat, value)
            return (int(offset), int(length)) if offset + length > size else None
    except (OSError, struct.error, ValueError):
        return None
    return None


def _planes(series: tifffile.TiffPageSeries) -> int:
    page = math.prod(series.keyframe.shape) or 1
    return math.prod(series.shape) // page


def _fewer_planes_than_described(tif: tifffile.TiffFile) -> list[str]:
    """The first series against what tifffile's or ImageJ's metadata says it holds."""
    series = _series(tif)
    if not series:
        return []
    first = series[0]
    page = math.prod(first.keyframe.shape) or 1
    described: tuple[str, int] | None = None
    if tif.shaped_metadata:
        shape = tif.shaped_metadata[0].get("shape")
        if isinstance(shape, (list, tuple)) and all(isinstance(n, int) for n in shape):
            described = (f"tifffile metadata (shape {tuple(shape)})", math.prod(shape) // page)
    elif tif.is_imagej and tif.imagej_metadata:
        images = tif.imagej_metadata.get("images")
        if isinstance(images, int):
            described = (f"ImageJ metadata ({images} images)", images)
    if described is None:
        return []
    what, expected = described
    served = _planes(first)
    if served >= expected:
        return []
    pages = len(tif.pages)
    return [
        f"the file is truncated: its {what} describes {expected:,} planes, the file holds "
        f"{pages:,} page(s); served as {served:,} plane(s) of shape {tuple(first.shape)}"
    ]


def _planes_cut_off(series: tifffile.TiffPageSeries, index: int, level: int, size: int) -> list[str]:
    """Planes of one level missing from the file, or whose data runs past its end."""
    planes = _planes(series)
    pages = list(series.pages)
    if len(pages) == 1 and planes > 1 and series.dataoffset is not None:
        # contiguous planes described by one page (tifffile's and ImageJ's own layout)
        whole = max(0, size - series.dataoffset) // max(1, series.keyframe.nbytes)
        beyond = max(0, planes - whole)
        missing = 0
    else:
        beyond = missing = 0
        for page in pages[:planes]:
            if page is None:
                missing += 1
            elif any(o + c > size for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)):
                beyond += 1
    where = f"image {index}, level {level}" if level else f"image {index}"
    found = []
    if beyond:
        found.append(
            f"the file is truncated: {where}: {beyond:,} of {planes:,} planes lie (partly) beyond "
            f"the end of the file ({size:,} bytes); reading them fails"
        )
    if missing:
        found.append(f"{where}: {missing:,} of {planes:,} planes are not in the file; they read as fill")
    return found
