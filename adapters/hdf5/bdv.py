"""BigDataViewer: an XML file (the dataset) describing an HDF5 file beside it.

The XML (``<SpimData>``) lists view setups (name, size and voxel size in x, y, z, and
attributes: channel, angle, illumination, tile), timepoints, missing views and, per view,
registration transforms. The HDF5 file holds ``s<setup:02d>/resolutions`` and
``subdivisions`` (x, y, z per level: downsampling factors and chunk sizes) and the
images ``t<tp:05d>/s<setup:02d>/<level>/cells`` as (z, y, x).

- Setups that differ only in their channel (same shapes, type, voxel size, registration
  and other attributes) become the c axis of one image; others are separate images
  (the bioformats2raw layout ``0/``, ``1/``...). Timepoints are the t axis; a missing view
  reads as the fill value.
- BigDataViewer stores uint16 data as int16: it is served as uint16, with the same bytes.
- Scale is the voxel size (and unit); a registration that is a scale and translation adds
  the translation (converted to the voxel size's unit). Rotations and shears cannot be
  expressed in OME-Zarr 0.5: they are reported and left out.
- Channel names come from the XML's channel attributes; colours and display ranges from
  the ``<name>.settings.xml`` BigDataViewer saves beside it, when there is one (a change of
  it is a change of the dataset).
- The HDF5 file is resolved relative to the XML (``BasePath`` and the ``hdf5`` path) and
  must lie in the XML's folder or below, and inside the allowed directories
  (``OpenOptions.access``): an XML cannot expose files outside the roots. External links
  in the HDF5 file (partitioned datasets: one file per timepoint or setup) are followed
  only into the allowed directories; a view whose link leads elsewhere reads as missing,
  with a warning.

An HDF5 file with this structure opened on its own (without the XML) is served the same
way, without the calibration only the XML knows.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from adapters.base import (
    Axis,
    AxisName,
    Channel,
    Dependency,
    Image,
    Level,
    OpenOptions,
    Source,
    SourceReadError,
    TileCache,
    UnsupportedSourceError,
    Window,
)
from adapters.hdf5.chunks import Hdf5Array, open_context_array
from adapters.hdf5.file import HDF5_FILE_BYTES, H5File, Hdf5Context, attr_text, exists
from adapters.hdf5.levels import StackedLevel
from adapters.io.files import FileAccess, OutsideRootsError
from adapters.units import space_unit

SNIFF_BYTES = 4096
#: The root element, after an optional BOM, XML declaration, comments and doctype.
ROOT_SPIMDATA = re.compile(
    rb"^(?:\xef\xbb\xbf)?(?:\s+|<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>)*<SpimData[\s>/]", re.DOTALL
)
MAX_XML_BYTES = 64 * 1024 * 1024
SETUP_GROUP = re.compile(r"s(\d+)")
TIMEPOINT_GROUP = re.compile(r"t(\d+)")
#: View attributes that make setups different views (not channels of one image).
VIEW_ATTRIBUTES = ("angle", "illumination", "tile")
#: Levels probed when a setup has no ``resolutions`` table.
MAX_LEVELS = 32


class BdvAdapter:
    """Opens BigDataViewer XML datasets whose image loader is ``bdv.hdf5``."""

    name = "bdv"
    suffixes = (".xml",)

    def can_open(self, path: Path) -> bool:
        """A cheap sniff: an XML file whose root element is ``<SpimData>`` (not one that
        merely embeds a BigDataViewer document, as some OME-XML annotations do)."""
        if not path.name.lower().endswith(self.suffixes):
            return False
        try:
            with open(path, "rb") as fh:
                return ROOT_SPIMDATA.match(fh.read(SNIFF_BYTES)) is not None
        except OSError:
            return False

    def open(self, path: Path, tiles: TileCache, options: OpenOptions | None = None) -> Source:
        options = options or OpenOptions()
        access = options.access or FileAccess.beside(path)
        description = parse_bdv_xml(path, access)
        display = read_display_settings(path)
        if display is not None:
            description.display, settings_dependency = display
        file = H5File(description.hdf5, access)
        try:
            context = Hdf5Context(file, tiles, options)
            images = bdv_images(context, description)
            if not images:
                raise UnsupportedSourceError(f"{path.name}: no servable view setup")
            return Source(
                path=path,
                format="BigDataViewer",
                images=tuple(images),
                warnings=context.warnings,
                dependencies=file.dependencies() + ((settings_dependency,) if display else ()),
                file_bytes=HDF5_FILE_BYTES,
                _closers=[file.close],
            )
        except Exception:
            file.close()
            raise


# ---------------------------------------------------------------------------------------
# The XML


@dataclass(frozen=True, slots=True)
class Setup:
    id: int
    name: str | None = None
    voxel: tuple[float, float, float] | None = None  # x, y, z
    unit: str | None = None
    attributes: tuple[tuple[str, int], ...] = ()

    def attribute(self, name: str) -> int | None:
        return dict(self.attributes).get(name)


@dataclass(slots=True)
class BdvDescription:
    """What the XML says (or, without one, what the HDF5 file's structure says)."""

    hdf5: Path
    setups: dict[int, Setup] = field(default_factory=dict)
    timepoints: tuple[int, ...] = ()
    missing: frozenset[tuple[int, int]] = frozenset()
    transforms: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    channel_names: dict[int, str] = field(default_factory=dict)
    name: str | None = None
    #: setup id → (colour, display range) from BigDataViewer's ``<name>.settings.xml``
    display: dict[int, tuple[str | None, tuple[float, float] | None]] = field(default_factory=dict)


def parse_bdv_xml(path: Path, access: FileAccess | None = None) -> BdvDescription:
    """What the XML at ``path`` says; its HDF5 file resolved through ``access`` (None:
    the XML's folder)."""
    try:
        if os.path.getsize(path) > MAX_XML_BYTES:
            raise UnsupportedSourceError(f"{path.name}: XML larger than {MAX_XML_BYTES} bytes")
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise UnsupportedSourceError(f"{path.name} is not a readable XML file: {exc}") from exc
    if root.tag != "SpimData":
        raise UnsupportedSourceError(f"{path.name} is not a BigDataViewer dataset (no <SpimData>)")
    sequence = root.find("SequenceDescription")
    loader = sequence.find("ImageLoader") if sequence is not None else None
    if sequence is None or loader is None:
        raise UnsupportedSourceError(f"{path.name}: no SequenceDescription/ImageLoader")
    image_format = loader.get("format", "")
    hdf5 = loader.find("hdf5")
    if image_format != "bdv.hdf5" or hdf5 is None or not (hdf5.text or "").strip():
        raise UnsupportedSourceError(
            f"{path.name}: image loader {image_format!r} is not served (bdv.hdf5 only)"
        )
    hdf5_path = _resolve_hdf5(path, root, hdf5, access or FileAccess.beside(path))
    description = BdvDescription(hdf5=hdf5_path, name=path.stem)
    for element in sequence.iter("ViewSetup"):
        setup = _setup(element)
        if setup is not None:
            description.setups[setup.id] = setup
    for attributes in sequence.iter("Attributes"):
        if attributes.get("name") == "channel":
            for channel in attributes.iter("Channel"):
                cid, cname = _int(channel.findtext("id")), (channel.findtext("name") or "").strip()
                if cid is not None and cname:
                    description.channel_names[cid] = cname
    description.timepoints = _timepoints(sequence.find("Timepoints"))
    missing = set()
    for view in sequence.iter("MissingView"):
        tp, setup_id = _int(view.get("timepoint")), _int(view.get("setup"))
        if tp is not None and setup_id is not None:
            missing.add((tp, setup_id))
    description.missing = frozenset(missing)
    registrations = root.find("ViewRegistrations")
    if registrations is not None:
        for registration in registrations.iter("ViewRegistration"):
            key = (_int(registration.get("timepoint")), _int(registration.get("setup")))
            matrix = _registration(registration)
            if key[0] is not None and key[1] is not None and matrix is not None:
                description.transforms[(key[0], key[1])] = matrix
    return description


def _resolve_hdf5(xml_path: Path, root: ET.Element, hdf5: ET.Element, access: FileAccess) -> Path:
    folder = xml_path.parent
    base_element = root.find("BasePath")
    base = folder
    if base_element is not None and (base_element.text or "").strip():
        text = base_element.text.strip() if base_element.text else "."
        base = Path(text) if base_element.get("type") == "absolute" else folder / text
    text = (hdf5.text or "").strip()
    target = Path(text) if hdf5.get("type") == "absolute" else base / text
    resolved = Path(os.path.realpath(target))
    allowed = os.path.realpath(folder)
    if os.path.commonpath([allowed, resolved]) != allowed:
        raise OutsideRootsError(
            f"{xml_path.name}: its HDF5 file {text!r} lies outside the XML's folder; not served"
        )
    return access.resolve(resolved)  # and inside the allowed directories


def _int(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


def _floats(text: str | None) -> list[float] | None:
    try:
        return [float(v) for v in (text or "").split()]
    except ValueError:
        return None


def _setup(element: ET.Element) -> Setup | None:
    setup_id = _int(element.findtext("id"))
    if setup_id is None:
        return None
    voxel = None
    unit = None
    voxel_element = element.find("voxelSize")
    if voxel_element is not None:
        sizes = _floats(voxel_element.findtext("size"))
        if sizes and len(sizes) == 3 and all(np.isfinite(v) and v > 0 for v in sizes):
            voxel = (sizes[0], sizes[1], sizes[2])
        unit = (voxel_element.findtext("unit") or "").strip() or None
    attributes = []
    attribute_element = element.find("attributes")
    if attribute_element is not None:
        for child in attribute_element:
            value = _int(child.text)
            if value is not None:
                attributes.append((child.tag, value))
    name = (element.findtext("name") or "").strip() or None
    return Setup(setup_id, name, voxel, unit, tuple(attributes))


def _timepoints(element: ET.Element | None) -> tuple[int, ...]:
    if element is None:
        return ()
    kind = element.get("type", "range")
    if kind == "range":
        first, last = _int(element.findtext("first")), _int(element.findtext("last"))
        if first is None or last is None or last < first:
            return ()
        return tuple(range(first, last + 1))
    return parse_integer_pattern(element.findtext("integerpattern") or "")


def parse_integer_pattern(text: str) -> tuple[int, ...]:
    """BDV/Fiji integer patterns: ``"0, 2, 5-9, 10-20:5"`` → the integers, in order."""
    values: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+)(?:\s*:\s*(\d+))?)?", part)
        if match is None:
            raise UnsupportedSourceError(f"timepoint pattern {part!r} is not understood")
        start = int(match.group(1))
        stop = int(match.group(2)) if match.group(2) else start
        step = int(match.group(3)) if match.group(3) else 1
        values.extend(range(start, stop + 1, max(step, 1)))
    return tuple(dict.fromkeys(values))


