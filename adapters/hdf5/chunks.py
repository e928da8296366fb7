"""One HDF5 dataset as an array: read lock-free where we can, through h5py where not.

- **Chunked, known filters** (none, deflate, shuffle, fletcher32, LZF, blosc, zstd, lz4):
  the byte offset, size and filter mask of every chunk are learnt once, on first read
  (``chunk_iter``: one walk of the chunk index), then chunks are read with ``pread`` and
  decoded in the caller's thread by ``StoredArray``, through the gateway's tile cache.
  Unallocated chunks are the fill value, known without reading; the index holds stored
  chunks only (``ChunkIndex``), whatever grid the file declares.
- **Contiguous**: the data is one run of bytes; it is cut into virtual chunks of whole
  rows (``CONTIGUOUS_CHUNK_BYTES``) that are each one contiguous read.
- **Anything else** (szip, n-bit, scale-offset, bitshuffle and other plugins, the compact
  layout, types whose file layout is not numpy's), and everything when
  ``OpenOptions.lock_free`` is off: ``LockedArray`` reads whole chunks with h5py under
  ``HDF5_LOCK``, through the same tile cache.
- **Refused** (``H5File.contained``: RefusedStorageError, OutsideRootsError): virtual
  datasets and external raw storage, whose data lives in files libhdf5 picks by its own
  rules, and datasets of any file not opened through the gateway's ``FileAccess``.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import h5py
import numpy as np

from adapters.base import (
    DEFAULT_MAX_CHUNK_BYTES,
    Level,
    RawChunkFormat,
    Region,
    SourceReadError,
    TileCache,
    UnsupportedSourceError,
)
from adapters.hdf5.file import HDF5_LOCK, H5File, Hdf5Context
from adapters.hdf5.filters import Compression, FilterPipeline, UnsupportedFilterError
from adapters.io.chunked import Extent, StoredArray

#: Target size of the virtual chunks a contiguous dataset is read in.
CONTIGUOUS_CHUNK_BYTES = 1024 * 1024
#: ``any_in`` bisects for each cell of a box up to this many cells (a chunk's region
#: covers one to a few stored chunks); larger boxes are looked at with numpy.
_BISECT_CELLS = 64


class Hdf5Array(Level):
    """One dataset as a level in its own dimension order (what ``StackedLevel`` stacks):
    its natural tiles are its chunks; ``read_raw_chunk`` passes a stored chunk through
    where ``raw_chunk_format`` says its chunks are zarr chunks (one zstd or blosc filter)."""

    __slots__ = ("_info",)

    #: whether reads bypass h5py (and its lock)
    lock_free: ClassVar[bool]

    def __init__(
        self, info: DatasetInfo, chunk_shape: Sequence[int], raw_chunk_format: RawChunkFormat | None = None
    ) -> None:
        super().__init__(
            shape=info.shape,
            dtype=info.view.newbyteorder("="),
            tile_shape=chunk_shape,
            fill_value=info.fill_value,
            raw_chunk_format=raw_chunk_format,
        )
        self._info = info

    @property
    def name(self) -> str:
        return self._info.name


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """What is known of a dataset before reading it."""

    name: str  # path inside the file, without the leading "/"
    shape: tuple[int, ...]
    dtype: np.dtype[Any]  # as stored (byte order included)
    view: np.dtype[Any]  # as served (BigDataViewer: int16 stored, uint16 served)
    fill_value: int | float


def dataset_info(dataset: h5py.Dataset, view: np.dtype[Any] | None = None) -> DatasetInfo:
    """Shape, types and fill value; UnsupportedSourceError when not numeric. Hold the lock."""
    stored = np.dtype(dataset.dtype)
    if stored.kind not in "biuf" or stored.fields is not None or stored.subdtype is not None:
        raise UnsupportedSourceError(f"data type {stored} is not numeric")
    served = stored if view is None else np.dtype(view).newbyteorder(stored.byteorder)
    if served.itemsize != stored.itemsize or served.kind not in "biuf":
        raise UnsupportedSourceError(f"cannot serve {stored} as {view}")
    raw_fill = np.asarray(dataset.fillvalue if dataset.fillvalue is not None else 0, dtype=stored)
    fill = raw_fill.view(served).item()
    return DatasetInfo(
        name=dataset.name.lstrip("/"),
        shape=tuple(int(n) for n in dataset.shape),
        dtype=stored,
        view=served,
        fill_value=fill if isinstance(fill, (int, float)) else 0,
    )


def open_array(
    file: H5File,
    dataset: h5py.Dataset,
    tiles: TileCache,
    *,
    lock_free: bool,
    view: Any = None,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
) -> tuple[Hdf5Array, str | None]:
    """The array of ``dataset``, and why it is read through h5py (None when lock-free).
    A chunk that decodes to more than ``max_chunk_bytes`` is refused when read."""
    with HDF5_LOCK:
        file.contained(dataset)  # its file opened by us, its data in it (no VDS, no external=)
        info = dataset_info(dataset, view)
        key: Hashable = ("hdf5", dataset.file.filename, info.name)
        reason = _fallback_reason(dataset, info) if lock_free else "lock-free reads are off"
        if reason is None:
            try:
                return _lock_free_array(file, dataset, info, tiles, key, max_chunk_bytes), None
            except UnsupportedFilterError as exc:
                reason = str(exc)
        return LockedArray(file, dataset, info, tiles, key, max_chunk_bytes), reason


def open_context_array(
    ctx: Hdf5Context, dataset: h5py.Dataset, *, view: Any = None, warn: bool = True
) -> Hdf5Array:
    """``open_array`` with the file, tile cache and options of a flavour's context; a read
    that falls back to h5py is said in the context's warnings (``warn``: once per image is
    enough for the members of a stack)."""
    array, reason = open_array(
        ctx.file,
        dataset,
        ctx.tiles,
        lock_free=ctx.options.lock_free,
        view=view,
        max_chunk_bytes=ctx.options.max_chunk_bytes,
    )
    if reason is not None and warn:
        ctx.warn(f"{array.name}: read through h5py under a lock ({reason})")
    return array


def _fallback_reason(dataset: h5py.Dataset, info: DatasetInfo) -> str | None:
    dcpl = dataset.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout not in (h5py.h5d.CHUNKED, h5py.h5d.CONTIGUOUS):
        return "compact layout"  # virtual layouts and external storage never get here
    if not dataset.id.get_type().equal(h5py.h5t.py_create(info.dtype)):
        return f"file data type is not numpy's {info.dtype}"
    return None


def _lock_free_array(
    file: H5File,
    dataset: h5py.Dataset,
    info: DatasetInfo,
    tiles: TileCache,
    key: Hashable,
    max_chunk_bytes: int,
) -> LockFreeArray:
    dcpl = dataset.id.get_create_plist()
    positional = file.positional(dataset.file.filename)
    if dcpl.get_layout() == h5py.h5d.CONTIGUOUS:
        chunk_shape = contiguous_chunk_shape(info.shape, info.dtype.itemsize)
        offset = dataset.id.get_offset()
        codec: ContiguousCodec | ChunkedCodec = ContiguousCodec(info, chunk_shape, offset)
        pipeline = None
    else:
        chunk_shape = tuple(int(c) for c in dataset.chunks)
        pipeline = FilterPipeline.from_plist(
            dcpl, info.dtype.itemsize, math.prod(chunk_shape) * info.dtype.itemsize, max_chunk_bytes
        )
        codec = ChunkedCodec(file, dataset, info, chunk_shape, pipeline)
    stored = StoredArray(
        key=key,
        shape=info.shape,
        chunk_shape=chunk_shape,
        dtype=info.view,
        fill_value=info.fill_value,
        codec=codec,
        files=[positional],
        tiles=tiles,
        max_chunk_bytes=max_chunk_bytes,
    )
    compression = pipeline.compression if pipeline is not None else None
    return LockFreeArray(info, stored, codec, compression)


def contiguous_chunk_shape(shape: Sequence[int], itemsize: int) -> tuple[int, ...]:
    """Virtual chunks of a C-ordered run of bytes that are each contiguous: whole trailing
    dimensions and a slab of the next one, about ``CONTIGUOUS_CHUNK_BYTES`` each."""
    chunk = [1] * len(shape)
    inner = itemsize
    for dim in range(len(shape) - 1, -1, -1):
        if inner * shape[dim] <= CONTIGUOUS_CHUNK_BYTES:
            chunk[dim] = max(1, shape[dim])
            inner *= max(1, shape[dim])
            continue
        chunk[dim] = max(1, CONTIGUOUS_CHUNK_BYTES // inner)
        break
    return tuple(chunk)


class ContiguousCodec:
    """Locates and 'decodes' the virtual chunks of a contiguous dataset."""

    def __init__(self, info: DatasetInfo, chunk_shape: tuple[int, ...], offset: int | None) -> None:
        self._info = info
        self._chunk_shape = chunk_shape
        self._offset = offset  # None: never written, all fill
        self._strides = _c_strides(info.shape)

    def _clipped(self, coords: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(
            min(c, n - i * c) for i, c, n in zip(coords, self._chunk_shape, self._info.shape, strict=True)
        )

    def any_located(self, lo: tuple[int, ...], hi: tuple[int, ...]) -> bool:
        return self._offset is not None and all(h > low for low, h in zip(lo, hi, strict=True))

    def locate(self, coords: tuple[int, ...]) -> Extent | None:
        if self._offset is None:
            return None
        start = sum(i * c * s for i, c, s in zip(coords, self._chunk_shape, self._strides, strict=True))
        nbytes = math.prod(self._clipped(coords)) * self._info.dtype.itemsize
        return Extent(0, self._offset + start * self._info.dtype.itemsize, nbytes)

    def decode(self, coords: tuple[int, ...], data: bytes) -> np.ndarray:
        dtype = self._info.view.newbyteorder(self._info.dtype.byteorder)
        return np.frombuffer(data, dtype=dtype).reshape(self._clipped(coords))


def _c_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


class ChunkIndex:
    """Byte offset, size and filter mask of every allocated chunk, learnt on first use
    (one walk of HDF5's chunk index under the lock; afterwards lookups take no lock).

    Sized by what is stored, not by the grid: a file can declare a 10^9 x 10^9 grid
    and store one chunk. The index is arrays of the stored chunks only, sorted by their
    position in the grid (``_SparseIndex``): about 8 x (ndim + 3) bytes per stored chunk.
    """

    def __init__(self, file: H5File, dataset: h5py.Dataset, chunk_shape: tuple[int, ...]) -> None:
        self._file = file
        self._dataset = dataset
        self._chunk_shape = chunk_shape
        self._grid = tuple(math.ceil(n / c) for n, c in zip(dataset.shape, chunk_shape, strict=True))
        self._lock = threading.Lock()
        self._index: _SparseIndex | None = None

    def lookup(self, coords: tuple[int, ...]) -> tuple[int, int, int] | None:
        """(offset, size, filter mask) of a chunk; None when it is not allocated."""
        return self._built().lookup(coords)

    def any_allocated(self, lo: tuple[int, ...], hi: tuple[int, ...]) -> bool:
        """Whether a chunk with ``lo <= coords < hi`` is allocated: a vectorised look at
        the stored entries, or a search per cell when the box has fewer cells."""
        return self._built().any_in(lo, hi)

    @property
    def count(self) -> int:
        """How many chunks are allocated (builds the index)."""
        return len(self._built().offsets)

    @property
    def nbytes(self) -> int:
        """Bytes the index holds (0 until it is built)."""
        index = self._index
        return 0 if index is None else index.nbytes

    def _built(self) -> _SparseIndex:
        index = self._index
        if index is not None:
            return index
        with self._lock:
            if self._index is None:
                self._index = self._build()
            return self._index

    def _build(self) -> _SparseIndex:
        coords: list[tuple[int, ...]] = []
        offsets: list[int] = []
        sizes: list[int] = []
        masks: dict[tuple[int, ...], int] = {}

        def visit(info: Any) -> None:
            where = tuple(o // c for o, c in zip(info.chunk_offset, self._chunk_shape, strict=True))
            if info.byte_offset is None or any(i >= n for i, n in zip(where, self._grid, strict=True)):
                return
            coords.append(where)
            offsets.append(info.byte_offset)
            sizes.append(info.size)
            if info.filter_mask:
                masks[where] = int(info.filter_mask)

        with self._file.locked():
            try:
                dsid = self._dataset.id
                if hasattr(dsid, "chunk_iter"):
                    dsid.chunk_iter(visit)
                else:  # libhdf5 < 1.12.3: one query per chunk
                    for index in range(dsid.get_num_chunks()):
                        visit(dsid.get_chunk_info(index))
            except (OSError, ValueError, RuntimeError) as exc:
                raise SourceReadError(f"{self._dataset.name}: cannot read the chunk index: {exc}") from exc
        return _SparseIndex.build(self._grid, coords, offsets, sizes, masks)


@dataclass(frozen=True, slots=True)
class _SparseIndex:
    """Stored chunks only: ``coords`` (n, ndim) big-endian uint64 rows in sorted order,
    ``keys`` their sort keys, and their offsets and sizes.

    A key is the chunk's position in the C-ordered grid (int64, ``strides``) when the grid
    has fewer than 2^63 cells, which a lookup finds in ~3 us; otherwise the row seen as a
    byte string (``_row_keys``), ~10x slower to search but never overflowing."""

    coords: np.ndarray
    keys: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    masks: dict[tuple[int, ...], int]
    grid: tuple[int, ...]
    strides: tuple[int, ...] | None  # of the C-ordered grid, when its cells fit in int64

    @classmethod
    def build(
        cls,
        grid: tuple[int, ...],
        coords: list[tuple[int, ...]],
        offsets: list[int],
        sizes: list[int],
        masks: dict[tuple[int, ...], int],
    ) -> _SparseIndex:
        rows = np.array(coords, dtype=">u8").reshape(len(coords), len(grid))
        strides = _linear_strides(grid)
        keys = _row_keys(rows) if strides is None else _linear_keys(rows, strides)
        order = np.argsort(keys, kind="stable")
        return cls(
            coords=rows[order],
            keys=keys[order],
            offsets=np.array(offsets, dtype=np.int64)[order],
            sizes=np.array(sizes, dtype=np.int64)[order],
            masks=masks,
            grid=grid,
            strides=strides,
        )

    @property
    def nbytes(self) -> int:
        return int(
            self.coords.nbytes + self.keys.nbytes + self.offsets.nbytes + self.sizes.nbytes
        ) + 100 * len(self.masks)

    def _find(self, rows: np.ndarray) -> np.ndarray:
        """Position of each row (inside the grid) in the index, -1 where it is absent."""
        keys = _row_keys(rows) if self.strides is None else _linear_keys(rows, self.strides)
        where = np.searchsorted(self.keys, keys)
        found = where < len(self.keys)
        found[found] = self.keys[where[found]] == keys[found]
        return np.where(found, where, -1)

    def lookup(self, coords: tuple[int, ...]) -> tuple[int, int, int] | None:
        if not self.offsets.size or any(not 0 <= c < n for c, n in zip(coords, self.grid, strict=True)):
            return None
        if self.strides is None:
            position = int(self._find(np.array([coords], dtype=">u8"))[0])
            if position < 0:
                return None
        else:
            position = self._bisect(coords, self.strides)
            if position < 0:
                return None
        return int(self.offsets[position]), int(self.sizes[position]), self.masks.get(coords, 0)

    def _bisect(self, coords: tuple[int, ...], strides: tuple[int, ...]) -> int:
        """Position of ``coords`` in the index, -1 where absent, by a bisection over Python
        ints: numpy's search would let go of the GIL, and a worker thread then waits for
        the event loop to hand it back (py-spy: 14 % of a pass-through server's samples,
        and 8 % of a server cutting slabs, in ``any_in``)."""
        key = sum(c * s for c, s in zip(coords, strides, strict=True))
        keys = self.keys.data  # a memoryview: its items are Python ints
        position = bisect.bisect_left(keys, key)
        return position if position < len(keys) and keys[position] == key else -1

    def any_in(self, lo: tuple[int, ...], hi: tuple[int, ...]) -> bool:
        if not self.offsets.size:
            return False
        lo = tuple(max(0, v) for v in lo)
        hi = tuple(min(h, n) for h, n in zip(hi, self.grid, strict=True))
        if any(h <= low for low, h in zip(lo, hi, strict=True)):
            return False
        cells = math.prod(h - low for low, h in zip(lo, hi, strict=True))
        if self.strides is not None and cells <= min(len(self.offsets), _BISECT_CELLS):
            strides = self.strides
            boxed = itertools.product(*(range(low, h) for low, h in zip(lo, hi, strict=True)))
            return any(self._bisect(cell, strides) >= 0 for cell in boxed)
        if cells < len(self.offsets):  # a small box: search for each of its cells
            axes = [np.arange(low, h, dtype=np.uint64) for low, h in zip(lo, hi, strict=True)]
            grid = np.stack([a.reshape(-1) for a in np.meshgrid(*axes, indexing="ij")], axis=1)
            return bool((self._find(grid.astype(">u8")) >= 0).any())
        rows = self.coords.astype(np.uint64)
        inside = (rows >= np.array(lo, dtype=np.uint64)) & (rows < np.array(hi, dtype=np.uint64))
        return bool(inside.all(axis=1).any())


def _linear_strides(grid: tuple[int, ...]) -> tuple[int, ...] | None:
    """C-order strides of ``grid`` when every cell's position fits in int64, else None."""
    return _c_strides(grid) if math.prod(grid) < 2**63 else None


def _linear_keys(rows: np.ndarray, strides: tuple[int, ...]) -> np.ndarray:
    """Positions in the C-ordered grid of rows inside it (int64: they fit, ``_linear_strides``)."""
    keys: np.ndarray = (rows.astype(np.int64) * np.array(strides, dtype=np.int64)).sum(axis=1, dtype=np.int64)
    return keys


def _row_keys(rows: np.ndarray) -> np.ndarray:
    """Rows of big-endian uint64 coordinates (a chunked dataset has at least one
    dimension) as byte strings that sort like the tuples."""
    rows = np.ascontiguousarray(rows, dtype=">u8")
    return rows.view(f"V{8 * rows.shape[1]}").reshape(rows.shape[0])


class ChunkedCodec:
    """Locates chunks through the chunk index and undoes their filters."""

    def __init__(
        self,
        file: H5File,
        dataset: h5py.Dataset,
        info: DatasetInfo,
        chunk_shape: tuple[int, ...],
        pipeline: FilterPipeline,
    ) -> None:
        self.index = ChunkIndex(file, dataset, chunk_shape)
        self._info = info
        self._chunk_shape = chunk_shape
        self._pipeline = pipeline
        self._dtype = info.view.newbyteorder(info.dtype.byteorder)

    def parsed_bytes(self) -> int:
        return self.index.nbytes

    def locate(self, coords: tuple[int, ...]) -> Extent | None:
        found = self.index.lookup(coords)
        return None if found is None else Extent(0, found[0], found[1])

    def any_located(self, lo: tuple[int, ...], hi: tuple[int, ...]) -> bool:
        return self.index.any_allocated(lo, hi)

    def decode(self, coords: tuple[int, ...], data: bytes) -> np.ndarray:
        found = self.index.lookup(coords)
        mask = found[2] if found is not None else 0
        try:
            raw = self._pipeline.decode(data, mask)
        except SourceReadError as exc:
            raise SourceReadError(f"{self._info.name}: chunk {coords} {exc}") from exc
        return np.frombuffer(raw, dtype=self._dtype).reshape(self._chunk_shape)

    @property
    def shuffles(self) -> bool:
        """Whether its chunks are byte-shuffled first when written (``decode_shuffled``)."""
        return self._pipeline.shuffles_first

    def decode_shuffled(self, coords: tuple[int, ...], data: bytes) -> np.ndarray | None:
        """The chunk's byte planes as stored (uint8, one row per byte of an element, in
        the file's byte order), or None when its filter mask skipped the shuffle."""
        found = self.index.lookup(coords)
        try:
            planes = self._pipeline.decode_shuffled(data, found[2] if found is not None else 0)
        except SourceReadError as exc:
            raise SourceReadError(f"{self._info.name}: chunk {coords} {exc}") from exc
        if planes is None:
            return None
        return np.frombuffer(planes, dtype=np.uint8).reshape(self._dtype.itemsize, -1)


class LockFreeArray(Hdf5Array):
    """A dataset read with positional reads and our own decoders (see module docstring)."""

    __slots__ = ("_codec", "_stored")

    lock_free = True

    def __init__(
        self,
        info: DatasetInfo,
        stored: StoredArray,
        codec: ContiguousCodec | ChunkedCodec,
        compression: Compression | None,
    ) -> None:
        raw = None
        if compression is not None and isinstance(codec, ChunkedCodec):
            raw = RawChunkFormat(
                chunk_shape=stored.chunk_shape,
                compressor=compression.compressor,
                endian="big" if info.dtype.byteorder == ">" else "little",
                level=compression.level,
                blosc_cname=compression.blosc_cname,
                blosc_shuffle=compression.blosc_shuffle,
                shuffled=compression.shuffled,
            )
        super().__init__(info, stored.chunk_shape, raw)
        self._stored = stored
        self._codec = codec

    def parsed_bytes(self) -> int:
        """What its chunk index pins (for the open-file pool's byte bound)."""
        return self._stored.parsed_bytes()

    def read(self, region: Region) -> np.ndarray:
        return self._stored.read(region)

    def read_raw_chunk(self, coords: tuple[int, ...]) -> bytes | None:
        raw = self.raw_chunk_format
        if raw is None or not isinstance(self._codec, ChunkedCodec):
            return None
        found = self._codec.index.lookup(coords)
        if found is None or found[2] != 0:  # unallocated, or a filter skipped for this chunk
            return None
        # sent only if its frame declares exactly the chunk's size (else decoded, bounded)
        return self._stored.read_passthrough(coords, raw.compressor, self._stored.chunk_nbytes)

    @property
    def shuffled_chunk_shape(self) -> tuple[int, ...] | None:
        shuffles = isinstance(self._codec, ChunkedCodec) and self._codec.shuffles
        return self._stored.chunk_shape if shuffles else None

    def read_shuffled_chunk(self, coords: tuple[int, ...], runs: int = 0) -> np.ndarray | None:
        codec = self._codec
        if not isinstance(codec, ChunkedCodec) or not codec.shuffles:
            return None
        big_endian = self._info.dtype.byteorder == ">"

        def decode(at: tuple[int, ...], data: bytes) -> np.ndarray | None:
            planes = codec.decode_shuffled(at, data)
            if planes is None:
                return None
            if big_endian:  # the least significant byte last
                planes = planes[::-1]
            if runs:  # one copy out of the scratch buffer, into runs of planes
                return planes.reshape(planes.shape[0], runs, -1).transpose(1, 0, 2).copy()
            return np.ascontiguousarray(planes) if big_endian else planes

        if runs:
            return self._stored.read_decoded_kept(coords, decode, ("shuffled", runs))
        return self._stored.read_decoded_with(coords, decode)

    def any_stored(self, region: Region) -> bool:
        """Whether any chunk ``region`` touches is stored (False: all fill, no read)."""
        return self._stored.any_stored(region)


class LockedArray(Hdf5Array):
    """A dataset read by h5py under ``HDF5_LOCK``, one whole chunk at a time, through the
    tile cache (h5py's own chunk cache is off)."""

    __slots__ = ("_dataset", "_file", "_key", "_max_chunk_bytes", "_tiles")

    lock_free = False

    def __init__(
        self,
        file: H5File,
        dataset: h5py.Dataset,
        info: DatasetInfo,
        tiles: TileCache,
        key: Hashable,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    ) -> None:
        chunks = dataset.chunks
        super().__init__(
            info,
            tuple(int(c) for c in chunks)
            if chunks is not None
            else contiguous_chunk_shape(info.shape, info.dtype.itemsize),
        )
        self._file = file
        self._max_chunk_bytes = max_chunk_bytes
        self._dataset = dataset
        self._tiles = tiles
        self._key = key

    def read(self, region: Region) -> np.ndarray:
        out = np.empty(tuple(s.stop - s.start for s in region), dtype=self.dtype)
        if out.size == 0:
            return out
        ranges = [
            range(s.start // c, (s.stop - 1) // c + 1) for s, c in zip(region, self.tile_shape, strict=True)
        ]
        coords_list = [tuple(p) for p in itertools.product(*ranges)]
        chunks = self._tiles.get_many([(self._key, c) for c in coords_list], self._fetch)
        for coords, chunk in zip(coords_list, chunks, strict=True):
            src, dst = [], []
            for s, c, i in zip(region, self.tile_shape, coords, strict=True):
                origin = i * c
                lo, hi = max(s.start, origin), min(s.stop, origin + c)
                src.append(slice(lo - origin, hi - origin))
                dst.append(slice(lo - s.start, hi - s.start))
            out[tuple(dst)] = chunk[tuple(src)]
        return out

    def _fetch(self, keys: list[Hashable]) -> Mapping[Hashable, np.ndarray]:
        found: dict[Hashable, np.ndarray] = {}
        chunk_nbytes = math.prod(self.tile_shape) * self.dtype.itemsize
        if chunk_nbytes > self._max_chunk_bytes:  # libhdf5 would decode it whole
            raise SourceReadError(
                f"{self._info.name}: a chunk decodes to {chunk_nbytes} bytes, more than the "
                f"{self._max_chunk_bytes} allowed per chunk"
            )
        for key in keys:
            coords: tuple[int, ...] = key[1]  # type: ignore[index]
            selection = tuple(
                slice(i * c, min((i + 1) * c, n))
                for i, c, n in zip(coords, self.tile_shape, self._info.shape, strict=True)
            )
            with self._file.locked():
                try:
                    chunk = np.asarray(self._dataset[selection])
                except (OSError, ValueError, RuntimeError, KeyError) as exc:
                    raise SourceReadError(f"{self._info.name}: chunk {coords} cannot be read: {exc}") from exc
            chunk = chunk.view(self._info.view.newbyteorder(chunk.dtype.byteorder)).astype(
                self.dtype, copy=False
            )
            chunk.flags.writeable = False
            found[key] = chunk
        return found
