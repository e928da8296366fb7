"""TIFF family: plain and multi-page TIFF, BigTIFF, OME-TIFF, ImageJ hyperstacks, SVS.

tifffile parses the file once (IFD chain, tile offsets, series, levels, metadata); after
that the file is read only through our own positional reads (tifffile's file handle is
not thread-safe) and tiles are decoded with the decoder tifffile builds once per page
layout. Each series becomes an image; its levels (OME SubIFDs, SVS pyramid IFDs) become
levels.

Axes: tifffile names the dimensions of a series (``TCZYXS``, ``QYX``...). Known letters
map to t/c/z/y/x and samples (RGB) become channels. The stack (page-indexing) dimensions
are named by, in order: the configuration (``[tiff.axes]``: ``OpenOptions.tiff_axes``,
one letter per dimension of the series); where tifffile left some unnamed (``Q``, ``I``:
tifffile "shaped" files, plain multi-page files, OME-XML tifffile could not map), the
file's own ImageJ (``frames``, ``slices``, ``channels``) or OME (``DimensionOrder`` and
sizes) metadata when its counts account for every page; else unknown letters are
assigned from the innermost outward to z, then t, then c — a leading stack axis is
nearly always z. Dimensions of size 1 are dropped.

Metadata comes from the first flavour in ``FLAVOURS`` that applies (order is priority).
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tifffile
from tifffile.tifffile import svs_description_metadata

from adapters.base import (
    DEFAULT_MAX_CHUNK_BYTES,
    SOURCE_BYTES,
    Axis,
    AxisName,
    Channel,
    Image,
    Level,
    OpenOptions,
    RawChunkFormat,
    Source,
    SourceReadError,
    TileCache,
    UnsupportedSourceError,
    Window,
)
from adapters.diagnostics import add_warnings, captured_logs, summarise
from adapters.io.chunked import Extent, MappedLevel, StoredArray
from adapters.io.files import FileAccess, PositionalFile, PositionalReader
from adapters.plates import Plate
from adapters.tiff import truncation
from adapters.tiff.multifile import (
    COMPANION_SUFFIX,
    MissingPlaneError,
    SetDocument,
    find_set,
    is_companion_name,
    open_file_set,
    read_companion,
    read_set_document,
    set_planes,
    sniff_companion,
)
from adapters.tiff.ome_xml import OmeDocument, OmeImage, OmeXmlError, parse_ome_xml
from adapters.tiff.plates import plates_of
from adapters.units import space_unit, time_unit, to_micrometers

logger = logging.getLogger(__name__)
#: tifffile's logger: what it logs while a file opens is captured as the file's warnings.
TIFFFILE_LOGGER = "tifffile"

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
LEADING_AXES: dict[str, AxisName] = {"T": "t", "C": "c", "Z": "z"}
#: Unknown stack axes are assigned from the innermost outward in this order.
UNKNOWN_AXIS_ORDER: tuple[AxisName, ...] = ("z", "t", "c")
RGB_COLORS = ("FF0000", "00FF00", "0000FF", "FFFFFF")
COLOUR_PHOTOMETRICS = {2, 6}  # RGB, YCbCr
#: ResolutionUnit tag values → units (4 and 5 are tifffile's millimeter/micrometer extension).
RESOLUTION_UNITS = {2: "inch", 3: "centimeter", 4: "millimeter", 5: "micrometer"}
RGB_LABELS = ("R", "G", "B", "A")
#: What one key page (a tifffile TiffPage and its tags, kept by its decoder) pins: an
#: estimate for the open-file pool's byte bound.
KEY_PAGE_BYTES = 16 * 1024
#: Resolutions that are placeholders written by software, not a physical pixel size.
PLACEHOLDER_DPI = {1.0, 72.0, 96.0}


class TiffAdapter:
    """Opens TIFF-based files (see module docstring)."""

    name = "tiff"
    #: ``.companion.ome``: the OME-XML of a multi-file set (``adapters/tiff/multifile/``)
    suffixes = (".tif", ".tiff", ".ome.tif", ".ome.tiff", ".btf", ".tf2", ".tf8", ".svs", COMPANION_SUFFIX)

    def can_open(self, path: Path) -> bool:
        if not path.name.lower().endswith(self.suffixes):
            return False
        if is_companion_name(path.name):
            return sniff_companion(path)
        try:
            with open(path, "rb") as fh:
                return fh.read(4) in TIFF_MAGIC
        except OSError:
            return False

    def open(self, path: Path, tiles: TileCache, options: OpenOptions | None = None) -> Source:
        # what tifffile logs about this file (a truncated one: a line per page) becomes its
        # warnings, shown on its page, instead of lines in the server's log
        with captured_logs(TIFFFILE_LOGGER) as logged:
            source = self._open(path, tiles, options)
        add_warnings(source.warnings, summarise(logged, "tifffile: "))
        return source

    def _open(self, path: Path, tiles: TileCache, options: OpenOptions | None) -> Source:
        opts = options or OpenOptions()
        access = opts.access or FileAccess.beside(path)
        if is_companion_name(path.name):
            return _open_companion(path, tiles, opts.max_chunk_bytes, access)
        file = PositionalFile(path)
        try:
            return _open_source(
                path, file, tiles, opts.max_chunk_bytes, _configured_axes(path, opts.tiff_axes), access=access
            )
        except Exception:
            file.close()
            raise


# ---------------------------------------------------------------------------------------
# Source and images


def _open_source(
    path: Path,
    file: PositionalFile,
    tiles: TileCache,
    max_chunk_bytes: int,
    axes: str | None = None,
    *,
    access: FileAccess | None = None,
) -> Source:
    try:
        # never tifffile's own multi-file reading: it opens whatever file the XML names
        tif = tifffile.TiffFile(path, _multifile=False)
    except Exception as exc:  # tifffile raises TiffFileError, ValueError, struct.error...
        raise UnsupportedSourceError(f"{path.name} is not a readable TIFF: {exc}") from exc
    xml = (tif.ome_metadata or "") if tif.is_ome else ""
    if "FileName" in xml or "BinaryOnly" in xml:  # a set: a member raises PartOfSetError
        try:
            document = find_set(path, read_set_document(xml), access or FileAccess.beside(path))
        except BaseException:
            tif.close()
            raise
        if document is not None:
            with tif:
                return _open_set(path, xml, document, (tif, file), tiles, max_chunk_bytes, access)
    warnings: list[str] = []
    ome = _parse_ome(tif, warnings) if tif.is_ome else None
    if ome is not None and _claims_too_many_planes(ome, tif, warnings):
        tif.close()
        ome = None
        try:
            tif = tifffile.TiffFile(path, is_ome=False)
        except Exception as exc:
            raise UnsupportedSourceError(f"{path.name} is not a readable TIFF: {exc}") from exc
    with tif:
        flavour = next(f for f in FLAVOURS if f.applies(tif))
        context = _FileContext(tif=tif, warnings=warnings, max_chunk_bytes=max_chunk_bytes, axes=axes)
        context.ome = ome
        images: list[Image] = []
        try:
            all_series = list(tif.series)
        except Exception as exc:
            raise SourceReadError(f"{path.name}: cannot list the images: {exc}") from exc
        image_ids: list[str | None] = []  # the OME Image of each image, for its plate
        series_of: list[int] = []  # the series each image was built from
        for index, series in enumerate(all_series):
            try:
                images.append(_build_image(path, file, tiles, context, flavour, index, series))
            except (UnsupportedSourceError, SourceReadError) as exc:
                context.warnings.append(f"series {index} skipped: {exc}")
                continue
            matched = _match_ome_image(context.ome, index, series)
            image_ids.append(matched.id if matched is not None else None)
            series_of.append(index)
        if not images:
            detail = "; ".join(context.warnings) or "no image data"
            raise UnsupportedSourceError(f"{path.name}: no servable image ({detail})")
        ome_xml = tif.ome_metadata if tif.is_ome else None
        if ome_xml is None and flavour.name in WRITTEN_OME_XML:
            built = list(zip(series_of, images, strict=True))
            ome_xml = _written_ome_xml(path, flavour.name, tif, built, context.warnings)
        label = truncation.check(tif, path, flavour.name, context.warnings)
        plates = _plates(path, context.ome, image_ids, context.warnings)
    return Source(
        path=path,
        format=label,
        images=tuple(images),
        ome_xml=ome_xml,
        warnings=context.warnings,
        plates=plates,
        _closers=[file.close],
    )


#: Flavours whose metadata is carried as an OME-XML document written for them (Bio-Formats' way).
WRITTEN_OME_XML = frozenset({"Aperio SVS", "ImageJ TIFF"})


def _written_ome_xml(
    path: Path, flavour: str, tif: tifffile.TiffFile, images: list[tuple[int, Image]], warnings: list[str]
) -> str | None:
    """The OME-XML of an SVS or ImageJ file (``adapters/tiff/ome_writer.py``); None, said
    in ``warnings``, when OME cannot describe it (a 64-bit integer image)."""
    from adapters.tiff import ome_writer  # ome-types costs about a second to import

    write = ome_writer.svs_ome_xml if flavour == "Aperio SVS" else ome_writer.imagej_ome_xml
    try:
        return write(tif, images)
    except ValueError as exc:  # pydantic's ValidationError included: a value OME refuses
        warning = f"no OME-XML written for its metadata: {exc}"
        warnings.append(warning)
        logger.warning("%s: %s", path, warning)
        return None


def _plates(
    path: Path, ome: OmeDocument | None, image_ids: list[str | None], warnings: list[str]
) -> tuple[Plate, ...]:
    """The plates the images sit on (``adapters/tiff/plates.py``), their problems logged."""
    if ome is None or not ome.plates:
        return ()
    found: list[str] = []
    plates = plates_of(ome, image_ids, found)
    for warning in found:
        logger.warning("%s: %s", path, warning)
    warnings.extend(found)
    return plates


# ---------------------------------------------------------------------------------------
# Multi-file sets (adapters/tiff/multifile/: which files, their planes, their readers)


def _open_companion(path: Path, tiles: TileCache, max_chunk_bytes: int, access: FileAccess) -> Source:
    """A ``.companion.ome`` file: the OME-XML of a set whose pixels all lie in its members."""
    xml = read_companion(path)
    document = read_set_document(xml)
    if document is None:
        raise UnsupportedSourceError(f"{path.name}: its OME-XML does not parse")
    return _open_set(path, xml, document, None, tiles, max_chunk_bytes, access)


def _open_set(
    path: Path,
    xml: str,
    document: SetDocument,
    own: tuple[tifffile.TiffFile, PositionalFile] | None,
    tiles: TileCache,
    max_chunk_bytes: int,
    access: FileAccess | None,
) -> Source:
    """A multi-file set as one source: each OME Image with a readable plane is an image,
    described by the set's OME-XML; each plane is read from the file it lies in. ``own``:
    the master TIFF's parsed file and descriptor (None for a companion master)."""
    fileset = open_file_set(path, document, access or FileAccess.beside(path), own)
    try:
        context = _FileContext(tif=fileset.tif, warnings=fileset.warnings, max_chunk_bytes=max_chunk_bytes)
        context.ome = _parse_ome_text(xml, context.warnings)
        flavour = FLAVOURS[0]  # OME-TIFF
        images: list[Image] = []
        image_ids: list[str | None] = []
        for series in fileset.series:
            planes = set_planes(series)
            index = planes.ome_index if planes is not None else len(images)
            try:
                images.append(_build_image(path, fileset.files[0], tiles, context, flavour, index, series))
            except (UnsupportedSourceError, SourceReadError) as exc:
                context.warnings.append(f"image {index} skipped: {exc}")
                logger.warning("%s: image %d skipped: %s", path, index, exc)
                continue
            matched = _match_ome_image(context.ome, index, series)
            image_ids.append(matched.id if matched is not None else None)
        if not images:
            raise UnsupportedSourceError(f"{path.name}: no servable image ({'; '.join(context.warnings)})")
        plates = _plates(path, context.ome, image_ids, context.warnings)
    except BaseException:
        fileset.close()
        raise
    finally:
        fileset.release_parsers()
    return Source(
        path=path,
        format="OME-TIFF (multi-file)",
        images=tuple(images),
        ome_xml=xml,
        warnings=context.warnings,
        dependencies=fileset.dependencies,
        parts=fileset.parts,
        file_bytes=SOURCE_BYTES + fileset.file_bytes,
        plates=plates,
        _closers=[fileset.close] + ([own[1].close] if own is not None else []),
    )


