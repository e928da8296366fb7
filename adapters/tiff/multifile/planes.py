"""Opening a set: each member parsed once, each plane of each image mapped to its file.

tifffile parses each member's IFDs from our own descriptor (``TiffFile(stream)``), never
by a name from the XML (tifffile would follow it anywhere). A reference that cannot be
followed fails the planes it maps (``MissingPlaneError`` when read: never fill values),
and nothing is allocated per plane before an image's claim is checked against the IFDs
its files hold. The result is one tifffile ``TiffPageSeries`` per OME Image, whose
``attr`` carries where each plane lies (``SetPlanes``), for the TIFF adapter to read.
"""

from __future__ import annotations

import logging
import os
import stat as statmode
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from adapters.base import Dependency, SourceReadError, UnsupportedSourceError
from adapters.io.files import FileAccess, OutsideRootsError, PositionalReader
from adapters.tiff.multifile.members import MemberFiles
from adapters.tiff.multifile.references import FileRef, PixelsRefs, SetDocument, TiffDataRef, local_name
from adapters.tiff.multifile.roles import SNIFF_BYTES, name_problem, resolve_member

logger = logging.getLogger(__name__)

#: Files one set may name (distinct members); more is refused before any file is opened.
MAX_MEMBER_FILES = 4096
#: An image may claim more planes than its TiffData map (an acquisition cut short: the
#: unmapped planes are fill, as in a single file), but not without bound.
MAX_UNMAPPED_FACTOR = 4
MIN_PLANES_CLAIM_LIMIT = 4096
#: What one member pins besides its planes' offsets: its key page (tags) and a reader.
MEMBER_BYTES = 32 * 1024

_ZERO_STAT = os.stat_result((0,) * 10, {"st_atime_ns": 0, "st_mtime_ns": 0, "st_ctime_ns": 0})


class MissingPlaneError(SourceReadError):
    """A plane lies in a member file that cannot be read (missing, outside the served
    folders, of another acquisition...): an error for it, never fill values."""


#: The key of ``SetPlanes`` in a set's ``TiffPageSeries.attr``.
SET_PLANES = "ome_zarr_gateway.set_planes"


@dataclass(frozen=True, slots=True)
class SetPlanes:
    """Where the planes of a set's series lie: ``files[file_of_plane[p]]`` holds plane
    ``p``; ``problem_of_plane[p] >= 0`` is the index in ``problems`` of why plane ``p``
    cannot be read (-1: readable, or not stored at all: fill). ``ome_index``: the OME
    Image the series is."""

    files: tuple[PositionalReader, ...]
    file_of_plane: np.ndarray
    problem_of_plane: np.ndarray
    problems: tuple[str, ...]
    ome_index: int


def set_planes(series: tifffile.TiffPageSeries) -> SetPlanes | None:
    """The plane tables of a set's series (carried in its ``attr``); None for any other."""
    found = series.attr.get(SET_PLANES)
    return found if isinstance(found, SetPlanes) else None


@dataclass(slots=True)
class FileSet:
    """An opened set: its series (one per OME Image with a readable plane), the files
    they are read from (its own file first, for a TIFF master), the files it depends on
    and what went wrong on the way."""

    series: list[tifffile.TiffPageSeries]
    files: list[PositionalReader]
    members: MemberFiles
    tif: tifffile.TiffFile  # a parsed file for the flavour's context (the master, or a member)
    dependencies: tuple[Dependency, ...]
    warnings: list[str] = field(default_factory=list)
    parsers: list[_Opened] = field(default_factory=list, repr=False)
    #: every file the set names that exists in the allowed folders (readable or not)
    parts: tuple[Path, ...] = ()

    @property
    def file_bytes(self) -> int:
        """What the set pins besides its planes' offsets: a key page and reader per file."""
        return len(self.files) * MEMBER_BYTES

    def release_parsers(self) -> None:
        """Close tifffile's streams on the members once the images are built (the
        readers stay: they are how pixels are read)."""
        parsers, self.parsers = self.parsers, []
        for opened in parsers:
            opened.close()

    def close(self) -> None:
        self.release_parsers()
        self.members.close()


@dataclass(slots=True)
class _Opened:
    """A file of the set as parsed: its reader index, tifffile's view of it (pages are
    loaded on demand: its stream stays open until ``FileSet.release_parsers``), its own
    OME UUID, its key page (the first IFD the set maps to it)."""

    index: int
    tif: tifffile.TiffFile
    uuid: str | None
    stream: Any = None  # our duplicate of a member's descriptor, read by tifffile
    page_count: int | None = None
    key: tifffile.TiffPage | None = None

    def close(self) -> None:
        if self.stream is not None:
            self.tif.close()
            self.stream.close()


