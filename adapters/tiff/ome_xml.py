"""A small, forgiving reader of the OME-XML fields the gateway serves.

Only what becomes OME-Zarr metadata is read: per image its ID, name, dimension order and
sizes, physical pixel sizes with units, time increment, and channels (name — else the
fluorophore —, colour, samples per pixel); per plate (high-content screening) its name,
size and naming conventions, its wells (row, column, the images of their samples) and
its acquisitions (name, description, times, the samples they took). Everything is
namespace-agnostic (2008-2016 schemas), and a value that cannot be understood becomes a
warning, never an exception, so one odd attribute does not hide an image. Only XML that
does not parse at all raises ``OmeXmlError``.

The checks the schema would make on what is read are made too, as warnings that say the
document is not valid OME-XML: the ``ID`` of every Image, Pixels and Channel must follow
its LSID pattern (``Channel:0:1`` or ``urn:lsid:<authority>:Channel:<id>``), and a
Pixels' channels must account for its ``SizeC`` samples.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime

from adapters.base import AdapterError
from adapters.units import space_unit, time_unit

DEFAULT_SPACE_UNIT = "µm"
DEFAULT_TIME_UNIT = "s"


def id_pattern(kind: str) -> re.Pattern[str]:
    """The schema's pattern for the ``ID`` of an element of ``kind`` (``Channel``...)."""
    return re.compile(rf"(urn:lsid:([\w\-\.]+\.[\w\-\.]+)+:{kind}:\S+)|({kind}:\S+)")


_ID_PATTERNS = {kind: id_pattern(kind) for kind in ("Image", "Pixels", "Channel")}


def _check_id(element: ET.Element, kind: str, warnings: list[str], where: str) -> None:
    value = element.attrib.get("ID")
    if value is None:
        warnings.append(f"{where}: {kind} has no ID; the document is not valid OME-XML")
    elif not _ID_PATTERNS[kind].fullmatch(value):
        warnings.append(
            f"{where}: {kind} ID {value!r} does not match the OME-XML ID pattern "
            f"('{kind}:<n>' or 'urn:lsid:<authority>:{kind}:<n>'); the document is not valid OME-XML"
        )


class OmeXmlError(AdapterError):
    """The OME-XML document is not well-formed."""


@dataclass(frozen=True, slots=True)
class OmeChannel:
    name: str | None
    color: str | None  # 6 hex digits, RRGGBB
    samples_per_pixel: int


@dataclass(frozen=True, slots=True)
class PhysicalSize:
    value: float
    unit: str | None  # OME-Zarr unit name; None when the file's unit is not a known one


@dataclass(slots=True)
class OmeImage:
    name: str | None
    dimension_order: str
    sizes: dict[str, int]
    physical: dict[str, PhysicalSize]  # keys among x, y, z, t
    channels: list[OmeChannel]
    pixel_type: str | None
    id: str | None = None  # what a plate's WellSample ImageRef names


@dataclass(frozen=True, slots=True)
class OmeWellSample:
    id: str | None
    image: str | None  # the ID its ImageRef names


@dataclass(frozen=True, slots=True)
class OmeWell:
    row: int  # 0-based, as OME-XML counts
    column: int
    samples: tuple[OmeWellSample, ...]


@dataclass(frozen=True, slots=True)
class OmePlateAcquisition:
    name: str | None
    description: str | None
    start_seconds: int | None  # since the epoch; a time without zone is taken as UTC
    end_seconds: int | None
    maximum_field_count: int | None
    samples: tuple[str, ...]  # IDs of the WellSamples it took


@dataclass(frozen=True, slots=True)
class OmePlate:
    name: str | None
    rows: int | None  # the plate's size, when it says
    columns: int | None
    row_naming: str | None  # "letter" or "number" (RowNamingConvention), None when absent
    column_naming: str | None
    wells: tuple[OmeWell, ...]
    acquisitions: tuple[OmePlateAcquisition, ...]


@dataclass(slots=True)
class OmeDocument:
    images: list[OmeImage]
    warnings: list[str] = field(default_factory=list)
    plates: list[OmePlate] = field(default_factory=list)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def ome_color_to_hex(value: int) -> str:
    """OME stores RGBA as a *signed* 32-bit integer; OME-Zarr wants ``RRGGBB``."""
    rgba = value & 0xFFFFFFFF
    return f"{rgba >> 8:06X}"


