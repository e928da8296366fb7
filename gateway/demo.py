"""Sample files for ``ome-zarr-gateway demo``: written once to a cache folder, then served.

The images are synthetic (no download): a pyramidal 3-channel OME-TIFF with physical
sizes and channel names, a 3-D z-stack as an ImageJ hyperstack, and an RGB slide-like
tiled TIFF. Together they exercise SubIFD pyramids, channels, z, RGB and compression.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

DEMO_VERSION = "1"


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
        "Channel": {"Name": ["DAPI", "GFP", "mCherry"], "Color": [-16776961, 16711935, -65281]},
        "Name": "demo pyramid",
    }
    options: dict[str, Any] = {"tile": (256, 256), "compression": "zstd", "predictor": True}
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        tif.write(levels[0], subifds=len(levels) - 1, metadata=metadata, **options)
        for level in levels[1:]:
            tif.write(level, subfiletype=1, **options)


def write_zstack_imagej(path: Path) -> None:
    volume = (_blobs((48, 256, 256), 40, 9.0, seed=7) * 180).clip(0, 255).astype(np.uint8)
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


DEMO_FILES: dict[str, Callable[[Path], None]] = {
    "pyramid-3channel.ome.tif": write_pyramid_ome_tiff,
    "zstack-imagej.tif": write_zstack_imagej,
    "rgb-tiled.tif": write_rgb_tiled,
}


def ensure_demo_files(directory: Path | None = None) -> Path:
    """Write the demo files once (atomically) and return their folder."""
    folder = directory or default_demo_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for name, write in DEMO_FILES.items():
        target = folder / name
        if target.exists():
            continue
        partial = folder / f".{name}.partial"
        write(partial)
        partial.replace(target)
    return folder