def _registration(element: ET.Element) -> np.ndarray | None:
    """The 4x4 matrix of a view's transforms, composed as BigDataViewer does (the first
    listed transform is applied last)."""
    matrix = np.eye(4)
    for transform in element.iter("ViewTransform"):
        values = _floats(transform.findtext("affine"))
        if transform.get("type") != "affine" or values is None or len(values) != 12:
            return None
        step = np.eye(4)
        step[:3, :] = np.asarray(values).reshape(3, 4)
        matrix = matrix @ step
    return matrix


# ---------------------------------------------------------------------------------------
# Images


def is_bdv_hdf5(file: H5File) -> bool:
    h5 = file.h5
    return any(SETUP_GROUP.fullmatch(n) and exists(file, f"{n}/resolutions") for n in h5) and any(
        TIMEPOINT_GROUP.fullmatch(n) for n in h5
    )


def describe_hdf5(h5: h5py.File, path: Path) -> BdvDescription:
    """A description from the HDF5 file alone (no XML): setups and timepoints by group."""
    setups = sorted(int(m.group(1)) for n in h5 if (m := SETUP_GROUP.fullmatch(n)))
    timepoints = sorted(int(m.group(1)) for n in h5 if (m := TIMEPOINT_GROUP.fullmatch(n)))
    return BdvDescription(
        hdf5=path, setups={s: Setup(s) for s in setups}, timepoints=tuple(timepoints), name=path.stem
    )


