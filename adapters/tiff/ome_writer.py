"""OME-XML for the TIFF flavours that carry none (Aperio SVS, ImageJ), as Bio-Formats
describes them: the document bioformats2raw writes to ``OME/METADATA.ome.xml``.

One ``Image`` per served image, in serving order (the bioformats2raw layout pairs the
n-th Image with series group ``n``), each with its ``Pixels``: sizes, type, physical
sizes and time increment with their units, channels (the samples of a colour page are
one channel of ``SamplesPerPixel`` 3, as Bio-Formats has them) and ``MetadataOnly`` (the
pixels are the zarr arrays). What the file says beyond that goes where Bio-Formats puts
it: an SVS slide's magnification (``AppMag``) is the ``NominalMagnification`` of an
``Objective`` the images refer to, ``Date`` and ``Time`` the acquisition date,
``Left``/``Top`` (mm) the stage position of the plane; every key and value of the SVS
descriptions ("Series <n> <key>") or of the ImageJ header (its ``Properties`` too) is
an ``OriginalMetadata`` ``XMLAnnotation`` (namespace ``openmicroscopy.org/OriginalMetadata``),
the form Bio-Formats' ``getOriginalMetadata`` reads back.

The document is built with ome-types (the OME data model: typed, validated fields and
XML escaping, not strings put together by hand). Importing it takes about a second, so
the TIFF adapter imports this module on first use: a server that never opens an SVS or
ImageJ file does not pay for it. The values are the file's, and whoever wrote the file is untrusted: characters XML 1.0
cannot hold are removed, and values longer than ``MAX_VALUE_CHARS`` (an ImageJ ``Info``
holding a whole microscope dump) or entries beyond ``MAX_ENTRIES`` are left out, so the
document stays small whatever the header holds.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import tifffile
from ome_types import model, to_xml

from adapters.base import Image

CREATOR = "ome-zarr-gateway"
ORIGINAL_METADATA = "openmicroscopy.org/OriginalMetadata"
_OME = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"
#: Original-metadata values longer than this are left out (not cut: a cut value lies).
MAX_VALUE_CHARS = 16 * 1024
#: At most this many original-metadata entries per document: writing one costs about a
#: millisecond (ome-types' serializer), paid when the file is opened. A slide has about 25
#: fields per image, an ImageJ header a few dozen; a header of thousands is not a scanner's.
MAX_ENTRIES = 256
#: Short sequences (ImageJ ``Ranges``) are written as text; longer ones (per-slice labels) are not.
MAX_SEQUENCE_ITEMS = 64
#: OME's pixel types; 64-bit integers have none (then no document is written).
PIXEL_TYPES = {
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "float32": "float",
    "float64": "double",
    "bool": "bit",
}
COLOUR_PHOTOMETRICS = {2, 6}  # RGB, YCbCr (decoded to RGB)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_APERIO_DATE = "%m/%d/%y %H:%M:%S"


def svs_ome_xml(tif: tifffile.TiffFile, images: Sequence[tuple[int, Image]]) -> str:
    """The OME-XML of an Aperio slide: ``images`` are the served images with the index of
    the series each was built from. Raises ValueError for what OME cannot describe."""
    ome = model.OME(creator=CREATOR)
    original: list[tuple[str, str]] = []
    objective: model.Objective | None = None
    for position, (index, image) in enumerate(images):
        series = tif.series[index]
        fields = _svs_fields(series.keyframe.description)
        ome_image = _image(position, image, series, name=series.name or image.name)
        header = fields.get("Header", "").strip()
        ome_image.description = _clean(header.splitlines()[0].strip()) if header else None
        ome_image.acquisition_date = _aperio_date(fields.get("Date"), fields.get("Time"))
        magnification = _positive(fields.get("AppMag"))
        if magnification is not None:
            if objective is None:
                objective = model.Objective(id="Objective:0:0", nominal_magnification=magnification)
                ome.instruments.append(model.Instrument(id="Instrument:0", objectives=[objective]))
            ome_image.instrument_ref = model.InstrumentRef(id="Instrument:0")
            ome_image.objective_settings = model.ObjectiveSettings(id=objective.id)
        _stage_position(ome_image, fields)
        ome.images.append(ome_image)
        original.extend((f"Series {position} {key}", value) for key, value in fields.items())
    ome.structured_annotations = _original_metadata(original)
    return str(to_xml(ome))


def imagej_ome_xml(tif: tifffile.TiffFile, images: Sequence[tuple[int, Image]]) -> str:
    """The OME-XML of an ImageJ TIFF: its images (sizes, calibration, channel colours as
    served) and its header as original metadata. Raises ValueError as ``svs_ome_xml``."""
    ome = model.OME(creator=CREATOR)
    for position, (index, image) in enumerate(images):
        ome.images.append(_image(position, image, tif.series[index], name=image.name))
    ome.structured_annotations = _original_metadata(_flattened(tif.imagej_metadata or {}))
    return str(to_xml(ome))


def _flattened(header: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """An ImageJ header's entries, the key/value pairs of its ``Properties`` among them
    (where their keys are not the header's own)."""
    entries = [(key, value) for key, value in header.items() if not isinstance(value, Mapping)]
    for value in header.values():
        if isinstance(value, Mapping):
            entries.extend((str(k), v) for k, v in value.items() if k not in header)
    return entries


# ---------------------------------------------------------------------------------------
# Image and Pixels


def _image(position: int, image: Image, series: tifffile.TiffPageSeries, *, name: str) -> model.Image:
    level = image.levels[0]
    pixel_type = PIXEL_TYPES.get(np.dtype(level.dtype).name)
    if pixel_type is None:
        raise ValueError(f"OME has no pixel type for {level.dtype}")
    sizes = dict(zip(image.axis_names, level.shape, strict=True))
    physical: dict[str, Any] = {}
    for axis, scale in zip(image.axes, image.scale, strict=True):
        if axis.unit is None or not (scale > 0 and math.isfinite(scale)):
            continue
        if axis.name in ("x", "y", "z") and axis.unit.upper() in model.UnitsLength.__members__:
            physical[f"physical_size_{axis.name}"] = scale
            physical[f"physical_size_{axis.name}_unit"] = model.UnitsLength[axis.unit.upper()]
        elif axis.name == "t" and axis.unit.upper() in model.UnitsTime.__members__:
            physical["time_increment"] = scale
            physical["time_increment_unit"] = model.UnitsTime[axis.unit.upper()]
    pixels = model.Pixels(
        id=f"Pixels:{position}",
        dimension_order=model.Pixels_DimensionOrder.XYCZT,
        type=model.PixelType(pixel_type),
        size_x=sizes["x"],
        size_y=sizes["y"],
        size_z=sizes.get("z", 1),
        size_c=sizes.get("c", 1),
        size_t=sizes.get("t", 1),
        channels=_channels(position, image, sizes.get("c", 1), _is_colour(series)),
        metadata_only=model.MetadataOnly(),
        **physical,
    )
    return model.Image(id=f"Image:{position}", name=_clean(name), pixels=pixels)


def _is_colour(series: tifffile.TiffPageSeries) -> bool:
    """Whether the series' channels are the red, green, blue (alpha) samples of its pages."""
    keyframe = series.keyframe
    return int(keyframe.photometric) in COLOUR_PHOTOMETRICS and int(keyframe.samplesperpixel) > 1


def _channels(position: int, image: Image, count: int, colour: bool) -> list[model.Channel]:
    if colour:  # Bio-Formats: one channel whose samples are the colours
        return [model.Channel(id=f"Channel:{position}:0", samples_per_pixel=count)]
    known = image.channels if len(image.channels) == count else ()
    channels = []
    for index in range(count):
        channel = known[index] if known else None
        attributes: dict[str, Any] = {"id": f"Channel:{position}:{index}", "samples_per_pixel": 1}
        if channel is not None and channel.label and channel.label != f"Channel {index}":
            attributes["name"] = _clean(channel.label)
        if channel is not None and channel.color:
            attributes["color"] = f"#{channel.color}"
        channels.append(model.Channel(**attributes))
    return channels


def _stage_position(ome_image: model.Image, fields: Mapping[str, Any]) -> None:
    """An SVS image's ``Left``/``Top`` (mm): the stage position of its one plane."""
    left, top = _finite(fields.get("Left")), _finite(fields.get("Top"))
    if left is None or top is None:
        return
    ome_image.pixels.planes.append(
        model.Plane(
            the_c=0,
            the_z=0,
            the_t=0,
            position_x=left,
            position_x_unit=model.UnitsLength.MILLIMETER,
            position_y=top,
            position_y_unit=model.UnitsLength.MILLIMETER,
        )
    )


# ---------------------------------------------------------------------------------------
# Original metadata


def _original_metadata(entries: Iterable[tuple[str, Any]]) -> model.StructuredAnnotations:
    """``OriginalMetadata`` annotations of the entries that are text or numbers (see the
    module docstring for what is left out)."""
    annotations: list[model.XMLAnnotation] = []
    for key, value in entries:
        text = _text(value)
        name = _clean(str(key))
        if text is None or not name or len(name) > MAX_VALUE_CHARS:
            continue
        if len(annotations) >= MAX_ENTRIES:
            break
        element = {
            "qname": f"{_OME}OriginalMetadata",
            "children": [{"qname": f"{_OME}Key", "text": name}, {"qname": f"{_OME}Value", "text": text}],
        }
        annotations.append(
            model.XMLAnnotation(
                id=f"Annotation:{len(annotations)}",
                namespace=ORIGINAL_METADATA,
                value=model.XMLAnnotation.Value(any_elements=[element]),
            )
        )
    return model.StructuredAnnotations(xml_annotations=annotations)


def _text(value: Any) -> str | None:
    """A header value as text: strings, booleans, finite numbers and short sequences of
    them; None for anything else (arrays such as ImageJ LUTs, bytes, huge values)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = _clean(value)
    elif isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        if not math.isfinite(number):
            return None
        text = str(value.item() if isinstance(value, np.generic) else value)
    elif isinstance(value, list | tuple) and len(value) <= MAX_SEQUENCE_ITEMS:
        items = [_text(item) for item in value]
        if any(item is None for item in items):
            return None
        text = ", ".join(item for item in items if item is not None)
    else:
        return None
    return text if len(text) <= MAX_VALUE_CHARS else None


def _clean(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (NUL, most control codes)."""
    return _NOT_XML.sub("", text)


# ---------------------------------------------------------------------------------------
# SVS fields


def _svs_fields(description: str) -> dict[str, str]:
    """The fields of an Aperio ImageDescription as written — ``Header`` (the text before
    the first ``|``), then every ``key = value`` — ({} when it is not Aperio's). The text is
    kept as is ("0.4990", not 0.499), as Bio-Formats keeps it."""
    if not description.startswith("Aperio "):
        return {}
    header, *items = description.split("|")
    fields = {"Header": header}
    for item in items:
        key, sep, value = item.partition("=")
        if sep and key.strip():
            fields[key.strip()] = value.strip()
    return fields


def _aperio_date(date: Any, time: Any) -> dt.datetime | None:
    """Aperio's ``Date`` (mm/dd/yy) and ``Time`` (hh:mm:ss) as one timestamp."""
    if not isinstance(date, str) or not isinstance(time, str):
        return None
    try:
        return dt.datetime.strptime(f"{date.strip()} {time.strip()}", _APERIO_DATE)
    except ValueError:
        return None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _positive(value: Any) -> float | None:
    number = _finite(value)
    return number if number is not None and number > 0 else None