def _parse_ome_text(xml: str, warnings: list[str]) -> OmeDocument | None:
    try:
        document = parse_ome_xml(xml)
    except OmeXmlError as exc:
        warnings.append(str(exc))
        return None
    warnings.extend(document.warnings)
    return document


@dataclass(slots=True)
class _FileContext:
    tif: tifffile.TiffFile
    warnings: list[str]
    ome: OmeDocument | None = None
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES  # a larger tile or strip is refused when read
    axes: str | None = None  # the configuration's letters for this file's series ([tiff.axes])


#: An OME-XML may claim more planes than its file holds (an acquisition cut short: tifffile
#: serves the missing planes as zeros), but not without bound: tifffile lists every claimed
#: plane, so a claim of 10^9 planes over one IFD would take gigabytes before any check.
MAX_MISSING_PLANES_FACTOR = 4
MIN_PLANES_CLAIM_LIMIT = 4096


def _claims_too_many_planes(ome: OmeDocument, tif: tifffile.TiffFile, warnings: list[str]) -> bool:
    """Whether an image of the OME-XML claims more planes than this file could hold; then
    the file is served without its OME metadata (said in ``warnings``)."""
    claimed = max((i.sizes["z"] * i.sizes["c"] * i.sizes["t"] for i in ome.images), default=0)
    if claimed <= MIN_PLANES_CLAIM_LIMIT:
        return False
    held = len(tif.pages)  # reads the IFD chain: bounded by the file's size
    if claimed <= MAX_MISSING_PLANES_FACTOR * held:
        return False
    warnings.append(
        f"the OME-XML claims {claimed:,} planes but the file holds {held:,} IFDs: "
        "its OME metadata is ignored and the pages are served as a plain TIFF"
    )
    return True


