"""HDF5 filter pipelines decoded without libhdf5: one behaviour per test."""

from __future__ import annotations

import zlib

import numcodecs
import numpy as np
import pytest

from adapters.base import SourceReadError
from adapters.hdf5.filters import (
    BLOSC,
    DEFLATE,
    FLETCHER32,
    SHUFFLE,
    ZSTD,
    Filter,
    FilterPipeline,
    UnsupportedFilterError,
    unshuffle,
)

DATA = np.arange(1000, dtype="<u4").tobytes()


def shuffle(data: bytes, itemsize: int) -> bytes:
    count = len(data) // itemsize
    body = np.frombuffer(data[: count * itemsize], np.uint8).reshape(count, itemsize).T.tobytes()
    return body + data[count * itemsize :]


def pipeline(*filters: Filter, nbytes: int = len(DATA)) -> FilterPipeline:
    return FilterPipeline(tuple(filters), 4, nbytes)


def as_bytes(data: object) -> bytes:
    return np.frombuffer(data, dtype=np.uint8).tobytes()


def f(code: int, *values: int) -> Filter:
    return Filter(code, 0, tuple(values), str(code))


def test_unshuffle_undoes_shuffle() -> None:
    assert as_bytes(unshuffle(shuffle(DATA, 4), 4)) == DATA


@pytest.mark.parametrize("itemsize", [2, 3, 8])
def test_unshuffle_any_element_size(itemsize: int) -> None:
    assert as_bytes(unshuffle(shuffle(DATA, itemsize), itemsize)) == DATA


def test_unshuffle_keeps_a_trailing_partial_element() -> None:
    data = DATA + b"xyz"
    assert as_bytes(unshuffle(shuffle(data, 4), 4)) == data


def test_decode_undoes_filters_in_reverse_order() -> None:
    stored = zlib.compress(shuffle(DATA, 4))
    assert as_bytes(pipeline(f(SHUFFLE, 4), f(DEFLATE, 4)).decode(stored)) == DATA


def test_fletcher32_is_verified_and_stripped() -> None:
    stored = bytes(numcodecs.Fletcher32().encode(zlib.compress(DATA)))
    assert as_bytes(pipeline(f(DEFLATE), f(FLETCHER32)).decode(stored)) == DATA


def test_fletcher32_mismatch_raises() -> None:
    stored = bytearray(numcodecs.Fletcher32().encode(DATA))
    stored[10] ^= 0xFF
    with pytest.raises(RuntimeError):
        pipeline(f(FLETCHER32)).decode(bytes(stored))


def test_filter_mask_skips_filters() -> None:
    """Bit 1 set: the deflate stage was not applied to this chunk (stored shuffled only)."""
    assert as_bytes(pipeline(f(SHUFFLE, 4), f(DEFLATE)).decode(shuffle(DATA, 4), mask=0b10)) == DATA


def test_wrong_decoded_size_raises() -> None:
    with pytest.raises(SourceReadError, match="decoded to"):
        pipeline(f(DEFLATE), nbytes=len(DATA) + 4).decode(zlib.compress(DATA))


def test_blosc_and_zstd_decode() -> None:
    blosc = numcodecs.Blosc(cname="zstd", shuffle=numcodecs.Blosc.BITSHUFFLE).encode(DATA)
    assert as_bytes(pipeline(f(BLOSC, 2, 2, 4, len(DATA), 5, 2, 5)).decode(bytes(blosc))) == DATA
    assert as_bytes(pipeline(f(ZSTD, 3)).decode(bytes(numcodecs.Zstd(3).encode(DATA)))) == DATA


def test_single_blosc_filter_is_a_zarr_codec() -> None:
    compression = pipeline(f(BLOSC, 2, 2, 4, len(DATA), 7, 2, 1)).compression
    assert compression is not None
    assert (compression.compressor, compression.level) == ("blosc", 7)
    assert (compression.blosc_cname, compression.blosc_shuffle) == ("lz4", "bitshuffle")


def test_single_zstd_filter_is_a_zarr_codec() -> None:
    compression = pipeline(f(ZSTD, 9)).compression
    assert compression is not None and (compression.compressor, compression.level) == ("zstd", 9)


