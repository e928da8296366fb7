"""An opened HDF5 file: h5py for its structure, positional reads for its chunks.

libhdf5 is one process-wide library with global state, and h5py already serialises
every call on a lock of its own. Every call this package makes into h5py (open, walk,
attributes, chunk index, fallback reads, close) holds ``HDF5_LOCK`` as well, so that a
fallback read and a close never interleave and the lock-free paths have one clear
boundary: once a dataset's chunk offsets are known, its chunks are read with ``pread`` on
our own descriptor and decoded in the caller's thread, without the lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401  (registers blosc/zstd/lz4/bitshuffle... with libhdf5 for fallback reads)
import numpy as np

from adapters.base import Dependency, OpenOptions, SourceReadError, TileCache, UnsupportedSourceError
from adapters.files import PositionalFile

#: Held around every h5py call (see module docstring). Re-entrant: helpers nest.
HDF5_LOCK = threading.RLock()

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: The superblock sits at 0 or after a user block of 512, 1024, 2048... bytes.
SIGNATURE_OFFSETS = (0, *(512 << k for k in range(14)))


def has_hdf5_signature(path: Path) -> bool:
    """Whether ``path`` starts (or continues after a user block) with the HDF5 signature."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            for offset in SIGNATURE_OFFSETS:
                if offset + len(HDF5_SIGNATURE) > size:
                    return False
                fh.seek(offset)
                if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return True
    except OSError:
        return False
    return False


class H5File:
    """An h5py file opened read-only, and positional-read handles on it and on any file
    its datasets live in (external links): closed together, once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # taken before opening: a change after it is seen as a change (never missed)
            self.versions: dict[str, os.stat_result] = {os.path.realpath(path): os.stat(path)}
        except OSError as exc:
            raise UnsupportedSourceError(f"{path.name}: {exc.strerror or exc}") from exc
        with HDF5_LOCK:
            try:
                # rdcc_nbytes=0: decoded chunks are cached by the gateway, bounded in bytes.
                # locking="best-effort": HPC file systems without flock are still readable.
                self.h5 = h5py.File(path, "r", locking="best-effort", rdcc_nbytes=0)
            except (OSError, ValueError) as exc:
                raise UnsupportedSourceError(f"{path.name} is not a readable HDF5 file: {exc}") from exc
        self._files: dict[str, PositionalFile] = {}
        self._closed = False

    @contextmanager
    def locked(self) -> Iterator[h5py.File]:
        """The h5py file, under ``HDF5_LOCK``; a closed file is a SourceReadError."""
        with HDF5_LOCK:
            if self._closed:
                raise SourceReadError(f"{self.path.name}: file was closed")
            yield self.h5

    def positional(self, filename: str) -> PositionalFile:
        """A shared positional-read handle on ``filename`` (this file, or one a dataset
        lives in through an external link)."""
        with HDF5_LOCK:
            if self._closed:
                raise SourceReadError(f"{self.path.name}: file was closed")
            key = os.path.realpath(filename)
            file = self._files.get(key)
            if file is None:
                try:
                    self.versions.setdefault(key, os.stat(key))
                    file = self._files[key] = PositionalFile(Path(key))
                except OSError as exc:
                    raise SourceReadError(f"{Path(key).name}: {exc.strerror or exc}") from exc
            return file

    def dependencies(self, exclude: Path | None = None) -> tuple[Dependency, ...]:
        """Every file read so far (this one, externally linked ones) but ``exclude``, with
        the version read: a source built from them changes when any of them does."""
        skip = os.path.realpath(exclude) if exclude is not None else None
        with HDF5_LOCK:
            return tuple(Dependency(Path(p), st) for p, st in self.versions.items() if p != skip)

    def close(self) -> None:
        with HDF5_LOCK:
            if self._closed:
                return
            self._closed = True
            files, self._files = list(self._files.values()), {}
            try:
                self.h5.close()
            finally:
                for file in files:
                    file.close()


@dataclass(slots=True)
class Hdf5Context:
    """What a flavour needs to turn an opened file into images."""

    file: H5File
    tiles: TileCache
    options: OpenOptions
    warnings: list[str] = field(default_factory=list)

    @property
    def h5(self) -> h5py.File:
        return self.file.h5

    def warn(self, message: str) -> None:
        self.warnings.append(message)


# ---------------------------------------------------------------------------------------
# Attributes: strings come as str, bytes, numpy bytes, or (Imaris) arrays of single bytes.


def attr_text(attrs: Any, name: str) -> str | None:
    """An attribute as text, whichever way it was written; None when absent or not text."""
    try:
        if name not in attrs:
            return None
        value = attrs[name]
    except (OSError, TypeError, ValueError, KeyError):  # unreadable attribute types
        return None
    return as_text(value)


def as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace").rstrip("\x00")
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "S":
            # Imaris: arrays of single characters; elsewhere a 1-element array of a string
            return b"".join(bytes(v) for v in value.reshape(-1)).decode("utf-8", "replace").rstrip("\x00")
        if value.dtype.kind == "U":
            return "".join(str(v) for v in value.reshape(-1))
        if value.dtype.kind == "O" and value.size == 1:
            return as_text(value.reshape(-1)[0])
    return None


def attr_numbers(attrs: Any, name: str) -> list[float] | None:
    """A numeric attribute (scalar, array, or numbers written as text) as floats."""
    try:
        if name not in attrs:
            return None
        value = attrs[name]
    except (OSError, TypeError, ValueError, KeyError):
        return None
    text = as_text(value)
    if text is not None:
        try:
            return [float(part) for part in text.replace(",", " ").split()]
        except ValueError:
            return None
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        return None
    return [float(v) for v in array.reshape(-1)]
