"""adapters.io.chunked: regions read from stored chunks (coalesced preads) and axis mapping."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from adapters.base import NoTileCache, SourceReadError
from adapters.io import chunked
from adapters.io.chunked import COALESCE_GAP_BYTES, Extent, MappedLevel, StoredArray


class FakeFile:
    """A file in memory that counts its positional reads."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.path = Path("in-memory.bin")
        self.reads: list[tuple[int, int]] = []

    def pread(self, offset: int, size: int) -> bytes:
        self.reads.append((offset, size))
        return self.blob[offset : offset + size]


class FakeCodec:
    """Chunks stored as raw bytes, full size (edges padded), at recorded extents."""

    def __init__(self, extents, chunk_shape, dtype, fail=(), short=()):
        self.extents = extents
        self.chunk_shape = chunk_shape
        self.dtype = dtype
        self.fail = set(fail)
        self.short = set(short)

    def locate(self, coords):
        return self.extents.get(coords)

    def decode(self, coords, data):
        if coords in self.fail:
            raise RuntimeError("garbage")
        chunk = np.frombuffer(data, dtype=self.dtype).reshape(self.chunk_shape)
        return chunk[:1] if coords in self.short else chunk


class DictTiles:
    """A TileCache that keeps everything (to see what is read twice)."""

    def __init__(self):
        self.values = {}

    def get_many(self, keys, compute, remember=True):
        missing = [k for k in keys if k not in self.values]
        found = compute(missing) if missing else {}
        if remember:
            self.values.update(found)
        return [self.values[k] if k in self.values else found[k] for k in keys]


def stored(
    data,
    chunk_shape,
    *,
    gap=0,
    order=None,
    missing=(),
    fill_value=0,
    tiles=None,
    stored_dtype=None,
    **codec_options,
):
    """A StoredArray over ``data`` cut in ``chunk_shape`` chunks written back to back
    (``gap`` bytes apart, in ``order``); chunks in ``missing`` are not stored."""
    stored_dtype = np.dtype(stored_dtype or data.dtype)
    grid = [range(math.ceil(n / c)) for n, c in zip(data.shape, chunk_shape, strict=True)]
    coords_list = list(itertools.product(*grid))
    if order == "reversed":
        coords_list.reverse()
    blob = bytearray()
    extents = {}
    for coords in coords_list:
        if coords in missing:
            continue
        chunk = np.full(chunk_shape, fill_value, dtype=stored_dtype)
        region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, chunk_shape, strict=True))
        part = data[region]
        chunk[tuple(slice(0, n) for n in part.shape)] = part
        raw = chunk.tobytes()
        extents[coords] = Extent(0, len(blob), len(raw))
        blob += raw + b"\xee" * gap
    file = FakeFile(bytes(blob))
    array = StoredArray(
        key="k",
        shape=data.shape,
        chunk_shape=chunk_shape,
        dtype=stored_dtype,
        fill_value=fill_value,
        codec=FakeCodec(extents, chunk_shape, stored_dtype, **codec_options),
        files=[file],
        tiles=tiles or NoTileCache(),
    )
    return array, file


def ramp(shape, dtype=np.uint16):
    return (np.arange(math.prod(shape)) % 60000 + 1).astype(dtype).reshape(shape)


def region(*bounds):
    return tuple(slice(a, b) for a, b in bounds)


# -- StoredArray -----------------------------------------------------------------------------------


def test_read_whole_array():
    data = ramp((50, 70))
    array, _ = stored(data, (16, 16))
    np.testing.assert_array_equal(array.read(region((0, 50), (0, 70))), data)


@pytest.mark.parametrize(
    "bounds",
    [
        ((15, 17), (15, 17)),
        ((0, 1), (0, 70)),
        ((10, 50), (33, 34)),
        ((48, 50), (60, 70)),
        ((16, 32), (16, 32)),
    ],
)
def test_read_region_crossing_chunk_edges(bounds):
    data = ramp((50, 70))
    array, _ = stored(data, (16, 16))
    np.testing.assert_array_equal(array.read(region(*bounds)), data[region(*bounds)])


def test_read_three_dimensional_region():
    data = ramp((5, 20, 30))
    array, _ = stored(data, (2, 8, 8))
    np.testing.assert_array_equal(array.read(region((1, 4), (7, 19), (3, 29))), data[1:4, 7:19, 3:29])


