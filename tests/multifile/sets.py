"""Multi-file OME-TIFF sets written by tifffile, laid out as their writers lay them out.

- ``write_companion_set``: Bio-Formats' companion layout — a ``<name>.companion.ome`` file
  with the OME-XML, and TIFFs whose own XML is ``<BinaryOnly MetadataFile=... UUID=...>``
  under a root ``UUID`` of their own.
- ``write_mmstack``: Micro-Manager's layout — ``<prefix>_MMStack_Pos0.ome.tif`` and its
  splits ``_1``, ``_2``... each holding a part of the planes (one IFD per plane, in
  acquisition order) and an exact copy of the full OME-XML, whose ``TiffData`` elements
  name each plane's file and that file's ``urn:uuid``; no root UUID.

The XML is written by hand on purpose: tests need documents that lie (names outside the
folder, wrong UUIDs, too many files), which no OME library would write.
"""

from __future__ import annotations

import uuid as uuids
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
import tifffile

NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
OME_TYPES = {"uint8": "uint8", "uint16": "uint16", "int16": "int16", "float32": "float"}


def new_uuid() -> str:
    return f"urn:uuid:{uuids.uuid4()}"


@dataclass(frozen=True)
class Ref:
    """One ``TiffData``: planes from ``first`` (FirstZ/C/T) on are IFDs ``ifd``... of
    ``file`` (None: the document's own file), ``count`` of them (None: no PlaneCount)."""

    first: dict[str, int]
    ifd: int = 0
    count: int | None = 1
    file: str | None = None
    uuid: str | None = None


@dataclass
class Image:
    sizes: dict[str, int]  # X, Y, Z, C, T
    dtype: str
    refs: list[Ref] = field(default_factory=list)
    order: str = "XYCZT"
    name: str = "set"
    samples: int = 1
    physical_z: float | None = None


def image_xml(image: Image, index: int = 0) -> str:
    size = image.sizes
    physical = f' PhysicalSizeZ="{image.physical_z}"' if image.physical_z is not None else ""
    channels = "".join(
        f'<Channel ID="Channel:{index}:{c}" SamplesPerPixel="{image.samples}"/>'
        for c in range(size.get("C", 1) // image.samples)
    )
    refs = []
    for ref in image.refs:
        firsts = " ".join(f'First{axis}="{value}"' for axis, value in ref.first.items())
        count = f' PlaneCount="{ref.count}"' if ref.count is not None else ""
        uuid = ""
        if ref.file is not None or ref.uuid is not None:
            name = f" FileName={quoteattr(ref.file)}" if ref.file is not None else ""
            uuid = f"<UUID{name}>{ref.uuid or ''}</UUID>"
        refs.append(f'<TiffData {firsts} IFD="{ref.ifd}"{count}>{uuid}</TiffData>')
    return (
        f'<Image ID="Image:{index}" Name={quoteattr(image.name)}>'
        f'<Pixels ID="Pixels:{index}" DimensionOrder="{image.order}" Type="{OME_TYPES[image.dtype]}" '
        f'SizeX="{size["X"]}" SizeY="{size["Y"]}" SizeZ="{size.get("Z", 1)}" SizeC="{size.get("C", 1)}" '
        f'SizeT="{size.get("T", 1)}"{physical}>{channels}{"".join(refs)}</Pixels></Image>'
    )


def ome_xml(images: list[Image], uuid: str | None = None) -> str:
    root_uuid = f' UUID="{uuid}"' if uuid is not None else ""
    body = "".join(image_xml(image, index) for index, image in enumerate(images))
    return f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{NS}"{root_uuid}>{body}</OME>'


def binary_only_xml(metadata_file: str, uuid: str, metadata_uuid: str | None = None) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{NS}" UUID="{uuid}">'
        f'<BinaryOnly MetadataFile={quoteattr(metadata_file)} UUID="{metadata_uuid or new_uuid()}"/></OME>'
    )


