"""Sample files for ``ome-zarr-gateway demo``: written once to a cache folder, then served.

The images are synthetic (no download): a pyramidal 3-channel OME-TIFF with physical
sizes and channel names, a 3-D z-stack as an ImageJ hyperstack, an RGB slide-like
tiled TIFF, a BigDataViewer dataset (XML + HDF5) and an Imaris ``.ims`` file. Together
they exercise SubIFD pyramids, channels, z, t, RGB, compression and the HDF5 flavours;
the z-stack and the RGB file have no pyramid of their own, so they show the synthesized
levels (``gateway/levels/pyramid.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tifffile

DEMO_VERSION = "3"


def default_demo_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ome-zarr-gateway" / f"demo-v{DEMO_VERSION}"


def _blobs(shape: tuple[int, ...], count: int, radius: float, seed: int) -> np.ndarray:
    """Soft round 'cells' on a dim background: looks like fluorescence, compresses well."""
    rng = np.random.default_rng(seed)
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    image = np.zeros(shape, dtype=np.float32)
    for _ in range(count):
        centre = [rng.uniform(0, n) for n in shape]
        distance2 = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
        image += np.exp(-distance2 / (2 * (radius * rng.uniform(0.6, 1.4)) ** 2))
    image += rng.normal(0.05, 0.02, shape).astype(np.float32)
    return np.clip(image, 0, None)


def _pyramid(plane: np.ndarray, levels: int) -> list[np.ndarray]:
    result = [plane]
    for _ in range(levels - 1):
        previous = result[-1]
        h, w = previous.shape[-2] // 2 * 2, previous.shape[-1] // 2 * 2
        cropped = previous[..., :h, :w].astype(np.float32)
        reduced = (
            cropped[..., ::2, ::2]
            + cropped[..., 1::2, ::2]
            + cropped[..., ::2, 1::2]
            + cropped[..., 1::2, 1::2]
        ) / 4
        result.append(np.round(reduced).astype(plane.dtype))
    return result


def write_pyramid_ome_tiff(path: Path) -> None:
    size = 2048
    channels = np.stack(
        [(_blobs((size // 8, size // 8), 60, 3.0, seed) * 12000).astype(np.uint16) for seed in (1, 2, 3)]
    )
    channels = np.repeat(np.repeat(channels, 8, axis=1), 8, axis=2)  # cheap upscale to 2048²
    levels = _pyramid(channels, 4)
    metadata = {
        "axes": "CYX",
        "PhysicalSizeX": 0.325,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": 0.325,
        "PhysicalSizeYUnit": "µm",
        # OME colours are signed RGBA: 0x0000FFFF blue, 0x00FF00FF green, 0xFF00FFFF magenta
        "Channel": {"Name": ["DAPI", "GFP", "mCherry"], "Color": [65535, 16711935, -16711681]},
        "Name": "demo pyramid",
    }
    options: dict[str, Any] = {"tile": (256, 256), "compression": "zstd", "predictor": True}
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        tif.write(levels[0], subifds=len(levels) - 1, metadata=metadata, **options)
        for level in levels[1:]:
            tif.write(level, subfiletype=1, **options)


def write_zstack_imagej(path: Path) -> None:
    """40 x 600 x 600, no pyramid of its own: the gateway synthesizes level 1 (600 > one
    512-pixel chunk), halving y/x only, since its planes (0.5 µm) are coarser than its
    pixels (0.2 µm)."""
    volume = (_blobs((40, 150, 150), 40, 2.5, seed=7) * 180).clip(0, 255).astype(np.uint8)
    volume = np.repeat(np.repeat(volume, 4, axis=1), 4, axis=2)  # cheap upscale to 600²
    tifffile.imwrite(
        path,
        volume,
        imagej=True,
        resolution=(1 / 0.2, 1 / 0.2),
        metadata={"axes": "ZYX", "spacing": 0.5, "unit": "micron"},
        compression="zlib",
    )


def write_rgb_tiled(path: Path) -> None:
    size = 1536
    rgb = np.stack(
        [255 - (_blobs((size // 4, size // 4), 80, 4.0, seed) * 160).clip(0, 255) for seed in (11, 12, 13)],
        axis=-1,
    ).astype(np.uint8)
    rgb = np.repeat(np.repeat(rgb, 4, axis=0), 4, axis=1)
    tifffile.imwrite(
        path,
        rgb,
        photometric="rgb",
        tile=(256, 256),
        compression="zlib",
        resolution=(20000, 20000),
        resolutionunit="CENTIMETER",
    )


BDV_HDF5_NAME = "bdv-2channel.h5"


def write_bdv(path: Path) -> None:
    """BigDataViewer XML (at ``path``) and its HDF5 file: 2 channels, 2 timepoints, 2
    levels, gzip chunks of 16x64x64; uint16 stored as int16, as BigDataViewer does."""
    volumes = [(_blobs((32, 128, 128), 25, 6.0, seed) * 9000).astype(np.uint16) for seed in (21, 22)]
    partial = path.with_name(f".{BDV_HDF5_NAME}.partial")
    with h5py.File(partial, "w") as f:
        for setup in range(2):
            f[f"s{setup:02d}/resolutions"] = np.array([[1, 1, 1], [2, 2, 1]], dtype=np.float64)
            f[f"s{setup:02d}/subdivisions"] = np.array([[64, 64, 16], [64, 64, 16]], dtype=np.int32)
            for t in range(2):
                moved = np.roll(volumes[setup], 6 * t, axis=2)
                for level, step in enumerate((1, 2)):
                    f.create_dataset(
                        f"t{t:05d}/s{setup:02d}/{level}/cells",
                        data=moved[:, ::step, ::step].view(np.int16),
                        chunks=(16, 64, 64),
                        compression="gzip",
                        compression_opts=4,
                    )
    partial.replace(path.with_name(BDV_HDF5_NAME))
    setups = "".join(
        f"<ViewSetup><id>{s}</id><name>{name}</name><size>128 128 32</size><voxelSize><unit>µm</unit>"
        f"<size>0.4 0.4 1.0</size></voxelSize><attributes><channel>{s}</channel></attributes></ViewSetup>"
        for s, name in enumerate(("nuclei", "membranes"))
    )
    registrations = "".join(
        f'<ViewRegistration timepoint="{t}" setup="{s}"><ViewTransform type="affine">'
        "<affine>0.4 0 0 10 0 0.4 0 20 0 0 1.0 0</affine></ViewTransform></ViewRegistration>"
        for t in range(2)
        for s in range(2)
    )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<SpimData version="0.2"><BasePath type="relative">.</BasePath>'
        f'<SequenceDescription><ImageLoader format="bdv.hdf5"><hdf5 type="relative">{BDV_HDF5_NAME}</hdf5>'
        f'</ImageLoader><ViewSetups>{setups}<Attributes name="channel"><Channel><id>0</id><name>DAPI</name>'
        "</Channel><Channel><id>1</id><name>GFP</name></Channel></Attributes></ViewSetups>"
        '<Timepoints type="range"><first>0</first><last>1</last></Timepoints></SequenceDescription>'
        f"<ViewRegistrations>{registrations}</ViewRegistrations></SpimData>\n",
        encoding="utf-8",
    )


def _imaris_text(value: str) -> np.ndarray:
    return np.frombuffer(value.encode(), dtype="S1")  # Imaris attributes: arrays of characters


def write_imaris(path: Path) -> None:
    """Imaris 5.5 layout: 2 channels, 2 resolution levels, arrays padded to whole 16x64x64
    blocks beyond ImageSizeX/Y/Z, extent, units, channel names and colours."""
    size_z, size_y, size_x = 24, 180, 150
    channels = [
        (_blobs((size_z, size_y, size_x), 20, 7.0, seed) * 200).clip(0, 255).astype(np.uint8)
        for seed in (31, 32)
    ]
    with h5py.File(path, "w") as f:
        for key, value in (
            ("ImarisDataSet", "ImarisDataSet"),
            ("ImarisVersion", "5.5.0"),
            ("DataSetDirectoryName", "DataSet"),
            ("DataSetInfoDirectoryName", "DataSetInfo"),
            ("ThumbnailDirectoryName", "Thumbnail"),
        ):
            f.attrs[key] = _imaris_text(value)
        f.attrs["NumberOfDataSets"] = np.array([1], dtype=np.uint32)
        for level, step in enumerate((1, 2)):
            for c, volume in enumerate(channels):
                data = volume[:, ::step, ::step]
                group = f.create_group(f"DataSet/ResolutionLevel {level}/TimePoint 0/Channel {c}")
                for key, n in zip(("ImageSizeZ", "ImageSizeY", "ImageSizeX"), data.shape, strict=True):
                    group.attrs[key] = _imaris_text(str(n))
                padded = np.zeros(
                    tuple(-(-n // 16) * 16 if i == 0 else -(-n // 64) * 64 for i, n in enumerate(data.shape)),
                    np.uint8,
                )
                padded[: data.shape[0], : data.shape[1], : data.shape[2]] = data
                group.create_dataset(
                    "Data", data=padded, chunks=(16, 64, 64), compression="gzip", compression_opts=2
                )
        image = f.create_group("DataSetInfo/Image")
        for key, size in (("X", size_x), ("Y", size_y), ("Z", size_z)):
            image.attrs[key] = _imaris_text(str(size))
        for axis, extent in enumerate((size_x * 0.3, size_y * 0.3, size_z * 1.2)):
            image.attrs[f"ExtMin{axis}"] = _imaris_text("0")
            image.attrs[f"ExtMax{axis}"] = _imaris_text(f"{extent:.4f}")
        image.attrs["Unit"] = _imaris_text("um")
        image.attrs["Name"] = _imaris_text("demo imaris")
        for c, (name, color) in enumerate((("Hoechst", "0 0.5 1"), ("Actin", "1 0.3 0"))):
            channel = f.create_group(f"DataSetInfo/Channel {c}")
            channel.attrs["Name"] = _imaris_text(name)
            channel.attrs["Color"] = _imaris_text(color)
            channel.attrs["ColorRange"] = _imaris_text("0 220")


DEMO_FILES: dict[str, Callable[[Path], None]] = {
    "pyramid-3channel.ome.tif": write_pyramid_ome_tiff,
    "zstack-imagej.tif": write_zstack_imagej,
    "rgb-tiled.tif": write_rgb_tiled,
    "bdv-2channel.xml": write_bdv,
    "imaris-2channel.ims": write_imaris,
}


def missing_demo_files(directory: Path | None = None) -> list[str]:
    """The demo files not yet in ``directory`` (what ``ensure_demo_files`` would write)."""
    folder = directory or default_demo_dir()
    return [name for name in DEMO_FILES if not (folder / name).exists()]


def ensure_demo_files(directory: Path | None = None) -> Path:
    """Write the demo files once (atomically) and return their folder."""
    folder = directory or default_demo_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for name in missing_demo_files(folder):
        target = folder / name
        write = DEMO_FILES[name]
        partial = folder / f".{name}.partial"
        write(partial)
        partial.replace(target)
    return folder
