"""gateway.ngff.codecs: complete zarr v3 codec JSON, and chunks that zarr-python and numcodecs decode."""

from __future__ import annotations

import gzip
import zlib

import numcodecs
import numpy as np
import pytest
import zarr
import zarr.codecs
from zarr.core.buffer import default_buffer_prototype

from adapters.base import RawChunkFormat
from gateway.ngff.codecs import Blosc, ChunkEncoding, Gzip, Zstd
from gateway.ngff.metadata import array_document, dumps

CODECS = ["zstd", "gzip", "blosc", "blosc-zstd", "none"]
DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64"]
BIG_ENDIAN = [">u2", ">i2", ">u4", ">i4", ">f4", ">f8", ">u8"]


def sample(dtype, shape=(3, 17, 20)) -> np.ndarray:
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(42)
    if dtype.kind == "f":
        data = rng.normal(0, 1000, size=shape)
    else:
        info = np.iinfo(dtype)
        data = rng.integers(
            info.min, info.max, size=shape, endpoint=True, dtype=np.int64 if info.min < 0 else np.uint64
        )
    return data.astype(dtype)


def read_with_zarr(encoding: ChunkEncoding, data: np.ndarray, chunk: bytes | None = None) -> np.ndarray:
    """Store metadata + one chunk (``chunk``, else ``data`` encoded) in memory and read
    them with zarr-python."""
    document = array_document(
        shape=data.shape,
        dtype=data.dtype,
        chunk_shape=data.shape,
        fill_value=0,
        encoding=encoding,
        dimension_names=["z", "y", "x"][-data.ndim :],
    )
    buffer = default_buffer_prototype().buffer
    store = zarr.storage.MemoryStore(
        {
            "zarr.json": buffer.from_bytes(dumps(document)),
            "c/" + "/".join("0" * data.ndim): buffer.from_bytes(
                encoding.encode(data) if chunk is None else chunk
            ),
        }
    )
    return zarr.open_array(store=store, mode="r")[...]


# -- JSON -----------------------------------------------------------------------------------------


def test_zstd_json_is_complete():
    assert Zstd(level=3).to_json(np.dtype("u2")) == {
        "name": "zstd",
        "configuration": {"level": 3, "checksum": False},
    }


def test_gzip_json_is_complete():
    assert Gzip(level=6).to_json(np.dtype("u2")) == {"name": "gzip", "configuration": {"level": 6}}


def test_blosc_json_is_complete():
    config = Blosc(level=5).to_json(np.dtype("u2"))["configuration"]
    assert set(config) == {"cname", "clevel", "shuffle", "typesize", "blocksize"}


@pytest.mark.parametrize("dtype", DTYPES)
def test_blosc_typesize_is_the_item_size(dtype):
    assert Blosc().to_json(np.dtype(dtype))["configuration"]["typesize"] == np.dtype(dtype).itemsize


@pytest.mark.parametrize(
    ("dtype", "shuffle"), [("u1", "bitshuffle"), ("i1", "bitshuffle"), ("u2", "shuffle")]
)
def test_blosc_default_shuffle_depends_on_item_size(dtype, shuffle):
    assert Blosc().to_json(np.dtype(dtype))["configuration"]["shuffle"] == shuffle


def test_blosc_explicit_shuffle_is_declared():
    assert Blosc(shuffle="noshuffle").to_json(np.dtype("u2"))["configuration"]["shuffle"] == "noshuffle"


@pytest.mark.parametrize(
    ("compressor", "model"),
    [(Zstd(), zarr.codecs.ZstdCodec), (Gzip(), zarr.codecs.GzipCodec), (Blosc(), zarr.codecs.BloscCodec)],
)
def test_zarr_python_accepts_the_json(compressor, model):
    assert isinstance(model.from_dict(compressor.to_json(np.dtype("u2"))), model)


@pytest.mark.parametrize("codec", CODECS)
def test_pipeline_starts_with_little_endian_bytes(codec):
    first = ChunkEncoding.from_settings(codec, 1).to_json(np.dtype(">u2"))[0]
    assert first == {"name": "bytes", "configuration": {"endian": "little"}}