def _parse_ome(tif: tifffile.TiffFile, warnings: list[str]) -> OmeDocument | None:
    try:
        document = parse_ome_xml(tif.ome_metadata or "")
    except OmeXmlError as exc:
        warnings.append(str(exc))
        return None
    warnings.extend(document.warnings)
    return document


def _build_image(
    path: Path,
    file: PositionalReader,
    tiles: TileCache,
    context: _FileContext,
    flavour: Flavour,
    index: int,
    series: tifffile.TiffPageSeries,
) -> Image:
    if getattr(series, "is_multifile", False) and set_planes(series) is None:
        raise UnsupportedSourceError("image data spread over several files is read only as a set")
    stack = _stack_names(context, index, series.levels[0])
    layout = _SeriesLayout.from_series(series.levels[0], stack)
    levels: list[Level] = []
    for level_index, level_series in enumerate(series.levels):
        level_layout = _SeriesLayout.from_series(level_series, stack)
        if level_layout.lead_letters != layout.lead_letters or level_layout.lead_shape != layout.lead_shape:
            context.warnings.append(f"series {index}: level {level_index} differs in stack shape; ignored")
            break
        stored = _stored_array(
            file, tiles, (index, level_index), level_series, level_layout, context.max_chunk_bytes
        )
        levels.append(TiffLevel(stored, layout.groups, _raw_format(level_series, stored)))
    meta = flavour.describe(context, index, series, layout)
    axes = tuple(Axis(name, None if name == "c" else meta.units.get(name)) for name in layout.axis_names)
    scale = tuple(meta.scale.get(name, 1.0) for name in layout.axis_names)
    n_channels = levels[0].shape[layout.axis_names.index("c")] if "c" in layout.axis_names else 1
    channels = meta.channels if len(meta.channels) == n_channels else ()
    if not channels and layout.sample_count > 1 and n_channels == layout.sample_count:
        channels = _sample_channels(n_channels, series.keyframe)
    elif n_channels == layout.sample_count and int(series.keyframe.photometric) in COLOUR_PHOTOMETRICS:
        channels = _rgb_coloured(channels)
    name = meta.name or series.name or (path.name if index == 0 else f"{path.name} #{index}")
    return Image(name=name, axes=axes, levels=tuple(levels), scale=scale, channels=channels)


# ---------------------------------------------------------------------------------------
# Axes: tifffile dimensions → storage dimensions → image axes


