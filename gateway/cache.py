"""A thread-safe LRU cache bounded in bytes, with single flight.

Two instances serve the gateway: encoded chunks (what HTTP returns) and decoded source
tiles (what neighbouring chunks, channels split from one RGB tile, and pyramid levels
share). Identical concurrent requests share one computation: the first caller computes,
the others wait on its future — in a worker thread (``get_many``, used by adapters) or
without holding a thread (``get_or_compute``, used from the event loop).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from cachetools import LRUCache

V = TypeVar("V")

#: Bookkeeping cost charged per entry, so that many tiny entries still hit the bound.
ENTRY_OVERHEAD_BYTES = 128


def sizeof(value: Any) -> int:
    """Bytes a cached value holds (bytes, arrays, None for "known absent")."""
    if value is None:
        return ENTRY_OVERHEAD_BYTES
    if isinstance(value, np.ndarray):
        return value.nbytes + ENTRY_OVERHEAD_BYTES
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value) + ENTRY_OVERHEAD_BYTES
    nbytes = getattr(value, "nbytes", None)
    return (int(nbytes) if nbytes is not None else 1024) + ENTRY_OVERHEAD_BYTES


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    shared: int = 0  # requests that waited on another caller's computation
    computed_bytes: int = 0  # bytes of the values computed on misses (for metrics)
    compute_seconds: float = 0.0  # thread time spent computing them (for metrics)


class ByteLRU(Generic[V]):
    """LRU bounded in bytes; values larger than the bound are computed but not kept."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lru: LRUCache[Hashable, V] = LRUCache(maxsize=max(max_bytes, 1), getsizeof=sizeof)
        self._inflight: dict[Hashable, Future[V]] = {}
        self._lock = threading.Lock()
        self.stats = CacheStats()

    @property
    def current_bytes(self) -> int:
        return int(self._lru.currsize)

    def __len__(self) -> int:
        return len(self._lru)

    def get(self, key: Hashable) -> tuple[bool, V | None]:
        """(found, value) without computing anything."""
        with self._lock:
            if key in self._lru:
                return True, self._lru[key]
        return False, None

    def _store(self, key: Hashable, value: V) -> None:
        if self.max_bytes <= 0 or sizeof(value) > self.max_bytes:
            return
        self._lru[key] = value

    def drop(self, predicate: Callable[[Hashable], bool]) -> int:
        """Remove every cached key for which ``predicate`` is true; returns how many."""
        with self._lock:
            doomed = [k for k in self._lru if predicate(k)]
            for key in doomed:
                del self._lru[key]
        return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._lru.clear()

    # -- single flight, synchronous: compute inline in the calling thread ----------------

    def get_many(
        self, keys: Sequence[Hashable], compute: Callable[[list[Hashable]], Mapping[Hashable, V]]
    ) -> list[V]:
        results: dict[Hashable, V] = {}
        waiting: dict[Hashable, Future[V]] = {}
        mine: dict[Hashable, Future[V]] = {}
        with self._lock:
            for key in keys:
                if key in results or key in waiting or key in mine:
                    continue
                if key in self._lru:
                    results[key] = self._lru[key]
                    self.stats.hits += 1
                elif key in self._inflight:
                    waiting[key] = self._inflight[key]
                    self.stats.shared += 1
                else:
                    future: Future[V] = Future()
                    self._inflight[key] = future
                    mine[key] = future
                    self.stats.misses += 1
        if mine:
            self._run(list(mine), compute, mine)
            for key, future in mine.items():
                results[key] = future.result()
        for key, future in waiting.items():
            results[key] = future.result()
        return [results[k] for k in keys]

    def _run(
        self,
        keys: list[Hashable],
        compute: Callable[[list[Hashable]], Mapping[Hashable, V]],
        futures: Mapping[Hashable, Future[V]],
    ) -> None:
        started = time.perf_counter()
        try:
            values = compute(keys)
            missing = [k for k in keys if k not in values]
            if missing:
                raise KeyError(f"computation returned no value for {missing[:3]}")
        except BaseException as exc:
            with self._lock:
                for key in keys:
                    self._inflight.pop(key, None)
            for key in keys:
                futures[key].set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        elapsed = time.perf_counter() - started
        with self._lock:
            for key in keys:
                self._store(key, values[key])
                self._inflight.pop(key, None)
                self.stats.computed_bytes += sizeof(values[key]) - ENTRY_OVERHEAD_BYTES
            self.stats.compute_seconds += elapsed
        for key in keys:
            futures[key].set_result(values[key])

    # -- single flight, asynchronous: compute in the executor, wait without a thread ------

    async def get_or_compute(self, key: Hashable, compute: Callable[[], V], executor: Executor) -> V:
        with self._lock:
            if key in self._lru:
                self.stats.hits += 1
                return self._lru[key]
            future = self._inflight.get(key)
            owner = future is None
            if future is None:
                future = Future()
                self._inflight[key] = future
                self.stats.misses += 1
            else:
                self.stats.shared += 1
        if owner:
            futures = {key: future}
            try:
                executor.submit(self._run, [key], lambda keys: {key: compute()}, futures)
            except RuntimeError as exc:  # executor shut down
                with self._lock:
                    self._inflight.pop(key, None)
                future.set_exception(exc)
        # shield: one caller going away (a client disconnecting) must not cancel the
        # computation that other callers share
        return await asyncio.shield(asyncio.wrap_future(future))


class NamespacedTiles:
    """The adapter-facing view of the tile cache for one opened source.

    Keys are prefixed with the source's identity, so a reopened (changed) file never
    sees its predecessor's tiles, and ``ByteLRU.drop`` can evict them all at once.
    """

    def __init__(self, cache: ByteLRU[np.ndarray], namespace: Hashable) -> None:
        self._cache = cache
        self.namespace = namespace

    def get_many(
        self,
        keys: Sequence[Hashable],
        compute: Callable[[list[Hashable]], Mapping[Hashable, np.ndarray]],
    ) -> list[np.ndarray]:
        ns = self.namespace

        def compute_prefixed(prefixed: list[Hashable]) -> dict[Hashable, np.ndarray]:
            values = compute([k[1] for k in prefixed])  # type: ignore[index]
            return {(ns, k): values[k] for k in (p[1] for p in prefixed)}  # type: ignore[index]

        return self._cache.get_many([(ns, k) for k in keys], compute_prefixed)