@dataclass(slots=True)
class _Resolver:
    """Turns file references into reader indices (or reasons), opening each member once."""

    master: Path
    document: SetDocument
    access: FileAccess
    own: tifffile.TiffFile | None
    files: list[PositionalReader]
    members: MemberFiles
    warnings: list[str]
    dependencies: list[Dependency] = field(default_factory=list)
    by_path: dict[Path, _Opened | str] = field(default_factory=dict)
    by_ref: dict[FileRef, _Opened | str] = field(default_factory=dict)

    def file(self, ref: FileRef) -> _Opened | str:
        """The member ``ref`` names, or why it cannot be read."""
        found = self.by_ref.get(ref)
        if found is None:
            found = self._file(ref)
            self.by_ref[ref] = found
        return found

    def warn_once(self, problem: str) -> None:
        if problem not in self.warnings:
            self.warnings.append(problem)
            logger.warning("%s: %s", self.master, problem)

    def _own(self, why: str) -> _Opened | str:
        """The master's own file (a TIFF master), or why there is none (a companion)."""
        if self.own is None:
            return why
        real = Path(os.path.realpath(self.master))
        if real not in self.by_path:
            self.own.pages.cache = True
            self.own.pages.useframes = True  # planes other than the key page: offsets only
            self.by_path[real] = _Opened(0, self.own, self.document.uuid)
        return self.by_path[real]

    def _file(self, ref: FileRef) -> _Opened | str:
        if (ref.name is None and ref.uuid is None) or self.document.is_own(ref):
            return self._own(
                "a TiffData without a file name refers to the companion file, which holds no pixels"
            )
        if ref.name is None:
            return f"member {ref.uuid}: a UUID element without a FileName (files are found by name only)"
        try:
            real = resolve_member(ref.name, self.master, self.access)
        except OutsideRootsError as exc:
            return f"member {exc}"
        except UnsupportedSourceError as exc:
            self._depend_on_missing(ref.name)
            return f"member {exc}"
        opened: _Opened | str
        if real == Path(os.path.realpath(self.master)):
            opened = self._own(f"member {ref.name!r} is the companion file itself, which holds no pixels")
        else:
            opened = self.by_path.get(real) or self._open(ref.name or "", real)
            self.by_path[real] = opened
        if isinstance(opened, str):
            return opened
        # a member's own UUID must be the one the set names (a copy of the master's XML,
        # as Micro-Manager writes into every split, says nothing about the file)
        if ref.uuid is not None and opened.uuid not in (None, ref.uuid, self.document.uuid):
            return (
                f"member {ref.name!r} is {opened.uuid}, but the set names {ref.uuid}: "
                "a file of another acquisition"
            )
        return opened

    def _depend_on_missing(self, name: str | None) -> None:
        """A member inside the folders that is missing now: its appearing reopens the set."""
        if name is None or name_problem(name) is not None:
            return
        joined = self.master.parent / name
        if not os.path.lexists(joined) and self.access.contains(os.path.realpath(joined)):
            self.dependencies.append(Dependency(joined, _ZERO_STAT))

    def _open(self, name: str, real: Path) -> _Opened | str:
        if len(self.members) >= MAX_MEMBER_FILES:
            return f"member {name!r}: more than {MAX_MEMBER_FILES} member files"
        joined = self.master.parent / name
        try:
            before = os.stat(joined)
            file = self.access.open(name, referrer=self.master)
        except (OSError, UnsupportedSourceError) as exc:
            return f"member {name!r}: {getattr(exc, 'strerror', None) or exc}"
        stream = None
        try:
            if not statmode.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise UnsupportedSourceError("not a regular file")
            stream = os.fdopen(os.dup(file.fileno()), "rb")
            # parsed from our own checked descriptor, never reopened by name
            tif = tifffile.TiffFile(stream, name=file.path.name, _multifile=False)
            tif.pages.cache = True
            tif.pages.useframes = True
            uuid = _own_uuid(tif)
        except Exception as exc:  # tifffile raises many types for a file that is no TIFF
            if stream is not None:
                stream.close()
            file.close()
            return f"member {name!r} is not a readable TIFF: {exc}"
        reader = self.members.adopt(name, file)
        self.files.append(reader)
        self.dependencies.append(Dependency(joined, before))
        return _Opened(len(self.files) - 1, tif, uuid, stream)


def _own_uuid(tif: tifffile.TiffFile) -> str | None:
    """The ``UUID`` attribute of a file's OME root element, read from its start only."""
    try:
        description = tif.pages.first.description
    except Exception:
        return None
    if "<OME" not in description[:SNIFF_BYTES]:
        return None
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start",))
    try:
        for start in range(0, len(description), SNIFF_BYTES):
            parser.feed(description[start : start + SNIFF_BYTES])
            for event in parser.read_events():  # the first start is the root
                element: object = event[-1]
                if isinstance(element, ET.Element) and local_name(element.tag) == "OME":
                    return element.attrib.get("UUID")
                return None
    except ET.ParseError:
        return None
    return None


