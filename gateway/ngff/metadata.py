"""Zarr v3 ``zarr.json`` documents for groups and arrays.

Written the way real clients need it (each rule is one a zarr reader breaks on): no unknown
top-level keys, ``data_type`` by name, endianness in the ``bytes`` codec, a JSON-safe mandatory
``fill_value``, ``dimension_names`` on every array, default chunk key encoding with ``/``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from gateway.ngff import shards
from gateway.ngff.codecs import ChunkEncoding

_DATA_TYPES = {
    "b1": "bool",
    "i1": "int8",
    "i2": "int16",
    "i4": "int32",
    "i8": "int64",
    "u1": "uint8",
    "u2": "uint16",
    "u4": "uint32",
    "u8": "uint64",
    "f2": "float16",
    "f4": "float32",
    "f8": "float64",
}


def data_type_name(dtype: np.dtype[Any]) -> str:
    """Zarr v3 data type name (``uint16``), whatever the byte order of ``dtype``."""
    key = f"{dtype.kind}{dtype.itemsize}"
    if key not in _DATA_TYPES:
        raise ValueError(f"no zarr v3 data type for {dtype}")
    return _DATA_TYPES[key]


def json_fill_value(value: int | float | bool, dtype: np.dtype[Any]) -> int | float | bool | str:
    """Fill value as zarr v3 JSON: integers stay integers; NaN/inf become strings."""
    if dtype.kind == "b":
        return bool(value)
    if dtype.kind in "iu":
        return int(value)
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return number


def array_document(
    *,
    shape: Sequence[int],
    dtype: np.dtype[Any],
    chunk_shape: Sequence[int],
    fill_value: int | float,
    encoding: ChunkEncoding,
    dimension_names: Sequence[str],
    attributes: dict[str, Any] | None = None,
    shard_shape: Sequence[int] | None = None,
) -> dict[str, Any]:
    """An array's ``zarr.json``; with ``shard_shape``, its chunks are shards of that shape
    holding ``chunk_shape`` inner chunks encoded by ``encoding``."""
    codecs = encoding.to_json(dtype)
    if shard_shape is not None:
        codecs = [shards.codec_json(chunk_shape, codecs)]
        chunk_shape = shard_shape
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [int(n) for n in shape],
        "data_type": data_type_name(dtype),
        "chunk_grid": {
            "name": "regular",
            "configuration": {"chunk_shape": [int(c) for c in chunk_shape]},
        },
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": json_fill_value(fill_value, dtype),
        "codecs": codecs,
        "attributes": attributes or {},
        "dimension_names": list(dimension_names),
    }


def group_document(attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"zarr_format": 3, "node_type": "group", "attributes": attributes or {}}


def dumps(document: dict[str, Any]) -> bytes:
    """Serialise strictly (no bare NaN) and readably."""
    return json.dumps(document, indent=2, allow_nan=False).encode()