def test_single_deflate_filter_is_a_zlib_stream_to_frame() -> None:
    compression = pipeline(f(DEFLATE, 4)).compression
    assert compression is not None
    assert (compression.compressor, compression.level, compression.shuffled) == ("zlib", 4, False)


def test_deflate_after_a_shuffle_of_whole_elements_is_a_shuffled_zlib_stream() -> None:
    compression = pipeline(f(SHUFFLE, 4), f(DEFLATE, 1)).compression
    assert compression is not None
    assert (compression.compressor, compression.level, compression.shuffled) == ("zlib", 1, True)


def test_zstd_after_a_shuffle_of_whole_elements_is_a_shuffled_zstd_stream() -> None:
    compression = pipeline(f(SHUFFLE, 4), f(ZSTD, 3)).compression
    assert compression is not None
    assert (compression.compressor, compression.level, compression.shuffled) == ("zstd", 3, True)


@pytest.mark.parametrize(
    "filters",
    [
        (),
        (f(SHUFFLE, 2), f(DEFLATE, 1)),  # shuffled by 2 bytes, elements of 4: not blosc's shuffle
        (f(DEFLATE, 1), f(SHUFFLE, 4)),  # shuffled after deflate
        (f(SHUFFLE, 4), f(DEFLATE, 1), f(FLETCHER32)),  # a checksum after the stream
        (f(SHUFFLE, 2), f(ZSTD, 1)),  # shuffled by 2 bytes, elements of 4
        (f(ZSTD), f(FLETCHER32)),
    ],
)
def test_other_pipelines_are_not_zarr_codecs(filters: tuple[Filter, ...]) -> None:
    assert pipeline(*filters).compression is None


class _Plist:
    def __init__(self, *filters: tuple[int, int, tuple[int, ...], bytes]) -> None:
        self._filters = filters

    def get_nfilters(self) -> int:
        return len(self._filters)

    def get_filter(self, index: int) -> tuple[int, int, tuple[int, ...], bytes]:
        return self._filters[index]


def test_unknown_filter_is_unsupported() -> None:
    with pytest.raises(UnsupportedFilterError, match="szip"):
        FilterPipeline.from_plist(_Plist((4, 1, (), b"szip")), 2, 100)


def test_known_filters_are_read_from_the_plist() -> None:
    parsed = FilterPipeline.from_plist(_Plist((2, 1, (2,), b"shuffle"), (1, 1, (4,), b"deflate")), 2, 100)
    assert [s.id for s in parsed.filters] == [SHUFFLE, DEFLATE]
    assert parsed.describe() == "shuffle+deflate"


@pytest.mark.parametrize("itemsize", [1, 2, 4, 8])
def test_chunks_decoded_one_after_another_own_their_bytes(itemsize: int) -> None:
    # inflate writes into a per-thread scratch buffer when unshuffle copies it next: an
    # earlier chunk must not change when the next one is decoded into the same scratch
    first, second = DATA, bytes(reversed(DATA))
    chain = FilterPipeline((f(SHUFFLE, itemsize), f(DEFLATE, 1)), itemsize, len(DATA))
    decoded_first = chain.decode(zlib.compress(shuffle(first, itemsize)))
    decoded_second = chain.decode(zlib.compress(shuffle(second, itemsize)))
    assert as_bytes(decoded_first) == first
    assert as_bytes(decoded_second) == second


@pytest.mark.parametrize("dtype", ["<u2", "<i2", "<u4", "<f4", "<u8", "<f8"])
def test_unshuffle_matches_numcodecs(dtype: str) -> None:
    values = np.random.default_rng(7).integers(0, 2**15, 4099).astype(dtype)
    shuffled = numcodecs.Shuffle(values.dtype.itemsize).encode(values)
    assert as_bytes(unshuffle(shuffled, values.dtype.itemsize)) == values.tobytes()


# -- chunks still byte-shuffled (decode_shuffled) ------------------------------------------


def planes_of(data: bytes, itemsize: int) -> bytes:
    """What decode_shuffled must give: the shuffled bytes as stored."""
    return shuffle(data, itemsize)


