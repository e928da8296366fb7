"""The adapter contract: what a source file holds, independent of zarr and HTTP.

A *source* (one file) opens to one or more *images* (series). An image has ordered axes
(a subset of t, c, z, y, x in that order), a physical scale per axis, channel metadata and
*levels* from finest to coarsest. A level knows its shape, dtype and natural tile shape and
can read any region of itself, thread-safely.

Nothing in ``adapters/`` imports ``gateway/``, starlette or zarr: the gateway injects what
adapters need from it (a tile cache) through the small protocols defined here.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np

from adapters.plates import Plate

if TYPE_CHECKING:  # adapters.io.files imports this module
    from adapters.io.files import FileAccess

AxisName = Literal["t", "c", "z", "y", "x"]
AxisType = Literal["time", "channel", "space"]
Region = tuple[slice, ...]

AXIS_ORDER: tuple[AxisName, ...] = ("t", "c", "z", "y", "x")
AXIS_TYPES: Mapping[str, AxisType] = {
    "t": "time",
    "c": "channel",
    "z": "space",
    "y": "space",
    "x": "space",
}


class AdapterError(Exception):
    """Base class of every error an adapter raises on purpose."""


class UnsupportedSourceError(AdapterError):
    """The file is not of a kind this adapter can serve (or not at all)."""


class SourceReadError(AdapterError):
    """The file is recognised but a part of it cannot be read or decoded."""


class PartOfSourceError(UnsupportedSourceError):
    """The file is one piece of a source opened from another file, ``source`` (a member
    of a multi-file OME-TIFF set): on its own it is refused, naming that file."""

    def __init__(self, message: str, source: Path) -> None:
        super().__init__(message)
        self.source = source


@dataclass(frozen=True, slots=True)
class Axis:
    """One image axis; ``unit`` is an OME-Zarr unit name (``micrometer``) or None."""

    name: AxisName
    unit: str | None = None

    @property
    def type(self) -> AxisType:
        return AXIS_TYPES[self.name]


@dataclass(frozen=True, slots=True)
class Window:
    """Display range of a channel, as OME-Zarr's ``omero.channels[].window``."""

    min: float
    max: float
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Channel:
    """What is known of a channel: its name, colour (6 hex digits) and display range."""

    label: str | None = None
    color: str | None = None
    window: Window | None = None
    active: bool = True


@dataclass(frozen=True, slots=True)
class RawChunkFormat:
    """Stored chunks that already are, byte for byte, valid zarr chunks of a level.

    Each chunk holds exactly ``chunk_shape`` elements (edge chunks full size) in C order
    of the level's axes, as ``endian`` bytes, compressed by ``compressor`` (``"zstd"``,
    ``"blosc"``) or not at all (None). The gateway then serves them untouched. ``"zlib"``
    (RFC 1950 streams: HDF5's deflate filter, TIFF's deflate tiles) is no zarr codec, but
    one is a whole block of a blosc frame with zlib as its compressor, and differs from a
    gzip member only in its header and trailer: the gateway serves them so framed.
    ``shuffled``: each stream (zlib or zstd) holds the chunk's bytes byte-shuffled (every
    element's first byte, then every second byte...: HDF5's shuffle filter), as blosc's
    shuffle does: no zarr chunk as it is, but a blosc frame's one block.
    """

    chunk_shape: tuple[int, ...]
    compressor: Literal["zstd", "blosc", "zlib"] | None
    endian: Literal["little", "big"]
    level: int | None = None  # compression level, where the source records it
    blosc_cname: str | None = None
    blosc_shuffle: Literal["noshuffle", "shuffle", "bitshuffle"] | None = None
    shuffled: bool = False