def _float(attrs: dict[str, str], key: str, warnings: list[str], where: str) -> float | None:
    raw = attrs.get(key)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        warnings.append(f"{where}: {key}={raw!r} is not a number; ignored")
        return None
    if not value > 0 or value == float("inf"):
        warnings.append(f"{where}: {key}={raw!r} is not a positive size; ignored")
        return None
    return value


def _physical(pixels: dict[str, str], warnings: list[str], where: str) -> dict[str, PhysicalSize]:
    found: dict[str, PhysicalSize] = {}
    for axis in ("X", "Y", "Z"):
        value = _float(pixels, f"PhysicalSize{axis}", warnings, where)
        if value is None:
            continue
        symbol = pixels.get(f"PhysicalSize{axis}Unit", DEFAULT_SPACE_UNIT)
        unit = space_unit(symbol)
        if unit is None:
            warnings.append(f"{where}: unit {symbol!r} of PhysicalSize{axis} is not a length")
        found[axis.lower()] = PhysicalSize(value, unit)
    increment = _float(pixels, "TimeIncrement", warnings, where)
    if increment is not None:
        symbol = pixels.get("TimeIncrementUnit", DEFAULT_TIME_UNIT)
        unit = time_unit(symbol)
        if unit is None:
            warnings.append(f"{where}: unit {symbol!r} of TimeIncrement is not a time")
        found["t"] = PhysicalSize(increment, unit)
    return found


def _channel(element: ET.Element, warnings: list[str], where: str) -> OmeChannel:
    attrs = element.attrib
    color = None
    if "Color" in attrs:
        try:
            color = ome_color_to_hex(int(attrs["Color"]))
        except ValueError:
            warnings.append(f"{where}: channel colour {attrs['Color']!r} is not an integer")
    try:
        samples = max(1, int(attrs.get("SamplesPerPixel", "1")))
    except ValueError:
        warnings.append(f"{where}: SamplesPerPixel={attrs['SamplesPerPixel']!r} ignored")
        samples = 1
    name = attrs.get("Name") or attrs.get("Fluor") or None
    return OmeChannel(name=name, color=color, samples_per_pixel=samples)


def _image(element: ET.Element, index: int, warnings: list[str]) -> OmeImage | None:
    where = f"Image {index}"
    pixels_elements = _children(element, "Pixels")
    if not pixels_elements:
        warnings.append(f"{where}: no Pixels element; skipped")
        return None
    pixels = pixels_elements[0]
    attrs = pixels.attrib
    _check_id(element, "Image", warnings, where)
    _check_id(pixels, "Pixels", warnings, where)
    sizes: dict[str, int] = {}
    for axis in "XYZCT":
        try:
            sizes[axis.lower()] = max(1, int(attrs.get(f"Size{axis}", "1")))
        except ValueError:
            warnings.append(f"{where}: Size{axis}={attrs.get(f'Size{axis}')!r} ignored")
            sizes[axis.lower()] = 1
    channel_elements = _children(pixels, "Channel")
    for channel in channel_elements:
        _check_id(channel, "Channel", warnings, where)
    channels = [_channel(c, warnings, where) for c in channel_elements]
    samples = sum(c.samples_per_pixel for c in channels)
    if channels and samples != sizes["c"]:
        warnings.append(
            f"{where}: {len(channels)} Channel element(s) with {samples} sample(s) for SizeC={sizes['c']}"
        )
    return OmeImage(
        name=element.attrib.get("Name") or None,
        dimension_order=attrs.get("DimensionOrder", "XYZCT"),
        sizes=sizes,
        physical=_physical(attrs, warnings, where),
        channels=channels,
        pixel_type=attrs.get("Type") or attrs.get("PixelType"),
        id=element.attrib.get("ID"),
    )


_NAMING_CONVENTIONS = ("letter", "number")


