"""Compressed frames built by hand, so that a bomb costs kilobytes to write and never exists
inflated in the writer's memory.

Each builder follows the published format (zstd RFC 8878, the c-blosc 1 header, the HDF5
LZ4 filter of nexusformat/HDF5-External-Filter-Plugins, zlib RFC 1950) and takes the
number of bytes the frame inflates to, so the same builder writes an honest chunk (the
corpus tests decode small ones with h5py/hdf5plugin) or a bomb.
"""

from __future__ import annotations

import struct
import zlib
from functools import cache

ZSTD_MAGIC = 0xFD2FB528
ZSTD_MAX_BLOCK = 128 * 1024
MiB = 1024**2


def zstd_rle_frame(nbytes: int, *, declared: int | None = None, byte: int = 0) -> bytes:
    """A zstd frame of ``nbytes`` copies of ``byte`` as RLE blocks (4 bytes per 128 KiB:
    2 GiB fit in 64 KiB). ``declared``: the content size written in the frame header
    (default ``nbytes``; a larger value is a lying header). Single-segment frame, 8-byte
    frame content size, no checksum."""
    declared = nbytes if declared is None else declared
    header = struct.pack("<IBQ", ZSTD_MAGIC, 0xE0, declared)  # FCS flag 3, single segment
    blocks = bytearray()
    remaining = nbytes
    while True:
        size = min(remaining, ZSTD_MAX_BLOCK)
        remaining -= size
        last = remaining == 0
        if size == 0:  # an empty frame: one empty raw block
            blocks += struct.pack("<I", 1)[:3]
            break
        blocks += struct.pack("<I", int(last) | (1 << 1) | (size << 3))[:3] + bytes([byte])
        if last:
            break
    return header + bytes(blocks)


def zstd_declared_size(frame: bytes) -> int | None:
    """The content size a zstd frame header declares, or None (no size, or not zstd)."""
    if len(frame) < 6 or struct.unpack_from("<I", frame)[0] != ZSTD_MAGIC:
        return None
    descriptor = frame[4]
    fcs_flag, single = descriptor >> 6, (descriptor >> 5) & 1
    dict_size = (0, 1, 2, 4)[descriptor & 3]
    position = 5 + (0 if single else 1) + dict_size
    size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if size == 0 or len(frame) < position + size:
        return None
    value = int.from_bytes(frame[position : position + size], "little")
    return value + 256 if size == 2 else value


def blosc_zstd_frame(nbytes: int, *, block_bytes: int = 16 * MiB, byte: int = 0) -> bytes:
    """A c-blosc 1 frame (typesize 1, no shuffle, blocks not split, zstd inside) of
    ``nbytes`` copies of ``byte``: each block is one RLE zstd frame."""
    block_bytes = max(1, min(block_bytes, nbytes))
    count = -(-nbytes // block_bytes)
    flags = 0x10 | (4 << 5)  # don't split; compressor format 4 = zstd
    streams = []
    for index in range(count):
        size = min(block_bytes, nbytes - index * block_bytes)
        frame = zstd_rle_frame(size, byte=byte)
        streams.append(struct.pack("<i", len(frame)) + frame)
    start = 16 + 4 * count
    starts = []
    for stream in streams:
        starts.append(start)
        start += len(stream)
    header = struct.pack("<BBBBIII", 2, 1, flags, 1, nbytes, block_bytes, start)
    return header + struct.pack(f"<{count}i", *starts) + b"".join(streams)


def blosc_lying_header(declared: int) -> bytes:
    """A 64-byte c-blosc 1 frame whose header claims ``declared`` bytes of output."""
    body = bytes(48)
    return struct.pack("<BBBBIII", 2, 1, 0x10 | (4 << 5), 1, declared, declared, 16 + len(body)) + body


def _lz4_zero_block(nbytes: int, byte: int) -> bytes:
    """One LZ4 block of ``nbytes`` (>= 13) copies of ``byte``: a literal, one long match at
    offset 1, five closing literals (LZ4's end-of-block rules)."""
    match = nbytes - 1 - 5
    extra = match - 4 - 15
    if extra < 0:
        raise ValueError("an LZ4 zero block needs at least 24 bytes")
    length = b"\xff" * (extra // 255) + bytes([extra % 255])
    return bytes([0x1F, byte]) + b"\x01\x00" + length + b"\x50" + bytes([byte]) * 5


def lz4_h5_frame(
    nbytes: int, *, declared: int | None = None, block_bytes: int = 1024 * MiB, byte: int = 0
) -> bytes:
    """The HDF5 LZ4 filter's chunk format (8-byte big-endian total, 4-byte block size,
    then per block a 4-byte compressed size and an LZ4 block) of ``nbytes`` copies of
    ``byte``. ``declared``: the total written in the header (a lie when larger)."""
    declared = nbytes if declared is None else declared
    block_bytes = max(24, min(block_bytes, nbytes))
    parts = [struct.pack(">QI", declared, block_bytes)]
    remaining = nbytes
    while remaining > 0:
        size = min(block_bytes, remaining)
        block = _lz4_zero_block(size, byte) if size >= 24 else bytes([byte]) * size
        parts.append(struct.pack(">I", len(block)) + block)
        remaining -= size
    return b"".join(parts)


@cache
def deflate_stream(nbytes: int, byte: int = 0, wbits: int = 15) -> bytes:
    """A zlib stream (``wbits`` 15) or raw deflate (-15) of ``nbytes`` copies of ``byte``
    (about 1 KiB per MiB). Each MiB is compressed once and ends with a full flush, which
    resets the compressor, so the same segment repeats; only the Adler-32 is computed over
    the whole length."""
    piece = bytes([byte]) * MiB
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(piece) + compressor.flush(zlib.Z_FULL_FLUSH)
    whole, rest = divmod(nbytes, MiB)
    parts = [segment] * whole
    if rest:
        parts.append(compressor.compress(piece[:rest]) + compressor.flush(zlib.Z_FULL_FLUSH))
    parts.append(compressor.flush(zlib.Z_FINISH))
    body = b"".join(parts)
    if wbits < 0:
        return body
    checksum = 1
    for _ in range(whole):
        checksum = zlib.adler32(piece, checksum)
    checksum = zlib.adler32(piece[:rest], checksum)
    return b"\x78\xda" + body + struct.pack(">I", checksum)
