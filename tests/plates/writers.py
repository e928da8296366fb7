"""Plate OME-TIFFs written with tifffile from the plate OME-XML documents of the shared data.

The documents (``ome_types/xml/*.ome.xml``) describe plates whose images carry no pixels
(``BinData``, ``MetadataOnly``). A fixture keeps each document's structure — plates,
wells, samples, acquisitions, screens, images and their metadata — and gives every Image
pixels of its own: one page per plane, in the Image's ``DimensionOrder``, referenced by a
``TiffData`` element in place of the original binary element. Images larger than
``max_yx`` are made smaller (a plate test needs many small fields, not megapixels).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from tests.conftest import SHARED_DATA

PLATE_XML = SHARED_DATA / "ome_types" / "xml"
FIXTURES = (
    "one-screen-one-plate-four-wells",
    "two-screens-two-plates-four-wells",
    "hcs",
    "fake-plate-rows-2",
)
_PIXEL_TYPES = {"uint8": "u1", "int8": "i1", "uint16": "u2", "int16": "i2", "uint32": "u4", "float": "f4"}
_BINARY = ("BinData", "TiffData", "MetadataOnly")


@dataclass(frozen=True)
class WrittenImage:
    """One Image of a fixture: its OME ID and pixels in the order of its DimensionOrder
    reversed (``TZCYX`` for ``XYCZT``)."""

    id: str
    axes: str
    data: np.ndarray


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _pixels(image: ET.Element, index: int, ifd: int, max_yx: int, rng: np.random.Generator) -> np.ndarray:
    pixels = next(child for child in image if _local(child.tag) == "Pixels")
    for axis in "XY":
        if int(pixels.attrib[f"Size{axis}"]) > max_yx:
            pixels.set(f"Size{axis}", str(max_yx - 3 * (axis == "Y")))  # not square
    order = pixels.attrib["DimensionOrder"]
    shape = [int(pixels.attrib[f"Size{axis}"]) for axis in reversed(order)]
    dtype = np.dtype(_PIXEL_TYPES[pixels.attrib["Type"]])
    if dtype.kind == "f":
        data = rng.random(shape, dtype=np.float32) + index
    else:
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    children = list(pixels)
    binary = [n for n, child in enumerate(children) if _local(child.tag) in _BINARY]
    at = binary[0] if binary else sum(1 for child in children if _local(child.tag) == "Channel")
    for n in reversed(binary):
        pixels.remove(children[n])
    namespace = pixels.tag[: -len("Pixels")]
    planes = int(np.prod(shape[:-2]))
    pixels.insert(at, ET.Element(f"{namespace}TiffData", {"IFD": str(ifd), "PlaneCount": str(planes)}))
    return data


def write_plate_tiff(name: str, path: Path, *, max_yx: int = 64, seed: int = 0) -> list[WrittenImage]:
    """Write fixture ``name`` (a document of ``FIXTURES``) to ``path``; its images, in
    document order."""
    tree = ET.parse(PLATE_XML / f"{name}.ome.xml")
    root = tree.getroot()
    namespace = root.tag[: -len("OME")].strip("{}")
    ET.register_namespace("", namespace)
    rng = np.random.default_rng(seed)
    images: list[WrittenImage] = []
    ifd = 0
    big_endian = False
    for index, element in enumerate(child for child in root if _local(child.tag) == "Image"):
        data = _pixels(element, index, ifd, max_yx, rng)
        pixels = next(child for child in element if _local(child.tag) == "Pixels")
        big_endian |= pixels.attrib.get("BigEndian") == "true"
        axes = "".join(reversed(pixels.attrib["DimensionOrder"]))
        images.append(WrittenImage(id=element.attrib["ID"], axes=axes, data=data))
        ifd += int(np.prod(data.shape[:-2]))
    description = ET.tostring(root, encoding="utf-8", xml_declaration=True)  # µm: not ASCII
    with tifffile.TiffWriter(path, byteorder=">" if big_endian else "<") as tif:
        first = True
        for image in images:
            for plane in image.data.reshape(-1, *image.data.shape[-2:]):
                tif.write(
                    plane,
                    photometric="minisblack",
                    description=description if first else None,
                    metadata=None,
                )
                first = False
    return images


NAMESPACE = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


def image_element(index: int, ifd: int | None, shape: tuple[int, int]) -> str:
    """OME ``Image:<index>`` (uint16, one plane) whose plane is IFD ``ifd``; with ``ifd``
    None it holds no pixels (``MetadataOnly``), as OME-XML allows."""
    binary = "<MetadataOnly/>" if ifd is None else f'<TiffData IFD="{ifd}" PlaneCount="1"/>'
    return (
        f'<Image ID="Image:{index}" Name="field {index}"><Pixels ID="Pixels:{index}" DimensionOrder="XYCZT" '
        f'Type="uint16" SizeX="{shape[1]}" SizeY="{shape[0]}" SizeZ="1" SizeC="1" SizeT="1">'
        f'<Channel ID="Channel:{index}:0" SamplesPerPixel="1"/>{binary}</Pixels></Image>'
    )


def write_ome_tiff(
    path: Path,
    plates: str,
    count: int,
    *,
    shape: tuple[int, int] = (12, 20),
    without_data: tuple[int, ...] = (),
) -> list[np.ndarray]:
    """An OME-TIFF of ``count`` one-plane images ``Image:0``… (those in ``without_data``
    hold no pixels) and the ``plates`` XML (``Plate`` elements) before them; the planes
    written, in order (images without data have none)."""
    rng = np.random.default_rng(count)
    planes: list[np.ndarray] = []
    elements = []
    for index in range(count):
        has_data = index not in without_data
        elements.append(image_element(index, len(planes) if has_data else None, shape))
        if has_data:
            planes.append(rng.integers(0, 65535, shape, dtype=np.uint16, endpoint=True))
    description = (
        f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{NAMESPACE}">{plates}{"".join(elements)}</OME>'
    )
    with tifffile.TiffWriter(path) as tif:
        for number, plane in enumerate(planes):
            tif.write(
                plane,
                photometric="minisblack",
                description=description.encode() if number == 0 else None,
                metadata=None,
            )
    return planes