class Level(ABC):
    """One resolution level of an image, in the image's axis order.

    The base class holds what every level has — ``shape``, ``dtype``, natural
    ``tile_shape`` and ``fill_value``, set once when it is built and read-only after —
    so that a subclass says only how it reads.

    ``read`` must be thread-safe and return exactly ``region`` (slices with concrete,
    in-bounds start/stop and step 1) as a native-endian array of ``dtype``. The array may
    be a read-only view of cached data: callers must not modify it.

    ``any_stored(region)`` is False when the level knows, without reading pixels, that
    nothing stored lies in ``region`` (absent tiles, unallocated chunks: all fill). It
    must be cheap for giant grids (no loop over every cell); the default, True, means
    "unknown: read it".

    ``raw_chunk_format`` (None unless the level says otherwise) describes stored chunks
    that already are zarr chunks of the level; ``read_raw_chunk`` then returns their
    bytes, untouched (pass-through).
    """

    __slots__ = ("_dtype", "_fill_value", "_raw_chunk_format", "_shape", "_tile_shape")

    def __init__(
        self,
        *,
        shape: Sequence[int],
        dtype: np.dtype[np.generic],
        tile_shape: Sequence[int],
        fill_value: int | float = 0,
        raw_chunk_format: RawChunkFormat | None = None,
    ) -> None:
        self._shape = tuple(int(n) for n in shape)
        self._tile_shape = tuple(int(n) for n in tile_shape)
        if len(self._tile_shape) != len(self._shape) or any(n < 1 for n in self._tile_shape):
            raise ValueError(f"bad tile shape {self._tile_shape} for shape {self._shape}")
        self._dtype: np.dtype[np.generic] = np.dtype(dtype)
        self._fill_value = fill_value
        #: set by a subclass that learns its pass-through format once it is built
        self._raw_chunk_format = raw_chunk_format

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return self._dtype

    @property
    def tile_shape(self) -> tuple[int, ...]:
        return self._tile_shape

    @property
    def fill_value(self) -> int | float:
        return self._fill_value

    @property
    def raw_chunk_format(self) -> RawChunkFormat | None:
        return self._raw_chunk_format

    @abstractmethod
    def read(self, region: Region) -> np.ndarray:
        """Exactly ``region`` of this level (see the class docstring)."""

    def any_stored(self, region: Region) -> bool:
        """False only when nothing stored lies in ``region`` (known without reading)."""
        return True

    def read_raw_chunk(self, coords: tuple[int, ...]) -> bytes | None:
        """The stored bytes of chunk ``coords`` (grid of ``raw_chunk_format.chunk_shape``),
        or None when this chunk cannot be passed through (not stored, filtered
        differently): the gateway then reads, fills and encodes it with the same codecs."""
        return None

    @property
    def shuffled_chunk_shape(self) -> tuple[int, ...] | None:
        """The chunks ``read_shuffled_chunk`` gives (None, the default: none). Set where
        stored chunks are byte-shuffled before compression (HDF5's shuffle filter)."""
        return None

    def read_shuffled_chunk(self, coords: tuple[int, ...], runs: int = 0) -> np.ndarray | None:
        """Chunk ``coords`` (grid of ``shuffled_chunk_shape``, edge chunks full size)
        decoded all but its byte shuffle: uint8 of shape (itemsize, elements), row *k*
        byte *k* (little-endian) of every element in C order. That is what a
        byte-shuffling codec (blosc) compresses, so the gateway neither unshuffles nor
        shuffles again. None when this chunk has no such form (not stored, its shuffle
        skipped): read it with ``read``.

        The array may be a buffer the calling thread reuses: use it at once. With
        ``runs`` (a divisor of the elements), it is the chunk cut into that many runs of
        elements instead, each run's byte planes contiguous: (runs, itemsize, elements /
        runs), read-only and kept in the tile cache, for a caller that serves the runs as
        chunks (slabs of whole planes): one decode, and one copy, for all of them."""
        return None

    def _check_region(self, region: Region) -> tuple[int, ...]:
        """The shape of ``region``, which must have one slice per axis."""
        if len(region) != len(self._shape):
            raise ValueError(f"region {region} does not match shape {self._shape}")
        return tuple(s.stop - s.start for s in region)


def may_hold_data(level: Level, region: Region) -> bool:
    """False only when ``level`` knows ``region`` is all fill (``Level.any_stored``); True
    means "unknown or stored: read it". Level-like objects without ``any_stored`` (test
    doubles) are asked nothing."""
    any_stored: Callable[[Region], bool] | None = getattr(level, "any_stored", None)
    return True if any_stored is None else bool(any_stored(region))


@runtime_checkable
class MeasuredLevel(Protocol):
    """A level that knows what its parsed structure pins in memory (optional)."""

    def parsed_bytes(self) -> int:
        """Bytes of index state held now (tile offsets, a chunk index learnt so far);
        cheap: no I/O, no walk over chunks."""
        ...