def write_planes(path: Path, planes: np.ndarray, description: str, **kwargs: Any) -> Path:
    """``planes`` (n, y, x[, s]) as n IFDs; ``description`` in the first one."""
    options: dict[str, Any] = {"photometric": "minisblack", "metadata": None, "description": description}
    options.update(kwargs)
    tifffile.imwrite(path, planes, **options)
    return path


@dataclass
class CompanionSet:
    companion: Path
    members: list[Path]
    uuids: list[str]
    data: np.ndarray  # (Z, Y, X): plane z lies in members[z]


def write_companion_set(folder: Path, data: np.ndarray, name: str = "set", **kwargs: Any) -> CompanionSet:
    """A z-stack with one plane per file (as the viv sample): ``<name>-Z<k>.ome.tiff`` and
    ``<name>.companion.ome``."""
    members, member_uuids, refs = [], [], []
    companion = folder / f"{name}.companion.ome"
    for z in range(data.shape[0]):
        member = folder / f"{name}-Z{z + 1}.ome.tiff"
        member_uuid = new_uuid()
        write_planes(member, data[z : z + 1], binary_only_xml(companion.name, member_uuid), **kwargs)
        members.append(member)
        member_uuids.append(member_uuid)
        refs.append(Ref({"Z": z, "C": 0, "T": 0}, 0, 1, member.name, member_uuid))
    size_y, size_x = data.shape[1:3]
    image = Image({"X": size_x, "Y": size_y, "Z": data.shape[0]}, str(data.dtype), refs, name=name)
    companion.write_text(ome_xml([image]))
    return CompanionSet(companion, members, member_uuids, data)


@dataclass
class MMStack:
    files: list[Path]
    uuids: list[str]
    data: np.ndarray  # (T, Z, C, Y, X)
    xml: str


def mmstack_names(prefix: str, count: int, position: str = "Pos0") -> list[str]:
    base = f"{prefix}_MMStack_{position}"
    return [f"{base}.ome.tif"] + [f"{base}_{k}.ome.tif" for k in range(1, count)]


def write_mmstack(
    folder: Path, data: np.ndarray, split: list[int], prefix: str = "exp", **kwargs: Any
) -> MMStack:
    """``data`` (T, Z, C, Y, X) acquired in XYCZT order (c fastest) and split over files
    holding ``split`` planes each, as Micro-Manager splits an acquisition over 4 GB."""
    t_size, z_size, c_size, size_y, size_x = data.shape
    planes = data.reshape(-1, size_y, size_x)
    assert sum(split) == len(planes)
    names = mmstack_names(prefix, len(split))
    file_uuids = [new_uuid() for _ in names]
    refs, start = [], 0
    for name, file_uuid, count in zip(names, file_uuids, split, strict=True):
        for ifd in range(count):
            t, z, c = np.unravel_index(start + ifd, (t_size, z_size, c_size))
            refs.append(Ref({"C": int(c), "T": int(t), "Z": int(z)}, ifd, 1, name, file_uuid))
        start += count
    image = Image(
        {"X": size_x, "Y": size_y, "Z": z_size, "C": c_size, "T": t_size},
        str(data.dtype),
        refs,
        name=f"{prefix}_MMStack_Pos0",
        physical_z=1.75,
    )
    xml = ome_xml([image])  # no root UUID, as Micro-Manager writes it
    files, start = [], 0
    for name, count in zip(names, split, strict=True):
        files.append(write_planes(folder / name, planes[start : start + count], xml + " ", **kwargs))
        start += count
    return MMStack(files, file_uuids, data, xml)


def ramp(shape: tuple[int, ...], dtype: str = "uint16", offset: int = 1) -> np.ndarray:
    """Distinct, never-zero values (no chunk is all fill)."""
    size = int(np.prod(shape))
    return ((np.arange(size, dtype=np.int64) % 60000) + offset).astype(dtype).reshape(shape)
