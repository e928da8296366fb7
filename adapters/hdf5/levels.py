"""Image levels made of HDF5 datasets.

A level is a grid of datasets over its leading (*outer*) axes — BigDataViewer and Imaris
store one 3-D dataset per timepoint and channel; a generic dataset is a grid of one —
and each dataset's dimensions feed the remaining (*inner*) axes: possibly transposed
(ilastik's ``zyxc``), with dimensions of size 1 dropped, and cropped (Imaris pads its
arrays beyond the image size). A missing dataset (a BigDataViewer "missing view") reads
as the fill value.

When every dataset's stored chunks already are zarr chunks of the level (same single
compressor, no transposition), the level passes them through untouched.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from adapters.base import Level, RawChunkFormat, Region, UnsupportedSourceError
from adapters.hdf5.chunks import Hdf5Array
from adapters.io.chunked import Measured


class StackedLevel(Level):
    """A level over a grid of HDF5 arrays (see module docstring).

    ``dims[i]`` is the dataset dimension that gives inner axis ``i``; dataset dimensions
    in no entry are read at index 0 (they have size 1, or hold only padding). The
    ``inner_shape`` may be smaller than the datasets (a crop).
    """

    __slots__ = ("_dims", "_first", "_members", "_n_outer", "_perm", "_shuffled_chunk_shape", "_unmapped")

    def __init__(
        self,
        members: Mapping[tuple[int, ...], Hdf5Array | None],
        outer_shape: Sequence[int],
        inner_shape: Sequence[int],
        dims: Sequence[int],
    ) -> None:
        present = [m for m in members.values() if m is not None]
        if not present:
            raise UnsupportedSourceError("no dataset holds this level")
        first = present[0]
        outer = tuple(int(n) for n in outer_shape)
        inner = tuple(int(n) for n in inner_shape)
        self._n_outer = len(outer)
        self._dims = tuple(dims)
        self._members = dict(members)
        ndim = len(first.shape)
        if len(self._dims) != len(inner) or len(set(self._dims)) != len(self._dims):
            raise ValueError(f"bad dimension mapping {self._dims} for {inner}")
        self._unmapped = tuple(d for d in range(ndim) if d not in self._dims)
        self._perm = self._dims + self._unmapped
        for member in present:
            if member.dtype != first.dtype or len(member.shape) != ndim:
                raise UnsupportedSourceError(
                    f"{member.name}: {member.dtype} {member.shape} differs from {first.name}"
                )
            if any(member.shape[d] < n for d, n in zip(self._dims, inner, strict=True)):
                raise UnsupportedSourceError(f"{member.name} {member.shape} is smaller than {inner}")
        self._first = first
        super().__init__(
            shape=outer + inner,
            dtype=first.dtype,
            tile_shape=(1,) * len(outer) + tuple(first.tile_shape[d] for d in self._dims),
            fill_value=first.fill_value,
            raw_chunk_format=self._passthrough_format(present),
        )
        self._shuffled_chunk_shape = self._shuffled_chunks(present)

    @property
    def members(self) -> tuple[Hdf5Array, ...]:
        return tuple(m for m in self._members.values() if m is not None)

    def parsed_bytes(self) -> int:
        """The chunk indexes its datasets learnt so far (h5py-read ones: libhdf5's own)."""
        return sum(m.parsed_bytes() for m in self.members if isinstance(m, Measured))

    def read(self, region: Region) -> np.ndarray:
        out_shape = self._check_region(region)
        n_outer = self._n_outer
        inner_region = region[n_outer:]
        ndim = len(self._first.shape)
        stored_region = [slice(0, 1)] * ndim
        for d, s in zip(self._dims, inner_region, strict=True):
            stored_region[d] = s
        inner_shape = out_shape[n_outer:]
        if all(s.stop - s.start == 1 for s in region[:n_outer]) and 0 not in out_shape:
            # one dataset (the common case: a chunk is one plane of one t and c): no copy
            member = self._members.get(tuple(s.start for s in region[:n_outer]))
            if member is not None:
                return member.read(tuple(stored_region)).transpose(self._perm).reshape(out_shape)
        out = np.empty(out_shape, dtype=self.dtype)
        if out.size == 0:
            return out
        for outer in itertools.product(*(range(s.start, s.stop) for s in region[:n_outer])):
            target = tuple(i - s.start for i, s in zip(outer, region[:n_outer], strict=True))
            member = self._members.get(tuple(outer))
            if member is None:
                out[target] = self.fill_value
                continue
            block = member.read(tuple(stored_region))
            out[target] = block.transpose(self._perm).reshape(inner_shape)
        return out

    def any_stored(self, region: Region) -> bool:
        """Whether any dataset stores a chunk holding part of ``region`` (False: all fill,
        known without reading). Datasets read through h5py answer True (unknown)."""
        n_outer = self._n_outer
        if any(s.stop <= s.start for s in region):
            return False
        stored_region = [slice(0, 1)] * len(self._first.shape)
        for d, s in zip(self._dims, region[n_outer:], strict=True):
            stored_region[d] = s
        for outer in itertools.product(*(range(s.start, s.stop) for s in region[:n_outer])):
            member = self._members.get(tuple(outer))
            if member is None:
                continue
            if member.any_stored(tuple(stored_region)):
                return True
        return False

    def read_raw_chunk(self, coords: tuple[int, ...]) -> bytes | None:
        if self.raw_chunk_format is None:
            return None
        found = self._stored_chunk(coords)
        return None if found is None else found[0].read_raw_chunk(found[1])

    @property
    def shuffled_chunk_shape(self) -> tuple[int, ...] | None:
        return self._shuffled_chunk_shape

    def read_shuffled_chunk(self, coords: tuple[int, ...], runs: int = 0) -> np.ndarray | None:
        if self._shuffled_chunk_shape is None:
            return None
        found = self._stored_chunk(coords)
        return None if found is None else found[0].read_shuffled_chunk(found[1], runs)

    def _stored_chunk(self, coords: tuple[int, ...]) -> tuple[Hdf5Array, tuple[int, ...]] | None:
        """The dataset and its chunk coordinates for chunk ``coords`` of a level whose
        chunks are the datasets' own (``_as_level_chunk``); None for a missing dataset."""
        member = self._members.get(tuple(coords[: self._n_outer]))
        if member is None:
            return None
        stored = [0] * len(member.shape)
        for d, index in zip(self._dims, coords[self._n_outer :], strict=True):
            stored[d] = index
        return member, tuple(stored)

    def _as_level_chunk(
        self, present: Sequence[Hdf5Array], chunk_shape: tuple[int, ...] | None
    ) -> tuple[int, ...] | None:
        """``chunk_shape`` (every dataset's stored chunk) as a chunk of this level, when
        a stored chunk is one: the mapping keeps the stored order, dropped dimensions are
        chunked by one, and every dataset is read in those chunks."""
        if chunk_shape is None or list(self._dims) != sorted(self._dims):
            return None
        if any(chunk_shape[d] != 1 for d in self._unmapped):
            return None
        if any(m.tile_shape != chunk_shape for m in present):
            return None
        return (1,) * self._n_outer + tuple(chunk_shape[d] for d in self._dims)

    def _shuffled_chunks(self, present: Sequence[Hdf5Array]) -> tuple[int, ...] | None:
        """Chunks given still byte-shuffled when every dataset gives them so alike."""
        shapes = {m.shuffled_chunk_shape for m in present}
        return self._as_level_chunk(present, shapes.pop()) if len(shapes) == 1 else None

    def _passthrough_format(self, present: Sequence[Hdf5Array]) -> RawChunkFormat | None:
        """The chunk format to pass through: every dataset has the same one, and a stored
        chunk is a chunk of the level (``_as_level_chunk``)."""
        formats = {m.raw_chunk_format for m in present}
        if len(formats) != 1:
            return None
        (raw,) = formats
        chunk = self._as_level_chunk(present, None if raw is None else raw.chunk_shape)
        if raw is None or chunk is None:
            return None
        return dataclasses.replace(raw, chunk_shape=chunk)


def squeeze_dims(shape: Sequence[int], names: Sequence[str]) -> tuple[list[str], list[int]]:
    """Axis names and dataset dimensions that remain when dimensions of size 1 other than
    y and x are dropped (the image axes keep y and x always)."""
    kept_names, kept_dims = [], []
    for dim, (name, size) in enumerate(zip(names, shape, strict=True)):
        if size == 1 and name not in ("y", "x"):
            continue
        kept_names.append(name)
        kept_dims.append(dim)
    return kept_names, kept_dims
