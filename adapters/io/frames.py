"""What compressed frames declare about themselves, read from their headers without decoding.

A decoder allocates what a frame's header declares (zstd's content size, blosc's
``nbytes``, HDF5 lz4's total): 65 KB of zstd can declare and inflate to 2 GiB. The gateway
decodes with the expected size as the output buffer, so a lying header fails instead of
allocating; and before it passes stored bytes to a client untouched (whose decoder would
trust the header), it checks here that the bytes are exactly one frame declaring exactly
the chunk's size.

Formats: zstd (RFC 8878 section 3.1.1), blosc 1 (its 16-byte header: version, versionlz,
flags, typesize, then little-endian nbytes, blocksize, cbytes), HDF5's lz4 filter (an
8-byte big-endian total, then a 4-byte block size).
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.base import SourceReadError

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Largest decoded size of one zstd block (the format's Block_Maximum_Size).
ZSTD_MAX_BLOCK = 128 * 1024
BLOSC_HEADER = 16
#: Blosc 1 format versions (blosc 2 writes 3 and up, which zarr's blosc codec does not read).
BLOSC_VERSIONS = (1, 2)


class FrameError(SourceReadError):
    """A frame header that is malformed or does not describe the bytes it heads (a
    SourceReadError: the chunk holding it cannot be read)."""


@dataclass(frozen=True, slots=True)
class ZstdFrame:
    """One zstd frame's header, and where the frame ends in the data it was read from."""

    content_size: int | None  # None: the header does not declare it
    length: int  # bytes from the magic number to the end of the frame (checksum included)
    dictionary: int  # 0: none


def zstd_content_size(data: bytes | bytearray | memoryview) -> int | None:
    """The decoded size the first zstd frame of ``data`` declares (None when it does
    not); FrameError when ``data`` does not start with a zstd frame header."""
    return _zstd_header(memoryview(data))[0]


def zstd_frame(data: bytes | bytearray | memoryview) -> ZstdFrame:
    """The first zstd frame of ``data``, its blocks walked to find its end (a few bytes
    read per 128 KiB block); FrameError when the frame is malformed or truncated, or when
    its raw and RLE blocks alone regenerate more than its header declares (an RLE block
    of 4 bytes regenerates 128 KiB: a header that understates them hides a bomb)."""
    view = memoryview(data)
    content_size, dictionary, position, checksum = _zstd_header(view)
    regenerated = 0  # by raw and RLE blocks (a compressed block's output is not in its header)
    while True:
        if position + 3 > len(view):
            raise FrameError("zstd frame is truncated (block header past the end)")
        header = int.from_bytes(view[position : position + 3], "little")
        last, kind, size = header & 1, (header >> 1) & 3, header >> 3
        if kind == 3:
            raise FrameError("zstd block of the reserved type")
        if size > ZSTD_MAX_BLOCK:
            raise FrameError(f"zstd block of {size} bytes, more than the format's {ZSTD_MAX_BLOCK}")
        position += 3 + (1 if kind == 1 else size)  # RLE: one byte, repeated `size` times
        regenerated += size if kind in (0, 1) else 0
        if content_size is not None and regenerated > content_size:
            raise FrameError(f"zstd blocks regenerate more than the {content_size} bytes the frame declares")
        if position > len(view):
            raise FrameError("zstd frame is truncated (block past the end)")
        if last:
            break
    position += 4 if checksum else 0
    if position > len(view):
        raise FrameError("zstd frame is truncated (checksum past the end)")
    return ZstdFrame(content_size, position, dictionary)