@dataclass(frozen=True, slots=True)
class _SeriesLayout:
    """How one tifffile series level is stored and which image axis each dimension feeds.

    Storage dimensions are the stack (leading) dimensions, one per page, followed by the
    page's normalized shape (separate samples, depth, length, width, contiguous samples).
    """

    lead_letters: str
    lead_shape: tuple[int, ...]
    page_shape: tuple[int, int, int, int, int]
    axis_names: tuple[AxisName, ...]
    groups: tuple[tuple[int, ...], ...]

    @property
    def sample_count(self) -> int:
        return self.page_shape[0] * self.page_shape[4]

    @classmethod
    def from_series(cls, series: tifffile.TiffPageSeries, stack: _Stack | None = None) -> _SeriesLayout:
        """The layout of ``series``; ``stack`` names its stack dimensions instead of
        tifffile (``_stack_names``) when it accounts for the same pages."""
        page_shape = tuple(int(n) for n in series.keyframe.shaped)
        lead_letters, lead_shape = _stack_of(series)
        if stack is not None and math.prod(n for _, n in stack) == math.prod(lead_shape):
            lead_letters, lead_shape = "".join(letter for letter, _ in stack), tuple(n for _, n in stack)
        n_lead = len(lead_shape)
        assignments: dict[AxisName, list[int]] = {"t": [], "c": [], "z": [], "y": [], "x": []}
        unknown: list[int] = []
        for dim, (letter, size) in enumerate(zip(lead_letters, lead_shape, strict=True)):
            if size == 1:
                continue
            if letter in LEADING_AXES:
                assignments[LEADING_AXES[letter]].append(dim)
            else:
                unknown.append(dim)
        free = [name for name in UNKNOWN_AXIS_ORDER if not assignments[name]]
        if len(unknown) > len(free):
            raise UnsupportedSourceError(
                f"{len(unknown)} unnamed stack dimensions ({lead_letters}) do not fit in t, c, z"
            )
        for dim, name in zip(reversed(unknown), free, strict=False):
            assignments[name].append(dim)
        separate, depth, _length, _width, contiguous = page_shape
        if separate > 1:
            assignments["c"].append(n_lead)
        if depth > 1:
            assignments["z"].append(n_lead + 1)
        assignments["y"].append(n_lead + 2)
        assignments["x"].append(n_lead + 3)
        if contiguous > 1:
            assignments["c"].append(n_lead + 4)
        names = tuple(name for name, dims in assignments.items() if dims)
        groups = tuple(tuple(sorted(assignments[name])) for name in names)
        return cls(lead_letters, lead_shape, page_shape, names, groups)  # type: ignore[arg-type]  # 5-tuple


#: (letter, size) of each stack dimension, outermost first; letters as tifffile's (T, C, Z).
_Stack = tuple[tuple[str, int], ...]


def _stack_of(series: tifffile.TiffPageSeries) -> tuple[str, tuple[int, ...]]:
    """tifffile's letters and sizes of the stack (page-indexing) dimensions of ``series``."""
    page_size = math.prod(int(n) for n in series.keyframe.shaped)
    axes = series.get_axes(False)
    shape = tuple(int(n) for n in series.get_shape(False))
    planes = math.prod(shape) // page_size if page_size else 0
    lead = _leading_prefix(axes, shape, planes)
    return axes[:lead], shape[:lead]


def _configured_axes(path: Path, table: Sequence[tuple[str, str]]) -> str | None:
    """The letters of the first ``[tiff.axes]`` pattern matching the file's path or name."""
    for pattern, letters in table:
        if fnmatch.fnmatchcase(str(path), pattern) or fnmatch.fnmatchcase(path.name, pattern):
            return letters.lower()
    return None


def _stack_names(context: _FileContext, index: int, series: tifffile.TiffPageSeries) -> _Stack | None:
    """Names for the stack dimensions of a series other than tifffile's (module docstring:
    the configuration, then the file's ImageJ or OME metadata where tifffile left a
    dimension unnamed); None keeps tifffile's letters and the guesses."""
    letters, shape = _stack_of(series)
    stack = tuple((letter, n) for letter, n in zip(letters, shape, strict=True) if n > 1)
    if context.axes is not None:
        configured = _configured_stack(context.axes, stack, series.keyframe)
        if configured is not None:
            return configured
        page = "".join(_page_letters(series.keyframe)).upper()
        problem = (
            f"series {index}: the configured axes {context.axes!r} do not fit its dimensions "
            f"{''.join(letter for letter, _ in stack)}{page} {tuple(n for _, n in stack)}; ignored"
        )
        context.warnings.append(problem)
        logger.warning("%s: %s", context.tif.filehandle.path, problem)
    if all(letter in LEADING_AXES for letter, _ in stack):
        return None
    planes = math.prod(shape)
    for hint in (_ome_stack(context.ome, index, series), _imagej_stack(context.tif.imagej_metadata)):
        if hint and math.prod(n for _, n in hint) == planes:
            return hint
    return None


def _page_letters(keyframe: tifffile.TiffPage) -> list[str]:
    """The axes of one page's dimensions of size > 1 (y and x always), in storage order."""
    separate, depth, _length, _width, contiguous = (int(n) for n in keyframe.shaped)
    return [*("c" * (separate > 1)), *("z" * (depth > 1)), "y", "x", *("c" * (contiguous > 1))]


def _configured_stack(letters: str, stack: _Stack, keyframe: tifffile.TiffPage) -> _Stack | None:
    """The stack named by configured ``letters`` (one per dimension of size > 1, stack then
    page: ``tyx`` for 51 pages); None when they do not fit (the page's own letters must
    end them, and the stack's be distinct letters of t, c, z)."""
    page = "".join(_page_letters(keyframe))
    head = letters[: len(letters) - len(page)]
    if len(head) != len(stack) or not letters.endswith(page):
        return None
    if not set(head) <= {"t", "c", "z"} or len(set(head)) != len(head) or set(head) & set(page):
        return None
    return tuple((letter.upper(), n) for letter, (_, n) in zip(head, stack, strict=True))


