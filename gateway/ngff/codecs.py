"""Chunk codecs: what the served arrays declare in ``zarr.json`` and how chunks are encoded.

Each codec is a small frozen class whose ``to_json`` is the complete zarr v3 codec
configuration (clients such as tensorstore refuse incomplete ones) and whose ``encode``
turns the little-endian bytes of a chunk into the stored bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import imagecodecs
import numcodecs
import numpy as np

from adapters.base import RawChunkFormat

# The gateway runs codecs in its own bounded thread pool; Blosc's internal threads would
# oversubscribe the cores and serialise on Blosc's global lock.
numcodecs.blosc.use_threads = False


class Compressor(Protocol):
    @property
    def name(self) -> str: ...

    def to_json(self, dtype: np.dtype[Any]) -> dict[str, Any]: ...

    def encode(self, data: np.ndarray) -> bytes:
        """Compress a C-contiguous array's bytes (passed as the array: no extra copy)."""
        ...


@dataclass(frozen=True, slots=True)
class Zstd:
    level: int = 1
    name: str = "zstd"

    def to_json(self, dtype: np.dtype[Any]) -> dict[str, Any]:
        return {"name": "zstd", "configuration": {"level": self.level, "checksum": False}}

    def encode(self, data: np.ndarray) -> bytes:
        return bytes(numcodecs.Zstd(level=self.level).encode(data))


@dataclass(frozen=True, slots=True)
class Gzip:
    """RFC 1952 gzip (not a raw zlib stream: zarr's ``gzip`` means the gzip container)."""

    level: int = 5
    name: str = "gzip"

    def to_json(self, dtype: np.dtype[Any]) -> dict[str, Any]:
        return {"name": "gzip", "configuration": {"level": self.level}}

    def encode(self, data: np.ndarray) -> bytes:
        return bytes(numcodecs.GZip(level=self.level).encode(data))

    @staticmethod
    def from_zlib(stream: bytes, nbytes: int) -> bytes | None:
        """The gzip member holding the same deflate data as the RFC 1950 ``stream`` of
        ``nbytes`` decoded bytes (HDF5's deflate chunks), without compressing again: a
        gzip header, the deflate data as stored, then the CRC-32 and size of the
        decoded bytes, which only an inflate gives (1-7 ms for 2 MiB, where compressing
        again at gzip level 1 took ~60 ms on the bench volume). None unless the stream
        decodes to exactly ``nbytes`` and ends with its own checksum (nothing after it):
        the caller then decodes and encodes it as any other chunk."""
        try:
            decoded = imagecodecs.deflate_decode(stream, out=nbytes)
        except Exception:  # a corrupt stream: the decoding path says why
            return None
        if len(decoded) != nbytes or imagecodecs.deflate_adler32(decoded) != int.from_bytes(
            stream[-4:], "big"
        ):
            return None
        trailer = _GZIP_TRAILER.pack(imagecodecs.deflate_crc32(decoded), nbytes & 0xFFFFFFFF)
        return b"".join((_GZIP_HEADER, memoryview(stream)[2:-4], trailer))


#: A gzip member's header: deflate, no flags, no time, no extra flags, unknown system.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_GZIP_TRAILER = struct.Struct("<II")  # CRC-32 and size (mod 2**32) of the decoded data


_BLOSC_SHUFFLES = {
    "noshuffle": numcodecs.Blosc.NOSHUFFLE,
    "shuffle": numcodecs.Blosc.SHUFFLE,
    "bitshuffle": numcodecs.Blosc.BITSHUFFLE,
}