def bdv_hdf5_images(ctx: Hdf5Context) -> list[Image]:
    with ctx.file.locked() as h5:
        description = describe_hdf5(h5, ctx.file.path)
    return bdv_images(ctx, description)


@dataclass(slots=True)
class _SetupData:
    setup: Setup
    levels: list[tuple[int, ...]]  # (z, y, x) shape of each level
    stored: np.dtype[Any]
    served: np.dtype[Any]


def bdv_images(ctx: Hdf5Context, description: BdvDescription) -> list[Image]:
    timepoints = description.timepoints
    with ctx.file.locked() as h5:
        if not timepoints:
            timepoints = tuple(sorted(int(m.group(1)) for n in h5 if (m := TIMEPOINT_GROUP.fullmatch(n))))
        found = []
        for setup in description.setups.values():
            data = _setup_data(ctx, setup, timepoints, description)
            if data is not None:
                found.append(data)
    groups: dict[Any, list[_SetupData]] = {}
    for data in found:
        groups.setdefault(_grouping_key(data, description, timepoints), []).append(data)
    images = []
    for members in groups.values():
        members.sort(key=lambda d: (d.setup.attribute("channel") or 0, d.setup.id))
        try:
            images.append(_image(ctx, description, members, timepoints, multi=len(groups) > 1))
        except (UnsupportedSourceError, SourceReadError) as exc:
            ids = ", ".join(str(d.setup.id) for d in members)
            ctx.warn(f"setup(s) {ids} skipped: {exc}")
    return images