#: What an opened source is assumed to pin besides what its levels report (its tree,
#: metadata, a descriptor): about the RSS an open TIFF costs (measured, rounded up).
SOURCE_BYTES = 64 * 1024


@runtime_checkable
class PassThroughLevel(Protocol):
    """What pass-through needs of a level: every ``Level`` has it (``raw_chunk_format``
    None: nothing to pass through); kept as a protocol for level-like test doubles."""

    @property
    def raw_chunk_format(self) -> RawChunkFormat | None: ...

    def read_raw_chunk(self, coords: tuple[int, ...]) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class Image:
    """One image (series) of a source.

    ``scale`` and ``translation`` are the physical size and offset of one pixel of
    level 0, per axis (1.0 and 0.0 where unknown).
    """

    name: str
    axes: tuple[Axis, ...]
    levels: tuple[Level, ...]
    scale: tuple[float, ...]
    translation: tuple[float, ...] | None = None
    channels: tuple[Channel, ...] = ()
    #: Where the image group sits in the served tree ("group/dataset", "" for the root),
    #: for sources whose images have names of their own (HDF5 dataset paths). None: the
    #: gateway decides (the root for a single image, "0", "1"... for several).
    path: str | None = None
    #: The pixel size of the first native levels where the source defines each level's
    #: own (Imaris: the extent over that level's size, not 2^n times level 0's); levels
    #: beyond these derive theirs from level 0's ``scale`` and their shapes.
    level_scales: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        if self.path and any(s in ("", ".", "..") or s.startswith(".") for s in self.path.split("/")):
            raise ValueError(f"image path {self.path!r} has an empty or hidden segment")
        names = [a.name for a in self.axes]
        if names != [n for n in AXIS_ORDER if n in names]:
            raise ValueError(f"axes must be a subsequence of tczyx, got {names}")
        if not self.levels:
            raise ValueError("an image needs at least one level")
        ndim = len(self.axes)
        for level in self.levels:
            if len(level.shape) != ndim:
                raise ValueError(f"level shape {level.shape} does not match axes {names}")
        if len(self.scale) != ndim:
            raise ValueError("scale must have one entry per axis")
        if self.translation is not None and len(self.translation) != ndim:
            raise ValueError("translation must have one entry per axis")
        if any(len(scale) != ndim for scale in self.level_scales):
            raise ValueError("each level scale must have one entry per axis")

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)


@dataclass(frozen=True, slots=True)
class Dependency:
    """Another file a source reads (a BigDataViewer XML's HDF5 file), with its
    ``os.stat`` taken before it was opened: a change of it is a change of the source."""

    path: Path
    stat: os.stat_result


@dataclass(slots=True)
class Source:
    """An opened file: its images plus anything format-wide (the OME-XML document)."""

    path: Path
    format: str
    images: tuple[Image, ...]
    ome_xml: str | None = None
    warnings: list[str] = field(default_factory=list)
    dependencies: tuple[Dependency, ...] = ()
    #: files that are pieces of this source, not datasets of their own (the members of a
    #: multi-file OME-TIFF set): listings show them as parts of it
    parts: tuple[Path, ...] = ()
    #: the plates (high-content screening) the images sit on; images on none are loose
    plates: tuple[Plate, ...] = ()
    #: fixed memory this source pins besides its levels' ``parsed_bytes`` (an HDF5
    #: family raises it: libhdf5 keeps about a megabyte per open file)
    file_bytes: int = SOURCE_BYTES
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _measures: list[Callable[[], int]] = field(default_factory=list, repr=False)
    _measured: tuple[MeasuredLevel, ...] | None = field(default=None, repr=False)

    def attach(self, other: Source, stat: os.stat_result) -> None:
        """Make ``other`` — another file whose images this source's tree serves too (a
        label image) — part of this source: closed with it, and a change of its file
        (``stat`` taken before it was opened) is a change of this source."""
        self.dependencies = (*self.dependencies, Dependency(other.path, stat), *other.dependencies)
        self._closers.append(other.close)
        self._measures.append(other.parsed_bytes)

    def parsed_bytes(self) -> int:
        """Estimated memory this open source pins now; it may grow after opening (chunk
        indexes are learnt on first read), so the gateway's open-file pool asks again.
        Cheap after the first call: a sum over the levels that measure themselves."""
        if self._measured is None:
            levels = {id(level): level for image in self.images for level in image.levels}
            self._measured = tuple(level for level in levels.values() if isinstance(level, MeasuredLevel))
        levels_bytes = sum(level.parsed_bytes() for level in self._measured)
        return self.file_bytes + levels_bytes + sum(measure() for measure in self._measures)

    def close(self) -> None:
        """Release file handles once in-flight reads are done; idempotent."""
        closers, self._closers = self._closers, []
        for close in closers:
            close()