@pytest.mark.parametrize(
    ("codec", "length"), [("zstd", 2), ("gzip", 2), ("blosc", 2), ("blosc-zstd", 2), ("none", 1)]
)
def test_pipeline_has_bytes_then_one_compressor(codec, length):
    assert len(ChunkEncoding.from_settings(codec, 1).to_json(np.dtype("u2"))) == length


def test_level_reaches_the_compressor():
    assert ChunkEncoding.from_settings("gzip", 7).to_json(np.dtype("u1"))[1]["configuration"]["level"] == 7


def test_identity_differs_between_codecs():
    identities = {ChunkEncoding.from_settings(codec, 1).identity for codec in CODECS}
    assert len(identities) == len(CODECS)


# -- bytes that clients decode ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES + BIG_ENDIAN)
@pytest.mark.parametrize("codec", CODECS)
def test_zarr_python_decodes_the_chunk(codec, dtype):
    data = sample(dtype)
    np.testing.assert_array_equal(read_with_zarr(ChunkEncoding.from_settings(codec, 1), data), data)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_zarr_python_decodes_nan_and_infinity(dtype):
    data = np.array([[np.nan, np.inf, -np.inf, -0.0]], dtype=dtype)
    np.testing.assert_array_equal(read_with_zarr(ChunkEncoding.from_settings("zstd", 1), data), data)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32", ">u2", ">f8"])
@pytest.mark.parametrize(
    ("codec", "decoder"),
    [
        ("zstd", numcodecs.Zstd()),
        ("gzip", numcodecs.GZip()),
        ("blosc", numcodecs.Blosc()),
        ("blosc-zstd", numcodecs.Blosc()),
    ],
)
def test_numcodecs_decodes_the_chunk(codec, decoder, dtype):
    data = sample(dtype)
    encoded = ChunkEncoding.from_settings(codec, 1).encode(data)
    decoded = np.frombuffer(bytes(decoder.decode(encoded)), dtype=data.dtype.newbyteorder("<"))
    np.testing.assert_array_equal(decoded.reshape(data.shape), data)


def test_gzip_is_rfc1952_not_zlib():
    data = sample("uint16")
    encoded = ChunkEncoding.from_settings("gzip", 1).encode(data)
    assert gzip.decompress(encoded) == data.astype("<u2").tobytes()


def test_none_is_the_little_endian_bytes():
    data = sample(">u4")
    assert ChunkEncoding.from_settings("none", 1).encode(data) == data.astype("<u4").tobytes()


@pytest.mark.parametrize("codec", CODECS)
def test_big_endian_input_encodes_like_little_endian(codec):
    data = sample("<i4")
    encoding = ChunkEncoding.from_settings(codec, 1)
    assert encoding.encode(data.astype(">i4")) == encoding.encode(data)


def test_non_contiguous_input_is_encoded_in_c_order():
    data = sample("uint16", (20, 30)).T
    np.testing.assert_array_equal(read_with_zarr(ChunkEncoding.from_settings("zstd", 1), data), data)


# -- encodings that describe passed-through source chunks ---------------------------------------


def test_raw_big_endian_chunks_are_declared_big_endian():
    encoding = ChunkEncoding.for_raw_chunks(RawChunkFormat((1, 16, 16), None, "big"), 1)
    assert encoding.to_json(np.dtype("u2")) == [{"name": "bytes", "configuration": {"endian": "big"}}]


@pytest.mark.parametrize("compressor", [None, "zstd", "blosc"])
def test_raw_big_endian_encoding_is_read_back_by_zarr(compressor):
    data = sample(">u2")
    encoding = ChunkEncoding.for_raw_chunks(RawChunkFormat(data.shape, compressor, "big"), 1)
    np.testing.assert_array_equal(read_with_zarr(encoding, data), data)


def test_raw_zstd_without_a_level_uses_the_default_level():
    encoding = ChunkEncoding.for_raw_chunks(RawChunkFormat((16, 16), "zstd", "little"), 4)
    assert encoding.to_json(np.dtype("u2"))[1]["configuration"]["level"] == 4


def test_raw_blosc_keeps_cname_and_shuffle():
    raw = RawChunkFormat((16, 16), "blosc", "little", level=3, blosc_cname="zstd", blosc_shuffle="noshuffle")
    config = ChunkEncoding.for_raw_chunks(raw, 1).to_json(np.dtype("u2"))[1]["configuration"]
    assert (config["cname"], config["clevel"], config["shuffle"]) == ("zstd", 3, "noshuffle")