def _cells(tp: int, setup: int, level: int) -> str:
    return f"t{tp:05d}/s{setup:02d}/{level}/cells"


def _setup_data(
    ctx: Hdf5Context,
    setup: Setup,
    timepoints: Sequence[int],
    description: BdvDescription,
) -> _SetupData | None:
    group = ctx.get(f"s{setup.id:02d}")
    if not isinstance(group, h5py.Group):
        ctx.warn(f"setup {setup.id}: no group s{setup.id:02d} in the HDF5 file")
        return None
    resolutions = ctx.get(f"s{setup.id:02d}/resolutions")
    level_count = (
        int(resolutions.shape[0]) if isinstance(resolutions, h5py.Dataset) and resolutions.ndim == 2 else 0
    )
    for tp in timepoints:
        first = None if (tp, setup.id) in description.missing else ctx.dataset(_cells(tp, setup.id, 0))
        if first is None:
            continue
        shapes = []
        for level in range(level_count or MAX_LEVELS):
            cells = first if level == 0 else ctx.dataset(_cells(tp, setup.id, level))
            if cells is None or cells.ndim != 3:
                break
            shapes.append(tuple(int(n) for n in cells.shape))
        if not shapes:
            continue
        stored = np.dtype(first.dtype)
        return _SetupData(setup, shapes, stored, _served_dtype(group, stored))
    ctx.warn(f"setup {setup.id}: no image data")
    return None


