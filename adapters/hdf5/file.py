"""An opened HDF5 file: h5py for its structure, positional reads for its chunks.

libhdf5 is one process-wide library with global state, and h5py already serialises
every call on a lock of its own. Every call this package makes into h5py (open, walk,
attributes, chunk index, fallback reads, close) holds ``HDF5_LOCK`` as well, so that a
fallback read and a close never interleave and the lock-free paths have one clear
boundary: once a dataset's chunk offsets are known, its chunks are read with ``pread`` on
our own descriptor and decoded in the caller's thread, without the lock.

Containment (whoever can save a file in a served folder is untrusted): an HDF5 file can
name other files, and libhdf5 would open them by rules we do not control (absolute names,
``HDF5_EXT_PREFIX``, the working directory). So:

- objects are reached only through ``H5File.get``, which walks a path one link at a time
  (``getlink=True``): hard links descend, soft links are resolved inside their file
  (``MAX_LINK_HOPS``, so loops end), and external links are resolved by the
  ``FileAccess`` (``adapters.io.files``) and their file opened by us, inside the allowed
  directories, as part of this ``H5File`` (closed with it, a dependency of the source).
  libhdf5 itself never traverses an external link (``name in group`` and multi-segment
  ``group[path]`` would, so the flavours do not use them);
- datasets whose data lives in other files are refused, whatever those files are:
  external raw storage (``external=``) and virtual datasets (VDS), whose file names
  libhdf5 resolves by its own rules and whose sources may themselves be links
  (``storage_refusal``). They are reported as source warnings, shown on the dataset page.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import h5py
import hdf5plugin  # noqa: F401  (registers blosc/zstd/lz4/bitshuffle... with libhdf5 for fallback reads)
import numpy as np

from adapters.base import Dependency, OpenOptions, SourceReadError, TileCache, UnsupportedSourceError
from adapters.io.files import FileAccess, OutsideRootsError, PositionalFile

#: Held around every h5py call (see module docstring). Re-entrant: helpers nest.
HDF5_LOCK = threading.RLock()

#: What an open HDF5 file pins besides the chunk indexes we learn (libhdf5's file and
#: metadata cache, h5py objects): ~0.8-0.9 MiB of RSS measured per open file, rounded up.
HDF5_FILE_BYTES = 1024 * 1024

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: The superblock sits at 0 or after a user block of 512, 1024, 2048... bytes.
SIGNATURE_OFFSETS = (0, *(512 << k for k in range(14)))
#: Soft and external links followed in one ``H5File.get``: more is a loop (or an attack).
MAX_LINK_HOPS = 16

#: What a path in an HDF5 file leads to.
Node: TypeAlias = h5py.Group | h5py.Dataset


class RefusedStorageError(UnsupportedSourceError):
    """A dataset whose data lives in other files (external storage, a virtual dataset):
    not served, since libhdf5 would pick those files by rules we do not control."""


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


def storage_refusal(dataset: h5py.Dataset) -> str | None:
    """Why ``dataset`` is not served because its data lives in other files; None when
    its data is in its own file. Looks only at the creation properties (no read, no
    ``shape``: a virtual dataset's extent may come from its sources). Hold the lock."""
    dcpl = dataset.id.get_create_plist()
    if dcpl.get_layout() == h5py.h5d.VIRTUAL:
        return "a virtual dataset (VDS): its data lives in other files, which are not read"
    if dcpl.get_external_count() > 0:
        return "stored in external raw files (external=): they are not read"
    return None


def exists(file: H5File, path: str) -> bool:
    """Whether ``H5File.get`` finds ``path`` (a link it cannot follow counts as absent):
    for the cheap tests that pick a flavour."""
    try:
        return file.get(path) is not None
    except UnsupportedSourceError:
        return False


class H5File:
    """An HDF5 file opened read-only with h5py, the files its external links lead to
    (opened through its ``FileAccess``), and positional-read handles on them: closed
    together, once. ``access`` None: only the file's own directory tree."""

    def __init__(self, path: Path, access: FileAccess | None = None) -> None:
        self.path = path
        self.access = access or FileAccess.beside(path)
        self.versions: dict[str, os.stat_result] = {}
        self._h5s: dict[str, h5py.File] = {}
        self._files: dict[str, PositionalFile] = {}
        self._closed = False
        with HDF5_LOCK:
            self.h5 = self._open_h5(self.access.resolve(path))

    def _open_h5(self, real: Path) -> h5py.File:
        """Open (once) the HDF5 file at the resolved path ``real``; hold the lock."""
        key = str(real)
        found = self._h5s.get(key)
        if found is not None:
            return found
        try:
            # taken before opening: a change after it is seen as a change (never missed)
            stat = os.stat(real)
        except OSError as exc:
            raise UnsupportedSourceError(f"{real.name}: {exc.strerror or exc}") from exc
        try:
            # rdcc_nbytes=0: decoded chunks are cached by the gateway, bounded in bytes.
            # locking="best-effort": HPC file systems without flock are still readable.
            h5 = h5py.File(real, "r", locking="best-effort", rdcc_nbytes=0)
        except (OSError, ValueError) as exc:
            raise UnsupportedSourceError(f"{real.name} is not a readable HDF5 file: {exc}") from exc
        try:
            handle = h5.id.get_vfd_handle()
            if isinstance(handle, int):
                self.access.verify_opened(handle, real)
        except BaseException:
            h5.close()
            raise
        self.versions.setdefault(key, stat)
        self._h5s[key] = h5
        return h5

    @contextmanager
    def locked(self) -> Iterator[h5py.File]:
        """The h5py file, under ``HDF5_LOCK``; a closed file is a SourceReadError."""
        with HDF5_LOCK:
            if self._closed:
                raise SourceReadError(f"{self.path.name}: file was closed")
            yield self.h5

    # -- objects ------------------------------------------------------------------------

    def get(self, path: str, start: h5py.Group | None = None) -> Node | None:
        """The group or dataset at ``path`` (from ``start``, by default the file's root),
        following links one at a time (see module docstring); None when a name along it
        does not exist. Raises OutsideRootsError for an external link leading outside the
        allowed directories, UnsupportedSourceError for one to a missing or unreadable
        file, a link loop or an unknown link class."""
        with self.locked() as h5:
            return self._walk(start if start is not None else h5, path, [0])

    def _walk(self, start: h5py.Group, path: str, hops: list[int]) -> Node | None:
        node: Node = start.file if path.startswith("/") else start
        for name in (part for part in path.split("/") if part and part != "."):
            if not isinstance(node, h5py.Group):
                return None
            link = node.get(name, getlink=True)
            if link is None:
                return None
            if isinstance(link, h5py.HardLink):
                node = node[name]
                continue
            hops[0] += 1
            if hops[0] > MAX_LINK_HOPS:
                raise UnsupportedSourceError(f"{path}: more than {MAX_LINK_HOPS} links (a loop?)")
            if isinstance(link, h5py.SoftLink):
                found = self._walk(node, link.path, hops)
            elif isinstance(link, h5py.ExternalLink):
                target = self._external(node, link)
                found = self._walk(target, link.path, hops)
            else:
                raise UnsupportedSourceError(f"{name}: a user-defined link class; not followed")
            if found is None:
                return None
            node = found
        return node

    def _external(self, holder: h5py.Group, link: h5py.ExternalLink) -> h5py.File:
        """The root of the file an external link in ``holder`` names, opened through the
        FileAccess (relative names are relative to the directory of ``holder``'s file)."""
        real = self.access.resolve(link.filename, referrer=holder.file.filename)
        return self._open_h5(real)

    def contained(self, dataset: h5py.Dataset) -> None:
        """Raise unless ``dataset`` lives in a file this H5File opened (never one libhdf5
        reached by itself) and keeps its data there (``storage_refusal``). Hold the lock."""
        if os.path.realpath(dataset.file.filename) not in self._h5s:
            raise OutsideRootsError(f"{dataset.name}: in a file not opened through the gateway; not served")
        reason = storage_refusal(dataset)
        if reason is not None:
            raise RefusedStorageError(f"{dataset.name.lstrip('/')}: not served: {reason}")

    # -- reads --------------------------------------------------------------------------

    def positional(self, filename: str) -> PositionalFile:
        """A shared positional-read handle on ``filename`` (this file, or one a dataset
        lives in through an external link), opened through the FileAccess."""
        with HDF5_LOCK:
            if self._closed:
                raise SourceReadError(f"{self.path.name}: file was closed")
            key = os.path.realpath(filename)
            file = self._files.get(key)
            if file is None:
                try:
                    real = str(self.access.resolve(key))
                    self.versions.setdefault(real, os.stat(real))
                    file = self._files[key] = self.access.open(real)
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
            h5s, self._h5s = list(self._h5s.values()), {}
            try:
                for h5 in reversed(h5s):  # linked files first, this one last
                    h5.close()
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
        if message not in self.warnings:  # a refused link is met once per level and view
            self.warnings.append(message)

    def get(self, path: str) -> Node | None:
        """``H5File.get``, with a link that cannot be followed (outside the allowed
        directories, to a missing file, a loop) reported as a warning and read as absent."""
        try:
            return self.file.get(path)
        except UnsupportedSourceError as exc:
            self.warn(f"{path}: {exc}")
            return None

    def dataset(self, path: str) -> h5py.Dataset | None:
        """The dataset at ``path`` when its data lives in files that may be read; None
        when absent, and (reported as a warning) when a link to it cannot be followed or
        its storage is refused (``storage_refusal``)."""
        node = self.get(path)
        if not isinstance(node, h5py.Dataset):
            return None
        try:
            self.file.contained(node)
        except UnsupportedSourceError as exc:
            self.warn(f"{exc}; served as missing")
            return None
        return node


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