def test_empty_region_reads_nothing():
    array, file = stored(ramp((20, 20)), (8, 8))
    assert array.read(region((3, 3), (0, 20))).shape == (0, 20)
    assert file.reads == []


def test_unstored_chunk_reads_as_fill_value():
    data = ramp((32, 32))
    array, _ = stored(data, (16, 16), missing={(0, 1)}, fill_value=7)
    assert (array.read(region((0, 16), (16, 32))) == 7).all()


def test_unstored_chunk_does_not_disturb_its_neighbours():
    data = ramp((32, 32))
    array, _ = stored(data, (16, 16), missing={(0, 1)})
    np.testing.assert_array_equal(array.read(region((16, 32), (0, 32))), data[16:])


def test_big_endian_storage_reads_native_values():
    data = ramp((20, 20))
    array, _ = stored(data, (8, 8), stored_dtype=">u2")
    np.testing.assert_array_equal(array.read(region((0, 20), (0, 20))), data)


def test_big_endian_storage_has_a_native_dtype():
    array, _ = stored(ramp((20, 20)), (8, 8), stored_dtype=">u2")
    assert array.dtype.isnative


def test_undecodable_chunk_is_a_source_read_error():
    array, _ = stored(ramp((32, 32)), (16, 16), fail={(1, 1)})
    with pytest.raises(SourceReadError):
        array.read(region((0, 32), (0, 32)))


def test_chunk_decoded_too_small_is_a_source_read_error():
    array, _ = stored(ramp((32, 32)), (16, 16), short={(0, 0)})
    with pytest.raises(SourceReadError):
        array.read(region((0, 16), (0, 16)))


@pytest.mark.parametrize("chunk_shape", [(0, 8), (8,), (8, 8, 1)])
def test_bad_chunk_shape_is_rejected(chunk_shape):
    codec = FakeCodec({}, chunk_shape, np.dtype("u2"))
    with pytest.raises(ValueError):
        StoredArray(
            key="k",
            shape=(8, 8),
            chunk_shape=chunk_shape,
            dtype=np.dtype("u2"),
            fill_value=0,
            codec=codec,
            files=[],
            tiles=NoTileCache(),
        )


# -- coalescing ------------------------------------------------------------------------------------


def test_adjacent_chunks_are_read_with_one_pread():
    array, file = stored(ramp((32, 64)), (16, 16))
    array.read(region((0, 32), (0, 64)))
    assert len(file.reads) == 1


def test_one_pread_covers_exactly_the_chunks_needed():
    array, file = stored(ramp((32, 64)), (16, 16))
    array.read(region((0, 16), (16, 48)))  # chunks (0,1) and (0,2), adjacent in the file
    assert file.reads == [(16 * 16 * 2, 2 * 16 * 16 * 2)]


def test_chunks_stored_in_reverse_order_are_still_coalesced():
    data = ramp((32, 64))
    array, file = stored(data, (16, 16), order="reversed")
    np.testing.assert_array_equal(array.read(region((0, 32), (0, 64))), data)
    assert len(file.reads) == 1


def test_small_gaps_are_read_through():
    array, file = stored(ramp((32, 32)), (16, 16), gap=100)
    array.read(region((0, 32), (0, 32)))
    assert len(file.reads) == 1


def test_large_gaps_split_the_reads():
    array, file = stored(ramp((32, 32)), (16, 16), gap=COALESCE_GAP_BYTES + 1)
    array.read(region((0, 32), (0, 32)))
    assert len(file.reads) == 4


def test_data_across_gaps_is_right():
    data = ramp((32, 32))
    array, _ = stored(data, (16, 16), gap=100)
    np.testing.assert_array_equal(array.read(region((0, 32), (0, 32))), data)


def test_a_coalesced_read_is_bounded(monkeypatch):
    monkeypatch.setattr(chunked, "COALESCE_MAX_BYTES", 2 * 16 * 16 * 2)
    array, file = stored(ramp((16, 128)), (16, 16))  # 8 chunks of 512 bytes
    array.read(region((0, 16), (0, 128)))
    assert len(file.reads) == 4


def test_unstored_chunk_is_not_read():
    array, file = stored(ramp((16, 48)), (16, 16), missing={(0, 1)})
    array.read(region((0, 16), (0, 48)))
    assert sum(size for _offset, size in file.reads) == 2 * 16 * 16 * 2


