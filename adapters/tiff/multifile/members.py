"""The member files of a set, read by positional reads with a bounded number of descriptors.

A set may have thousands of members; the open-file pool bounds datasets, not descriptors.
So each set keeps at most ``MAX_OPEN_MEMBERS`` member descriptors open (least recently
used closed first, never one being read) and reopens the others on demand through the
same ``FileAccess`` (containment checked again). A reopened file must still be the one
that was parsed (device, inode, mtime, size), else the read fails: the catalog reopens a
set whose member changed.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from adapters.base import SourceReadError, UnsupportedSourceError
from adapters.io.files import FileAccess, PositionalFile

#: Member descriptors one set keeps open at once (the rest are reopened on demand).
MAX_OPEN_MEMBERS = 16


@dataclass(frozen=True, slots=True)
class _Member:
    name: str
    real: Path
    identity: tuple[int, int, int, int]  # dev, inode, mtime, size when parsed


class MemberFiles:
    """The member files of one set, read by positional reads (see the module docstring).

    A descriptor is opened on demand through ``access`` (containment checked again) and
    must still be the file that was parsed (device, inode, mtime, size), else the read
    fails: the catalog reopens a set whose member changed. At most ``max_open``
    descriptors stay open; one in use is never closed under its reader."""

    def __init__(self, access: FileAccess, referrer: Path, max_open: int = MAX_OPEN_MEMBERS) -> None:
        self._access = access
        self._referrer = referrer
        self._max_open = max(1, max_open)
        self._members: list[_Member] = []
        self._open: OrderedDict[int, PositionalFile] = OrderedDict()
        self._users: dict[int, int] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __len__(self) -> int:
        return len(self._members)

    @property
    def open_count(self) -> int:
        with self._lock:
            return len(self._open)

    def adopt(self, name: str, file: PositionalFile) -> MemberReader:
        """Take over ``file`` (just opened and parsed) as a member; its reader."""
        st = os.fstat(file.fileno())
        member = _Member(name, file.path, (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
        with self._lock:
            index = len(self._members)
            self._members.append(member)
            self._open[index] = file
            doomed = self._evict()
        for old in doomed:
            old.close()
        return MemberReader(self, index, member.real, member.identity[3])

    def _evict(self) -> list[PositionalFile]:
        """Descriptors beyond the bound, least recently used first, none in use. Hold the lock."""
        doomed = []
        for index in list(self._open):
            if len(self._open) <= self._max_open:
                break
            if self._users.get(index, 0) == 0:
                doomed.append(self._open.pop(index))
        return doomed

    def acquire(self, index: int) -> PositionalFile:
        """The open descriptor of member ``index``, held until ``release``."""
        with self._lock:
            if self._closed:
                raise SourceReadError(f"{self._members[index].name}: file was closed")
            file = self._open.get(index)
            if file is not None:
                self._open.move_to_end(index)
                self._users[index] = self._users.get(index, 0) + 1
                return file
        file = self._reopen(self._members[index])
        with self._lock:
            if self._closed:
                file.close()
                raise SourceReadError(f"{self._members[index].name}: file was closed")
            present = self._open.get(index)
            if present is not None:  # another reader reopened it meanwhile
                file.close()
                file = present
            else:
                self._open[index] = file
            self._open.move_to_end(index)
            self._users[index] = self._users.get(index, 0) + 1
            doomed = self._evict()
        for old in doomed:
            old.close()
        return file

    def release(self, index: int) -> None:
        with self._lock:
            self._users[index] -= 1
            doomed = self._evict()
        for old in doomed:
            old.close()

    def _reopen(self, member: _Member) -> PositionalFile:
        try:
            file = self._access.open(member.name, referrer=self._referrer)
        except (OSError, UnsupportedSourceError) as exc:
            raise SourceReadError(f"{member.name}: cannot be reopened: {exc}") from exc
        st = os.fstat(file.fileno())
        if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) != member.identity:
            file.close()
            raise SourceReadError(f"{member.name}: changed on disk since the set was opened")
        return file

    def close(self) -> None:
        """Close every descriptor (one being read closes once its read is done)."""
        with self._lock:
            self._closed = True
            files = list(self._open.values())
            self._open.clear()
        for file in files:
            file.close()


class MemberReader:
    """Positional reads of one member (a ``PositionalReader``)."""

    __slots__ = ("_files", "_index", "path", "size")

    def __init__(self, files: MemberFiles, index: int, path: Path, size: int) -> None:
        self._files = files
        self._index = index
        self.path = path
        self.size = size

    def pread(self, offset: int, size: int) -> bytes:
        file = self._files.acquire(self._index)
        try:
            return file.pread(offset, size)
        finally:
            self._files.release(self._index)