def _layout_signature(page: tifffile.TiffPage) -> tuple[Any, ...]:
    """What must be equal for planes of different files to be one array read alike:
    shape, type, storage and codec, byte order."""
    return (
        tuple(page.shaped),
        str(page.dtype),
        int(page.compression),
        int(page.predictor),
        int(page.fillorder),
        int(page.planarconfig),
        int(page.photometric),
        bool(page.is_tiled),
        (page.tiledepth, page.tilelength, page.tilewidth) if page.is_tiled else page.rowsperstrip,
        page.bitspersample,
        page.parent.byteorder,
    )


def _page(opened: _Opened, ifd: int) -> tifffile.TiffPage | tifffile.TiffFrame:
    """IFD ``ifd`` of a file: the first one asked for becomes the file's key page (a
    full page, with its tags and decoder), the others frames described by it (offsets
    only), as tifffile reads a series within one file."""
    pages = opened.tif.pages
    if opened.key is None:
        if opened.index == 0 and isinstance(pages.keyframe, tifffile.TiffPage):
            opened.key = pages.keyframe  # the master's own file: tifffile chose it already
        else:
            pages.set_keyframe(ifd)
            opened.key = pages.keyframe
    page = pages[ifd]
    if not isinstance(page, (tifffile.TiffPage, tifffile.TiffFrame)):
        raise SourceReadError(f"IFD {ifd} is not an image")
    return page


def _page_count(opened: _Opened) -> int:
    if opened.page_count is None:
        opened.page_count = len(opened.tif.pages)  # walks the IFD chain: bounded by the file
    return opened.page_count


@dataclass(slots=True)
class _PlaneMap:
    """Where each plane of one image lies, as learnt from its references."""

    planes: int
    pages: list[tifffile.TiffPage | tifffile.TiffFrame | None]
    file_of_plane: np.ndarray
    problem_of_plane: np.ndarray
    problems: list[str] = field(default_factory=list)

    def fail(self, planes: range, reason: str) -> None:
        if reason not in self.problems:
            self.problems.append(reason)
        code = self.problems.index(reason)
        self.problem_of_plane[planes.start : planes.stop] = code
        for plane in planes:
            self.pages[plane] = None


def _readable_planes(image: PixelsRefs, resolver: _Resolver) -> int:
    """How many planes the references map to IFDs that exist (counts clamped to the
    image and to each file's IFDs): what bounds the planes an image may claim, before
    anything is allocated per plane. Opens the members."""
    total = 0
    for ref in image.refs:
        opened = resolver.file(ref.file)
        if isinstance(opened, str):
            continue
        try:
            available = _page_count(opened) - ref.ifd
        except Exception:  # a corrupt IFD chain: its planes fail when placed
            continue
        count = available if ref.count is None else min(ref.count, available)
        total += max(0, min(count, image.planes - ref.plane))
    return total


def _map_planes(image: PixelsRefs, resolver: _Resolver) -> _PlaneMap | None:
    planes = image.planes
    readable = _readable_planes(image, resolver)
    if planes > max(MIN_PLANES_CLAIM_LIMIT, MAX_UNMAPPED_FACTOR * readable):
        resolver.warnings.append(
            f"Image {image.index} claims {planes:,} planes but maps {readable:,} to readable IFDs; not served"
        )
        return None
    result = _PlaneMap(
        planes=planes,
        pages=[None] * planes,
        file_of_plane=np.zeros(planes, dtype=np.int32),
        problem_of_plane=np.full(planes, -1, dtype=np.int32),
    )
    for ref in image.refs:
        opened = resolver.file(ref.file)
        if ref.count is not None:
            span = range(ref.plane, min(planes, ref.plane + ref.count))
        else:
            span = range(ref.plane, planes)
        if isinstance(opened, str):
            result.fail(span, opened)
            continue
        _place(result, span, ref, opened, resolver)
    return result


def _place(result: _PlaneMap, span: range, ref: TiffDataRef, opened: _Opened, resolver: _Resolver) -> None:
    """Map ``span`` to IFDs ``ref.ifd...`` of a readable member."""
    try:
        available = _page_count(opened) - ref.ifd
        if ref.count is None:
            span = range(span.start, min(span.stop, span.start + max(0, available)))
        if len(span) > available:
            held = max(0, available)
            result.fail(
                range(span.start + held, span.stop),
                f"{opened.tif.filename} holds {_page_count(opened)} IFDs, fewer than the set maps to it",
            )
            span = range(span.start, span.start + held)
        for offset, plane in enumerate(span):
            result.pages[plane] = _page(opened, ref.ifd + offset)
            result.file_of_plane[plane] = opened.index
    except Exception as exc:  # a member whose IFD chain is corrupt: its planes fail
        result.fail(span, f"{opened.tif.filename}: cannot read its IFDs: {exc}")


