"""Strict parsing of zarr v3 chunk keys (default encoding, ``/`` separator).

A key is ``c/<i>/<j>/...`` with exactly one non-negative decimal integer per dimension,
inside the chunk grid. Anything else is not a chunk of the array (→ 404): ``c/01``,
``c/-1``, ``c/1.0``, ``c/ 1``, a wrong count, an index beyond the grid.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Sequence

_INDEX = re.compile(r"0|[1-9][0-9]{0,17}")


#: Last segments of the keys a dataset can have besides chunk indices.
_DOCUMENT_NAMES = ("zarr.json", "ro-crate-metadata.json")
_DOCUMENT_SUFFIXES = (".xml",)
#: Last segment of an image's thumbnail (``gateway.store.thumbnails``): ``thumbnail.png``,
#: ``thumbnail.webp``, and one channel's ``thumbnail.c<N>.png`` / ``.webp``.
THUMBNAIL_NAME = re.compile(r"thumbnail(?:\.c(0|[1-9][0-9]{0,5}))?\.(png|webp)")
#: ... and those of its Zarr v2 view (``gateway/ngff/zarr_v2.py``).
_V2_DOCUMENT_NAMES = (".zgroup", ".zattrs", ".zarray", ".zmetadata", "ro-crate-metadata.json")


def may_be_key(path: str) -> bool:
    """Whether ``path`` could name a served key: its last segment is ``zarr.json``, an
    XML document, the RO-Crate, a thumbnail or a chunk index. Client probes (``.zattrs``,
    ``.zarray``, ``.zmetadata``, ``info``, ``attributes.json``...) cannot, so they answer
    404 without touching a file."""
    last = path.rpartition("/")[2]
    return (
        last in _DOCUMENT_NAMES
        or last.endswith(_DOCUMENT_SUFFIXES)
        or _INDEX.fullmatch(last) is not None
        or THUMBNAIL_NAME.fullmatch(last) is not None
    )


def may_be_v2_key(path: str) -> bool:
    """``may_be_key`` for the Zarr v2 view: ``.zgroup``, ``.zattrs``, ``.zarray``,
    ``.zmetadata``, XML, the RO-Crate or a chunk index (``zarr.json`` is not served there)."""
    last = path.rpartition("/")[2]
    return (
        last in _V2_DOCUMENT_NAMES or last.endswith(_DOCUMENT_SUFFIXES) or _INDEX.fullmatch(last) is not None
    )


def chunk_grid(shape: Sequence[int], chunk_shape: Sequence[int]) -> tuple[int, ...]:
    """Number of chunks along each dimension."""
    return tuple(math.ceil(n / c) for n, c in zip(shape, chunk_shape, strict=True))


def grid_chunk_keys(prefix: str, grid: Sequence[int], separator: str = "/") -> Iterator[str]:
    """Every chunk key of an array whose keys start with ``prefix`` (its path and a ``/``,
    or "" at the root), in C order of ``grid``."""
    for coords in itertools.product(*map(range, grid)):
        yield prefix + separator.join(["c", *map(str, coords)])


def parse_chunk_key(key: str, grid: Sequence[int]) -> tuple[int, ...] | None:
    """Grid coordinates of ``key`` (relative to the array), or None if it is not a chunk."""
    parts = key.split("/")
    if parts[0] != "c" or len(parts) != len(grid) + 1:
        return None
    coords = []
    for part, size in zip(parts[1:], grid, strict=True):
        if not _INDEX.fullmatch(part):
            return None
        index = int(part)
        if index >= size:
            return None
        coords.append(index)
    return tuple(coords)


def chunk_region(
    coords: Sequence[int], chunk_shape: Sequence[int], shape: Sequence[int]
) -> tuple[slice, ...]:
    """The region of the array a chunk covers, clipped to the array (edge chunks)."""
    return tuple(
        slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(coords, chunk_shape, shape, strict=True)
    )