def _imagej_stack(info: dict[str, Any] | None) -> _Stack | None:
    """The stack an ImageJ header describes: frames, slices, channels (ImageJ's page order)."""
    if not info:
        return None
    keys = (("T", "frames"), ("Z", "slices"), ("C", "channels"))
    counts = ((letter, _count(info.get(key))) for letter, key in keys)
    return tuple((letter, n) for letter, n in counts if n > 1) or None


def _ome_stack(document: OmeDocument | None, index: int, series: tifffile.TiffPageSeries) -> _Stack | None:
    """The stack an OME Image describes: its sizes in ``DimensionOrder`` (outermost last)."""
    image = _match_ome_image(document, index, series)
    if image is None:
        return None
    order = image.dimension_order.upper()
    if len(order) != 5 or set(order) != set("XYZCT") or not order.startswith("XY"):
        return None
    sizes = {"T": image.sizes["t"], "Z": image.sizes["z"], "C": len(image.channels) or image.sizes["c"]}
    return tuple((letter, sizes[letter]) for letter in reversed(order[2:]) if sizes[letter] > 1) or None


def _served_size(layout: _SeriesLayout, axis: str) -> int:
    """The size of image axis ``axis`` (1 when absent) under ``layout``."""
    if axis not in layout.axis_names:
        return 1
    storage = (*layout.lead_shape, *layout.page_shape)
    return math.prod(storage[dim] for dim in layout.groups[layout.axis_names.index(axis)])