def _served_dtype(group: h5py.Group, stored: np.dtype[Any]) -> np.dtype[Any]:
    """BigDataViewer writes uint16 as int16 (Java has no unsigned short); a ``dataType``
    attribute, where present, names the type instead."""
    declared = attr_text(group.attrs, "dataType")
    if declared:
        try:
            dtype = np.dtype(declared.strip().lower())
        except TypeError:
            dtype = None
        if dtype is not None and dtype.itemsize == stored.itemsize and dtype.kind in "biuf":
            return dtype
    return np.dtype("uint16") if stored.kind == "i" and stored.itemsize == 2 else stored


def _grouping_key(data: _SetupData, description: BdvDescription, timepoints: Sequence[int]) -> Any:
    setup = data.setup
    transform = next(
        (
            description.transforms[(tp, setup.id)]
            for tp in timepoints
            if (tp, setup.id) in description.transforms
        ),
        None,
    )
    return (
        tuple(data.levels),
        data.served.str,
        setup.voxel,
        setup.unit,
        None if transform is None else tuple(np.round(transform, 9).reshape(-1)),
        tuple(setup.attribute(name) for name in VIEW_ATTRIBUTES),
    )


def _image(
    ctx: Hdf5Context,
    description: BdvDescription,
    members: Sequence[_SetupData],
    timepoints: Sequence[int],
    multi: bool,
) -> Image:
    first = members[0]
    outer_names: list[AxisName] = []
    if len(timepoints) > 1:
        outer_names.append("t")
    if len(members) > 1:
        outer_names.append("c")
    keep_z = first.levels[0][0] > 1
    levels: list[Level] = []
    for level, shape in enumerate(first.levels):
        try:
            levels.append(_level(ctx, description, members, timepoints, outer_names, level, shape, keep_z))
        except UnsupportedSourceError as exc:
            if level == 0:
                raise
            ctx.warn(f"setup {first.setup.id}: level {level} ignored: {exc}")
            break
    names: list[AxisName] = [*outer_names, *(["z"] if keep_z else []), "y", "x"]  # type: ignore[list-item]
    scale, units, translation = _calibration(ctx, description, first.setup, timepoints)
    axes = tuple(Axis(n, units if n in ("z", "y", "x") else None) for n in names)
    channels: tuple[Channel, ...] = tuple(_channel(description, d.setup, first.served) for d in members)
    name = first.setup.name or f"setup {first.setup.id}"
    if len(members) > 1 or (not multi and first.setup.name is None):
        name = description.name or ctx.file.path.stem
    return Image(
        name=name,
        axes=axes,
        levels=tuple(levels),
        scale=tuple(scale.get(n, 1.0) for n in names),
        translation=tuple(translation.get(n, 0.0) for n in names) if translation else None,
        channels=channels,
    )


def _channel(description: BdvDescription, setup: Setup, dtype: np.dtype[Any]) -> Channel:
    color, shown = description.display.get(setup.id, (None, None))
    window = None
    if shown is not None:
        start, end = shown
        low, high = (
            (float(np.iinfo(dtype).min), float(np.iinfo(dtype).max)) if dtype.kind in "iu" else (start, end)
        )
        window = Window(min=min(low, start), max=max(high, end), start=start, end=end)
    return Channel(label=_channel_label(description, setup), color=color, window=window)


def read_display_settings(
    xml_path: Path,
) -> tuple[dict[int, tuple[str | None, tuple[float, float] | None]], Dependency] | None:
    """Colours and display ranges BigDataViewer saved beside the dataset's XML
    (``<name>.settings.xml``: ``ConverterSetup`` elements with ``id``, ``min``, ``max`` and
    ``color``, a signed Java ARGB integer); None when there is no readable such file."""
    path = xml_path.with_name(f"{xml_path.stem}.settings.xml")
    try:
        stat = os.stat(path)
        if stat.st_size > MAX_XML_BYTES:
            return None
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    found: dict[int, tuple[str | None, tuple[float, float] | None]] = {}
    for setup in root.iter("ConverterSetup"):
        setup_id = _int(setup.findtext("id"))
        if setup_id is None:
            continue
        color = None
        argb = _int(setup.findtext("color"))
        if argb is not None:
            color = f"{argb & 0xFFFFFF:06X}"
        shown = None
        try:
            low, high = float(setup.findtext("min") or "nan"), float(setup.findtext("max") or "nan")
        except ValueError:
            low = high = float("nan")
        if np.isfinite(low) and np.isfinite(high) and high > low:
            shown = (low, high)
        found[setup_id] = (color, shown)
    return found, Dependency(path, stat)