@pytest.mark.parametrize(
    "filters, encode",
    [
        ((f(SHUFFLE, 4), f(DEFLATE, 1)), lambda d: zlib.compress(d)),
        ((f(SHUFFLE, 4), f(ZSTD, 3)), lambda d: bytes(numcodecs.Zstd(3).encode(d))),
        (
            (f(SHUFFLE, 4), f(DEFLATE, 1), f(FLETCHER32)),
            lambda d: bytes(numcodecs.Fletcher32().encode(np.frombuffer(zlib.compress(d), np.uint8))),
        ),
        ((f(SHUFFLE, 4),), lambda d: d),
    ],
    ids=["shuffle-deflate", "shuffle-zstd", "shuffle-deflate-fletcher32", "shuffle-alone"],
)
def test_decode_shuffled_stops_before_the_shuffle(filters: tuple[Filter, ...], encode) -> None:
    stored = encode(shuffle(DATA, 4))
    chain = pipeline(*filters)
    assert chain.shuffles_first
    assert as_bytes(chain.decode_shuffled(stored)) == planes_of(DATA, 4)
    assert as_bytes(chain.decode(stored)) == DATA  # the full decode is unchanged


def test_decode_shuffled_of_consecutive_chunks_reuses_nothing_it_returned_unsafely() -> None:
    """The result may be this thread's scratch buffer: a second decode replaces it, so
    callers use it at once; the full decode still owns its bytes."""
    chain = pipeline(f(SHUFFLE, 4), f(DEFLATE, 1))
    other = np.arange(1000, 2000, dtype="<u4").tobytes()
    first = as_bytes(chain.decode_shuffled(zlib.compress(shuffle(DATA, 4))))
    second = as_bytes(chain.decode_shuffled(zlib.compress(shuffle(other, 4))))
    assert first == planes_of(DATA, 4) and second == planes_of(other, 4)


def test_decode_shuffled_is_none_when_the_mask_skipped_the_shuffle() -> None:
    chain = pipeline(f(SHUFFLE, 4), f(DEFLATE, 1))
    assert chain.decode_shuffled(zlib.compress(DATA), mask=0b01) is None


def test_decode_shuffled_with_the_compressor_skipped_gives_the_stored_planes() -> None:
    chain = pipeline(f(SHUFFLE, 4), f(DEFLATE, 1))
    assert as_bytes(chain.decode_shuffled(shuffle(DATA, 4), mask=0b10)) == planes_of(DATA, 4)


@pytest.mark.parametrize(
    "filters",
    [
        (),
        (f(DEFLATE, 1),),
        (f(DEFLATE, 1), f(SHUFFLE, 4)),  # shuffled after compressing: not the elements' bytes
        (f(SHUFFLE, 2), f(DEFLATE, 1)),  # shuffled by another element size
    ],
    ids=["none", "deflate", "shuffle-last", "other-element-size"],
)
def test_pipelines_that_do_not_shuffle_elements_first_give_no_planes(filters: tuple[Filter, ...]) -> None:
    chain = pipeline(*filters)
    assert not chain.shuffles_first
    assert chain.decode_shuffled(DATA) is None


def test_one_byte_elements_have_nothing_to_shuffle() -> None:
    chain = FilterPipeline((f(SHUFFLE, 1), f(DEFLATE, 1)), 1, len(DATA))
    assert not chain.shuffles_first


def test_decode_shuffled_checks_the_size_and_the_budget() -> None:
    chain = pipeline(f(SHUFFLE, 4), f(DEFLATE, 1))
    with pytest.raises(SourceReadError, match="instead of"):
        chain.decode_shuffled(zlib.compress(DATA[:-4]))
    small = FilterPipeline((f(SHUFFLE, 4), f(DEFLATE, 1)), 4, len(DATA), max_bytes=100)
    with pytest.raises(SourceReadError, match="allowed per chunk"):
        small.decode_shuffled(zlib.compress(DATA))


def test_a_short_deflate_stream_under_a_shuffle_raises_not_reads_a_stale_buffer() -> None:
    """Inflated into this thread's reused buffer, a stream that ends early must not let
    the previous chunk's bytes fill the rest (a hostile file would read other files)."""
    chain = pipeline(f(SHUFFLE, 4), f(DEFLATE, 1))
    chain.decode(zlib.compress(shuffle(DATA, 4)))  # the buffer now holds a whole chunk
    short = zlib.compress(shuffle(DATA, 4)[:-400])
    with pytest.raises(SourceReadError, match="instead of"):
        chain.decode(short)
    with pytest.raises(SourceReadError, match="instead of"):
        chain.decode_shuffled(short)