def _count(value: Any) -> int:
    """A dimension count from a header (1 when it is not a positive integer)."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return 1
    return number if number > 0 else 1


def _leading_prefix(axes: str, shape: Sequence[int], planes: int) -> int:
    """Length of the longest prefix of stack (page-indexing) dimensions of a series."""
    best = 0
    product = 1
    for i, letter in enumerate(axes):
        if letter in "YXS":
            break
        product *= shape[i]
        if product == planes:
            best = i + 1
        elif product > planes:
            break
    return best


# ---------------------------------------------------------------------------------------
# Reading: page/segment geometry → StoredArray


def _stored_array(
    file: PositionalReader,
    tiles: TileCache,
    key: tuple[int, int],
    series: tifffile.TiffPageSeries,
    layout: _SeriesLayout,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
) -> StoredArray:
    keyframe = series.keyframe
    dtype = keyframe.dtype
    if dtype is None or dtype.kind not in "biuf":
        raise UnsupportedSourceError(f"pixel type {dtype} is not supported")
    codec = _TiffSegments.from_series(series, layout, file)
    _, _, length, width, contiguous = layout.page_shape
    if keyframe.is_tiled:
        segment = (keyframe.tiledepth, keyframe.tilelength, keyframe.tilewidth)
    else:
        segment = (1, min(keyframe.rowsperstrip or length, length), width)
    return StoredArray(
        key=key,
        shape=(*layout.lead_shape, *layout.page_shape),
        chunk_shape=(*(1 for _ in layout.lead_shape), 1, *segment, contiguous),
        dtype=dtype,
        fill_value=_fill_value(keyframe, dtype),
        codec=codec,
        files=list(planes.files) if (planes := set_planes(series)) is not None else [file],
        tiles=tiles,
        max_chunk_bytes=max_chunk_bytes,
    )


#: TIFF compressions whose tiles are valid zarr chunks as stored (when unpredicted, full-size);
#: deflate tiles (Adobe's 8 and the old 32946) are zlib streams, served in blosc frames or as
#: gzip members (``RawChunkFormat``).
PASSTHROUGH_COMPRESSIONS: dict[int, Literal["zstd", "zlib"] | None] = {
    1: None,
    50000: "zstd",
    8: "zlib",
    32946: "zlib",
}


_PassThrough = tuple[Literal["zstd", "zlib"] | None, Literal["little", "big"]]


def _raw_format(series: tifffile.TiffPageSeries, stored: StoredArray) -> _PassThrough | None:
    """(compressor, endian) when the level's tiles can be served untouched: tiled (edge
    tiles are stored full size, unlike strips), one sample per tile, no predictor, no
    bit packing or bit-order reversal."""
    keyframe = series.keyframe
    compression = int(keyframe.compression)
    if (
        not keyframe.is_tiled
        or compression not in PASSTHROUGH_COMPRESSIONS
        or int(keyframe.predictor) != 1
        or int(keyframe.fillorder) != 1
        or stored.chunk_shape[-1] != 1  # interleaved samples in a tile
        or keyframe.bitspersample != stored.dtype.itemsize * 8
    ):
        return None
    big = keyframe.parent.byteorder == ">" and stored.dtype.itemsize > 1
    return PASSTHROUGH_COMPRESSIONS[compression], "big" if big else "little"


class TiffLevel(MappedLevel):
    """A TIFF level; its tiles are passed through untouched where they are zarr chunks."""

    __slots__ = ()

    def __init__(
        self, stored: StoredArray, groups: Sequence[Sequence[int]], raw: _PassThrough | None
    ) -> None:
        super().__init__(stored, groups)
        if raw is not None and self.is_plain_view():
            compressor, endian = raw
            self._raw_chunk_format = RawChunkFormat(self.plain_chunk_shape(), compressor, endian)

    def read_raw_chunk(self, coords: tuple[int, ...]) -> bytes | None:
        raw = self.raw_chunk_format
        if raw is None:
            return None
        # sent only if the tile is one frame declaring exactly its size (else decoded, bounded)
        stored = self.stored
        return stored.read_passthrough(self.storage_coords(coords), raw.compressor, stored.chunk_nbytes)


def _fill_value(keyframe: tifffile.TiffPage, dtype: np.dtype[Any]) -> int | float:
    nodata = keyframe.nodata
    try:
        value = dtype.type(nodata).item()
    except (TypeError, ValueError, OverflowError):
        return 0
    return value if isinstance(value, (int, float)) else 0


@dataclass(slots=True)
class _TiffSegments:
    """Locates and decodes TIFF segments (tiles or strips) of every page of a level."""

    offsets: np.ndarray  # [page, segment] byte offsets (0: not stored)
    counts: np.ndarray  # [page, segment] byte counts (0: not stored)
    decoders: list[Callable[..., Any]]
    decoder_of_page: np.ndarray
    decode_kwargs: list[dict[str, Any]]
    lead_shape: tuple[int, ...]
    tiled: bool
    grid: tuple[int, int, int]  # segments along depth, length, width per sample plane
    segments_per_sample: int
    file_size: int
    #: multi-file sets: the file (index in the array's files) each plane lies in, and why
    #: a plane cannot be read (index into ``problems``; -1: readable, or not stored: fill)
    file_of_plane: np.ndarray | None = None
    problem_of_plane: np.ndarray | None = None
    problems: tuple[str, ...] = ()
    _lead_strides: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        strides = []
        step = 1
        for n in reversed(self.lead_shape):
            strides.append(step)
            step *= n
        self._lead_strides = tuple(reversed(strides))

    @classmethod
    def from_series(
        cls, series: tifffile.TiffPageSeries, layout: _SeriesLayout, file: PositionalReader
    ) -> _TiffSegments:
        keyframe = series.keyframe
        planes = math.prod(layout.lead_shape)
        pages = list(series.pages)
        n_segments = len(keyframe.dataoffsets)
        offsets = np.zeros((planes, n_segments), dtype=np.int64)
        counts = np.zeros((planes, n_segments), dtype=np.int64)
        decoders: list[Callable[..., Any]] = []
        decode_kwargs: list[dict[str, Any]] = []
        decoder_ids: dict[int, int] = {}
        decoder_of_page = np.zeros(planes, dtype=np.int32)
        if len(pages) < planes and series.dataoffset is not None and len(pages) == 1:
            pages = pages * planes  # contiguous (ImageJ > 4 GB): one IFD describes all planes
            contiguous_step = keyframe.nbytes
        else:
            contiguous_step = 0
        for plane, page in enumerate(pages[:planes]):
            if page is None:
                continue
            key_page = page.keyframe if isinstance(page, tifffile.TiffFrame) else page
            if key_page is None:
                raise UnsupportedSourceError(f"page {plane} has no key frame")
            if key_page.shaped != keyframe.shaped:
                raise UnsupportedSourceError(f"page {plane} differs in shape from the first page")
            if id(key_page) not in decoder_ids:
                decoder_ids[id(key_page)] = len(decoders)
                decoders.append(key_page.decode)
                decode_kwargs.append(_decode_kwargs(key_page))
            decoder_of_page[plane] = decoder_ids[id(key_page)]
            page_offsets = np.asarray(page.dataoffsets, dtype=np.int64)
            if len(page_offsets) != n_segments:
                raise UnsupportedSourceError(f"page {plane} has a different segment count")
            if contiguous_step:
                page_offsets = page_offsets - page_offsets[0] + series.dataoffset + plane * contiguous_step
            offsets[plane] = page_offsets
            counts[plane] = page.databytecounts
        separate, depth, length, width, _ = layout.page_shape
        if keyframe.is_tiled:
            grid = (
                math.ceil(depth / keyframe.tiledepth),
                math.ceil(length / keyframe.tilelength),
                math.ceil(width / keyframe.tilewidth),
            )
        else:
            grid = (depth, math.ceil(length / min(keyframe.rowsperstrip or length, length)), 1)
        per_sample = grid[0] * grid[1] * grid[2]
        if per_sample * separate != n_segments:
            raise UnsupportedSourceError(
                f"{n_segments} segments do not match the page geometry {layout.page_shape}"
            )
        return cls(
            offsets=offsets,
            counts=counts,
            decoders=decoders,
            decoder_of_page=decoder_of_page,
            decode_kwargs=decode_kwargs,
            lead_shape=layout.lead_shape,
            tiled=bool(keyframe.is_tiled),
            grid=grid,
            segments_per_sample=per_sample,
            file_size=file.size,
            **_set_planes(series, planes),
        )

    def _address(self, coords: tuple[int, ...]) -> tuple[int, int]:
        n_lead = len(self.lead_shape)
        plane = sum(c * s for c, s in zip(coords[:n_lead], self._lead_strides, strict=True))
        sample, depth, row, column, _ = coords[n_lead:]
        _, rows, columns = self.grid
        segment = sample * self.segments_per_sample + (depth * rows + row) * columns + column
        return plane, segment

    def parsed_bytes(self) -> int:
        """Offsets and byte counts of every segment, plus the key pages the decoders keep
        alive (tags included)."""
        arrays = self.offsets.nbytes + self.counts.nbytes + self.decoder_of_page.nbytes
        for extra in (self.file_of_plane, self.problem_of_plane):
            arrays += extra.nbytes if extra is not None else 0
        return arrays + len(self.decoders) * KEY_PAGE_BYTES

    def any_located(self, lo: tuple[int, ...], hi: tuple[int, ...]) -> bool:
        """Whether a segment in the box ``lo <= coords < hi`` is stored: one vectorised
        look at the offset and byte-count tables seen as (lead..., sample, depth, row,
        column), never a call per tile (a 2^20 x 2^20 giant has 10^6 of them)."""
        n_lead = len(self.lead_shape)
        box = tuple(slice(a, b) for a, b in zip(lo[: n_lead + 4], hi[: n_lead + 4], strict=True))
        samples = self.offsets.shape[1] // self.segments_per_sample
        grid = (*self.lead_shape, samples, *self.grid)
        problems = self.problem_of_plane
        if problems is not None and (problems.reshape(self.lead_shape)[box[:n_lead]] >= 0).any():
            return True  # an unreadable plane is no fill: read it, and fail
        offsets = self.offsets.reshape(grid)[box]
        counts = self.counts.reshape(grid)[box]
        return bool(np.logical_and(offsets > 0, counts > 0).any())

    def locate(self, coords: tuple[int, ...]) -> Extent | None:
        plane, segment = self._address(coords)
        if self.problem_of_plane is not None and (problem := int(self.problem_of_plane[plane])) >= 0:
            raise MissingPlaneError(f"plane {plane} cannot be read: {self.problems[problem]}")
        offset = int(self.offsets[plane, segment])
        nbytes = int(self.counts[plane, segment])
        if offset <= 0 or nbytes <= 0:
            return None
        file = int(self.file_of_plane[plane]) if self.file_of_plane is not None else 0
        return Extent(file, offset, nbytes)

    def decode(self, coords: tuple[int, ...], data: bytes) -> np.ndarray:
        plane, segment = self._address(coords)
        which = int(self.decoder_of_page[plane])
        array, _index, _shape = self.decoders[which](data, segment, **self.decode_kwargs[which])
        if array is None:
            raise SourceReadError(f"segment {segment} of page {plane} decoded to nothing")
        return np.asarray(array).reshape((1,) * (len(self.lead_shape) + 1) + array.shape)


def _set_planes(series: tifffile.TiffPageSeries, planes: int) -> dict[str, Any]:
    """The per-plane file and problem tables of a multi-file set's series (none else)."""
    found = set_planes(series)
    if found is None:
        return {}
    if len(found.file_of_plane) != planes:
        raise UnsupportedSourceError(f"{len(found.file_of_plane)} planes mapped for {planes} in the stack")
    return {
        "file_of_plane": found.file_of_plane,
        "problem_of_plane": found.problem_of_plane,
        "problems": found.problems,
    }