def test_identity_differs_by_endian():
    little = ChunkEncoding.for_raw_chunks(RawChunkFormat((16, 16), None, "little"), 1)
    big = ChunkEncoding.for_raw_chunks(RawChunkFormat((16, 16), None, "big"), 1)
    assert little.identity != big.identity


# -- blosc-zstd: the whole chunk as one shuffled block -------------------------------------------


def _blosc_header(frame: bytes) -> dict[str, int]:
    """The fields of a blosc 1 frame's 16-byte header."""
    _version, _versionlz, flags, typesize = frame[:4]
    nbytes, blocksize, cbytes = (int.from_bytes(frame[i : i + 4], "little") for i in (4, 8, 12))
    return {"flags": flags, "typesize": typesize, "nbytes": nbytes, "blocksize": blocksize, "cbytes": cbytes}


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "float32", "uint64", ">u2"])
def test_blosc_zstd_is_one_zstd_block_of_the_whole_chunk(dtype):
    data = sample(dtype, shape=(4, 64, 96))
    encoding = ChunkEncoding.from_settings("blosc-zstd", 1)
    header = _blosc_header(encoding.encode(data))
    assert header["nbytes"] == header["blocksize"] == data.nbytes  # one block, not blosc's own
    assert header["typesize"] == data.dtype.itemsize
    assert header["flags"] >> 5 == 4  # the compressor field: zstd
    configuration = encoding.to_json(data.dtype)[1]["configuration"]
    assert configuration["cname"] == "zstd" and configuration["clevel"] == 1
    assert configuration["shuffle"] == ("bitshuffle" if data.dtype.itemsize == 1 else "shuffle")


def test_blosc_zstd_compresses_smooth_data_better_than_zstd_alone():
    """The point of the codec: a shuffled whole chunk leaves zstd runs of high bytes."""
    y, x = np.mgrid[:256, :256]
    noise = np.random.default_rng(3).integers(0, 64, (256, 256))
    data = (1500 + 900 * np.sin(y / 37.0) * np.cos(x / 53.0) + noise).astype(np.uint16)
    one_block = len(ChunkEncoding.from_settings("blosc-zstd", 1).encode(data))
    assert one_block < 0.9 * len(ChunkEncoding.from_settings("zstd", 1).encode(data))


def test_blosc_zstd_and_blosc_differ_in_identity_and_settings():
    assert (
        ChunkEncoding.from_settings("blosc-zstd", 1).identity
        != ChunkEncoding.from_settings("blosc", 1).identity
    )


# -- blosc-zstd frames made from byte planes (HDF5's shuffled chunks) ---------------------


def byte_planes(data: np.ndarray) -> np.ndarray:
    """The little-endian byte planes of ``data``: what HDF5's shuffle filter stores."""
    little = np.ascontiguousarray(data.astype(data.dtype.newbyteorder("<")))
    return np.ascontiguousarray(little.view(np.uint8).reshape(-1, data.dtype.itemsize).T)


def smooth_sample(dtype, shape=(8, 64, 96)) -> np.ndarray:
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    noise = np.random.default_rng(5).integers(0, 40, shape)
    return (900 + 600 * np.sin(y / 9.0) * np.cos(x / 13.0) + 20 * z + noise).astype(dtype)


@pytest.mark.parametrize("dtype", ["uint16", "int16", "uint32", "int32", "float32", "uint64", "float64"])
@pytest.mark.parametrize("level", [1, 2, 5, 8, 9])
def test_blosc_zstd_frame_from_byte_planes_is_byte_identical(dtype, level):
    data = smooth_sample(dtype)
    encoding = ChunkEncoding.from_settings("blosc-zstd", level)
    assert encoding.takes_byte_planes(data.dtype)
    assert encoding.encode_byte_planes(byte_planes(data), data.dtype) == encoding.encode(data)


