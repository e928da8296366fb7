"""Frame headers read without decoding, and the pass-through check built on them."""

from __future__ import annotations

import struct
import zlib

import imagecodecs
import numcodecs
import numpy as np
import pytest

from adapters.io.frames import (
    FrameError,
    blosc_header,
    lz4h5_total,
    passthrough_problem,
    zlib_header_problem,
    zstd_content_size,
    zstd_frame,
)
from tests.hostile.frames import blosc_lying_header, blosc_zstd_frame, lz4_h5_frame, zstd_rle_frame

GiB = 1024**3
SIZES = [1, 255, 256, 257, 65_535, 65_536, 65_792, 300_000, 1_000_000]


def _data(nbytes: int) -> bytes:
    return np.random.default_rng(nbytes).integers(0, 4, nbytes, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("nbytes", SIZES)
@pytest.mark.parametrize(
    "encode",
    [
        lambda d: imagecodecs.zstd_encode(d, level=1),
        lambda d: imagecodecs.zstd_encode(d, level=9),
        lambda d: bytes(numcodecs.Zstd(level=3, checksum=True).encode(d)),
    ],
    ids=["level1", "level9", "checksum"],
)
def test_zstd_frames_of_real_encoders_are_walked_to_their_end(nbytes: int, encode) -> None:
    encoded = encode(_data(nbytes))
    frame = zstd_frame(encoded)
    assert frame.content_size == nbytes
    assert frame.length == len(encoded)
    assert passthrough_problem("zstd", encoded, nbytes) is None


def test_zstd_bomb_declares_its_size_in_a_few_bytes() -> None:
    bomb = zstd_rle_frame(2 * GiB)  # 64 KiB of RLE blocks
    assert len(bomb) < 100_000
    assert zstd_content_size(bomb) == 2 * GiB
    assert (
        passthrough_problem("zstd", bomb, 65_536) == "zstd data declares 2147483648 decoded bytes, not 65536"
    )


def test_a_zstd_header_that_understates_its_blocks_is_refused() -> None:
    lying = zstd_rle_frame(2 * GiB, declared=65_536)
    assert zstd_content_size(lying) == 65_536  # the header alone looks right...
    with pytest.raises(FrameError, match="regenerate more than the 65536 bytes"):
        zstd_frame(lying)  # ...its RLE blocks do not
    assert passthrough_problem("zstd", lying, 65_536) is not None


def test_data_after_the_frame_is_refused() -> None:
    honest = imagecodecs.zstd_encode(_data(1000))
    assert (
        passthrough_problem("zstd", honest + b"\0", 1000)
        == f"zstd frame is {len(honest)} bytes of {len(honest) + 1} stored"
    )
    assert passthrough_problem("zstd", honest + honest, 1000) is not None  # a second frame


def test_a_frame_without_a_declared_size_is_refused() -> None:
    frame = bytearray(zstd_rle_frame(1000))
    # descriptor: no content size, not single segment; then a window descriptor byte
    unsized = bytes(frame[:4]) + bytes([0x00, 0x50]) + bytes(frame[13:])
    assert zstd_frame(unsized).content_size is None
    assert imagecodecs.zstd_decode(unsized) == bytes(1000)  # a valid frame...
    assert passthrough_problem("zstd", unsized, 1000) == "zstd data declares None decoded bytes, not 1000"


def test_a_frame_needing_a_dictionary_is_refused() -> None:
    frame = zstd_rle_frame(1000)
    with_dictionary = frame[:4] + bytes([frame[4] | 0x01, 7]) + frame[5:]
    assert zstd_frame(with_dictionary).dictionary == 7
    assert passthrough_problem("zstd", with_dictionary, 1000) == "zstd frame needs a dictionary"


@pytest.mark.parametrize(
    "broken",
    [
        b"",
        b"\x28\xb5\x2f",
        b"PK\x03\x04xxxxxxxx",
        zstd_rle_frame(300_000)[:-1],  # last block cut
        zstd_rle_frame(10)[:13],  # header only
        struct.pack("<IB", 0xFD2FB528, 0x08) + bytes(10),  # reserved bit
    ],
)
def test_malformed_zstd_is_a_frame_error(broken: bytes) -> None:
    with pytest.raises(FrameError):
        zstd_frame(broken)
    assert passthrough_problem("zstd", broken, 10) is not None


def test_a_block_larger_than_the_format_allows_is_refused() -> None:
    header = struct.pack("<IBQ", 0xFD2FB528, 0xE0, 200_000)
    raw_block = struct.pack("<I", 1 | (0 << 1) | (200_000 << 3))[:3] + bytes(200_000)
    with pytest.raises(FrameError, match="more than the format"):
        zstd_frame(header + raw_block)


@pytest.mark.parametrize("nbytes", [100, 65_536, 300_000])
def test_blosc_header_of_real_encoders(nbytes: int) -> None:
    encoded = imagecodecs.blosc_encode(_data(nbytes), level=1, compressor="zstd", typesize=2)
    header = blosc_header(encoded)
    assert (header.nbytes, header.cbytes) == (nbytes, len(encoded))
    assert passthrough_problem("blosc", encoded, nbytes) is None


def test_blosc_lies_are_refused() -> None:
    assert passthrough_problem("blosc", blosc_lying_header(2 * GiB), 65_536) == (
        "blosc data declares 2147483648 decoded bytes, not 65536"
    )
    honest = blosc_zstd_frame(65_536)
    assert passthrough_problem("blosc", honest, 65_536) is None
    assert passthrough_problem("blosc", honest + b"\0\0", 65_536) is not None  # cbytes != stored
    assert passthrough_problem("blosc", blosc_zstd_frame(2 * GiB), 65_536) is not None  # an honest bomb
    assert passthrough_problem("blosc", bytes([3]) + honest[1:], 65_536) == "blosc format version 3"
    with pytest.raises(FrameError):
        blosc_header(b"\x02\x01")


def test_lz4_total_is_read_from_the_header() -> None:
    assert lz4h5_total(lz4_h5_frame(1000, declared=2 * GiB)) == 2 * GiB
    assert lz4h5_total(imagecodecs.lz4h5_encode(_data(5000))) == 5000
    with pytest.raises(FrameError):
        lz4h5_total(b"\0" * 11)


def test_uncompressed_chunks_must_have_the_exact_size() -> None:
    assert passthrough_problem(None, bytes(100), 100) is None
    assert passthrough_problem(None, bytes(99), 100) == "99 stored bytes, not 100"


@pytest.mark.parametrize("level", [1, 6, 9])
def test_zlib_streams_of_zlib_pass_the_header_check(level: int) -> None:
    stream = zlib.compress(b"abc" * 1000, level)
    assert zlib_header_problem(stream) is None
    assert passthrough_problem("zlib", stream, 3000) is None


@pytest.mark.parametrize(
    ("stream", "problem"),
    [
        (b"\x78\x9c\x03", "shorter"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "not deflate"),  # a gzip member
        (b"\x88\x9c" + bytes(8), "not deflate"),  # a 64 KiB window
        (b"\x78\x9d" + bytes(8), "check fails"),
        (b"\x78\xbb" + bytes(8), "preset dictionary"),  # FDICT set, check valid
    ],
)
def test_other_streams_are_refused(stream: bytes, problem: str) -> None:
    assert problem in (zlib_header_problem(stream) or "")