def test_cached_chunks_are_not_read_again():
    array, file = stored(ramp((32, 32)), (16, 16), tiles=DictTiles())
    array.read(region((0, 32), (0, 32)))
    array.read(region((5, 20), (5, 20)))
    assert len(file.reads) == 1


def test_read_raw_returns_the_stored_bytes():
    data = ramp((32, 32))
    array, _ = stored(data, (16, 16))
    assert array.read_raw((1, 0)) == data[16:, :16].tobytes()


def test_read_raw_of_an_unstored_chunk_is_none():
    array, _ = stored(ramp((32, 32)), (16, 16), missing={(1, 0)})
    assert array.read_raw((1, 0)) is None


# -- MappedLevel -------------------------------------------------------------------------------------


def test_transposed_view():
    data = ramp((6, 8, 3))  # y, x, samples
    array, _ = stored(data, (4, 4, 3))
    level = MappedLevel(array, [[2], [0], [1]])  # c, y, x
    np.testing.assert_array_equal(level.read(region((0, 3), (0, 6), (0, 8))), data.transpose(2, 0, 1))


def test_transposed_view_shape():
    array, _ = stored(ramp((6, 8, 3)), (4, 4, 3))
    assert MappedLevel(array, [[2], [0], [1]]).shape == (3, 6, 8)


def test_transposed_view_partial_region():
    data = ramp((6, 8, 3))
    array, _ = stored(data, (4, 4, 3))
    level = MappedLevel(array, [[2], [0], [1]])
    np.testing.assert_array_equal(
        level.read(region((1, 3), (3, 5), (2, 7))), data.transpose(2, 0, 1)[1:3, 3:5, 2:7]
    )


def merged():
    """Storage (pages=2, y=6, x=8, samples=3); channels = pages x samples = 6."""
    data = ramp((2, 6, 8, 3))
    array, _ = stored(data, (1, 4, 4, 3))
    expected = data.transpose(0, 3, 1, 2).reshape(6, 6, 8)
    return MappedLevel(array, [[0, 3], [1], [2]]), expected


def test_merged_axes_shape():
    level, expected = merged()
    assert level.shape == expected.shape == (6, 6, 8)


def test_merged_axes_whole_read():
    level, expected = merged()
    np.testing.assert_array_equal(level.read(region((0, 6), (0, 6), (0, 8))), expected)


@pytest.mark.parametrize("channels", [(2, 5), (0, 1), (3, 6), (1, 4)])
def test_merged_axes_region_crossing_the_major_boundary(channels):
    level, expected = merged()
    np.testing.assert_array_equal(
        level.read(region(channels, (1, 5), (3, 8))), expected[channels[0] : channels[1], 1:5, 3:8]
    )


def test_merged_axis_tile_shape_counts_the_minor_dimension():
    level, _ = merged()
    assert level.tile_shape == (3, 4, 4)


def test_size_one_storage_dimension_may_stay_unmapped():
    data = ramp((1, 6, 8))
    array, _ = stored(data, (1, 4, 4))
    level = MappedLevel(array, [[1], [2]])
    np.testing.assert_array_equal(level.read(region((0, 6), (0, 8))), data[0])


def test_unmapped_dimension_larger_than_one_is_rejected():
    array, _ = stored(ramp((2, 6, 8)), (1, 4, 4))
    with pytest.raises(ValueError):
        MappedLevel(array, [[1], [2]])


def test_dimension_used_twice_is_rejected():
    array, _ = stored(ramp((6, 8)), (4, 4))
    with pytest.raises(ValueError):
        MappedLevel(array, [[0], [0, 1]])


def test_region_of_the_wrong_rank_is_rejected():
    array, _ = stored(ramp((6, 8)), (4, 4))
    with pytest.raises(ValueError):
        MappedLevel(array, [[0], [1]]).read(region((0, 6)))


def test_plain_view_is_recognised():
    array, _ = stored(ramp((1, 6, 8)), (1, 4, 4))
    assert MappedLevel(array, [[1], [2]]).is_plain_view()


def test_transposed_view_is_not_plain():
    array, _ = stored(ramp((6, 8, 3)), (4, 4, 3))
    assert not MappedLevel(array, [[2], [0], [1]]).is_plain_view()


def test_plain_view_storage_coords():
    array, _ = stored(ramp((1, 6, 8)), (1, 4, 4))
    assert MappedLevel(array, [[1], [2]]).storage_coords((1, 0)) == (0, 1, 0)