def _decode_kwargs(page: tifffile.TiffPage) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if page.jpegtables is not None:
        kwargs["jpegtables"] = page.jpegtables
    return kwargs


# ---------------------------------------------------------------------------------------
# Metadata flavours


@dataclass(slots=True)
class ImageMeta:
    """What a flavour knows of an image: per image-axis scale and units, channels, name."""

    name: str | None = None
    scale: dict[str, float] = field(default_factory=dict)
    units: dict[str, str | None] = field(default_factory=dict)
    channels: tuple[Channel, ...] = ()

    def set(self, axis: str, value: float | None, unit: str | None) -> None:
        if value is not None and value > 0 and math.isfinite(value):
            self.scale[axis] = float(value)
            self.units[axis] = unit


@dataclass(frozen=True, slots=True)
class Flavour:
    name: str
    applies: Callable[[tifffile.TiffFile], bool]
    describe: Callable[[_FileContext, int, tifffile.TiffPageSeries, _SeriesLayout], ImageMeta]


def _describe_ome(
    context: _FileContext, index: int, series: tifffile.TiffPageSeries, layout: _SeriesLayout
) -> ImageMeta:
    meta = _describe_generic(context, index, series, layout)
    image = _match_ome_image(context.ome, index, series)
    if image is None:
        return meta
    described = ome_image_metadata(image)
    meta.name = described.name or meta.name
    meta.scale.update(described.scale)
    meta.units.update(described.units)
    meta.channels = described.channels
    return meta


def ome_image_metadata(image: OmeImage) -> ImageMeta:
    """What an OME-XML Image says of itself: name, physical sizes (x, y, z) and time
    increment (t) with their units, and its channels (one per sample)."""
    meta = ImageMeta(name=image.name)
    for axis in ("x", "y", "z", "t"):
        size = image.physical.get(axis)
        if size is not None:
            meta.set(axis, size.value, size.unit)
    meta.channels = _ome_channels(image)
    return meta


def _match_ome_image(
    document: OmeDocument | None, index: int, series: tifffile.TiffPageSeries
) -> OmeImage | None:
    """The OME Image of a series: tifffile skips images without data, so match by name first."""
    if document is None or not document.images:
        return None
    named = [image for image in document.images if series.name and image.name == series.name]
    if len(named) == 1:
        return named[0]
    return document.images[index] if index < len(document.images) else None


def _ome_channels(image: OmeImage) -> tuple[Channel, ...]:
    channels: list[Channel] = []
    for position, ome_channel in enumerate(image.channels):
        samples = ome_channel.samples_per_pixel
        for sample in range(samples):
            if samples == 1:
                label = ome_channel.name or f"Channel {position}"
                color = ome_channel.color
            else:
                base = ome_channel.name or "Channel"
                label = f"{base} {RGB_LABELS[sample]}" if sample < 4 else f"{base} {sample}"
                color = RGB_COLORS[sample] if sample < 4 else None
            channels.append(Channel(label=label, color=color))
    return tuple(channels)


