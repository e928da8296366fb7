"""Which files adapters may open, and positional reads on them.

``FileAccess`` is the one opener: every file an adapter opens besides the one it was
asked to open (an HDF5 external link's target, a BigDataViewer XML's HDF5 file, the files
chunks are read from) is named by a file, and anyone who can save a file in a served
folder is untrusted. A name is resolved the way HDF5 and BigDataViewer read it (absolute,
or relative to the directory of the file that names it), symlinks are followed, and the
result must lie inside the allowed directories, or it is an ``OutsideRootsError`` and is
never opened. Whether a file outside exists is not revealed (the containment check comes
first). After opening, the descriptor is checked again (``verify_opened``), so that a
symlink swapped in between the check and the open is caught.

``PositionalFile``: ``os.pread`` needs no seek and no lock, so many threads read one
descriptor at once. Closing waits for reads in flight: closing a descriptor under a reader
would let the OS reuse its number for another file, and the reader would silently get that
file's bytes.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from adapters.base import SourceReadError, UnsupportedSourceError


class OutsideRootsError(UnsupportedSourceError):
    """A file names another file (an HDF5 external link, a BigDataViewer XML's HDF5 path)
    that lies outside the directories adapters may read: refused, never opened."""


@dataclass(frozen=True, slots=True)
class FileAccess:
    """The directories adapters may open files in (see module docstring).

    The gateway allows the one root a dataset was found in (a public root must not reach
    a protected root's files); ``beside`` allows a file's own directory tree, the default
    for direct use.
    """

    roots: tuple[str, ...]

    @classmethod
    def under(cls, *roots: str | os.PathLike[str]) -> FileAccess:
        return cls(tuple(os.path.realpath(root) for root in roots))

    @classmethod
    def beside(cls, path: str | os.PathLike[str]) -> FileAccess:
        """Only the directory (and below) that holds the real file of ``path``."""
        return cls.under(os.path.dirname(os.path.realpath(path)))

    def contains(self, real: str) -> bool:
        """Whether the resolved path ``real`` lies inside one of the roots."""
        return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots)

    def resolve(
        self, name: str | os.PathLike[str], *, referrer: str | os.PathLike[str] | None = None
    ) -> Path:
        """The real path of the file ``name``: absolute, or relative to the directory of
        ``referrer`` (the file that names it; without one, the working directory).

        Raises OutsideRootsError when it lies outside the roots (whether or not it
        exists), UnsupportedSourceError when it is inside but cannot be found."""
        text = os.fspath(name)
        shown = text if len(text) <= 200 else text[:200] + "…"
        if not text or "\x00" in text:
            raise OutsideRootsError(f"{shown!r} is not a file name; not opened")
        base = os.path.dirname(os.path.abspath(referrer)) if referrer is not None else os.getcwd()
        joined = os.path.join(base, text)  # an absolute ``text`` replaces ``base``
        if not self.contains(os.path.realpath(joined)):
            raise OutsideRootsError(f"{shown!r} lies outside the served folders; not opened")
        try:
            real = os.path.realpath(joined, strict=True)
        except OSError as exc:
            raise UnsupportedSourceError(f"{shown!r}: {exc.strerror or exc}") from exc
        if not self.contains(real):  # changed between the two looks
            raise OutsideRootsError(f"{shown!r} lies outside the served folders; not opened")
        return Path(real)

    def verify_opened(self, fd: int, path: str | os.PathLike[str]) -> None:
        """Raise OutsideRootsError unless descriptor ``fd`` is the file at ``path`` and
        that path (resolved now, after the open) lies inside the roots: a symlink swapped
        in between ``resolve`` and the open is caught here."""
        try:
            real = os.path.realpath(path, strict=True)
            opened, current = os.fstat(fd), os.stat(real)
        except OSError as exc:
            raise OutsideRootsError(f"{Path(path).name}: changed while being opened; not read") from exc
        if not self.contains(real) or (opened.st_dev, opened.st_ino) != (current.st_dev, current.st_ino):
            raise OutsideRootsError(f"{Path(path).name}: changed while being opened; not read")

    def open(
        self, name: str | os.PathLike[str], *, referrer: str | os.PathLike[str] | None = None
    ) -> PositionalFile:
        """A PositionalFile on ``name`` (resolved as ``resolve`` does), checked once open."""
        real = self.resolve(name, referrer=referrer)
        file = PositionalFile(real)
        try:
            self.verify_opened(file.fileno(), real)
        except OutsideRootsError:
            file.close()
            raise
        return file


class PositionalReader(Protocol):
    """What chunk readers need of a file: its path (named in errors), its size and
    thread-safe positional reads (a ``PositionalFile``, or a member of a multi-file set
    whose descriptor is opened on demand)."""

    path: Path
    size: int

    def pread(self, offset: int, size: int) -> bytes: ...


class PositionalFile:
    """A read-only file for concurrent ``pread`` calls; ``close`` is deferred and idempotent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self.size = os.fstat(self._fd).st_size
        self._users = 0
        self._closing = False
        self._lock = threading.Lock()

    def fileno(self) -> int:
        return self._fd

    def pread(self, offset: int, size: int) -> bytes:
        """Exactly ``size`` bytes at ``offset``; a short read means a truncated file."""
        if offset < 0 or size < 0 or offset + size > self.size:
            raise SourceReadError(
                f"{self.path.name}: bytes {offset}..{offset + size} lie outside the file "
                f"({self.size} bytes); the file is truncated or corrupt"
            )
        with self._lock:
            if self._closing:
                raise SourceReadError(f"{self.path.name}: file was closed")
            self._users += 1
        try:
            data = os.pread(self._fd, size, offset)
        except OSError as exc:
            raise SourceReadError(f"{self.path.name}: read failed: {exc}") from exc
        finally:
            self._release()
        if len(data) != size:
            raise SourceReadError(
                f"{self.path.name}: short read at {offset} ({len(data)} of {size} bytes); "
                "the file is truncated"
            )
        return data

    def _release(self) -> None:
        with self._lock:
            self._users -= 1
            close_now = self._closing and self._users == 0 and self._fd >= 0
            fd, self._fd = (self._fd, -1) if close_now else (self._fd, self._fd)
        if close_now:
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            close_now = self._users == 0
            fd, self._fd = (self._fd, -1) if close_now else (self._fd, self._fd)
        if close_now:
            os.close(fd)
