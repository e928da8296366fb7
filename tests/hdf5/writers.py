"""Writers of the HDF5 files the HDF5 suites serve: Imaris 5.5 and BigDataViewer layouts
written from their published descriptions (not from the gateway's code), and pixels.

Imaris 5.5 (Bitplane, "Imaris 5.5 file format"): root attributes ``ImarisDataSet``,
``ImarisVersion``, ``DataSetDirectoryName``, ``DataSetInfoDirectoryName``,
``ThumbnailDirectoryName``, ``NumberOfDataSets``; ``DataSet/ResolutionLevel r/TimePoint t/
Channel c`` groups with ``ImageSizeX/Y/Z`` and ``HistogramMin/Max`` attributes, a ``Data``
(z, y, x) array padded to whole blocks and a ``Histogram``; ``DataSetInfo/Image`` (X, Y,
Z, Unit, ExtMin0..2, ExtMax0..2, Name), ``DataSetInfo/Channel c`` (Name, Color,
ColorRange...), ``DataSetInfo/TimeInfo`` (TimePoint1...); ``Thumbnail/Data``. Every
attribute is an array of single characters (``H5T_C_S1`` of size 1).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np


def seed_of(*parts: object) -> int:
    return zlib.crc32(repr(parts).encode())


def pixels(shape: Sequence[int], dtype: Any, seed: int = 0) -> np.ndarray:
    """Deterministic pixels over the full range of ``dtype``; floats include NaN, ±inf,
    -0.0 and a subnormal."""
    rng = np.random.default_rng(seed_of(tuple(shape), str(dtype), seed))
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, dtype=dt.newbyteorder("="), endpoint=True).astype(
            dt
        )
    data = (rng.standard_normal(shape) * 1000).astype(dt)
    flat = data.reshape(-1)
    finfo = np.finfo(dt)
    specials = [np.nan, np.inf, -np.inf, -0.0, finfo.smallest_subnormal, finfo.max, finfo.min]
    for i, value in enumerate(specials[: flat.size]):
        flat[(i * 7919) % flat.size] = value
    return data


def smooth(shape: Sequence[int], dtype: Any = np.uint16, seed: int = 0, scale: float = 3000.0) -> np.ndarray:
    """Structured, compressible pixels (blobs and a little noise)."""
    rng = np.random.default_rng(seed_of(tuple(shape), seed))
    grids = np.meshgrid(*(np.linspace(0, 5, n) for n in shape), indexing="ij")
    base = scale * (1.2 + np.sin(sum(grids))) + rng.normal(0, scale / 50, tuple(shape))
    return np.clip(base, 0, None).astype(dtype)


def chars(text: str) -> np.ndarray:
    """An Imaris attribute value: the text as an array of single characters."""
    return np.frombuffer(text.encode(), dtype="S1")


# ---------------------------------------------------------------------------------------
# Imaris 5.5


@dataclass
class ImarisSpec:
    """What to write: ``data`` is (t, c, z, y, x) at full resolution."""

    data: np.ndarray
    levels: int = 2
    block: tuple[int, int, int] = (16, 32, 32)  # chunking (z, y, x); arrays are padded to it
    ext_min: tuple[float, float, float] = (0.0, 0.0, 0.0)  # x, y, z
    voxel: tuple[float, float, float] = (0.5, 0.5, 2.0)  # x, y, z
    unit: str = "um"
    name: str = "imaris test"
    channel_names: Sequence[str] = ()
    channel_colors: Sequence[tuple[float, float, float]] = ()
    color_ranges: Sequence[tuple[float, float]] = ()
    timestamps: Sequence[str] = ()
    compression: dict[str, Any] = field(
        default_factory=lambda: {"compression": "gzip", "compression_opts": 2}
    )

    def level_data(self, level: int) -> np.ndarray:
        """Level ``level``: x and y halved (floor) per level, z halved while it stays > 1."""
        data = self.data
        for _ in range(level):
            z_step = 2 if data.shape[2] >= 4 else 1
            data = data[:, :, ::z_step, ::2, ::2]
        return data


def write_imaris(path: Path, spec: ImarisSpec) -> None:
    t_count, c_count, z, y, x = spec.data.shape
    with h5py.File(path, "w", libver="earliest") as f:
        for name, value in (
            ("DataSetDirectoryName", "DataSet"),
            ("DataSetInfoDirectoryName", "DataSetInfo"),
            ("ImarisDataSet", "ImarisDataSet"),
            ("ImarisVersion", "5.5.0"),
            ("ThumbnailDirectoryName", "Thumbnail"),
        ):
            f.attrs[name] = chars(value)
        f.attrs.create("NumberOfDataSets", np.array([1], dtype=np.uint32))
        for level in range(spec.levels):
            data = spec.level_data(level)
            lz, ly, lx = data.shape[2:]
            block = tuple(min(b, n) for b, n in zip(spec.block, (lz, ly, lx), strict=True))
            padded = tuple(-(-n // b) * b for n, b in zip((lz, ly, lx), block, strict=True))
            for t in range(t_count):
                for c in range(c_count):
                    group = f.create_group(f"DataSet/ResolutionLevel {level}/TimePoint {t}/Channel {c}")
                    for key, value in (("ImageSizeX", lx), ("ImageSizeY", ly), ("ImageSizeZ", lz)):
                        group.attrs[key] = chars(str(value))
                    for key, value in zip(
                        ("ImageBlockSizeZ", "ImageBlockSizeY", "ImageBlockSizeX"), block, strict=True
                    ):
                        group.attrs[key] = chars(str(value))
                    plane = data[t, c]
                    group.attrs["HistogramMin"] = chars(f"{plane.min():.3f}")
                    group.attrs["HistogramMax"] = chars(f"{plane.max():.3f}")
                    stored = np.zeros(padded, dtype=data.dtype)
                    # padding holds junk in real files: it must never be served
                    stored[...] = np.iinfo(data.dtype).max if data.dtype.kind in "iu" else -1
                    stored[:lz, :ly, :lx] = plane
                    group.create_dataset("Data", data=stored, chunks=block, **spec.compression)
                    histogram = np.histogram(plane, bins=256)[0].astype(np.uint64)
                    group.create_dataset("Histogram", data=histogram)
        info = f.create_group("DataSetInfo")
        image = info.create_group("Image")
        extent_max = [m + v * n for m, v, n in zip(spec.ext_min, spec.voxel, (x, y, z), strict=True)]
        for key, value in (("X", x), ("Y", y), ("Z", z)):
            image.attrs[key] = chars(str(value))
        for axis in range(3):
            image.attrs[f"ExtMin{axis}"] = chars(f"{spec.ext_min[axis]:.6f}")
            image.attrs[f"ExtMax{axis}"] = chars(f"{extent_max[axis]:.6f}")
        image.attrs["Unit"] = chars(spec.unit)
        image.attrs["Name"] = chars(spec.name)
        image.attrs["Description"] = chars("written by tests/hdf5/writers.py")
        image.attrs["Noc"] = chars(str(c_count))
        for c in range(c_count):
            channel = info.create_group(f"Channel {c}")
            if c < len(spec.channel_names):
                channel.attrs["Name"] = chars(spec.channel_names[c])
            if c < len(spec.channel_colors):
                channel.attrs["Color"] = chars(" ".join(f"{v:.3f}" for v in spec.channel_colors[c]))
            if c < len(spec.color_ranges):
                low, high = spec.color_ranges[c]
                channel.attrs["ColorRange"] = chars(f"{low:.3f} {high:.3f}")
            channel.attrs["ColorMode"] = chars("BaseColor")
            channel.attrs["ColorOpacity"] = chars("1.000")
            channel.attrs["GammaCorrection"] = chars("1.000")
        time_info = info.create_group("TimeInfo")
        time_info.attrs["DatasetTimePoints"] = chars(str(t_count))
        time_info.attrs["FileTimePoints"] = chars(str(t_count))
        for t, stamp in enumerate(spec.timestamps, start=1):
            time_info.attrs[f"TimePoint{t}"] = chars(stamp)
        imaris = info.create_group("Imaris")
        imaris.attrs["Version"] = chars("7.0")
        dataset_info = info.create_group("ImarisDataSet")
        dataset_info.attrs["Creator"] = chars("Imaris")
        dataset_info.attrs["NumberOfImages"] = chars("1")
        dataset_info.attrs["Version"] = chars("5.5")
        f.create_dataset("Thumbnail/Data", data=np.zeros((256, 256 * 4), dtype=np.uint8))


# ---------------------------------------------------------------------------------------
# BigDataViewer


@dataclass
class BdvSetup:
    """One view setup: ``data`` is (t, z, y, x); levels halve x, y (and z when asked)."""

    data: np.ndarray
    name: str
    voxel: tuple[float, float, float] = (0.5, 0.5, 1.0)  # x, y, z
    unit: str = "micrometer"
    channel: int = 0
    angle: int = 0
    factors: Sequence[tuple[int, int, int]] = ((1, 1, 1), (2, 2, 1))  # x, y, z per level
    chunks: Sequence[tuple[int, int, int]] = ((16, 32, 32), (16, 32, 32))  # z, y, x per level
    affine: Sequence[float] | None = None  # 12 numbers; default: the voxel size
    stored_dtype: Any = None  # default: int16 for uint16 data, else the data's type
    compression: dict[str, Any] = field(
        default_factory=lambda: {"compression": "gzip", "compression_opts": 4}
    )

    def level(self, t: int, level: int) -> np.ndarray:
        fx, fy, fz = self.factors[level]
        return self.data[t, ::fz, ::fy, ::fx]


def write_bdv(
    xml_path: Path,
    h5_name: str,
    setups: Sequence[BdvSetup],
    timepoints: Sequence[int] = (0,),
    missing: Sequence[tuple[int, int]] = (),
    channel_names: dict[int, str] | None = None,
    extra_transform: Sequence[float] | None = None,
) -> None:
    """An XML + HDF5 pair as BigDataViewer's exporter writes it (setup ids 0, 1, ...)."""
    with h5py.File(xml_path.parent / h5_name, "w") as f:
        for sid, setup in enumerate(setups):
            f.create_dataset(f"s{sid:02d}/resolutions", data=np.asarray(setup.factors, dtype=np.float64))
            chunks_xyz = [c[::-1] for c in setup.chunks]
            f.create_dataset(f"s{sid:02d}/subdivisions", data=np.asarray(chunks_xyz, dtype=np.int32))
            for index, tp in enumerate(timepoints):
                if (tp, sid) in missing:
                    continue
                for level in range(len(setup.factors)):
                    data = setup.level(index, level)
                    stored = setup.stored_dtype or (np.int16 if data.dtype == np.uint16 else data.dtype)
                    chunks = tuple(min(c, n) for c, n in zip(setup.chunks[level], data.shape, strict=True))
                    f.create_dataset(
                        f"t{tp:05d}/s{sid:02d}/{level}/cells",
                        data=data.view(stored) if np.dtype(stored).itemsize == data.dtype.itemsize else data,
                        chunks=chunks,
                        **setup.compression,
                    )
    xml_path.write_text(bdv_xml(h5_name, setups, timepoints, missing, channel_names or {}, extra_transform))