def _describe_imagej(
    context: _FileContext, index: int, series: tifffile.TiffPageSeries, layout: _SeriesLayout
) -> ImageMeta:
    meta = ImageMeta()
    info = context.tif.imagej_metadata or {}
    unit = space_unit(str(info.get("unit", ""))) if info.get("unit") else None
    x_res, y_res = series.keyframe.get_resolution()
    if unit is not None:
        meta.set("x", 1.0 / x_res if x_res else None, unit)
        meta.set("y", 1.0 / y_res if y_res else None, unit)
        meta.set("z", _number(info.get("spacing")), unit)
    frame_interval = _number(info.get("finterval"))
    meta.set("t", frame_interval, time_unit(str(info.get("tunit", "s"))) or "second")
    meta.channels = _imagej_channels(info, series, layout)
    return meta


def _imagej_channels(
    info: dict[str, Any], series: tifffile.TiffPageSeries, layout: _SeriesLayout
) -> tuple[Channel, ...]:
    count = _count(info.get("channels"))  # the header is untrusted: "x", 10**20...
    if count > 1 and count != _served_size(layout, "c"):
        return ()  # not the served channels (and never a loop over a claimed count)
    if count <= 1:  # one channel: its display range is the description's min and max
        low, high = _finite(info.get("min")), _finite(info.get("max"))
        if low is None or high is None or high <= low:
            return ()
        dtype = np.dtype(series.keyframe.dtype)
        lowest, highest = _dtype_range(dtype, low, high)
        return (Channel(window=Window(min=min(lowest, low), max=max(highest, high), start=low, end=high)),)
    ranges = info.get("Ranges")
    luts = info.get("LUTs") or []
    dtype = np.dtype(series.keyframe.dtype)
    channels = []
    for c in range(count):
        color = None
        if c < len(luts):
            lut = np.asarray(luts[c])
            if lut.ndim == 2 and lut.shape[0] >= 3:
                color = "".join(f"{int(v):02X}" for v in lut[:3, -1])
        window = None
        if ranges is not None and len(ranges) >= 2 * (c + 1):
            start, end = float(ranges[2 * c]), float(ranges[2 * c + 1])
            low, high = _dtype_range(dtype, start, end)
            window = Window(min=low, max=high, start=start, end=end)
        channels.append(Channel(label=f"Channel {c}", color=color, window=window))
    return tuple(channels)


def _describe_svs(
    context: _FileContext, index: int, series: tifffile.TiffPageSeries, layout: _SeriesLayout
) -> ImageMeta:
    """The baseline's pixel size is its ``MPP``; the thumbnail, the whole baseline scaled
    down ("2220x2967 -> 574x768"), has that times their size ratio. Label and macro are
    photographs of the glass slide, at a scale the file does not give: none."""
    meta = ImageMeta(name=series.name or None)
    baseline = context.tif.series[0].keyframe
    try:
        mpp = _number(svs_description_metadata(baseline.description).get("MPP"))
    except Exception:  # a description tifffile cannot parse just means no pixel size
        mpp = None
    if mpp is None or (index != 0 and (series.name or "").lower() != "thumbnail"):
        return meta
    page = series.keyframe
    meta.set("x", mpp * (baseline.imagewidth / page.imagewidth) if page.imagewidth else None, "micrometer")
    meta.set("y", mpp * (baseline.imagelength / page.imagelength) if page.imagelength else None, "micrometer")
    return meta


def _describe_generic(
    context: _FileContext, index: int, series: tifffile.TiffPageSeries, layout: _SeriesLayout
) -> ImageMeta:
    """Pixel size from the resolution tags, when they look physical."""
    meta = ImageMeta()
    keyframe = series.keyframe
    unit_code = keyframe.tags.valueof(296, default=2)  # ResolutionUnit, default inch
    unit = RESOLUTION_UNITS.get(int(unit_code))
    if unit is None or 282 not in keyframe.tags:
        return meta
    x_res, y_res = keyframe.get_resolution()
    if not x_res or not y_res or (unit in ("inch", "centimeter") and {x_res, y_res} <= PLACEHOLDER_DPI):
        return meta
    meta.set("x", to_micrometers(1.0 / x_res, unit), "micrometer")
    meta.set("y", to_micrometers(1.0 / y_res, unit), "micrometer")
    return meta


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _dtype_range(dtype: np.dtype[Any], start: float, end: float) -> tuple[float, float]:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return min(start, 0.0), max(end, 1.0)


def _sample_channels(count: int, keyframe: tifffile.TiffPage) -> tuple[Channel, ...]:
    """Channels made of a page's samples: named R, G, B (A) only for colour images
    (RGB, and YCbCr which is decoded to RGB); other samples are just numbered."""
    if int(keyframe.photometric) in COLOUR_PHOTOMETRICS:
        return tuple(
            Channel(label=RGB_LABELS[i], color=RGB_COLORS[i]) if i < 4 else Channel(label=f"Sample {i}")
            for i in range(count)
        )
    return tuple(Channel(label=f"Sample {i}") for i in range(count))


def _rgb_coloured(channels: tuple[Channel, ...]) -> tuple[Channel, ...]:
    """``channels`` (the samples of colour pages) with red, green, blue (and white for
    alpha) where the metadata gave no colour."""
    return tuple(
        replace(channel, color=RGB_COLORS[i]) if channel.color is None and i < len(RGB_COLORS) else channel
        for i, channel in enumerate(channels)
    )


#: Order is dispatch priority: the first flavour whose test passes describes the file.
FLAVOURS: tuple[Flavour, ...] = (
    Flavour("OME-TIFF", lambda tif: bool(tif.is_ome), _describe_ome),
    Flavour("ImageJ TIFF", lambda tif: bool(tif.is_imagej), _describe_imagej),
    Flavour("Aperio SVS", lambda tif: bool(tif.is_svs), _describe_svs),
    Flavour("TIFF", lambda tif: True, _describe_generic),
)