def _zstd_header(view: memoryview) -> tuple[int | None, int, int, bool]:
    """(content size, dictionary id, offset of the first block, checksum flag)."""
    if len(view) < 6 or bytes(view[:4]) != ZSTD_MAGIC:
        raise FrameError("not a zstd frame (magic number)")
    descriptor = view[4]
    size_flag, single_segment = descriptor >> 6, bool(descriptor & 0x20)
    if descriptor & 0x08:
        raise FrameError("zstd frame header has its reserved bit set")
    dictionary_bytes = (0, 1, 2, 4)[descriptor & 3]
    size_bytes = (1 if single_segment else 0, 2, 4, 8)[size_flag]
    position = 5 + (0 if single_segment else 1)
    end = position + dictionary_bytes + size_bytes
    if end > len(view):
        raise FrameError("zstd frame header is truncated")
    dictionary = int.from_bytes(view[position : position + dictionary_bytes], "little")
    position += dictionary_bytes
    content_size: int | None = None
    if size_bytes:
        content_size = int.from_bytes(view[position:end], "little") + (256 if size_bytes == 2 else 0)
    return content_size, dictionary, end, bool(descriptor & 0x04)


@dataclass(frozen=True, slots=True)
class BloscHeader:
    version: int
    typesize: int
    nbytes: int  # decoded size
    blocksize: int
    cbytes: int  # size of the whole compressed buffer, header included


def blosc_header(data: bytes | bytearray | memoryview) -> BloscHeader:
    """The blosc 1 header of ``data``; FrameError when it is too short to hold one."""
    view = memoryview(data)
    if len(view) < BLOSC_HEADER:
        raise FrameError(f"blosc data of {len(view)} bytes is shorter than its header")
    return BloscHeader(
        version=view[0],
        typesize=view[3],
        nbytes=int.from_bytes(view[4:8], "little"),
        blocksize=int.from_bytes(view[8:12], "little"),
        cbytes=int.from_bytes(view[12:16], "little"),
    )


def lz4h5_total(data: bytes | bytearray | memoryview) -> int:
    """The decoded size HDF5's lz4 filter recorded in its 12-byte header."""
    view = memoryview(data)
    if len(view) < 12:
        raise FrameError(f"lz4 data of {len(view)} bytes is shorter than its header")
    return int.from_bytes(view[:8], "big")


def zlib_header_problem(data: bytes | bytearray | memoryview) -> str | None:
    """Why ``data`` does not start like a plain RFC 1950 zlib stream (deflate, a window of
    at most 32 KiB, a valid check, no preset dictionary); None when it does."""
    view = memoryview(data)
    if len(view) < 6:
        return f"zlib data of {len(view)} bytes is shorter than its header and checksum"
    cmf, flg = view[0], view[1]
    if cmf & 0x0F != 8 or cmf >> 4 > 7:
        return f"zlib header {cmf:#04x} is not deflate with a 32 KiB window"
    if (cmf << 8 | flg) % 31:
        return "zlib header check fails"
    if flg & 0x20:
        return "zlib stream needs a preset dictionary"
    return None


def passthrough_problem(compressor: str | None, data: bytes, nbytes: int) -> str | None:
    """Why the stored bytes ``data`` must not be sent as a zarr chunk of ``nbytes``
    decoded bytes compressed by ``compressor`` (None: uncompressed); None when they can.

    Sent untouched, a chunk is decoded by the client, which trusts the header: so the
    bytes must be exactly one frame (nothing after it) that declares exactly ``nbytes``.
    """
    if compressor is None:
        return None if len(data) == nbytes else f"{len(data)} stored bytes, not {nbytes}"
    if compressor == "zlib":  # no declared size: the client's inflate checks it (and the
        return zlib_header_problem(data)  # gzip rewrap, which inflates for the CRC-32)
    try:
        if compressor == "zstd":
            frame = zstd_frame(data)
            if frame.dictionary:
                return "zstd frame needs a dictionary"
            declared, length = frame.content_size, frame.length
        elif compressor == "blosc":
            header = blosc_header(data)
            if header.version not in BLOSC_VERSIONS:
                return f"blosc format version {header.version}"
            declared, length = header.nbytes, header.cbytes
        else:
            return f"unknown compressor {compressor!r}"
    except FrameError as exc:
        return str(exc)
    if declared != nbytes:
        return f"{compressor} data declares {declared} decoded bytes, not {nbytes}"
    if length != len(data):
        return f"{compressor} frame is {length} bytes of {len(data)} stored"
    return None