@pytest.mark.parametrize(
    "data",
    [
        sample("uint16", shape=(4, 64, 64)),  # random: c-blosc stores it uncompressed
        sample("float32", shape=(3, 5, 7)),  # odd sizes
        np.arange(30, dtype="uint16"),  # 60 bytes: below blosc's smallest compressed buffer
        np.arange(64, dtype="uint16"),  # exactly 128 bytes
        np.zeros((16, 16), "int32"),
    ],
    ids=["incompressible", "odd", "tiny", "min-buffer", "zeros"],
)
def test_blosc_zstd_frame_from_byte_planes_matches_every_case_of_c_blosc(data):
    encoding = ChunkEncoding.from_settings("blosc-zstd", 1)
    frame = encoding.encode_byte_planes(byte_planes(data), data.dtype)
    assert frame == encoding.encode(data)
    assert np.array_equal(
        np.frombuffer(numcodecs.Blosc().decode(frame), data.dtype).reshape(data.shape), data
    )


@pytest.mark.parametrize(
    "data",
    [
        *(smooth_sample(dtype) for dtype in ("uint16", "int16", "float32", "uint64")),
        sample("uint16", shape=(4, 64, 64)),  # random: stored uncompressed
        sample("float32", shape=(3, 5, 7)),
        np.arange(30, dtype="uint16"),  # below blosc's smallest compressed buffer
        np.arange(64, dtype="uint16"),
        np.zeros((16, 16), "int32"),
    ],
    ids=["uint16", "int16", "float32", "uint64", "incompressible", "odd", "tiny", "min-buffer", "zeros"],
)
def test_blosc_lz4_frame_from_byte_planes_is_what_c_blosc_decodes_to_the_chunk(data):
    """lz4 is not made byte for byte as c-blosc makes it (c-blosc splits lz4 streams by
    byte), but c-blosc reads the one-stream frame back to the chunk."""
    encoding = ChunkEncoding.from_settings("blosc-lz4", 1)
    assert encoding.takes_byte_planes(data.dtype)
    frame = encoding.encode_byte_planes(byte_planes(data), data.dtype)
    assert np.array_equal(
        np.frombuffer(numcodecs.Blosc().decode(frame), data.dtype).reshape(data.shape), data
    )
    assert encoding.to_json(data.dtype)[-1]["configuration"]["cname"] == "lz4"


@pytest.mark.parametrize(
    "codec, level, dtype",
    [
        ("blosc-zstd", 1, "uint8"),  # bit shuffle for bytes
        ("blosc-lz4", 1, "uint8"),
        ("blosc-zstd", 0, "uint16"),  # level 0: c-blosc copies
        ("blosc", 1, "uint16"),  # lz4 in blosc's own blocks
        ("zstd", 1, "uint16"),
        ("none", 1, "uint16"),
    ],
)
def test_only_one_block_blosc_with_byte_shuffle_takes_byte_planes(codec, level, dtype):
    assert not ChunkEncoding.from_settings(codec, level).takes_byte_planes(np.dtype(dtype))


def test_big_endian_encodings_take_no_byte_planes():
    """Byte planes are of little-endian elements; a big-endian pipeline encodes others."""
    one_block = Blosc(level=1, cname="zstd", one_block=True)
    assert ChunkEncoding(one_block).takes_byte_planes(np.dtype("uint16"))
    assert not ChunkEncoding(one_block, "big").takes_byte_planes(np.dtype("uint16"))


# -- zlib streams (HDF5's deflate chunks) served as gzip members ---------------------------


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32", "int64"])
@pytest.mark.parametrize("level", [1, 4, 9])
def test_a_zlib_stream_becomes_the_gzip_member_of_the_same_deflate_data(dtype, level):
    data = smooth_sample(dtype)
    stream = zlib.compress(data.tobytes(), level)
    member = Gzip.from_zlib(stream, data.nbytes)
    assert member is not None
    assert member[10:-8] == stream[2:-4]  # the deflate data as stored: nothing compressed again
    assert gzip.decompress(member) == data.tobytes()  # header, CRC-32 and size checked
    decoded = numcodecs.GZip().decode(member)
    assert np.array_equal(np.frombuffer(decoded, data.dtype).reshape(data.shape), data)