@dataclass(frozen=True, slots=True)
class Blosc:
    """Blosc; ``shuffle`` None picks bit-shuffle for bytes and byte-shuffle otherwise.

    ``one_block``: the whole chunk is one blosc block (blocksize = the chunk's bytes)
    rather than blosc's own choice of a few hundred KiB. The shuffle then groups each
    byte of every element of the chunk, and zstd finds much more to compress: on the
    fluorescence in ../shared/data 10 to 23 % fewer bytes than zstd-1 alone, where blosc's
    own blocks gain nothing (bench/README.md, *Findings*). Readers need nothing new: the
    block size is in every frame's header."""

    level: int = 5
    cname: str = "lz4"
    shuffle: Literal["noshuffle", "shuffle", "bitshuffle"] | None = None
    one_block: bool = False
    name: str = "blosc"

    def _shuffle(self, dtype: np.dtype[Any]) -> tuple[str, int]:
        name = self.shuffle or ("bitshuffle" if dtype.itemsize == 1 else "shuffle")
        return name, _BLOSC_SHUFFLES[name]

    def to_json(self, dtype: np.dtype[Any]) -> dict[str, Any]:
        shuffle, _ = self._shuffle(dtype)
        return {
            "name": "blosc",
            "configuration": {
                "cname": self.cname,
                "clevel": self.level,
                "shuffle": shuffle,
                "typesize": dtype.itemsize,
                "blocksize": 0,
            },
        }

    def encode(self, data: np.ndarray) -> bytes:
        _, shuffle = self._shuffle(data.dtype)
        blocksize = data.nbytes if self.one_block else 0
        codec = numcodecs.Blosc(cname=self.cname, clevel=self.level, shuffle=shuffle, blocksize=blocksize)
        return bytes(codec.encode(data))

    def takes_byte_planes(self, dtype: np.dtype[Any]) -> bool:
        """Whether ``encode_byte_planes`` can make this codec's frames of ``dtype``: one
        zstd or lz4 block of byte-shuffled elements."""
        shuffle, _ = self._shuffle(dtype)
        return (
            self.one_block
            and self.cname in _BLOSC_PLANE_CODES
            and shuffle == "shuffle"
            and 1 <= self.level <= 9
            and dtype.itemsize <= 255  # blosc's largest type size
        )

    def encode_byte_planes(self, planes: np.ndarray, dtype: np.dtype[Any]) -> bytes:
        """What ``encode`` makes of the chunk whose byte planes are ``planes`` (uint8,
        (itemsize, elements): HDF5's shuffled chunks as stored), byte for byte, without
        unshuffling them for blosc to shuffle again: c-blosc's header, then the one
        block's one stream, made here as c-blosc makes it (``takes_byte_planes``): zstd
        byte for byte, lz4 at lz4's default acceleration. Where c-blosc would store the
        data uncompressed, it is left to ``encode``."""
        nbytes = planes.size
        typesize = planes.shape[0]
        body = b""
        if nbytes >= _BLOSC_MIN_BUFFER:
            if self.cname == "zstd":
                body = bytes(numcodecs.Zstd(level=_blosc_zstd_level(self.level)).encode(planes))
            else:
                body = bytes(imagecodecs.lz4_encode(planes.tobytes()))
        if not body or len(body) > nbytes - _BLOSC_ONE_BLOCK_OVERHEAD + _BLOSC_MAX_OVERHEAD:
            elements = np.ascontiguousarray(planes.T).view(dtype.newbyteorder("<")).reshape(-1)
            return self.encode(elements)
        code = _BLOSC_PLANE_CODES[self.cname]
        return _one_block_frame(_BLOSC_BYTE_SHUFFLE | code << 5, typesize, nbytes, body)

    def from_stream(self, stream: bytes, nbytes: int, dtype: np.dtype[Any]) -> bytes | None:
        """The frame of this codec (zlib or zstd, one block) whose one stream is ``stream``,
        a chunk of ``nbytes`` decoded bytes as stored: an RFC 1950 zlib stream (HDF5's
        deflate chunks, shuffled or not; TIFF's deflate tiles) or a zstd frame (HDF5's zstd
        after a shuffle). c-blosc's codecs read such streams as they are, so the frame is a
        24-byte header and the stored bytes, with no compression work; the client's decoder
        checks the stream (zlib: its Adler-32; both: the size). None when c-blosc would read
        the stream otherwise: a stream of the chunk's size or more (a block of exactly its
        size is taken as stored raw), or a chunk over blosc's limit."""
        shuffle, _ = self._shuffle(dtype)
        code = _BLOSC_STREAM_CODES.get(self.cname)
        if (
            code is None
            or not self.one_block
            or shuffle == "bitshuffle"
            or len(stream) >= nbytes
            or nbytes > _BLOSC_MAX_BUFFER
        ):
            return None
        flags = code << 5 | (_BLOSC_BYTE_SHUFFLE if shuffle == "shuffle" else 0)
        return _one_block_frame(flags, dtype.itemsize, nbytes, stream)


