"""gateway.ngff.metadata: zarr v3 ``zarr.json`` documents that strict clients accept."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from zarr.core.metadata.v3 import ArrayV3Metadata

from gateway.ngff.codecs import ChunkEncoding
from gateway.ngff.metadata import array_document, data_type_name, dumps, group_document, json_fill_value

ARRAY_KEYS = {
    "zarr_format",
    "node_type",
    "shape",
    "data_type",
    "chunk_grid",
    "chunk_key_encoding",
    "fill_value",
    "codecs",
    "attributes",
    "dimension_names",
    "storage_transformers",
}


def document(dtype="uint16", fill_value=0, **overrides):
    options = dict(
        shape=(2, 300, 200),
        dtype=np.dtype(dtype),
        chunk_shape=(1, 256, 256),
        fill_value=fill_value,
        encoding=ChunkEncoding.from_settings("zstd", 1),
        dimension_names=("c", "y", "x"),
    )
    options.update(overrides)
    return array_document(**options)


@pytest.mark.parametrize(
    ("dtype", "name"),
    [
        ("bool", "bool"),
        ("u1", "uint8"),
        ("i1", "int8"),
        ("<u2", "uint16"),
        (">u2", "uint16"),
        (">i2", "int16"),
        ("u4", "uint32"),
        ("i4", "int32"),
        ("u8", "uint64"),
        (">i8", "int64"),
        ("f2", "float16"),
        (">f4", "float32"),
        ("<f8", "float64"),
    ],
)
def test_data_type_is_a_name(dtype, name):
    assert data_type_name(np.dtype(dtype)) == name


@pytest.mark.parametrize("dtype", ["c8", "c16", "U4", "S4", "M8[s]", "O"])
def test_unsupported_data_type_raises(dtype):
    with pytest.raises(ValueError):
        data_type_name(np.dtype(dtype))


@pytest.mark.parametrize(
    ("value", "dtype", "expected"),
    [
        (float("nan"), "f4", "NaN"),
        (float("inf"), "f8", "Infinity"),
        (float("-inf"), "f4", "-Infinity"),
        (1.5, "f4", 1.5),
        (0, "f4", 0.0),
        (7, "u2", 7),
        (-3, "i2", -3),
        (2**64 - 1, "u8", 2**64 - 1),
        (1, "bool", True),
    ],
)
def test_fill_value_is_json_safe(value, dtype, expected):
    result = json_fill_value(value, np.dtype(dtype))
    assert result == expected and type(result) is type(expected)


def test_integer_fill_value_stays_an_integer_in_json():
    assert '"fill_value": 0,' in dumps(document()).decode()


def test_nan_fill_value_is_a_string_in_json():
    assert json.loads(dumps(document("f4", float("nan"))))["fill_value"] == "NaN"


def test_dumps_rejects_bare_nan():
    with pytest.raises(ValueError):
        dumps({"x": math.nan})


def test_dumps_rejects_bare_infinity():
    with pytest.raises(ValueError):
        dumps({"x": math.inf})


def test_array_has_no_unknown_top_level_keys():
    assert set(document()) <= ARRAY_KEYS


def test_array_has_every_required_key():
    assert ARRAY_KEYS - {"storage_transformers"} <= set(document())


def test_array_dimension_names_match_axes():
    assert document()["dimension_names"] == ["c", "y", "x"]


def test_array_attributes_are_an_object_not_null():
    assert document()["attributes"] == {}


def test_array_chunk_key_encoding_is_default_with_slash():
    assert document()["chunk_key_encoding"] == {"name": "default", "configuration": {"separator": "/"}}


def test_array_shape_and_chunks_are_plain_ints():
    doc = json.loads(dumps(document(shape=(np.int64(2), np.int64(300), np.int64(200)))))
    assert doc["shape"] == [2, 300, 200]


def test_array_data_type_is_not_a_numpy_string():
    assert document(">u2")["data_type"] == "uint16"


@pytest.mark.parametrize(
    ("dtype", "fill"), [("u2", 0), ("f4", float("nan")), (">i4", -1), ("f8", float("inf"))]
)
def test_zarr_python_parses_the_array_document(dtype, fill):
    metadata = ArrayV3Metadata.from_dict(json.loads(dumps(document(dtype, fill))))
    assert metadata.dimension_names == ("c", "y", "x")


def test_group_document():
    assert group_document() == {"zarr_format": 3, "node_type": "group", "attributes": {}}


def test_group_attributes_are_kept():
    assert group_document({"ome": {"version": "0.5"}})["attributes"] == {"ome": {"version": "0.5"}}
