"""The open-file pool: an LRU of opened datasets bounded by count and by bytes.

What an opened source pins (parsed structure, chunk indexes, libhdf5 state) is reported
by the source as an estimate that may grow after opening (an HDF5 chunk index is learnt
on first read), so a holder re-measures an entry with ``resize``. The pool only decides
*what leaves*; whoever owns it closes what left, once nothing uses it (the catalog's
leases). Not thread-safe: the owner's lock guards every call.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class OpenPool(Generic[K, V]):
    """LRU of at most ``max_count`` values holding at most ``max_bytes`` together.

    A value larger than ``max_bytes`` on its own does not stay: it is served by whoever
    holds it and leaves the pool at once (memory stays bounded; such a file is reopened
    per use).
    """

    def __init__(self, max_count: int, max_bytes: int) -> None:
        if max_count < 1 or max_bytes < 0:
            raise ValueError("a pool needs max_count >= 1 and max_bytes >= 0")
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.total_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def values(self) -> Iterator[V]:
        """Values from least to most recently used."""
        return (value for value, _ in self._entries.values())

    def get(self, key: K) -> V | None:
        """The value at ``key`` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, nbytes: int) -> list[V]:
        """Insert (or replace) ``key``; returns the values that left, the replaced one
        included, least recently used first."""
        left = self.pop(key)
        gone = [] if left is None else [left]
        self._entries[key] = (value, max(0, nbytes))
        self.total_bytes += max(0, nbytes)
        return gone + self._shrink()

    def resize(self, key: K, value: V, nbytes: int) -> list[V]:
        """Record a new size for ``value`` (if it is still the one at ``key``) and return
        what must leave to stay within bounds (possibly ``value`` itself)."""
        entry = self._entries.get(key)
        if entry is None or entry[0] is not value:
            return []
        self.total_bytes += max(0, nbytes) - entry[1]
        self._entries[key] = (value, max(0, nbytes))
        return self._shrink()

    def pop(self, key: K) -> V | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self.total_bytes -= entry[1]
        return entry[0]

    def remove(self, key: K, value: V) -> bool:
        """Remove ``key`` only while it still holds ``value``; whether it did."""
        entry = self._entries.get(key)
        if entry is None or entry[0] is not value:
            return False
        self.pop(key)
        return True

    def clear(self) -> list[V]:
        values = list(self.values())
        self._entries.clear()
        self.total_bytes = 0
        return values

    def _shrink(self) -> list[V]:
        gone: list[V] = []
        while self._entries and (len(self._entries) > self.max_count or self.total_bytes > self.max_bytes):
            _key, (value, nbytes) = self._entries.popitem(last=False)
            self.total_bytes -= nbytes
            gone.append(value)
        return gone