def bdv_xml(
    h5_name: str,
    setups: Sequence[BdvSetup],
    timepoints: Sequence[int],
    missing: Sequence[tuple[int, int]],
    channel_names: dict[int, str],
    extra_transform: Sequence[float] | None,
) -> str:
    view_setups = []
    for sid, setup in enumerate(setups):
        z, y, x = setup.data.shape[1:]
        view_setups.append(
            f"""      <ViewSetup>
        <id>{sid}</id>
        <name>{setup.name}</name>
        <size>{x} {y} {z}</size>
        <voxelSize>
          <unit>{setup.unit}</unit>
          <size>{setup.voxel[0]} {setup.voxel[1]} {setup.voxel[2]}</size>
        </voxelSize>
        <attributes>
          <channel>{setup.channel}</channel>
          <angle>{setup.angle}</angle>
        </attributes>
      </ViewSetup>"""
        )
    channels = sorted({s.channel for s in setups})
    channel_xml = "\n".join(
        f"        <Channel><id>{c}</id>"
        + (f"<name>{channel_names[c]}</name>" if c in channel_names else "")
        + "</Channel>"
        for c in channels
    )
    angles = "\n".join(f"        <Angle><id>{a}</id></Angle>" for a in sorted({s.angle for s in setups}))
    registrations = []
    for tp in timepoints:
        for sid, setup in enumerate(setups):
            vx, vy, vz = setup.voxel
            affine = setup.affine or (vx, 0, 0, 0, 0, vy, 0, 0, 0, 0, vz, 0)
            transforms = []
            if extra_transform is not None:
                transforms.append(
                    '        <ViewTransform type="affine"><Name>registration</Name>'
                    f"<affine>{' '.join(str(v) for v in extra_transform)}</affine></ViewTransform>"
                )
            transforms.append(
                '        <ViewTransform type="affine"><Name>calibration</Name>'
                f"<affine>{' '.join(str(v) for v in affine)}</affine></ViewTransform>"
            )
            registrations.append(
                f'    <ViewRegistration timepoint="{tp}" setup="{sid}">\n'
                + "\n".join(transforms)
                + "\n    </ViewRegistration>"
            )
    missing_xml = ""
    if missing:
        missing_xml = (
            "    <MissingViews>\n"
            + "\n".join(f'      <MissingView timepoint="{tp}" setup="{sid}" />' for tp, sid in missing)
            + "\n    </MissingViews>\n"
        )
    timepoint_list = ", ".join(str(tp) for tp in timepoints)
    newline = "\n"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<SpimData version="0.2">
  <BasePath type="relative">.</BasePath>
  <SequenceDescription>
    <ImageLoader format="bdv.hdf5">
      <hdf5 type="relative">{h5_name}</hdf5>
    </ImageLoader>
    <ViewSetups>
{newline.join(view_setups)}
      <Attributes name="channel">
{channel_xml}
      </Attributes>
      <Attributes name="angle">
{angles}
      </Attributes>
    </ViewSetups>
    <Timepoints type="list">
      <integerpattern>{timepoint_list}</integerpattern>
    </Timepoints>
{missing_xml}  </SequenceDescription>
  <ViewRegistrations>
{newline.join(registrations)}
  </ViewRegistrations>
</SpimData>
"""
