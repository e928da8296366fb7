"""An independent rendering of a thumbnail, for the tests (it never calls the gateway's code).

It follows the rules of the README: the coarsest level whose longer side is at least
224 px (7/8 of 256), the first t and middle z, each channel through its window times its
colour, summed and clipped, then area-averaged to fit 256 px (computed here with an
integral image, where the gateway sums boxes with ``np.add.reduceat``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SIDE = 256
ENOUGH = 224


def level_index(sides: Sequence[int]) -> int:
    """The level a thumbnail reads, from each level's longer side (finest first)."""
    large = [i for i, side in enumerate(sides) if side >= ENOUGH]
    return large[-1] if large else 0


def thumbnail_size(height: int, width: int) -> tuple[int, int]:
    longer = max(height, width)
    if longer <= SIDE:
        return height, width
    return max(1, round(height * SIDE / longer)), max(1, round(width * SIDE / longer))


def hex_rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (0, 2, 4)], dtype=np.float64) / 255.0


def composite(
    planes: np.ndarray, colors: Sequence[str], windows: Sequence[tuple[float, float]]
) -> np.ndarray:
    """``(C, H, W)`` channels as an RGB picture in [0, 1] (float64)."""
    picture = np.zeros((*planes.shape[1:], 3))
    for values, color, (start, end) in zip(planes, colors, windows, strict=True):
        values = values.astype(np.float64)
        if end > start:
            level = np.clip((values - start) / (end - start), 0.0, 1.0)
        else:
            level = (values >= start).astype(np.float64)
        level[np.isnan(level)] = 0.0
        picture += level[..., None] * hex_rgb(color)
    return np.minimum(picture, 1.0)


def area_average(picture: np.ndarray, height: int, width: int) -> np.ndarray:
    """Each output pixel: the mean of its box of input pixels (integral-image sums)."""
    big_h, big_w = picture.shape[:2]
    integral = np.zeros((big_h + 1, big_w + 1, picture.shape[2]))
    integral[1:, 1:] = picture.cumsum(0).cumsum(1)
    rows = [i * big_h // height for i in range(height + 1)]
    cols = [j * big_w // width for j in range(width + 1)]
    out = np.empty((height, width, picture.shape[2]))
    for i in range(height):
        r0, r1 = rows[i], rows[i + 1]
        block = integral[r1] - integral[r0]  # (W + 1, K): column sums of rows r0..r1
        for j in range(width):
            c0, c1 = cols[j], cols[j + 1]
            out[i, j] = (block[c1] - block[c0]) / ((r1 - r0) * (c1 - c0))
    return out


def reference_thumbnail(
    planes: np.ndarray, colors: Sequence[str], windows: Sequence[tuple[float, float]]
) -> np.ndarray:
    """The 8-bit RGB thumbnail of one plane ``(C, H, W)`` of the chosen level."""
    picture = composite(planes, colors, windows)
    height, width = thumbnail_size(*planes.shape[1:])
    return np.rint(area_average(picture, height, width) * 255.0).astype(np.uint8)


def omero_styles(group: dict) -> tuple[list[str], list[tuple[float, float]]]:
    """Colours and windows from a served image group's ``zarr.json``."""
    channels = group["attributes"]["ome"]["omero"]["channels"]
    return [c["color"] for c in channels], [(c["window"]["start"], c["window"]["end"]) for c in channels]
