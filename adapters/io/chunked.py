"""Arrays stored as independently encoded chunks at known byte offsets.

TIFF tiles and strips, and HDF5 chunks, are all the same thing seen from here: a regular
grid of chunks, each at (file, offset, nbytes), each decodable on its own. ``StoredArray``
reads a region by touching only the chunks it needs: it asks the tile cache first, reads
what is missing with as few ``pread`` calls as possible (adjacent chunks are coalesced), and
decodes in the calling thread (a worker of the gateway's bounded pool; codecs release the
GIL). ``MappedLevel`` then presents a stored array in image axis order (t, c, z, y, x),
transposing and merging storage dimensions (e.g. TIFF pages x samples → channels).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from adapters.base import DEFAULT_MAX_CHUNK_BYTES, Level, Region, SourceReadError, TileCache
from adapters.io.files import PositionalReader
from adapters.io.frames import passthrough_problem

#: Chunks closer than this in a file are fetched with one read (the gap is read and dropped).
COALESCE_GAP_BYTES = 16 * 1024
#: ...but one read never grows beyond this.
COALESCE_MAX_BYTES = 16 * 1024 * 1024
#: ``any_stored`` over a codec that cannot answer for a box at once asks chunk by chunk up
#: to this many chunks (beyond, it answers "maybe": True).
ANY_STORED_PROBES = 4096

T = TypeVar("T")

# A zero-size marker for an unallocated chunk, so "known to be empty" is cached too.
_UNALLOCATED = np.empty(0, dtype=np.uint8)
_UNALLOCATED.flags.writeable = False


@dataclass(frozen=True, slots=True)
class Extent:
    """Where one encoded chunk lies: ``files[file]`` at ``offset``, ``nbytes`` long."""

    file: int
    offset: int
    nbytes: int


class ChunkCodec(Protocol):
    """The format-specific part of a stored array."""

    def locate(self, coords: tuple[int, ...]) -> Extent | None:
        """Extent of the chunk at grid ``coords``; None when it is not stored (fill)."""
        ...

    def decode(self, coords: tuple[int, ...], data: bytes) -> np.ndarray:
        """Decode one chunk to an array of the chunk shape (or clipped at the array edge)."""
        ...


class BoxQuery(Protocol):
    """Optional for a codec: whether any chunk in a box of the grid is stored, answered
    without a call per chunk (a sparse index, a vectorised look at an offsets table)."""

    def any_located(self, lo: tuple[int, ...], hi: tuple[int, ...]) -> bool:
        """True when a chunk with ``lo <= coords < hi`` (per dimension) is stored."""
        ...


@runtime_checkable
class Measured(Protocol):
    """Optional for a codec (or an array): its chunk index takes memory worth counting."""

    def parsed_bytes(self) -> int:
        """Bytes its index holds now (offsets, sizes; what is learnt so far); cheap."""
        ...


class StoredArray:
    """An N-d array on disk as a regular grid of encoded chunks."""

    def __init__(
        self,
        *,
        key: Hashable,
        shape: Sequence[int],
        chunk_shape: Sequence[int],
        dtype: np.dtype[np.generic],
        fill_value: int | float,
        codec: ChunkCodec,
        files: Sequence[PositionalReader],
        tiles: TileCache,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    ) -> None:
        if len(shape) != len(chunk_shape) or any(c < 1 for c in chunk_shape):
            raise ValueError(f"bad chunk shape {chunk_shape} for shape {shape}")
        self.key = key
        self.shape = tuple(int(n) for n in shape)
        self.chunk_shape = tuple(int(c) for c in chunk_shape)
        self.dtype = np.dtype(dtype).newbyteorder("=")
        self.fill_value = fill_value
        self._codec = codec
        self._files = files
        self._tiles = tiles
        #: decoded size of one stored chunk; one above ``max_chunk_bytes`` is refused
        self.chunk_nbytes = math.prod(self.chunk_shape) * self.dtype.itemsize
        self.max_chunk_bytes = max_chunk_bytes

    def parsed_bytes(self) -> int:
        """What the chunk index pins (for the open-file pool's byte bound)."""
        return self._codec.parsed_bytes() if isinstance(self._codec, Measured) else 0

    def read(self, region: Region) -> np.ndarray:
        """The region as an array; read-only (a view of a cached chunk) when the region
        lies inside one stored chunk, which is the common case of a chunk-aligned read."""
        out_shape = tuple(s.stop - s.start for s in region)
        if 0 in out_shape:
            return np.empty(out_shape, dtype=self.dtype)
        ranges = [
            range(s.start // c, (s.stop - 1) // c + 1) for s, c in zip(region, self.chunk_shape, strict=True)
        ]
        grid = [tuple(p) for p in itertools.product(*ranges)]
        whole = len(grid) == 1 and self._is_whole_chunk(region, grid[0])
        chunks = self._tiles.get_many([(self.key, g) for g in grid], self._fetch, remember=not whole)
        if len(grid) == 1 and chunks[0] is not _UNALLOCATED:
            return self._inside(region, grid[0], chunks[0])
        out = np.empty(out_shape, dtype=self.dtype)
        for coords, chunk in zip(grid, chunks, strict=True):
            self._place(out, region, coords, chunk)
        return out

    def read_raw(self, coords: tuple[int, ...]) -> bytes | None:
        """The stored (encoded) bytes of one chunk, or None when it is not stored."""
        extent = self._codec.locate(coords)
        if extent is None or extent.nbytes == 0:
            return None
        return self._files[extent.file].pread(extent.offset, extent.nbytes)

    def read_decoded_with(
        self, coords: tuple[int, ...], decode: Callable[[tuple[int, ...], bytes], T | None]
    ) -> T | None:
        """One stored chunk read and given to ``decode`` (a partial decode the codec
        offers besides its own, e.g. HDF5 chunks still byte-shuffled), bypassing the tile
        cache; None when the chunk is not stored or too large to decode (``read`` then
        says why). A codec's exception is a SourceReadError naming the chunk, as in ``read``."""
        extent = self._codec.locate(coords)
        if extent is None or extent.nbytes == 0 or self.chunk_nbytes > self.max_chunk_bytes:
            return None
        file = self._files[extent.file]
        data = file.pread(extent.offset, extent.nbytes)
        with self._decoding(coords, file.path.name):
            return decode(coords, data)

    def read_decoded_kept(
        self,
        coords: tuple[int, ...],
        decode: Callable[[tuple[int, ...], bytes], np.ndarray | None],
        form: Hashable,
    ) -> np.ndarray | None:
        """``read_decoded_with``, the result kept (read-only) in the tile cache under
        ``form``, naming what ``decode`` makes: for callers that serve several parts of
        one stored chunk, each asking for it (one decode, shared in flight too)."""

        def compute(keys: list[Hashable]) -> dict[Hashable, np.ndarray]:
            decoded = self.read_decoded_with(coords, decode)
            if decoded is None:
                return {keys[0]: _UNALLOCATED}
            decoded.flags.writeable = False
            return {keys[0]: decoded}

        (kept,) = self._tiles.get_many([(self.key, form, coords)], compute)
        return None if kept is _UNALLOCATED else kept

    def read_passthrough(self, coords: tuple[int, ...], compressor: str | None, nbytes: int) -> bytes | None:
        """The stored bytes of one chunk if a client may decode them as they are: one
        ``compressor`` frame declaring exactly ``nbytes`` (a client's decoder allocates
        what the header says). None when not stored or not so: the caller then reads
        and decodes the chunk, within the budget, and encodes it afresh."""
        if nbytes > self.max_chunk_bytes:
            return None
        data = self.read_raw(coords)
        if data is None or passthrough_problem(compressor, data, nbytes) is not None:
            return None
        return data

    def any_stored(self, region: Region) -> bool:
        """Whether any chunk that ``region`` touches is stored (False: the region is all
        fill, known without reading). Cheap for giant sparse grids when the codec answers
        for a box (``BoxQuery``); otherwise chunk by chunk for small boxes, and True
        (unknown, read to find out) for large ones."""
        if any(s.stop <= s.start for s in region):
            return False
        lo = tuple(s.start // c for s, c in zip(region, self.chunk_shape, strict=True))
        hi = tuple((s.stop - 1) // c + 1 for s, c in zip(region, self.chunk_shape, strict=True))
        query = getattr(self._codec, "any_located", None)
        if query is not None:
            return bool(query(lo, hi))
        if math.prod(h - low for low, h in zip(lo, hi, strict=True)) > ANY_STORED_PROBES:
            return True
        for coords in itertools.product(*(range(low, h) for low, h in zip(lo, hi, strict=True))):
            extent = self._codec.locate(coords)
            if extent is not None and extent.nbytes > 0:
                return True
        return False

    def _is_whole_chunk(self, region: Region, coords: tuple[int, ...]) -> bool:
        """Whether ``region`` is all of stored chunk ``coords`` (clipped to the array)."""
        return all(
            s.start == i * c and s.stop == min((i + 1) * c, n)
            for s, i, c, n in zip(region, coords, self.chunk_shape, self.shape, strict=True)
        )

    def _inside(self, region: Region, coords: tuple[int, ...], chunk: np.ndarray) -> np.ndarray:
        """The part of one decoded chunk that ``region`` covers, without copying."""
        origin = [i * c for i, c in zip(coords, self.chunk_shape, strict=True)]
        src = tuple(slice(s.start - o, s.stop - o) for s, o in zip(region, origin, strict=True))
        self._check_covers(chunk, src, coords)
        return chunk[src]

    @staticmethod
    def _check_covers(chunk: np.ndarray, src: Sequence[slice], coords: tuple[int, ...]) -> None:
        if any(sl.stop > n for sl, n in zip(src, chunk.shape, strict=True)):
            raise SourceReadError(
                f"chunk {coords} decoded to shape {chunk.shape}, smaller than the "
                f"{tuple(sl.stop for sl in src)} it must cover; the file is corrupt"
            )

    def _place(self, out: np.ndarray, region: Region, coords: tuple[int, ...], chunk: np.ndarray) -> None:
        src: list[slice] = []
        dst: list[slice] = []
        for s, c, i in zip(region, self.chunk_shape, coords, strict=True):
            origin = i * c
            lo, hi = max(s.start, origin), min(s.stop, origin + c)
            src.append(slice(lo - origin, hi - origin))
            dst.append(slice(lo - s.start, hi - s.start))
        if chunk is _UNALLOCATED:
            out[tuple(dst)] = self.fill_value
            return
        self._check_covers(chunk, src, coords)
        out[tuple(dst)] = chunk[tuple(src)]

    def _fetch(self, keys: list[Hashable]) -> Mapping[Hashable, np.ndarray]:
        """Read and decode the chunks of ``keys`` (all of this array), coalescing reads."""
        found: dict[Hashable, np.ndarray] = {}
        located: list[tuple[Extent, Hashable, tuple[int, ...]]] = []
        for key in keys:
            coords: tuple[int, ...] = key[1]  # type: ignore[index]
            extent = self._codec.locate(coords)
            if extent is None or extent.nbytes == 0:
                found[key] = _UNALLOCATED
            else:
                located.append((extent, key, coords))
        if located and self.chunk_nbytes > self.max_chunk_bytes:
            raise SourceReadError(
                f"{self._files[located[0][0].file].path.name}: stored chunk {located[0][2]} decodes to "
                f"{self.chunk_nbytes} bytes, more than the {self.max_chunk_bytes} allowed per chunk "
                "(max_chunk_bytes)"
            )
        located.sort(key=lambda item: (item[0].file, item[0].offset))
        for run in _coalesce(located):
            first, last = run[0][0], run[-1][0]
            file = self._files[first.file]
            blob = file.pread(first.offset, last.offset + last.nbytes - first.offset)
            if len(run) == 1:  # the common case: the read is the chunk, no copy of it
                found[run[0][1]] = self._decode(run[0][2], blob, file.path.name)
                continue
            view = memoryview(blob)
            for extent, key, coords in run:
                start = extent.offset - first.offset
                found[key] = self._decode(coords, view[start : start + extent.nbytes], file.path.name)
        return found

    def _decode(self, coords: tuple[int, ...], data: bytes | memoryview, filename: str) -> np.ndarray:
        with self._decoding(coords, filename):
            chunk = self._codec.decode(coords, data if isinstance(data, bytes) else bytes(data))
        chunk = np.asarray(chunk)
        if chunk.dtype != self.dtype:
            chunk = chunk.astype(self.dtype)
        chunk.flags.writeable = False
        return chunk

    @staticmethod
    @contextmanager
    def _decoding(coords: tuple[int, ...], filename: str) -> Iterator[None]:
        """Codec libraries raise many types; all mean "corrupt": a SourceReadError."""
        try:
            yield
        except SourceReadError:
            raise
        except Exception as exc:
            raise SourceReadError(
                f"{filename}: stored chunk {coords} cannot be decoded ({type(exc).__name__}: {exc})"
            ) from exc


def _coalesce(
    located: list[tuple[Extent, Hashable, tuple[int, ...]]],
) -> list[list[tuple[Extent, Hashable, tuple[int, ...]]]]:
    runs: list[list[tuple[Extent, Hashable, tuple[int, ...]]]] = []
    for item in located:
        extent = item[0]
        if runs:
            head, tail = runs[-1][0][0], runs[-1][-1][0]
            end = tail.offset + tail.nbytes
            if (
                extent.file == tail.file
                and 0 <= extent.offset - end <= COALESCE_GAP_BYTES
                and extent.offset + extent.nbytes - head.offset <= COALESCE_MAX_BYTES
            ):
                runs[-1].append(item)
                continue
        runs.append([item])
    return runs


class MappedLevel(Level):
    """A stored array seen in image axis order.

    ``groups[i]`` lists the storage dimensions that make output axis ``i``, major first
    (one dimension: a transpose; several: a merge, e.g. TIFF channel pages x RGB samples).
    Storage dimensions in no group must have size 1.
    """

    __slots__ = ("_groups", "_perm", "_stored")

    def __init__(
        self,
        stored: StoredArray,
        groups: Sequence[Sequence[int]],
        tile_shape: Sequence[int] | None = None,
    ) -> None:
        used = [d for g in groups for d in g]
        if len(set(used)) != len(used):
            raise ValueError(f"storage dims used twice in {groups}")
        for d, n in enumerate(stored.shape):
            if d not in used and n != 1:
                raise ValueError(f"storage dim {d} (size {n}) is not mapped")
        self._stored = stored
        self._groups = tuple(tuple(g) for g in groups)
        self._perm = tuple(used) + tuple(d for d in range(len(stored.shape)) if d not in used)
        natural = tuple(
            math.prod(stored.chunk_shape[d] if d == g[-1] else 1 for d in g) if g else 1 for g in self._groups
        )
        super().__init__(
            shape=tuple(math.prod(stored.shape[d] for d in g) for g in self._groups),
            dtype=stored.dtype,
            tile_shape=natural if tile_shape is None else tile_shape,
            fill_value=stored.fill_value,
        )

    @property
    def stored(self) -> StoredArray:
        return self._stored

    def parsed_bytes(self) -> int:
        return self._stored.parsed_bytes()

    def is_plain_view(self) -> bool:
        """True when every output axis is one storage dimension, in storage order: then a
        stored chunk is also a chunk of this level (shape ``plain_chunk_shape``)."""
        dims = [g[0] for g in self._groups if len(g) == 1]
        return len(dims) == len(self._groups) and dims == sorted(dims)

    def plain_chunk_shape(self) -> tuple[int, ...]:
        return tuple(self._stored.chunk_shape[g[0]] for g in self._groups)

    def storage_coords(self, coords: tuple[int, ...]) -> tuple[int, ...]:
        """Storage chunk coordinates of an output chunk of a plain view."""
        full = [0] * len(self._stored.shape)
        for group, index in zip(self._groups, coords, strict=True):
            full[group[0]] = index
        return tuple(full)

    def read(self, region: Region) -> np.ndarray:
        """The region in image axis order (read-only when it is a view of one cached chunk)."""
        out_shape = self._check_region(region)
        if 0 in out_shape:
            return np.empty(out_shape, dtype=self.dtype)
        pieces_per_axis = [
            _split_merged(s, [self._stored.shape[d] for d in g]) if g else [((), s, slice(0, 1))]
            for s, g in zip(region, self._groups, strict=True)
        ]
        if all(len(pieces) == 1 for pieces in pieces_per_axis):  # one block: no copy needed
            return self._read_piece([p[0] for p in pieces_per_axis])[1]
        out = np.empty(out_shape, dtype=self.dtype)
        for pieces in itertools.product(*pieces_per_axis):
            dst, block = self._read_piece(pieces)
            out[dst] = block
        return out

    def any_stored(self, region: Region) -> bool:
        """Whether any stored chunk holds part of ``region`` (False: the region is all
        fill, known without reading; see ``StoredArray.any_stored``)."""
        if any(n <= 0 for n in self._check_region(region)):
            return False
        pieces_per_axis = [
            _split_merged(s, [self._stored.shape[d] for d in g]) if g else [((), s, slice(0, 1))]
            for s, g in zip(region, self._groups, strict=True)
        ]
        return any(
            self._stored.any_stored(self._storage_region(pieces)[0])
            for pieces in itertools.product(*pieces_per_axis)
        )

    def _storage_region(
        self, pieces: Sequence[tuple[tuple[int, ...], slice, slice]]
    ) -> tuple[Region, tuple[slice, ...]]:
        """One rectangle of storage, and where it goes in the output."""
        stored_region = [slice(0, 1)] * len(self._stored.shape)
        dst = []
        for group, (majors, minor, out_slice) in zip(self._groups, pieces, strict=True):
            for d, index in zip(group[:-1], majors, strict=True):
                stored_region[d] = slice(index, index + 1)
            if group:
                stored_region[group[-1]] = minor
            dst.append(out_slice)
        return tuple(stored_region), tuple(dst)

    def _read_piece(
        self, pieces: Sequence[tuple[tuple[int, ...], slice, slice]]
    ) -> tuple[tuple[slice, ...], np.ndarray]:
        """Read one rectangle of storage; return where it goes in the output, and it."""
        stored_region, dst = self._storage_region(pieces)
        block = self._stored.read(stored_region)
        shape = tuple(s.stop - s.start for s in dst)
        return dst, block.transpose(self._perm).reshape(shape)


def _split_merged(region: slice, sizes: Sequence[int]) -> list[tuple[tuple[int, ...], slice, slice]]:
    """Split a range of a merged axis into rectangles: (major indices, minor slice, out slice)."""
    if len(sizes) == 1:
        return [((), region, slice(0, region.stop - region.start))]
    minor_size = sizes[-1]
    pieces = []
    for major_flat in range(region.start // minor_size, (region.stop - 1) // minor_size + 1):
        lo = max(region.start, major_flat * minor_size)
        hi = min(region.stop, (major_flat + 1) * minor_size)
        majors = tuple(int(i) for i in np.unravel_index(major_flat, tuple(sizes[:-1])))
        minor = slice(lo - major_flat * minor_size, hi - major_flat * minor_size)
        pieces.append((majors, minor, slice(lo - region.start, hi - region.start)))
    return pieces