def test_a_rewrapped_chunk_reads_in_zarr_python_through_the_raw_encoding():
    data = smooth_sample("uint16")
    raw = RawChunkFormat(data.shape, "zlib", "little", level=3)
    encoding = ChunkEncoding.for_raw_chunks(raw, 1, "gzip")
    assert encoding.inflates_to_wrap and encoding.to_json(data.dtype)[-1] == {
        "name": "gzip",
        "configuration": {"level": 3},
    }
    served = encoding.from_stored(zlib.compress(data.tobytes(), 3), data.nbytes, data.dtype)
    assert served is not None
    assert np.array_equal(read_with_zarr(encoding, data, served), data)


@pytest.mark.parametrize(
    "stream",
    [
        zlib.compress(bytes(1000))[:-4] + b"\x00\x00\x00\x00",  # its checksum wrong
        zlib.compress(bytes(1000)) + b"\x00" * 4,  # data after the stream
        zlib.compress(bytes(999)),  # one byte short
        zlib.compress(bytes(1001)),  # one byte long
        b"\x78\x9c" + b"\xff" * 20,  # not deflate data
    ],
    ids=["checksum", "trailing", "short", "long", "garbage"],
)
def test_streams_that_are_not_exactly_the_chunk_are_not_rewrapped(stream):
    assert Gzip.from_zlib(stream, 1000) is None


def test_rewrapping_is_part_of_the_identity():
    raw = RawChunkFormat((4, 4), "zlib", "little", level=1)
    assert (
        ChunkEncoding.for_raw_chunks(raw, 1, "gzip").identity
        != ChunkEncoding.from_settings("gzip", 1).identity
    )


# -- zlib streams (HDF5's deflate chunks, shuffled or not) served in blosc frames ----------


def stored_stream(data: np.ndarray, shuffled: bool, level: int = 1) -> bytes:
    """What HDF5 stores for ``data`` with (shuffle +) deflate, in ``data``'s byte order."""
    planes = data.view(np.uint8).reshape(-1, data.dtype.itemsize).T if shuffled else data.view(np.uint8)
    return zlib.compress(np.ascontiguousarray(planes).tobytes(), level)


#: HDF5 shuffles no 1-byte elements (its shuffle is then a copy, not offered as a stream)
FRAMED_ZLIB = [
    *[(dtype, True) for dtype in ["uint16", "int16", "uint32", "float32", "int64", ">u2", ">f4", ">i8"]],
    *[(dtype, False) for dtype in ["uint8", "uint16", "float32", ">u2", ">f8"]],
]


@pytest.mark.parametrize(("dtype", "shuffled"), FRAMED_ZLIB)
@pytest.mark.parametrize("level", [1, 6, 9])
def test_a_zlib_stream_is_the_one_block_of_a_blosc_frame(dtype, shuffled, level):
    data = smooth_sample(dtype) if np.dtype(dtype).itemsize > 1 else (smooth_sample("u2") >> 4).astype(dtype)
    stream = stored_stream(data, shuffled, level)
    endian = "big" if data.dtype.byteorder == ">" else "little"
    raw = RawChunkFormat(data.shape, "zlib", endian, level=level, shuffled=shuffled)
    encoding = ChunkEncoding.for_raw_chunks(raw, 1)
    assert encoding.wraps_stream and not encoding.inflates_to_wrap
    assert encoding.to_json(data.dtype)[-1] == {
        "name": "blosc",
        "configuration": {
            "cname": "zlib",
            "clevel": level,
            "shuffle": "shuffle" if shuffled else "noshuffle",
            "typesize": data.dtype.itemsize,
            "blocksize": 0,
        },
    }
    frame = encoding.from_stored(stream, data.nbytes, data.dtype)
    assert frame is not None
    assert frame[24:] == stream  # the stored bytes behind a header: nothing compressed
    assert numcodecs.Blosc().decode(frame) == data.tobytes()
    assert np.array_equal(read_with_zarr(encoding, data, frame), data)


def test_chunks_a_blosc_zlib_encoding_cannot_frame_are_encoded_as_readers_expect():
    """A chunk whose mask skipped a filter is encoded afresh, by c-blosc's zlib."""
    data = smooth_sample("uint16")
    raw = RawChunkFormat(data.shape, "zlib", "little", level=1, shuffled=True)
    encoding = ChunkEncoding.for_raw_chunks(raw, 1)
    assert np.array_equal(read_with_zarr(encoding, data), data)