def _channel_label(description: BdvDescription, setup: Setup) -> str:
    channel = setup.attribute("channel")
    if channel is not None and channel in description.channel_names:
        return description.channel_names[channel]
    return setup.name or f"setup {setup.id}"


def _level(
    ctx: Hdf5Context,
    description: BdvDescription,
    members: Sequence[_SetupData],
    timepoints: Sequence[int],
    outer_names: Sequence[str],
    level: int,
    shape: tuple[int, ...],
    keep_z: bool,
) -> StackedLevel:
    arrays: dict[tuple[int, ...], Hdf5Array | None] = {}
    for t_index, tp in enumerate(timepoints):
        for c_index, data in enumerate(members):
            outer = tuple(i for i, n in ((t_index, "t"), (c_index, "c")) if n in outer_names)
            arrays[outer] = None
            if (tp, data.setup.id) in description.missing:
                continue
            with ctx.file.locked():
                cells = ctx.dataset(_cells(tp, data.setup.id, level))
            if cells is None:
                continue
            if tuple(cells.shape) != shape:
                ctx.warn(f"{cells.name}: shape {cells.shape} differs from {shape}; served as missing")
                continue
            arrays[outer] = open_context_array(ctx, cells, view=data.served, warn=t_index == 0)
    outer_shape = [len(timepoints) if n == "t" else len(members) for n in outer_names]
    inner, dims = (shape, (0, 1, 2)) if keep_z else (shape[1:], (1, 2))
    return StackedLevel(arrays, outer_shape, inner, dims)


def _calibration(
    ctx: Hdf5Context, description: BdvDescription, setup: Setup, timepoints: Sequence[int]
) -> tuple[dict[str, float], str | None, dict[str, float] | None]:
    """(scale per axis, space unit, translation per axis or None)."""
    unit = space_unit(setup.unit) if setup.unit else None
    scale: dict[str, float] = {}
    if setup.voxel is not None:
        scale = dict(zip(("x", "y", "z"), setup.voxel, strict=True))
    transform = next(
        (
            description.transforms[(tp, setup.id)]
            for tp in timepoints
            if (tp, setup.id) in description.transforms
        ),
        None,
    )
    if transform is None:
        return scale, unit, None
    linear, offset = transform[:3, :3], transform[:3, 3]
    diagonal = np.diag(linear)
    if (
        np.abs(linear - np.diag(diagonal)).max() > 1e-9 * max(np.abs(diagonal).max(), 1.0)
        or (diagonal <= 0).any()
    ):
        ctx.warn(f"setup {setup.id}: registration has rotation, shear or flip; only the voxel size is served")
        return scale, unit, None
    if setup.voxel is None:
        scale = dict(zip(("x", "y", "z"), (float(v) for v in diagonal), strict=True))
        factor = 1.0
    else:
        ratios = np.asarray(setup.voxel) / diagonal
        if not np.allclose(ratios, ratios[0], rtol=1e-6):
            ctx.warn(f"setup {setup.id}: registration scales differ from the voxel size; translation ignored")
            return scale, unit, None
        factor = float(ratios[0])  # world units → voxel-size units
    translation = {name: float(v) * factor for name, v in zip(("x", "y", "z"), offset, strict=True)}
    return scale, unit, translation if any(translation.values()) else None