def _count(attrs: dict[str, str], key: str, minimum: int, warnings: list[str], where: str) -> int | None:
    """An integer attribute of at least ``minimum``; None (and a warning) otherwise."""
    raw = attrs.get(key)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        warnings.append(f"{where}: {key}={raw!r} is not an integer; ignored")
        return None
    if value < minimum:
        warnings.append(f"{where}: {key}={raw!r} is below {minimum}; ignored")
        return None
    return value


def _naming(attrs: dict[str, str], key: str, warnings: list[str], where: str) -> str | None:
    raw = attrs.get(key)
    if raw is None:
        return None
    if raw.lower() not in _NAMING_CONVENTIONS:
        warnings.append(f"{where}: {key}={raw!r} is neither 'letter' nor 'number'; ignored")
        return None
    return raw.lower()


def _epoch_seconds(attrs: dict[str, str], key: str, warnings: list[str], where: str) -> int | None:
    """An xsd:dateTime as whole seconds since the epoch (UTC when it names no zone)."""
    raw = attrs.get(key)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        warnings.append(f"{where}: {key}={raw!r} is not a date and time; ignored")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int(moment.timestamp())
    if seconds < 0:
        warnings.append(f"{where}: {key}={raw!r} is before 1970; ignored")
        return None
    return seconds


def _text(element: ET.Element, name: str) -> str | None:
    """The text of the first child ``name``; None when absent or blank."""
    found = _children(element, name)
    if not found:
        return None
    return (found[0].text or "").strip() or None


def _well(element: ET.Element, warnings: list[str], where: str) -> OmeWell | None:
    row = _count(element.attrib, "Row", 0, warnings, where)
    column = _count(element.attrib, "Column", 0, warnings, where)
    if row is None or column is None:
        warnings.append(f"{where}: a Well without a valid Row and Column; skipped")
        return None
    samples = []
    for sample in _children(element, "WellSample"):
        refs = _children(sample, "ImageRef")
        samples.append(
            OmeWellSample(id=sample.attrib.get("ID"), image=refs[0].attrib.get("ID") if refs else None)
        )
    return OmeWell(row=row, column=column, samples=tuple(samples))


def _plate_acquisition(element: ET.Element, warnings: list[str], where: str) -> OmePlateAcquisition:
    attrs = element.attrib
    return OmePlateAcquisition(
        name=attrs.get("Name") or None,
        description=_text(element, "Description"),
        start_seconds=_epoch_seconds(attrs, "StartTime", warnings, where),
        end_seconds=_epoch_seconds(attrs, "EndTime", warnings, where),
        maximum_field_count=_count(attrs, "MaximumFieldCount", 1, warnings, where),
        samples=tuple(ref.attrib["ID"] for ref in _children(element, "WellSampleRef") if "ID" in ref.attrib),
    )


def _plate(element: ET.Element, index: int, warnings: list[str]) -> OmePlate:
    where = f"Plate {index}"
    attrs = element.attrib
    wells = [_well(well, warnings, where) for well in _children(element, "Well")]
    return OmePlate(
        name=attrs.get("Name") or None,
        rows=_count(attrs, "Rows", 1, warnings, where),
        columns=_count(attrs, "Columns", 1, warnings, where),
        row_naming=_naming(attrs, "RowNamingConvention", warnings, where),
        column_naming=_naming(attrs, "ColumnNamingConvention", warnings, where),
        wells=tuple(well for well in wells if well is not None),
        acquisitions=tuple(
            _plate_acquisition(acquisition, warnings, where)
            for acquisition in _children(element, "PlateAcquisition")
        ),
    )


def parse_ome_xml(text: str | bytes) -> OmeDocument:
    """Parse an OME-XML document; raises OmeXmlError only if it is not XML at all."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise OmeXmlError(f"OME-XML does not parse: {exc}") from exc
    warnings: list[str] = []
    if _local(root.tag) != "OME":
        warnings.append(f"root element is <{_local(root.tag)}>, not <OME>")
    images = []
    for index, element in enumerate(_children(root, "Image")):
        image = _image(element, index, warnings)
        if image is not None:
            images.append(image)
    plates = [_plate(element, index, warnings) for index, element in enumerate(_children(root, "Plate"))]
    return OmeDocument(images=images, warnings=warnings, plates=plates)
