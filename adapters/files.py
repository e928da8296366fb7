"""Positional reads on a shared, reference-counted file descriptor.

``os.pread`` needs no seek and no lock, so many threads read one descriptor at once.
Closing waits for reads in flight: closing a descriptor under a reader would let the OS
reuse its number for another file, and the reader would silently get that file's bytes.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from adapters.base import SourceReadError


class PositionalFile:
    """A read-only file for concurrent ``pread`` calls; ``close`` is deferred and idempotent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self.size = os.fstat(self._fd).st_size
        self._users = 0
        self._closing = False
        self._lock = threading.Lock()

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
