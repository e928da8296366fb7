"""gateway.store.dataset (pure parts): one chunk read, padded, encoded; all-fill chunks omitted."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.ngff.codecs import ChunkEncoding
from gateway.ngff.keys import chunk_grid
from gateway.ngff.layout import ArrayNode
from gateway.store.entity import media_type_for
from gateway.store.render import is_all_fill, planes_all_fill, render_chunk
from tests.levels import ArrayLevel


def node(data, chunk_shape=(16, 16), fill_value=0):
    level = ArrayLevel(data, fill_value=fill_value)
    return ArrayNode(
        path="0",
        level=level,
        chunk_shape=chunk_shape,
        grid=chunk_grid(data.shape, chunk_shape),
        encoding=ChunkEncoding.from_settings("none", 1),
    )


def decode(raw, dtype, shape=(16, 16)):
    return np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).reshape(shape)


def test_inner_chunk_is_the_region():
    data = np.arange(1, 40 * 40 + 1, dtype=np.uint16).reshape(40, 40)
    np.testing.assert_array_equal(decode(render_chunk(node(data), (1, 0), True), "u2"), data[16:32, :16])


def test_edge_chunk_is_full_size_padded_with_fill():
    data = np.arange(1, 40 * 40 + 1, dtype=np.uint16).reshape(40, 40)
    chunk = decode(render_chunk(node(data, fill_value=9), (2, 2), True), "u2")
    assert (chunk[:8, :8] == data[32:, 32:]).all() and (chunk[8:, :] == 9).all() and (chunk[:, 8:] == 9).all()


def test_all_fill_chunk_is_omitted():
    assert render_chunk(node(np.zeros((40, 40), np.uint16)), (0, 0), True) is None


def test_all_fill_chunk_is_kept_when_not_omitting():
    assert len(render_chunk(node(np.zeros((40, 40), np.uint16)), (0, 0), False)) == 16 * 16 * 2


def test_all_nan_chunk_is_omitted_for_a_nan_fill():
    data = np.full((16, 16), np.nan, np.float32)
    assert render_chunk(node(data, fill_value=float("nan")), (0, 0), True) is None


@pytest.mark.parametrize(
    ("data", "fill", "expected"),
    [
        (np.zeros(4), 0, True),
        (np.array([0, 1]), 0, False),
        (np.full(3, 5), 5, True),
        (np.array([5, 4]), 5, False),
        (np.full(3, np.nan), float("nan"), True),
        (np.array([np.nan, 1.0]), float("nan"), False),
    ],
)
def test_is_all_fill(data, fill, expected):
    assert is_all_fill(data, fill) is expected


@pytest.mark.parametrize(
    ("key", "media_type"),
    [
        ("zarr.json", "application/json"),
        ("0/zarr.json", "application/json"),
        ("OME/METADATA.ome.xml", "application/xml"),
        ("0/c/0/0", "application/octet-stream"),
    ],
)
def test_media_type(key, media_type):
    assert media_type_for(key) == media_type


def _planes(data: np.ndarray) -> np.ndarray:
    little = np.ascontiguousarray(data.astype(data.dtype.newbyteorder("<")))
    return little.view(np.uint8).reshape(-1, data.dtype.itemsize).T


@pytest.mark.parametrize("size", [10, 200_000])  # below and above the sampled size
@pytest.mark.parametrize(
    ("dtype", "fill", "other"),
    [
        ("uint16", 0, 1),
        ("int16", -7, 7),
        ("uint32", 0, 1 << 24),  # differs only in the last byte plane
        ("float32", float("nan"), 1.0),
        ("float32", 0.0, -0.0),  # -0.0 is not the fill 0.0: other bits
        (">f8", 2.5, -2.5),
        ("int64", -1, -2),
    ],
)
def test_planes_all_fill_agrees_with_is_all_fill(size, dtype, fill, other):
    """Byte planes of a chunk are all fill exactly when the chunk is; one element off, at a
    position the sample skips, is found."""
    data = np.full(size, fill, dtype=dtype)
    assert planes_all_fill(_planes(data), fill, data.dtype) is is_all_fill(data, fill) is True
    data[size - 2] = other  # not on the sample's stride
    assert planes_all_fill(_planes(data), fill, data.dtype) is is_all_fill(data, fill) is False