# -- what is stored, known without reading ---------------------------------------------------------


def test_any_stored_asks_chunk_by_chunk_without_reading():
    data = ramp((8, 8))
    array, file = stored(data, (4, 4), missing={(0, 0), (0, 1), (1, 0)})
    assert array.any_stored(region((0, 4), (0, 8))) is False  # the top row of chunks
    assert array.any_stored(region((0, 8), (0, 4))) is False
    assert array.any_stored(region((3, 5), (3, 5))) is True  # one pixel of chunk (1, 1)
    assert array.any_stored(region((2, 2), (0, 8))) is False  # empty region
    assert file.reads == []


def test_any_stored_is_unknown_beyond_the_probe_limit(monkeypatch):
    array, _ = stored(ramp((8, 8)), (1, 1), missing=set(itertools.product(range(8), range(8))))
    assert array.any_stored(region((0, 8), (0, 8))) is False
    monkeypatch.setattr(chunked, "ANY_STORED_PROBES", 63)
    assert array.any_stored(region((0, 8), (0, 8))) is True  # 64 chunks: "maybe"


@pytest.mark.parametrize(
    ("channels", "expected"),
    [((0, 3), False), ((1, 3), False), ((2, 4), True), ((3, 4), True), ((0, 6), True)],
)
def test_any_stored_maps_merged_axes_to_storage(channels, expected):
    data = ramp((2, 6, 8, 3))
    array, _ = stored(data, (1, 4, 4, 3), missing={(0, 0, 0, 0), (0, 0, 1, 0), (0, 1, 0, 0), (0, 1, 1, 0)})
    level = MappedLevel(array, [[0, 3], [1], [2]])  # channels 0..2: page 0 (absent), 3..5: page 1
    assert level.any_stored(region(channels, (0, 6), (0, 8))) is expected


def test_chunks_over_the_budget_are_refused_but_absent_ones_are_fill():
    data = ramp((8, 8))
    array, file = stored(data, (4, 4), missing={(0, 0)}, fill_value=5)
    array.max_chunk_bytes = 16  # a chunk is 32 bytes
    assert (array.read(region((0, 4), (0, 4))) == 5).all()
    with pytest.raises(SourceReadError, match="decodes to 32 bytes, more than the 16 allowed per chunk"):
        array.read(region((0, 8), (0, 8)))
    assert file.reads == []


def test_passthrough_needs_the_exact_size():
    data = ramp((8, 8))
    array, _ = stored(data, (4, 4), missing={(0, 0)})
    assert array.read_passthrough((1, 1), None, 32) == data[4:, 4:].tobytes()
    assert array.read_passthrough((1, 1), None, 33) is None  # stored bytes are not the chunk
    assert array.read_passthrough((0, 0), None, 32) is None  # not stored
    assert array.read_passthrough((1, 1), "zstd", 32) is None  # not a zstd frame


# -- what the decoded-tile cache keeps ------------------------------------------------------------


def test_a_read_of_exactly_one_stored_chunk_is_not_kept_as_a_tile():
    # its caller caches the encoded chunk; a decoded copy would only evict other tiles
    data = ramp((10, 12))
    tiles = DictTiles()
    array, _ = stored(data, (4, 4), tiles=tiles)
    np.testing.assert_array_equal(array.read(region((4, 8), (0, 4))), data[4:8, 0:4])
    np.testing.assert_array_equal(array.read(region((8, 10), (8, 12))), data[8:10, 8:12])  # edge chunk
    assert tiles.values == {}


def test_a_partial_or_spanning_read_keeps_its_tiles():
    data = ramp((10, 12))
    tiles = DictTiles()
    array, file = stored(data, (4, 4), tiles=tiles)
    np.testing.assert_array_equal(array.read(region((4, 5), (0, 4))), data[4:5, 0:4])  # one plane
    assert set(tiles.values) == {("k", (1, 0))}
    np.testing.assert_array_equal(array.read(region((0, 8), (0, 4))), data[0:8, 0:4])  # two chunks
    assert set(tiles.values) == {("k", (0, 0)), ("k", (1, 0))}
    reads = list(file.reads)
    np.testing.assert_array_equal(array.read(region((4, 8), (0, 4))), data[4:8, 0:4])  # cached: no read
    assert file.reads == reads
