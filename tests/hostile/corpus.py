"""A generated corpus of hostile TIFF and HDF5 files, and the secrets they try to reach.

Whoever can save a file into a served folder is untrusted (README, "Files an HDF5 file names").
``write_corpus(root, outside, scale)`` writes at least 40 such files into ``root``: bombs,
sparse giants, index loops, offsets past EOF, HDF5 indirections (external storage,
virtual datasets, external links, BigDataViewer XML) aimed at ``outside``, truncated and
empty files. ``plant_secrets(outside)`` writes the files they aim at, each carrying a
unique marker: a response that contains the marker leaked bytes from outside the roots.

Used by the stress suite (``stress/corpus_run.py``) and its tests; everything is written
where the caller says (a tmp dir), never into the tree.
"""

from __future__ import annotations

import io
import os
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import tifffile

from tests.hdf5.writers import BdvSetup, ImarisSpec, bdv_xml, chars, write_bdv, write_imaris
from tests.hostile.frames import (
    MiB,
    blosc_lying_header,
    blosc_zstd_frame,
    deflate_stream,
    lz4_h5_frame,
    zstd_rle_frame,
)

GiB = 1024 * MiB


@dataclass(frozen=True)
class Scale:
    """Sizes of the hostile files. ``bomb_bytes``: what a bomb chunk inflates to (the
    chunk it sits in holds 64 KiB); ``giant_edge``: y/x of the sparse giants;
    ``big_chunk_bytes``: the one honest, giant chunk."""

    bomb_bytes: int = 2 * GiB
    giant_edge: int = 2**20
    big_chunk_bytes: int = 1 * GiB
    lzw_bytes: int = 64 * MiB


SHORT = Scale(bomb_bytes=1 * GiB)
FULL = Scale()


@dataclass(frozen=True)
class Secrets:
    """Files outside every root; any of ``marker`` in a response is a leak."""

    outside: Path
    marker: bytes

    @property
    def tif(self) -> Path:
        return self.outside / "secret.tif"

    @property
    def h5(self) -> Path:
        return self.outside / "secret.h5"

    @property
    def raw(self) -> Path:
        return self.outside / "secret.bin"

    @property
    def bdv_h5(self) -> Path:
        return self.outside / "bdv-secret.h5"


@dataclass(frozen=True)
class HostileFile:
    """One corpus entry: ``name`` (the path under the root that is served), what it
    attacks (``kind``) and what a safe gateway does with it (``expect``)."""

    name: str
    kind: str
    expect: str  # "refuse": 4xx/JSON 5xx or fill; "serve": metadata must answer 200