def _one_block_frame(flags: int, typesize: int, nbytes: int, body: bytes) -> bytes:
    """A c-blosc 1 frame of ``nbytes`` decoded bytes in one block whose one stream
    (unsplit) is ``body``, compressed as ``flags`` say."""
    header = _BLOSC_ONE_BLOCK.pack(
        2,  # blosc format version
        1,  # the compressor's format version in blosc (zstd and zlib: 1)
        flags | _BLOSC_NO_SPLIT,
        typesize,
        nbytes,
        nbytes,  # the block size: the whole chunk
        _BLOSC_ONE_BLOCK.size + len(body),
        _BLOSC_ONE_BLOCK.size - 4,  # where the block starts
        len(body),  # the block's one stream
    )
    return header + body


#: c-blosc 1's frame of one block with one stream: 16-byte header, the block's start,
#: the stream's length (then the stream).
_BLOSC_ONE_BLOCK = struct.Struct("<BBBBIIIII")
_BLOSC_ONE_BLOCK_OVERHEAD = _BLOSC_ONE_BLOCK.size
_BLOSC_MAX_OVERHEAD = 16  # c-blosc's output buffer is the input plus this: more is stored raw
_BLOSC_MAX_BUFFER = 2**31 - 1 - _BLOSC_MAX_OVERHEAD  # c-blosc 1's largest chunk
_BLOSC_MIN_BUFFER = 128  # c-blosc copies smaller buffers as they are
_BLOSC_BYTE_SHUFFLE, _BLOSC_NO_SPLIT = 0x01, 0x10
_BLOSC_LZ4, _BLOSC_ZLIB, _BLOSC_ZSTD = 1, 3, 4  # compressor codes in a frame's flags (bits 5-7)
#: compressors whose stored streams a one-block frame holds as they are (``from_stream``)
_BLOSC_STREAM_CODES = {"zlib": _BLOSC_ZLIB, "zstd": _BLOSC_ZSTD}
#: compressors whose one-block frames are made from byte planes (``encode_byte_planes``)
_BLOSC_PLANE_CODES = {"zstd": _BLOSC_ZSTD, "lz4": _BLOSC_LZ4}


def _blosc_zstd_level(clevel: int) -> int:
    """The zstd level c-blosc 1 compresses at for blosc's ``clevel`` 1-9."""
    return 22 if clevel >= 9 else 2 * clevel - 1