def _check_layouts(result: _PlaneMap) -> tifffile.TiffPage | None:
    """The series' key page (the first plane's), after failing the planes of files stored
    unlike it (they could not be read as one array)."""
    key: tifffile.TiffPage | None = None
    signatures: dict[int, bool] = {}
    for plane, page in enumerate(result.pages):
        if page is None:
            continue
        page_key = page.keyframe if isinstance(page, tifffile.TiffFrame) else page
        if page_key is None:
            result.fail(range(plane, plane + 1), "a plane without a key page")
            continue
        if key is None:
            key = page_key
        same = signatures.get(id(page_key))
        if same is None:
            same = signatures[id(page_key)] = _layout_signature(page_key) == _layout_signature(key)
        if not same:
            result.fail(
                range(plane, plane + 1),
                f"{page_key.parent.filename} is stored unlike {key.parent.filename} "
                "(shape, type, compression or tiling differ)",
            )
    return key


def _series(
    image: PixelsRefs, result: _PlaneMap, key: tifffile.TiffPage, files: list[PositionalReader]
) -> tifffile.TiffPageSeries:
    if (key.imagelength, key.imagewidth) != (image.size_y, image.size_x) or key.imagedepth != 1:
        raise UnsupportedSourceError(
            f"Image {image.index}: its planes are {key.imagelength}x{key.imagewidth}, "
            f"the OME-XML says {image.size_y}x{image.size_x}"
        )
    if key.samplesperpixel != image.samples:
        raise UnsupportedSourceError(
            f"Image {image.index}: {key.samplesperpixel} samples per pixel, the OME-XML says {image.samples}"
        )
    planes = SetPlanes(
        files=tuple(files),
        file_of_plane=result.file_of_plane,
        problem_of_plane=result.problem_of_plane,
        problems=tuple(result.problems),
        ome_index=image.index,
    )
    return tifffile.TiffPageSeries(
        result.pages,
        (*image.lead_shape, *key.shape),
        key.dtype,
        image.lead_axes + key.axes,
        attr={SET_PLANES: planes},
        name=image.name,
        kind="ome",
        multifile=True,
    )


def open_file_set(
    master: Path,
    document: SetDocument,
    access: FileAccess,
    own: tuple[tifffile.TiffFile, PositionalReader] | None = None,
) -> FileSet:
    """Open the set whose master is ``master`` (a companion file, or a TIFF given as
    ``own``: its parsed file and reader) and map every image's planes.

    Raises UnsupportedSourceError when the set names too many files or no image has a
    readable plane."""
    named = {(ref.name, ref.uuid) for ref in document.named_files()}
    if len(named) > MAX_MEMBER_FILES:
        raise UnsupportedSourceError(
            f"{master.name}: the set names {len(named):,} files; at most {MAX_MEMBER_FILES} are served"
        )
    members = MemberFiles(access, master)
    files: list[PositionalReader] = [own[1]] if own is not None else []
    resolver = _Resolver(
        master, document, access, own[0] if own else None, files, members, list(document.warnings)
    )
    try:
        found: list[tifffile.TiffPageSeries] = []
        for image in document.images:
            result = _map_planes(image, resolver)
            if result is None:
                continue
            key = _check_layouts(result)
            for problem in result.problems:  # each said once, whichever image met it first
                resolver.warn_once(problem)
            if key is None:
                detail = "; ".join(result.problems) or "no TiffData maps a plane"
                resolver.warnings.append(f"Image {image.index}: no readable plane ({detail}); not served")
                continue
            try:
                found.append(_series(image, result, key, files))
            except UnsupportedSourceError as exc:
                resolver.warnings.append(str(exc))
        if not found:
            detail = "; ".join(resolver.warnings) or "no image"
            raise UnsupportedSourceError(f"{master.name}: no servable image in the set ({detail})")
        context = own[0] if own is not None else found[0].keyframe.parent
    except BaseException:
        for opened in _opened(resolver):
            opened.close()
        members.close()
        raise
    parsers = list(_opened(resolver))
    master_real = Path(os.path.realpath(master))
    parts = tuple(path for path in resolver.by_path if path != master_real)
    return FileSet(
        found, files, members, context, tuple(resolver.dependencies), resolver.warnings, parsers, parts
    )


def _opened(resolver: _Resolver) -> Iterator[_Opened]:
    for value in resolver.by_path.values():
        if isinstance(value, _Opened):
            yield value