def marker_pixels(marker: bytes, rows: int = 64, columns: int = 256) -> np.ndarray:
    """uint8 pixels that spell the marker over and over (a leaked chunk carries it)."""
    repeated = (marker * (rows * columns // len(marker) + 1))[: rows * columns]
    return np.frombuffer(repeated, dtype=np.uint8).reshape(rows, columns).copy()


def plant_secrets(outside: Path) -> Secrets:
    """Write the files outside the roots: an uncompressed TIFF, raw bytes, an HDF5 file
    and a BigDataViewer HDF5, all made of the marker."""
    outside.mkdir(parents=True, exist_ok=True)
    secrets = Secrets(outside, f"SECRET-{uuid.uuid4().hex}".encode())
    pixels = marker_pixels(secrets.marker)
    tifffile.imwrite(secrets.tif, pixels, photometric="minisblack")
    secrets.raw.write_bytes(pixels.tobytes())
    (outside / "secret.txt").write_bytes(secrets.marker)
    with h5py.File(secrets.h5, "w") as f:
        f.create_dataset("data", data=pixels)
        f.create_dataset("volume", data=np.stack([pixels] * 4))
    volume = np.stack([np.stack([pixels] * 2)])  # t, z, y, x
    setup = BdvSetup(data=volume, name="secret", factors=((1, 1, 1),), chunks=((2, 64, 64),))
    write_bdv(outside / "bdv-secret.xml", secrets.bdv_h5.name, [setup])
    return secrets


# ---------------------------------------------------------------------------------------
# TIFF surgery: tifffile writes a valid file, then one field is made hostile.


def _tiff(path: Path, data: np.ndarray, **kwargs: object) -> Path:
    tifffile.imwrite(path, data, photometric="minisblack", **kwargs)  # type: ignore[arg-type]
    return path


def _tag(path: Path, name: str, page: int = 0) -> tuple[int, int, int, str, int]:
    """(entry offset, value offset, count, value format, offset size) of a tag."""
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[page].tags[name]  # type: ignore[union-attr]
        fmt = {3: "H", 4: "I", 16: "Q"}[int(tag.dtype)]
        return tag.offset, tag.valueoffset, tag.count, tif.byteorder + fmt, tif.tiff.offsetsize


def _patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def _set_tag_values(path: Path, name: str, values: list[int], page: int = 0) -> None:
    _, value_offset, count, fmt, _ = _tag(path, name, page)
    assert len(values) <= count
    _patch(path, value_offset, b"".join(struct.pack(fmt, v) for v in values))


def _set_tag_count(path: Path, name: str, count: int) -> None:
    entry, _, _, _, offset_size = _tag(path, name)
    _patch(path, entry + 4, struct.pack("<I" if offset_size == 4 else "<Q", count))


def _replace_tile(path: Path, data: bytes, index: int = 0) -> None:
    """Append ``data`` and point tile ``index`` of page 0 at it."""
    with open(path, "ab") as fh:
        offset = fh.tell()
        fh.write(data)
    for name, value in (("TileOffsets", offset), ("TileByteCounts", len(data))):
        _, value_offset, _, fmt, _ = _tag(path, name)
        _patch(path, value_offset + index * struct.calcsize(fmt), struct.pack(fmt, value))


def _lzw_tile(nbytes: int) -> bytes:
    """The LZW-compressed bytes of ``nbytes`` zeros as one tile, from tifffile."""
    edge = int(np.sqrt(nbytes)) // 16 * 16
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((edge, edge), np.uint8), tile=(edge, edge), compression="lzw")
    buffer.seek(0)
    with tifffile.TiffFile(buffer) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[0], page.databytecounts[0]  # type: ignore[union-attr]
    return buffer.getvalue()[offset : offset + count]


def _tile_bomb(path: Path, compression: str, bomb: bytes) -> None:
    _tiff(path, np.ones((256, 256), np.uint8), tile=(256, 256), compression=compression)
    _replace_tile(path, bomb)


def _sparse_tiff(path: Path, edge: int, tile: int) -> None:
    """A tiled uint8 BigTIFF giant whose tiles are all absent (offset and byte count 0),
    written by hand: tifffile's ``shape=`` writer fills the whole image with zeros."""
    tiles = (-(-edge // tile)) ** 2
    entries = [  # tag, type (3 SHORT, 4 LONG, 16 LONG8), count, value
        (256, 4, 1, edge),
        (257, 4, 1, edge),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (277, 3, 1, 1),
        (322, 4, 1, tile),
        (323, 4, 1, tile),
        (324, 16, tiles, 0),
        (325, 16, tiles, 0),
        (339, 3, 1, 1),
    ]
    ifd_offset = 16
    arrays_at = ifd_offset + 8 + 20 * len(entries) + 8
    with open(path, "wb") as fh:
        fh.write(b"II" + struct.pack("<HHHQ", 43, 8, 0, ifd_offset))
        fh.write(struct.pack("<Q", len(entries)))
        for index, (tag, kind, count, value) in enumerate(entries):
            if tag in (324, 325):
                value = arrays_at + (index - 8) * 8 * tiles
            fmt = {3: "<H6x", 4: "<I4x", 16: "<Q"}[kind]
            fh.write(struct.pack("<HHQ", tag, kind, count) + struct.pack(fmt, value))
        fh.write(struct.pack("<Q", 0))
        fh.truncate(arrays_at + 2 * 8 * tiles)  # zeros: every tile absent


def _two_pages(path: Path) -> Path:
    return _tiff(path, np.stack([np.ones((64, 64), np.uint8)] * 2), tile=(64, 64))


def _ifd_loop(path: Path, to_first: bool) -> None:
    """Page 2's next-IFD offset points back at page 1 (or page 1's at itself)."""
    _two_pages(path)
    with tifffile.TiffFile(path) as tif:
        first, second = tif.pages[0].offset, tif.pages[1].offset  # type: ignore[union-attr]
        entries = len(tif.pages[1].tags)  # type: ignore[union-attr]
        entries_first = len(tif.pages[0].tags)  # type: ignore[union-attr]
    if to_first:
        _patch(path, second + 2 + entries * 12, struct.pack("<I", first))
    else:
        _patch(path, first + 2 + entries_first * 12, struct.pack("<I", first))


def _ome_tiff(path: Path, description: str) -> None:
    _tiff(path, np.ones((64, 64), np.uint8), description=description, metadata=None)


def _ome_xml(size_t: int = 1, size_c: int = 1, extra: str = "", name: str = "image") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"{extra}"
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        f'<Image ID="Image:0" Name="{name}"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" '
        f'SizeX="64" SizeY="64" SizeZ="1" SizeC="{size_c}" SizeT="{size_t}">'
        '<Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
        '<TiffData IFD="0" PlaneCount="1"/></Pixels></Image></OME>'
    )


BILLION_LAUGHS = (
    '<!DOCTYPE OME [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
    + "]>"
)


def _truncate_copy(source: Path, target: Path, keep: int) -> None:
    target.write_bytes(source.read_bytes()[:keep])


# ---------------------------------------------------------------------------------------
# HDF5


def _h5_chunk(
    path: Path, filters: dict[str, object], frame: bytes, shape: tuple[int, int] = (1024, 1024)
) -> None:
    """A (1024, 1024) uint8 dataset of 256x256 chunks (64 KiB each) whose chunk (0, 0) is
    ``frame``, written as stored bytes (the filter never runs)."""
    with h5py.File(path, "w") as f:
        dataset = f.create_dataset("data", shape=shape, dtype="u1", chunks=(256, 256), **filters)
        dataset.id.write_direct_chunk((0, 0), frame)


def _h5_external(path: Path, target: str) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("data", shape=(64, 256), dtype="u1", external=[(target, 0, h5py.h5f.UNLIMITED)])


def _h5_vds(path: Path, secrets: Secrets, relative: bool) -> None:
    layout = h5py.VirtualLayout(shape=(64, 256), dtype="u1")
    name = os.path.relpath(secrets.h5, path.parent) if relative else str(secrets.h5)
    layout[:] = h5py.VirtualSource(name, "data", shape=(64, 256))
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset("data", layout, fillvalue=0)


def _h5_external_link(path: Path, target: str, dataset: str = "data") -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("healthy", data=np.ones((64, 64), np.uint8))
        f["data"] = h5py.ExternalLink(target, dataset)


def _h5_soft_loop(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("healthy", data=np.ones((64, 64), np.uint8))
        f["loop"] = h5py.SoftLink("/loop")
        group = f.create_group("g")
        group["back"] = h5py.SoftLink("/g")


def _h5_sparse(path: Path, edge: int, chunk: int, dtype: str = "u2", one_chunk: bool = True) -> None:
    with h5py.File(path, "w") as f:
        dataset = f.create_dataset(
            "data", shape=(edge, edge), dtype=dtype, chunks=(chunk, chunk), compression="gzip"
        )
        if one_chunk:
            dataset[:chunk, :chunk] = 7


def _h5_big_chunk(path: Path, nbytes: int) -> None:
    """One honest chunk of ``nbytes`` (a square uint8 dataset, one chunk, deflate)."""
    edge = int(np.sqrt(nbytes))
    with h5py.File(path, "w") as f:
        dataset = f.create_dataset(
            "data", shape=(edge, edge), dtype="u1", chunks=(edge, edge), compression="gzip"
        )
        dataset.id.write_direct_chunk((0, 0), deflate_stream(edge * edge, 1))


def _h5_many(path: Path, count: int) -> None:
    with h5py.File(path, "w") as f:
        for index in range(count):
            f.create_dataset(f"d{index:05d}", data=np.full((8, 8), index % 250 + 1, np.uint8))


def _h5_deep(path: Path, depth: int) -> None:
    with h5py.File(path, "w") as f:
        group: h5py.Group = f
        for index in range(depth):
            group = group.create_group(f"g{index}")
        group.create_dataset("data", data=np.ones((64, 64), np.uint8))


def _imaris(path: Path, attributes: dict[str, str]) -> None:
    write_imaris(path, ImarisSpec(data=np.ones((1, 1, 4, 64, 64), np.uint8), levels=1, block=(4, 64, 64)))
    with h5py.File(path, "r+") as f:
        for key, value in attributes.items():
            group, _, name = key.rpartition("/")
            f[group].attrs[name] = chars(value)


def _bdv_pointing(xml: Path, element: str, secrets: Secrets) -> None:
    """A BigDataViewer XML in the root whose ``<hdf5>`` names the outside BDV file."""
    setup = BdvSetup(
        data=np.ones((1, 2, 64, 256), np.uint8), name="s", factors=((1, 1, 1),), chunks=((2, 64, 64),)
    )
    text = bdv_xml("placeholder.h5", [setup], (0,), (), {}, None)
    xml.write_text(text.replace('<hdf5 type="relative">placeholder.h5</hdf5>', element))


def _bdv_external_link(xml: Path, secrets: Secrets) -> None:
    """A valid BDV pair in the root whose level-0 cells are an external link outside."""
    setup = BdvSetup(
        data=np.ones((1, 2, 64, 256), np.uint8), name="s", factors=((1, 1, 1),), chunks=((2, 64, 64),)
    )
    h5_name = xml.with_suffix(".h5").name
    write_bdv(xml, h5_name, [setup])
    with h5py.File(xml.parent / h5_name, "r+") as f:
        del f["t00000/s00/0/cells"]
        f["t00000/s00/0/cells"] = h5py.ExternalLink(str(secrets.bdv_h5), "t00000/s00/0/cells")


# ---------------------------------------------------------------------------------------


def write_corpus(root: Path, secrets: Secrets, scale: Scale = FULL) -> list[HostileFile]:
    """Write every hostile file into ``root``; return the entries in a stable order."""
    root.mkdir(parents=True, exist_ok=True)
    bomb = scale.bomb_bytes
    outside_rel = os.path.relpath(secrets.outside, root)
    entries: list[tuple[str, str, str, Callable[[Path], object]]] = [
        # decompression bombs: a 64 KiB chunk whose stored frame inflates to ``bomb`` bytes
        (
            "bomb-zstd.tif",
            "tiff zstd tile bomb",
            "refuse",
            lambda p: _tile_bomb(p, "zstd", zstd_rle_frame(bomb)),
        ),
        (
            "bomb-zstd-lying.tif",
            "tiff zstd frame declaring more than it holds",
            "refuse",
            lambda p: _tile_bomb(p, "zstd", zstd_rle_frame(64 * 1024, declared=bomb)),
        ),
        (
            "bomb-deflate.tif",
            "tiff deflate tile bomb",
            "refuse",
            lambda p: _tile_bomb(p, "zlib", deflate_stream(bomb)),
        ),
        (
            "bomb-lzw.tif",
            "tiff LZW tile bomb",
            "refuse",
            lambda p: _tile_bomb(p, "lzw", _lzw_tile(scale.lzw_bytes)),
        ),
        (
            "bomb-zstd.h5",
            "hdf5 zstd chunk bomb",
            "refuse",
            lambda p: _h5_chunk(p, dict(hdf5plugin.Zstd()), zstd_rle_frame(bomb)),
        ),
        (
            "bomb-zstd-lying.h5",
            "hdf5 zstd frame declaring more than it holds",
            "refuse",
            lambda p: _h5_chunk(p, dict(hdf5plugin.Zstd()), zstd_rle_frame(64 * 1024, declared=bomb)),
        ),
        (
            "bomb-blosc.h5",
            "hdf5 blosc(zstd) chunk bomb",
            "refuse",
            lambda p: _h5_chunk(p, dict(hdf5plugin.Blosc(cname="zstd")), blosc_zstd_frame(bomb)),
        ),
        (
            "bomb-blosc-lying.h5",
            "hdf5 blosc header declaring GiBs",
            "refuse",
            lambda p: _h5_chunk(p, dict(hdf5plugin.Blosc(cname="zstd")), blosc_lying_header(bomb)),
        ),
        (
            "bomb-lz4.h5",
            "hdf5 lz4 chunk bomb",
            "refuse",
            lambda p: _h5_chunk(p, dict(hdf5plugin.LZ4()), lz4_h5_frame(bomb)),
        ),
        (
            "bomb-lz4-lying.h5",
            "hdf5 lz4 total declaring GiBs",
            "refuse",
            lambda p: _h5_chunk(p, dict(hdf5plugin.LZ4()), lz4_h5_frame(64 * 1024, declared=bomb)),
        ),
        (
            "bomb-deflate.h5",
            "hdf5 deflate chunk bomb",
            "refuse",
            lambda p: _h5_chunk(p, {"compression": "gzip"}, deflate_stream(bomb)),
        ),
        # sparse giants and giant chunks
        (
            "giant-sparse.tif",
            "tiff 2^20 x 2^20, every tile absent",
            "serve",
            lambda p: _sparse_tiff(p, scale.giant_edge, 1024),
        ),
        (
            "giant-sparse-small-tiles.tif",
            "tiff 2^18 x 2^18 of 256x256 absent tiles",
            "serve",
            lambda p: _sparse_tiff(p, scale.giant_edge // 4, 256),
        ),
        (
            "giant-sparse.h5",
            "hdf5 2^20 x 2^20, 64x64 chunks, one stored",
            "serve",
            lambda p: _h5_sparse(p, scale.giant_edge, 64),
        ),
        (
            "giant-1e9.h5",
            "hdf5 1e9 x 1e9, 64x64 chunks, one stored",
            "serve",
            lambda p: _h5_sparse(p, 10**9, 64, "u1"),
        ),
        (
            "giant-tiny-chunks.h5",
            "hdf5 2^20 x 2^20 of 16x16 chunks, none stored",
            "serve",
            lambda p: _h5_sparse(p, scale.giant_edge, 16, "u1", one_chunk=False),
        ),
        (
            "big-chunk.h5",
            "hdf5 with one honest chunk of 1 GiB",
            "refuse",
            lambda p: _h5_big_chunk(p, scale.big_chunk_bytes),
        ),
        # TIFF structure
        ("ifd-loop.tif", "tiff IFD chain looping to the first IFD", "any", lambda p: _ifd_loop(p, True)),
        ("ifd-self-loop.tif", "tiff IFD pointing at itself", "any", lambda p: _ifd_loop(p, False)),
        (
            "offset-past-eof.tif",
            "tiff tile offset past EOF",
            "any",
            lambda p: (
                _tiff(p, np.ones((256, 256), np.uint8), tile=(128, 128)),
                _set_tag_values(p, "TileOffsets", [2**31] * 4),
            ),
        ),
        (
            "bytecount-huge.tif",
            "tiff tile byte count 4 GiB",
            "any",
            lambda p: (
                _tiff(p, np.ones((256, 256), np.uint8), tile=(128, 128), compression="zlib"),
                _set_tag_values(p, "TileByteCounts", [2**32 - 1] * 4),
            ),
        ),
        (
            "tile-count-huge.tif",
            "tiff TileOffsets count 2^32-1",
            "any",
            lambda p: (
                _tiff(p, np.ones((256, 256), np.uint8), tile=(128, 128)),
                _set_tag_count(p, "TileOffsets", 2**32 - 1),
            ),
        ),
        (
            "tile-count-zero.tif",
            "tiff TileOffsets count 0",
            "any",
            lambda p: (
                _tiff(p, np.ones((256, 256), np.uint8), tile=(128, 128)),
                _set_tag_count(p, "TileOffsets", 0),
            ),
        ),
        (
            "dims-huge-one-tile.tif",
            "tiff declaring 2^31 x 2^31 with one tile",
            "any",
            lambda p: (
                _tiff(p, np.ones((128, 128), np.uint8), tile=(128, 128)),
                _set_tag_values(p, "ImageWidth", [2**31 - 1]),
                _set_tag_values(p, "ImageLength", [2**31 - 1]),
            ),
        ),
        (
            "strip-rows-huge.tif",
            "tiff striped, RowsPerStrip 2^32-1, 2^20 rows",
            "any",
            lambda p: (
                _tiff(p, np.ones((256, 256), np.uint8), rowsperstrip=256),
                _set_tag_values(p, "ImageLength", [2**20]),
                _set_tag_values(p, "RowsPerStrip", [2**32 - 1]),
            ),
        ),
        (
            "ome-billion-laughs.ome.tif",
            "OME-XML with nested entities (billion laughs)",
            "any",
            lambda p: _ome_tiff(p, _ome_xml(extra=BILLION_LAUGHS, name="&i;")),
        ),
        (
            "ome-size-t-huge.ome.tif",
            "OME-XML declaring SizeT 10^9 over one IFD",
            "any",
            lambda p: _ome_tiff(p, _ome_xml(size_t=10**9)),
        ),
        (
            "ome-garbage.ome.tif",
            "OME-XML that is not XML",
            "any",
            lambda p: _ome_tiff(p, "<OME " + "\x01<" * 5000),
        ),
        ("tiff-zero-bytes.tif", "empty .tif", "any", lambda p: p.write_bytes(b"")),
        ("tiff-wrong-magic.tif", "not a TIFF", "any", lambda p: p.write_bytes(b"NOTATIFF" * 64)),
        (
            "tiff-header-only.tif",
            "8-byte TIFF header, IFD past EOF",
            "any",
            lambda p: p.write_bytes(b"II*\x00\x00\x00\x00\x10"),
        ),
        (
            "bigtiff-truncated.tif",
            "BigTIFF header cut short",
            "any",
            lambda p: p.write_bytes(b"II+\x00\x08\x00\x00\x00\x10"),
        ),
        ("tiff-truncated.tif", "tiled TIFF cut in half", "any", lambda p: _truncated_tiff(p)),
        # HDF5 indirections aimed outside the root
        (
            "ext-storage-abs.h5",
            "hdf5 external raw storage, absolute path outside",
            "refuse",
            lambda p: _h5_external(p, str(secrets.raw)),
        ),
        (
            "ext-storage-rel.h5",
            "hdf5 external raw storage, ../ path outside",
            "refuse",
            lambda p: _h5_external(p, os.path.join(outside_rel, secrets.raw.name)),
        ),
        (
            "ext-storage-passwd.h5",
            "hdf5 external raw storage of /etc/passwd",
            "refuse",
            lambda p: _h5_external(p, "/etc/passwd"),
        ),
        (
            "vds-abs.h5",
            "hdf5 virtual dataset, absolute source outside",
            "refuse",
            lambda p: _h5_vds(p, secrets, False),
        ),
        (
            "vds-rel.h5",
            "hdf5 virtual dataset, relative source outside",
            "refuse",
            lambda p: _h5_vds(p, secrets, True),
        ),
        (
            "extlink-abs.h5",
            "hdf5 external link, absolute path outside",
            "refuse",
            lambda p: _h5_external_link(p, str(secrets.h5)),
        ),
        (
            "extlink-rel.h5",
            "hdf5 external link, ../ path outside",
            "refuse",
            lambda p: _h5_external_link(p, os.path.join(outside_rel, secrets.h5.name)),
        ),
        ("softlink-loop.h5", "hdf5 soft links looping", "any", _h5_soft_loop),
        (
            "bdv-abs.xml",
            "BigDataViewer XML naming an absolute HDF5 outside",
            "refuse",
            lambda p: _bdv_pointing(p, f'<hdf5 type="absolute">{secrets.bdv_h5}</hdf5>', secrets),
        ),
        (
            "bdv-rel.xml",
            "BigDataViewer XML naming ../outside",
            "refuse",
            lambda p: _bdv_pointing(
                p, f'<hdf5 type="relative">{os.path.join(outside_rel, secrets.bdv_h5.name)}</hdf5>', secrets
            ),
        ),
        (
            "bdv-extlink.xml",
            "BigDataViewer HDF5 whose cells are an external link outside",
            "refuse",
            lambda p: _bdv_external_link(p, secrets),
        ),
        # HDF5 structure
        ("h5-many-datasets.h5", "hdf5 with 5,000 datasets", "any", lambda p: _h5_many(p, 5000)),
        ("h5-deep-groups.h5", "hdf5 with groups 500 deep", "any", lambda p: _h5_deep(p, 500)),
        ("h5-zero-bytes.h5", "empty .h5", "any", lambda p: p.write_bytes(b"")),
        (
            "h5-wrong-magic.h5",
            "not HDF5",
            "any",
            lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\x00" + b"\xff" * 500),
        ),
        ("h5-truncated.h5", "hdf5 cut in half", "any", lambda p: _truncated_h5(p)),
        (
            "ims-huge-size.ims",
            "Imaris with ImageSizeX 99999999999",
            "any",
            lambda p: _imaris(
                p,
                {
                    "DataSet/ResolutionLevel 0/TimePoint 0/Channel 0/ImageSizeX": "99999999999",
                    "DataSetInfo/Image/X": "99999999999",
                },
            ),
        ),
        (
            "ims-garbage-attrs.ims",
            "Imaris with non-numeric extents and sizes",
            "any",
            lambda p: _imaris(
                p,
                {
                    "DataSetInfo/Image/ExtMax0": "nan",
                    "DataSetInfo/Image/ExtMin1": "1e999",
                    "DataSet/ResolutionLevel 0/TimePoint 0/Channel 0/ImageSizeY": "-5",
                },
            ),
        ),
    ]
    written = []
    for name, kind, expect, write in entries:
        write(root / name)
        written.append(HostileFile(name, kind, expect))
    return written


def _truncated_tiff(path: Path) -> None:
    full = path.with_name(path.name + ".full")
    _tiff(full, np.arange(512 * 512, dtype=np.uint16).reshape(512, 512), tile=(128, 128), compression="zlib")
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])


def _truncated_h5(path: Path) -> None:
    full = path.with_name(path.name + ".full")
    with h5py.File(full, "w") as f:
        f.create_dataset(
            "data", data=np.arange(256 * 256, dtype=np.uint16).reshape(256, 256), chunks=(64, 64)
        )
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])
