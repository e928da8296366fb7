"""Virtual shards: zarr v3's ``sharding_indexed`` codec, declared and assembled.

A shard is a block of inner chunks stored as one object: the inner chunks, each encoded
as the unsharded array's chunks are (the same codec pipeline), concatenated in C order,
then the index. The index holds an ``(offset, nbytes)`` pair of little-endian uint64 per
inner chunk, in C order of the shard's inner grid, followed by its crc32c (the index
codecs zarr-python writes by default); an absent inner chunk (all fill) has both set to
2**64 - 1. The index sits at the end, so a client reads it with one suffix ``Range``
(``bytes=-<index_nbytes>``) and then each inner chunk with one range.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

import google_crc32c
import numpy as np

#: The offset and size of an absent inner chunk in the index.
ABSENT = 2**64 - 1
#: How the index is encoded: what zarr-python writes by default.
INDEX_CODECS: list[dict[str, Any]] = [
    {"name": "bytes", "configuration": {"endian": "little"}},
    {"name": "crc32c"},
]


def codec_json(chunk_shape: Sequence[int], inner_codecs: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``sharding_indexed`` codec of an array whose inner chunks are ``chunk_shape``
    encoded by ``inner_codecs`` (the codecs the unsharded array declares)."""
    return {
        "name": "sharding_indexed",
        "configuration": {
            "chunk_shape": [int(c) for c in chunk_shape],
            "codecs": inner_codecs,
            "index_codecs": INDEX_CODECS,
            "index_location": "end",
        },
    }


def index_nbytes(chunks_per_shard: Sequence[int]) -> int:
    """Size of a shard's index: 16 bytes per inner chunk and the 4-byte checksum."""
    return 16 * math.prod(chunks_per_shard) + 4


def inner_chunks(
    shard: Sequence[int], chunks_per_shard: Sequence[int], grid: Sequence[int]
) -> Iterator[tuple[int, ...] | None]:
    """The inner chunk coordinates (of the array's chunk grid) of shard ``shard``, in the
    C order of its index; None for places beyond the grid (an edge shard's overhang)."""
    for local in itertools.product(*map(range, chunks_per_shard)):
        coords = tuple(s * n + i for s, n, i in zip(shard, chunks_per_shard, local, strict=True))
        yield coords if all(c < g for c, g in zip(coords, grid, strict=True)) else None


def assemble(chunks: Sequence[bytes | None]) -> bytes | None:
    """A shard's bytes from its encoded inner chunks in index order (None: absent, all
    fill); None when every one is absent (the shard is absent too)."""
    index = np.full((len(chunks), 2), ABSENT, dtype="<u8")
    offset = 0
    for position, chunk in enumerate(chunks):
        if chunk is not None:
            index[position] = offset, len(chunk)
            offset += len(chunk)
    if all(chunk is None for chunk in chunks):
        return None
    index_bytes = index.tobytes()
    checksum = np.uint32(google_crc32c.value(index_bytes)).astype("<u4").tobytes()
    return b"".join([*(chunk for chunk in chunks if chunk is not None), index_bytes, checksum])