@pytest.mark.parametrize(
    ("stream", "nbytes", "shuffle"),
    [
        (zlib.compress(np.random.default_rng(1).bytes(1000), 1), 1000, "noshuffle"),  # not shorter
        (zlib.compress(bytes(1000)), 1000, "bitshuffle"),  # blosc's bit shuffle is no HDF5 filter
    ],
    ids=["incompressible", "bitshuffle"],
)
def test_streams_blosc_would_read_otherwise_are_not_framed(stream, nbytes, shuffle):
    assert (
        Blosc(level=1, cname="zlib", shuffle=shuffle, one_block=True).from_stream(
            stream, nbytes, np.dtype("u2")
        )
        is None
    )


def test_only_one_block_zlib_and_zstd_codecs_frame_streams():
    stream = zlib.compress(bytes(1000))
    for cname in ("lz4", "blosclz"):
        blosc = Blosc(level=1, cname=cname, shuffle="shuffle", one_block=True)
        assert blosc.from_stream(stream, 1000, np.dtype("u2")) is None
    assert Blosc(level=1, cname="zlib", shuffle="shuffle").from_stream(stream, 1000, np.dtype("u2")) is None


@pytest.mark.parametrize("dtype", ["uint16", "int32", "float32", "float64", ">u2", ">f4"])
@pytest.mark.parametrize("level", [1, 3, 19])
def test_a_zstd_stream_of_shuffled_bytes_is_the_one_block_of_a_blosc_frame(dtype, level):
    """HDF5's shuffle then zstd (hdf5plugin): a zstd frame of the byte planes, which a
    blosc-zstd frame holds as it is; the declared level is clamped to blosc's 0-9."""
    data = smooth_sample(dtype)
    planes = np.ascontiguousarray(data.view(np.uint8).reshape(-1, data.dtype.itemsize).T)
    stream = bytes(numcodecs.Zstd(level=level).encode(planes))
    endian = "big" if data.dtype.byteorder == ">" else "little"
    encoding = ChunkEncoding.for_raw_chunks(
        RawChunkFormat(data.shape, "zstd", endian, level=level, shuffled=True), 1
    )
    configuration = encoding.to_json(data.dtype)[-1]["configuration"]
    assert (configuration["cname"], configuration["clevel"], configuration["shuffle"]) == (
        "zstd",
        min(level, 9),
        "shuffle",
    )
    frame = encoding.from_stored(stream, data.nbytes, data.dtype)
    assert frame is not None and frame[24:] == stream
    assert numcodecs.Blosc().decode(frame) == data.tobytes()
    assert np.array_equal(read_with_zarr(encoding, data, frame), data)


def test_unshuffled_zstd_chunks_stay_zstd_chunks():
    encoding = ChunkEncoding.for_raw_chunks(RawChunkFormat((4, 4), "zstd", "little", level=3), 1)
    assert encoding.to_json(np.dtype("u2"))[-1] == {
        "name": "zstd",
        "configuration": {"level": 3, "checksum": False},
    }
    assert not encoding.wraps_stream


@pytest.mark.parametrize(
    "stream",
    [
        zlib.compress(bytes(999)),  # inflates one byte short
        zlib.compress(bytes(1001)),  # one byte long
        zlib.compress(bytes(1000))[:-4] + b"\x00\x00\x00\x00",  # its checksum wrong
        b"\x78\x9c" + b"\xff" * 20,  # not deflate data
    ],
    ids=["short", "long", "checksum", "garbage"],
)
def test_a_framed_stream_that_is_not_the_chunk_fails_in_the_client_never_reads_wrong(stream):
    """The server frames without inflating: the client's inflate is what checks the
    stream (its size and Adler-32), and it refuses one that is not the chunk."""
    frame = Blosc(level=1, cname="zlib", shuffle="noshuffle", one_block=True).from_stream(
        stream, 1000, np.dtype("u1")
    )
    assert frame is not None
    with pytest.raises(RuntimeError):
        numcodecs.Blosc().decode(frame)


def test_framing_zlib_streams_is_part_of_the_identity():
    raw = RawChunkFormat((4, 4), "zlib", "little", level=1, shuffled=True)
    framed = ChunkEncoding.for_raw_chunks(raw, 1)
    encoded = ChunkEncoding(Blosc(level=1, cname="zlib", shuffle="shuffle", one_block=True))
    assert framed.identity != encoded.identity