class TileCache(Protocol):
    """What an adapter needs from the gateway's decoded-tile cache.

    ``get_many`` returns the values for ``keys``; ``compute`` is called (once, in the
    calling thread) with the keys that are neither cached nor being computed by another
    thread, and must return a value for each of them. Identical concurrent requests share
    one computation. ``remember=False`` computes without keeping the new values: for a
    read that is exactly one stored chunk, whose caller caches what it makes of it (the
    encoded chunk), a decoded copy would only push other tiles out.
    """

    def get_many(
        self,
        keys: Sequence[Hashable],
        compute: Callable[[list[Hashable]], Mapping[Hashable, np.ndarray]],
        remember: bool = True,
    ) -> list[np.ndarray]: ...


class NoTileCache:
    """A TileCache that caches nothing: for one-off reads (``inspect``, tests)."""

    def get_many(
        self,
        keys: Sequence[Hashable],
        compute: Callable[[list[Hashable]], Mapping[Hashable, np.ndarray]],
        remember: bool = True,
    ) -> list[np.ndarray]:
        values = compute(list(keys))
        return [values[k] for k in keys]


#: Default of ``OpenOptions.max_chunk_bytes``: far above any chunking chosen for random
#: access (HDF5 chunks and TIFF tiles of ~1 MiB), yet it admits one-strip planes of
#: 11k x 11k uint16 (ImageJ writes a plane as one strip); worst case in flight: one such
#: chunk per read thread.
DEFAULT_MAX_CHUNK_BYTES = 256 * 1024**2


#: Image datasets one HDF5 file serves by default (``OpenOptions.max_datasets``).
DEFAULT_MAX_DATASETS = 256


@dataclass(frozen=True, slots=True)
class OpenOptions:
    """What the gateway's configuration tells adapters; the defaults suit direct use.

    ``lock_free``: read HDF5 chunks with positional reads and our own decoders (False
    forces every HDF5 read through h5py under one lock: a diagnostic and benchmark switch).
    ``axes``: (pattern, axis letters) pairs; the first pattern (``fnmatch``, over
    ``<file path>/<dataset path>``) that matches an HDF5 dataset names its dimensions.
    ``max_chunk_bytes``: the largest decoded size of one stored chunk, tile or strip; a
    larger one is refused (SourceReadError) instead of being allocated, and no decoder
    produces more than it (decompression bombs).
    ``access``: the directories every file an adapter opens must lie in (HDF5 external
    links, a BigDataViewer XML's HDF5 file); None allows only the opened file's own
    directory tree. The gateway passes the root the dataset was found in.
    ``max_datasets``: image datasets one (generic) HDF5 file serves at most; opening reads
    and describes each one, so a file of 10^5 datasets must not hold a thread for minutes.
    ``tiff_axes``: (pattern, axis letters) pairs; the first pattern (``fnmatch``, over the
    file's path or its name) that matches a TIFF file names the dimensions of its series.
    """

    lock_free: bool = True
    axes: tuple[tuple[str, str], ...] = ()
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES
    access: FileAccess | None = None
    max_datasets: int = DEFAULT_MAX_DATASETS
    tiff_axes: tuple[tuple[str, str], ...] = ()


class Adapter(Protocol):
    """One source family. ``can_open`` is cheap and never raises."""

    @property
    def name(self) -> str: ...

    @property
    def suffixes(self) -> tuple[str, ...]: ...

    def can_open(self, path: Path) -> bool: ...

    def open(self, path: Path, tiles: TileCache, options: OpenOptions | None = None) -> Source: ...


def full_region(shape: Iterable[int]) -> Region:
    """The region covering a whole array of ``shape``."""
    return tuple(slice(0, n) for n in shape)
