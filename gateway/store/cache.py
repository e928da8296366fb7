"""A thread-safe LRU cache bounded in bytes, with single flight.

Two instances serve the gateway: encoded chunks (what HTTP returns) and decoded source
tiles (what neighbouring chunks, channels split from one RGB tile, and pyramid levels
share). Identical concurrent requests share one computation: the first caller computes,
the others wait on its future — in a worker thread (``get_many``, used by adapters) or
without holding a thread (``get_or_compute``, used from the event loop).

Shared work and cancellation (``gateway.levels.budget``): a computation started for requests
from the event loop is abandoned (its ``abandon`` callback, which cancels its work token)
only when the last request waiting for it has gone; a worker thread that waits for a
value another computation was producing, and sees that computation stop, takes the work
over unless its own computation was stopped too.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from cachetools import LRUCache

from gateway.levels.budget import WorkCancelled, WorkStopped, checkpoint

V = TypeVar("V")

#: Bookkeeping cost charged per entry, so that many tiny entries still hit the bound.
ENTRY_OVERHEAD_BYTES = 128
#: How often a worker thread waiting for another thread's computation checks its own
#: work token (a cancelled or over-budget request stops waiting within this).
WAIT_POLL_SECONDS = 0.05
#: Keys of "cheap" values recently computed without being kept (``get_or_compute``): one
#: asked for again while it is among these is kept. Bounded: a few MiB of keys at most.
SEEN_KEYS = 16384


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
class _Flight:
    """The requests (from the event loop) waiting for one computation, and how to stop it."""

    waiters: int
    abandon: Callable[[], None] | None


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
        self._flights: dict[Future[V], _Flight] = {}  # computations started by get_or_compute
        self._seen: LRUCache[Hashable, bool] = LRUCache(maxsize=SEEN_KEYS)  # cheap keys not kept yet
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

    def hit(self, key: Hashable) -> tuple[bool, V | None]:
        """(found, value), counted as a hit when found: the hot path of a cached value,
        without the machinery of a computation (``get_or_compute``) around it."""
        with self._lock:
            if key in self._lru:
                self.stats.hits += 1
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
        self,
        keys: Sequence[Hashable],
        compute: Callable[[list[Hashable]], Mapping[Hashable, V]],
        remember: bool = True,
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
            self._run(list(mine), compute, mine, remember)
            for key, future in mine.items():
                results[key] = future.result()
        for key, future in waiting.items():
            results[key] = self._shared_result(key, future, compute)
        return [results[k] for k in keys]

    def _shared_result(
        self, key: Hashable, future: Future[V], compute: Callable[[list[Hashable]], Mapping[Hashable, V]]
    ) -> V:
        """The value another thread is computing; this thread's own work token is checked
        while it waits. When that computation stops early (its requests went away, or its
        budget ran out) and ours goes on, compute the value here instead."""
        while not future.done():
            wait([future], timeout=WAIT_POLL_SECONDS, return_when=FIRST_COMPLETED)
            checkpoint()
        try:
            return future.result()
        except WorkStopped:
            checkpoint()  # stopped for us too: stop
            return self.get_many([key], compute)[0]

    def _run(
        self,
        keys: list[Hashable],
        compute: Callable[[list[Hashable]], Mapping[Hashable, V]],
        futures: Mapping[Hashable, Future[V]],
        remember: bool = True,
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
                    self._forget(key, futures[key])
            for key in keys:
                futures[key].set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        elapsed = time.perf_counter() - started
        with self._lock:
            for key in keys:
                if remember:
                    self._store(key, values[key])
                self._forget(key, futures[key])
                self.stats.computed_bytes += sizeof(values[key]) - ENTRY_OVERHEAD_BYTES
            self.stats.compute_seconds += elapsed
        for key in keys:
            futures[key].set_result(values[key])

    def _forget(self, key: Hashable, future: Future[V]) -> None:
        """Drop ``key``'s in-flight entry if it still is ``future`` (an abandoned
        computation's key may already belong to a new one). Call with the lock held."""
        if self._inflight.get(key) is future:
            del self._inflight[key]

    # -- single flight, asynchronous: compute in the executor, wait without a thread ------

    async def get_or_compute(
        self,
        key: Hashable,
        compute: Callable[[], V],
        executor: Executor,
        abandon: Callable[[], None] | None = None,
        *,
        cheap: bool = False,
    ) -> V:
        """The value of ``key``, computed by ``compute`` in ``executor`` unless cached or
        already being computed. A caller that is cancelled (its client went away, its
        budget ran out) stops waiting; when no caller waits any more, the computation
        is abandoned: ``abandon`` of the caller that started it is called (it should make
        the computation stop early, with ``WorkCancelled``). A caller that joined it
        meanwhile and sees it stop so starts afresh.

        ``cheap``: the value costs about as little to compute again as to keep (a stored
        chunk sent as it is, whose bytes the kernel's page cache holds already). It is
        kept only when asked for again (while its key is among the last ``SEEN_KEYS``
        such ones): a single pass over a dataset (a dask job, an export) leaves the cache
        to what is asked for repeatedly, and costs no fresh memory per chunk."""
        with self._lock:
            if key in self._lru:
                self.stats.hits += 1
                return self._lru[key]
            future = self._inflight.get(key)
            owner = future is None
            if future is None:
                future = Future()
                self._inflight[key] = future
                self._flights[future] = _Flight(0, abandon)
                self.stats.misses += 1
            else:
                self.stats.shared += 1
            flight = self._flights.get(future)  # None: started by a worker thread (get_many)
            if flight is not None:
                flight.waiters += 1
        if owner:
            futures = {key: future}
            remember = not cheap or self._seen_before(key)
            try:
                executor.submit(self._run, [key], lambda keys: {key: compute()}, futures, remember)
            except RuntimeError as exc:  # executor shut down
                with self._lock:
                    self._forget(key, future)
                future.set_exception(exc)
        try:
            # shield: one caller going away (a client disconnecting) must not cancel the
            # computation that other callers share; the last one abandons it (finally)
            result = asyncio.wrap_future(future)
            result.add_done_callback(_retrieved)  # an error nobody awaits any more is no news
            return await asyncio.shield(result)
        except WorkCancelled:
            if owner:
                raise  # our own computation cannot be abandoned while we wait for it
        finally:
            if flight is not None:
                self._leave(future, flight)
        # joined after its callers had left: it stopped, so compute it for ourselves
        return await self.get_or_compute(key, compute, executor, abandon, cheap=cheap)

    def _seen_before(self, key: Hashable) -> bool:
        """Whether cheap ``key`` was computed (and not kept) recently; remembers it if not."""
        with self._lock:
            if self._seen.pop(key, False):
                return True
            self._seen[key] = True
            return False

    def _leave(self, future: Future[V], flight: _Flight) -> None:
        """One caller stops waiting for ``future``; the last one abandons it if unfinished
        (a caller arriving later still joins it: it gets the value if the computation
        ends anyway, or starts afresh when it stops)."""
        with self._lock:
            flight.waiters -= 1
            if flight.waiters > 0:
                return
            self._flights.pop(future, None)
            if future.done():
                return
        if flight.abandon is not None:
            flight.abandon()


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


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
        remember: bool = True,
    ) -> list[np.ndarray]:
        ns = self.namespace

        def compute_prefixed(prefixed: list[Hashable]) -> dict[Hashable, np.ndarray]:
            values = compute([k[1] for k in prefixed])  # type: ignore[index]
            return {(ns, k): values[k] for k in (p[1] for p in prefixed)}  # type: ignore[index]

        return self._cache.get_many([(ns, k) for k in keys], compute_prefixed, remember)