@dataclass(frozen=True, slots=True)
class ChunkEncoding:
    """The codec pipeline of a served array: ``bytes`` (little-endian unless passing
    big-endian source chunks through), then a compressor."""

    compressor: Compressor | None
    endian: Literal["little", "big"] = "little"
    #: stored chunks are one stream of a compressor (zlib; zstd of shuffled bytes), served
    #: in a frame: a blosc one (``Blosc.from_stream``: a header) or, for unshuffled zlib
    #: streams, a gzip member (``Gzip.from_zlib``: an inflate)
    wraps_stream: bool = False

    @classmethod
    def from_settings(cls, codec: str, level: int) -> ChunkEncoding:
        compressors: dict[str, Compressor | None] = {
            "zstd": Zstd(level=level),
            "gzip": Gzip(level=level),
            "blosc": Blosc(level=level),
            "blosc-zstd": Blosc(level=level, cname="zstd", one_block=True),
            "blosc-lz4": Blosc(level=level, cname="lz4", one_block=True),
            "none": None,
        }
        return cls(compressors[codec])

    @classmethod
    def for_raw_chunks(cls, raw: RawChunkFormat, default_level: int, codec: str = "auto") -> ChunkEncoding:
        """The encoding that describes source chunks served untouched (and encodes the
        chunks that cannot be, identically). zlib streams, and zstd ones of shuffled
        bytes, go in blosc frames; with ``codec`` gzip, unshuffled zlib streams in gzip
        members instead."""
        compressor: Compressor | None = None
        level = raw.level if raw.level is not None else default_level
        if raw.compressor == "zlib" or raw.shuffled:
            level = min(max(level, 0), 9)  # blosc's and gzip's range
            if raw.compressor == "zlib" and codec == "gzip" and not raw.shuffled:
                return cls(Gzip(level=level), raw.endian, wraps_stream=True)
            shuffle: Literal["shuffle", "noshuffle"] = "shuffle" if raw.shuffled else "noshuffle"
            blosc = Blosc(level=level, cname=raw.compressor or "zlib", shuffle=shuffle, one_block=True)
            return cls(blosc, raw.endian, wraps_stream=True)
        if raw.compressor == "zstd":
            compressor = Zstd(level=level)
        elif raw.compressor == "blosc":
            compressor = Blosc(level=level, cname=raw.blosc_cname or "lz4", shuffle=raw.blosc_shuffle)
        return cls(compressor, raw.endian)

    def from_stored(self, raw: bytes, nbytes: int, dtype: np.dtype[Any]) -> bytes | None:
        """A stored chunk of ``nbytes`` decoded bytes as served: untouched, or framed
        (``wraps_stream``); None when it cannot be (then it is decoded and encoded)."""
        if not self.wraps_stream:
            return raw
        if isinstance(self.compressor, Gzip):
            return self.compressor.from_zlib(raw, nbytes)
        assert isinstance(self.compressor, Blosc)
        return self.compressor.from_stream(raw, nbytes, dtype)

    @property
    def inflates_to_wrap(self) -> bool:
        """Whether serving a stored chunk costs an inflate (a gzip member's checksum)."""
        return self.wraps_stream and isinstance(self.compressor, Gzip)

    @property
    def identity(self) -> str:
        """Part of cache keys and ETags: chunks encoded differently are different bytes."""
        wrap = ":from stored streams" if self.wraps_stream else ""
        return f"{self.endian}:{'raw' if self.compressor is None else repr(self.compressor)}{wrap}"

    def to_json(self, dtype: np.dtype[Any]) -> list[dict[str, Any]]:
        codecs: list[dict[str, Any]] = [{"name": "bytes", "configuration": {"endian": self.endian}}]
        if self.compressor is not None:
            codecs.append(self.compressor.to_json(dtype))
        return codecs

    def describe(self, dtype: np.dtype[Any]) -> str:
        """The compressor and its settings in a few words, e.g. "zstd level 1"."""
        if self.compressor is None:
            return "uncompressed"
        configuration = self.compressor.to_json(dtype)["configuration"]
        if isinstance(self.compressor, Blosc):
            block = ", one block" if self.compressor.one_block else ""
            return f"blosc {configuration['cname']} level {configuration['clevel']}, {configuration['shuffle']}{block}"
        return f"{self.compressor.name} level {configuration['level']}"

    def takes_byte_planes(self, dtype: np.dtype[Any]) -> bool:
        """Whether chunks of ``dtype`` can be encoded from their byte planes
        (``encode_byte_planes``)."""
        compressor = self.compressor
        return (
            self.endian == "little" and isinstance(compressor, Blosc) and compressor.takes_byte_planes(dtype)
        )

    def encode_byte_planes(self, planes: np.ndarray, dtype: np.dtype[Any]) -> bytes:
        """``encode`` of the chunk whose little-endian byte planes are ``planes``
        (``Level.read_shuffled_chunk``); only where ``takes_byte_planes``."""
        assert isinstance(self.compressor, Blosc)
        return self.compressor.encode_byte_planes(planes, dtype)

    def encode(self, chunk: np.ndarray) -> bytes:
        ordered = chunk.astype(chunk.dtype.newbyteorder("<" if self.endian == "little" else ">"), copy=False)
        contiguous = np.ascontiguousarray(ordered)
        if self.compressor is None:
            return contiguous.tobytes()
        return self.compressor.encode(contiguous)
