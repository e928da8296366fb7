"""The references of an OME-XML document: which IFDs of which files hold each plane.

Pure (no file is touched): ``read_set_document`` turns a document into a ``SetDocument``
— its own ``UUID``, a ``BinaryOnly`` pointer to the file holding the metadata, and per
OME Image its plane grid and ``TiffData`` references — mirroring how tifffile and
Bio-Formats map ``TiffData`` (``FirstZ/C/T``, ``IFD``, ``PlaneCount``, the first ``UUID``
child's ``FileName``). Invalid indices are dropped with a warning.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FileRef:
    """The file a ``TiffData`` names: ``name`` None means the document's own file."""

    name: str | None
    uuid: str | None


@dataclass(frozen=True, slots=True)
class TiffDataRef:
    """Planes ``plane .. plane + count - 1`` are IFDs ``ifd ...`` of ``file`` (``count``
    None: every IFD of the file from ``ifd`` on)."""

    plane: int
    ifd: int
    count: int | None
    file: FileRef


@dataclass(frozen=True, slots=True)
class PixelsRefs:
    """One OME Image: its plane grid (``lead_axes`` of ``lead_shape``, slowest first, as
    tifffile orders them), samples per pixel, plane size, and where its planes lie."""

    index: int
    name: str | None
    lead_axes: str
    lead_shape: tuple[int, ...]
    samples: int
    size_y: int
    size_x: int
    refs: tuple[TiffDataRef, ...]

    @property
    def planes(self) -> int:
        return math.prod(self.lead_shape)


@dataclass(frozen=True, slots=True)
class SetDocument:
    """What a document says about files: its own UUID, a ``BinaryOnly`` pointer to the
    file holding the metadata, and each image's plane references."""

    uuid: str | None
    binary_only: FileRef | None
    images: tuple[PixelsRefs, ...]
    warnings: tuple[str, ...] = ()

    def named_files(self) -> list[FileRef]:
        """Each distinct file reference naming a file, in document order."""
        seen: dict[tuple[str | None, str | None], FileRef] = {}
        for image in self.images:
            for ref in image.refs:
                if ref.file.name is not None:
                    seen.setdefault((ref.file.name, ref.file.uuid), ref.file)
        return list(seen.values())

    def first_file(self) -> FileRef | None:
        """The file of the first reference that names one (where the set begins)."""
        for image in self.images:
            for ref in image.refs:
                if ref.file.name is not None or ref.file.uuid is not None:
                    return ref.file
        return None

    def is_own(self, ref: FileRef) -> bool:
        """Whether ``ref`` is the document's own file by its UUID."""
        return ref.uuid is not None and ref.uuid == self.uuid


def local_name(tag: str) -> str:
    """An element's tag without its namespace (every OME schema version alike)."""
    return tag.rsplit("}", 1)[-1]


def _int(attrs: dict[str, str], key: str, default: int | None) -> int | None:
    raw = attrs.get(key)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return None


def read_set_document(xml: str | bytes) -> SetDocument | None:
    """The file references of an OME-XML document; None when it does not parse."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    warnings: list[str] = []
    binary_only = None
    images: list[PixelsRefs] = []
    image_index = 0
    for element in root:
        tag = local_name(element.tag)
        if tag == "BinaryOnly":
            binary_only = FileRef(element.attrib.get("MetadataFile"), element.attrib.get("UUID"))
        elif tag == "Image":
            pixels = next((p for p in element if local_name(p.tag) == "Pixels"), None)
            if pixels is not None:
                refs = _pixels_refs(image_index, element.attrib.get("Name"), pixels, warnings)
                if refs is not None:
                    images.append(refs)
            image_index += 1
    return SetDocument(root.attrib.get("UUID"), binary_only, tuple(images), tuple(warnings))


def _pixels_refs(index: int, name: str | None, pixels: ET.Element, warnings: list[str]) -> PixelsRefs | None:
    where = f"Image {index}"
    attrs = pixels.attrib
    order = attrs.get("DimensionOrder", "XYZCT")
    if sorted(order) != sorted("XYZCT") or not order.startswith("XY"):
        warnings.append(f"{where}: DimensionOrder {order!r} is not valid; image skipped")
        return None
    sizes = {axis: _int(attrs, f"Size{axis}", 1) for axis in "XYZCT"}
    samples = 1
    for child in pixels:
        if local_name(child.tag) == "Channel":
            samples = _int(child.attrib, "SamplesPerPixel", 1) or 1
            break
    if any(size is None or size < 1 for size in sizes.values()) or samples < 1:
        warnings.append(f"{where}: sizes {sizes} are not positive integers; image skipped")
        return None
    size_c = sizes["C"] or 1
    if samples > 1:
        size_c = max(1, size_c // samples)
    lead_axes = "".join(reversed(order[2:]))  # slowest first: XYCZT -> TZC
    lead_shape = tuple(size_c if axis == "C" else (sizes[axis] or 1) for axis in lead_axes)
    refs: list[TiffDataRef] = []
    for data in pixels:
        if local_name(data.tag) != "TiffData":
            continue
        ref = _tiff_data(data, lead_axes, lead_shape)
        if ref is None:
            warnings.append(f"{where}: a TiffData element with invalid indices was ignored")
        else:
            refs.append(ref)
    return PixelsRefs(
        index=index,
        name=name,
        lead_axes=lead_axes,
        lead_shape=lead_shape,
        samples=samples,
        size_y=sizes["Y"] or 1,
        size_x=sizes["X"] or 1,
        refs=tuple(refs),
    )


def _tiff_data(data: ET.Element, lead_axes: str, lead_shape: tuple[int, ...]) -> TiffDataRef | None:
    attrs = data.attrib
    ifd = _int(attrs, "IFD", 0)
    count = _int(attrs, "PlaneCount", _int(attrs, "NumPlanes", 1 if "IFD" in attrs else None))
    firsts = [_int(attrs, f"First{axis}", 0) for axis in lead_axes]
    if (
        ifd is None
        or ifd < 0
        or (count is not None and count < 0)
        or ("PlaneCount" in attrs and count is None)
    ):
        return None
    if any(f is None or not 0 <= f < n for f, n in zip(firsts, lead_shape, strict=True)):
        return None
    plane = 0
    for first, size in zip(firsts, lead_shape, strict=True):
        plane = plane * size + (first or 0)
    file = FileRef(None, None)
    for child in data:
        if local_name(child.tag) == "UUID":  # only the first one counts, as in Bio-Formats
            file = FileRef(child.attrib.get("FileName"), (child.text or "").strip() or None)
            break
    return TiffDataRef(plane=plane, ifd=ifd, count=count, file=file)
