"""gateway.store.cache: a byte-bounded LRU with single flight (threads and asyncio)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from gateway.store import cache as cache_module
from gateway.store.cache import ENTRY_OVERHEAD_BYTES, ByteLRU, NamespacedTiles, sizeof

KB = 1000


def value(nbytes: int) -> bytes:
    """A value whose cached size is exactly ``nbytes``."""
    return b"x" * (nbytes - ENTRY_OVERHEAD_BYTES)


def fill(cache: ByteLRU, items: dict) -> None:
    cache.get_many(list(items), lambda keys: {k: items[k] for k in keys})


def wait_until(predicate, timeout=10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.001)


async def until(predicate, timeout=10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.001)


# -- size accounting and bound --------------------------------------------------------------


def test_sizeof_counts_bytes_plus_overhead():
    assert sizeof(b"abcd") == 4 + ENTRY_OVERHEAD_BYTES


def test_sizeof_counts_array_nbytes():
    assert sizeof(np.zeros((10, 10), np.uint16)) == 200 + ENTRY_OVERHEAD_BYTES


def test_sizeof_of_none_is_the_overhead():
    assert sizeof(None) == ENTRY_OVERHEAD_BYTES


def test_bound_is_in_bytes():
    cache = ByteLRU(3 * KB)
    fill(cache, {i: value(KB) for i in range(10)})
    assert cache.current_bytes <= 3 * KB
    assert len(cache) == 3


def test_least_recently_used_is_evicted():
    cache = ByteLRU(3 * KB)
    fill(cache, {"a": value(KB), "b": value(KB), "c": value(KB)})
    fill(cache, {"d": value(KB)})
    assert [cache.get(k)[0] for k in "abcd"] == [False, True, True, True]


def test_hit_counts_only_what_is_found():
    cache = ByteLRU(3 * KB)
    fill(cache, {"a": value(KB)})
    before = cache.stats.hits
    assert cache.hit("a")[0] and cache.hit("missing") == (False, None)
    assert cache.stats.hits == before + 1


def test_reading_refreshes_recency():
    cache = ByteLRU(3 * KB)
    fill(cache, {"a": value(KB), "b": value(KB), "c": value(KB)})
    cache.get("a")
    fill(cache, {"d": value(KB)})
    assert [cache.get(k)[0] for k in "abcd"] == [True, False, True, True]


def test_a_big_value_evicts_several_small_ones():
    cache = ByteLRU(4 * KB)
    fill(cache, {"a": value(KB), "b": value(KB), "c": value(KB)})
    fill(cache, {"big": value(3 * KB)})
    assert [cache.get(k)[0] for k in ("a", "b", "c", "big")] == [False, False, True, True]


def test_oversized_value_is_returned_but_not_kept():
    cache = ByteLRU(KB)
    big = value(2 * KB)
    assert cache.get_many(["big"], lambda keys: {"big": big}) == [big]
    assert cache.get("big") == (False, None)


def test_oversized_value_does_not_evict_others():
    cache = ByteLRU(2 * KB)
    fill(cache, {"a": value(KB)})
    fill(cache, {"big": value(3 * KB)})
    assert cache.get("a")[0]


def test_zero_bound_keeps_nothing():
    cache = ByteLRU(0)
    fill(cache, {"a": b"1"})
    assert len(cache) == 0


def test_none_is_cached_as_known_absent():
    cache = ByteLRU(KB)
    fill(cache, {"a": None})
    assert cache.get("a") == (True, None)


def test_drop_removes_matching_keys():
    cache = ByteLRU(10 * KB)
    fill(cache, {("x", 1): b"1", ("x", 2): b"2", ("y", 1): b"3"})
    assert cache.drop(lambda key: key[0] == "x") == 2
    assert [cache.get(k)[0] for k in (("x", 1), ("x", 2), ("y", 1))] == [False, False, True]


def test_drop_releases_bytes():
    cache = ByteLRU(10 * KB)
    fill(cache, {"a": value(KB)})
    cache.drop(lambda key: True)
    assert cache.current_bytes == 0


def test_clear_empties():
    cache = ByteLRU(10 * KB)
    fill(cache, {"a": b"1", "b": b"2"})
    cache.clear()
    assert len(cache) == 0


# -- get_many ----------------------------------------------------------------------------------


def test_get_many_computes_only_missing_keys():
    cache = ByteLRU(10 * KB)
    fill(cache, {"a": b"A"})
    asked = []
    result = cache.get_many(
        ["a", "b"], lambda keys: asked.extend(keys) or {k: k.upper().encode() for k in keys}
    )
    assert (result, asked) == ([b"A", b"B"], ["b"])


def test_get_many_keeps_order_and_duplicates():
    cache = ByteLRU(10 * KB)
    assert cache.get_many(["b", "a", "b"], lambda keys: {k: k.encode() for k in keys}) == [b"b", b"a", b"b"]


def test_get_many_computes_a_duplicate_key_once():
    cache = ByteLRU(10 * KB)
    asked = []
    cache.get_many(["a", "a"], lambda keys: asked.extend(keys) or {k: b"v" for k in keys})
    assert asked == ["a"]


def test_get_many_raises_when_compute_omits_a_key():
    cache = ByteLRU(10 * KB)
    with pytest.raises(KeyError):
        cache.get_many(["a", "b"], lambda keys: {"a": b"A"})


def test_get_many_single_flight_across_threads():
    """N threads ask for the same missing keys at once: each key is computed once."""
    cache = ByteLRU(10 * KB)
    threads = 8
    keys = ["a", "b", "c"]
    calls: Counter[str] = Counter()

    def compute(missing):
        calls.update(missing)
        # Hold the computation until every other thread waits on it.
        wait_until(lambda: cache.stats.shared >= (threads - 1) * len(keys))
        return {k: k.encode() for k in missing}

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda _: cache.get_many(keys, compute), range(threads)))
    assert calls == Counter(keys)
    assert results == [[b"a", b"b", b"c"]] * threads


def test_get_many_exception_reaches_every_waiter():
    cache = ByteLRU(10 * KB)
    threads = 6

    def compute(missing):
        wait_until(lambda: cache.stats.shared >= threads - 1)
        raise ValueError("corrupt tile")

    def ask(_):
        try:
            cache.get_many(["k"], compute)
        except ValueError as exc:
            return str(exc)
        return "no error"

    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(ask, range(threads)))
    assert outcomes == ["corrupt tile"] * threads


def test_get_many_exception_is_not_cached():
    cache = ByteLRU(10 * KB)
    with pytest.raises(ValueError):
        cache.get_many(["k"], lambda keys: (_ for _ in ()).throw(ValueError("once")))
    assert cache.get_many(["k"], lambda keys: {"k": b"fine"}) == [b"fine"]


# -- get_or_compute (asyncio) --------------------------------------------------------------------


@pytest.fixture
def executor():
    with ThreadPoolExecutor(4) as pool:
        yield pool


def test_get_or_compute_returns_and_caches(executor):
    cache = ByteLRU(10 * KB)
    calls = []

    async def main():
        first = await cache.get_or_compute("k", lambda: calls.append(1) or b"v", executor)
        second = await cache.get_or_compute("k", lambda: calls.append(1) or b"w", executor)
        return first, second

    assert asyncio.run(main()) == (b"v", b"v")
    assert calls == [1]


def test_get_or_compute_single_flight(executor):
    cache = ByteLRU(10 * KB)
    callers = 10
    calls = []

    def compute():
        calls.append(1)
        wait_until(lambda: cache.stats.shared >= callers - 1)
        return b"v"

    async def main():
        return await asyncio.gather(*(cache.get_or_compute("k", compute, executor) for _ in range(callers)))

    assert asyncio.run(main()) == [b"v"] * callers
    assert calls == [1]


def test_get_or_compute_exception_reaches_every_caller(executor):
    cache = ByteLRU(10 * KB)
    callers = 5

    def compute():
        wait_until(lambda: cache.stats.shared >= callers - 1)
        raise OSError("disk gone")

    async def main():
        tasks = (cache.get_or_compute("k", compute, executor) for _ in range(callers))
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert [type(o) for o in outcomes] == [OSError] * callers


def test_get_or_compute_exception_is_not_cached(executor):
    cache = ByteLRU(10 * KB)

    def fail():
        raise OSError("transient")

    async def main():
        with pytest.raises(OSError):
            await cache.get_or_compute("k", fail, executor)
        return await cache.get_or_compute("k", lambda: b"ok", executor)

    assert asyncio.run(main()) == b"ok"


def test_get_or_compute_on_a_shut_down_executor_raises_and_forgets():
    cache = ByteLRU(10 * KB)
    pool = ThreadPoolExecutor(1)
    pool.shutdown()

    async def main():
        with pytest.raises(RuntimeError):
            await cache.get_or_compute("k", lambda: b"v", pool)
        with ThreadPoolExecutor(1) as fresh:
            return await cache.get_or_compute("k", lambda: b"v", fresh)

    assert asyncio.run(main()) == b"v"


def test_cancelled_caller_does_not_fail_the_others(executor):
    """Two requests share a computation; the first is cancelled (client gone, timeout)."""
    cache = ByteLRU(10 * KB)
    started, release = threading.Event(), threading.Event()

    def compute():
        started.set()
        release.wait(10)
        return b"v"

    async def main():
        loop = asyncio.get_running_loop()
        first = asyncio.ensure_future(cache.get_or_compute("k", compute, executor))
        await loop.run_in_executor(None, started.wait, 10)
        second = asyncio.ensure_future(cache.get_or_compute("k", compute, executor))
        first.cancel()
        await asyncio.wait([first])
        release.set()
        return await second

    assert asyncio.run(main()) == b"v"


def test_caller_arriving_after_a_cancellation_gets_the_value(executor):
    cache = ByteLRU(10 * KB)
    started, release = threading.Event(), threading.Event()

    def compute():
        started.set()
        release.wait(10)
        return b"v"

    async def main():
        loop = asyncio.get_running_loop()
        first = asyncio.ensure_future(cache.get_or_compute("k", compute, executor))
        await loop.run_in_executor(None, started.wait, 10)
        first.cancel()
        await asyncio.wait([first])
        later = asyncio.ensure_future(cache.get_or_compute("k", compute, executor))
        await until(lambda: cache.stats.shared >= 1)  # registered while the computation runs
        release.set()
        return await later

    assert asyncio.run(main()) == b"v"


# -- NamespacedTiles --------------------------------------------------------------------------


def test_namespaces_do_not_share_values():
    cache = ByteLRU(10 * KB)
    old, new = NamespacedTiles(cache, "v1"), NamespacedTiles(cache, "v2")
    old.get_many(["t"], lambda keys: {"t": np.zeros(2)})
    assert new.get_many(["t"], lambda keys: {"t": np.ones(2)})[0].tolist() == [1.0, 1.0]


def test_namespace_can_be_dropped_at_once():
    cache = ByteLRU(10 * KB)
    tiles = NamespacedTiles(cache, "v1")
    tiles.get_many(["a", "b"], lambda keys: {k: np.zeros(2) for k in keys})
    assert cache.drop(lambda key: key[0] == "v1") == 2


def test_get_many_without_remembering_computes_and_keeps_nothing():
    cache: ByteLRU = ByteLRU(100 * KB)
    calls: list[list] = []

    def compute(keys):
        calls.append(list(keys))
        return {k: value(KB) for k in keys}

    assert cache.get_many(["a"], compute, remember=False) == [value(KB)]
    assert cache.get_many(["a"], compute, remember=False) == [value(KB)]
    assert calls == [["a"], ["a"]]  # computed each time, never cached
    assert cache.get_many(["a"], compute) == [value(KB)]
    assert cache.get_many(["a"], compute, remember=False) == [value(KB)]
    assert calls == [["a"], ["a"], ["a"]]  # remembered once: then a hit either way


def test_get_many_without_remembering_still_shares_one_computation():
    cache: ByteLRU = ByteLRU(100 * KB)
    started, release = threading.Event(), threading.Event()
    count = Counter()

    def compute(keys):
        count.update(keys)
        started.set()
        release.wait(10)
        return {k: value(KB) for k in keys}

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.get_many, ["a"], compute, False)
        started.wait(10)
        second = pool.submit(cache.get_many, ["a"], compute, False)
        wait_until(lambda: cache.stats.shared == 1)
        release.set()
        assert first.result() == second.result() == [value(KB)]
    assert count["a"] == 1


# -- cheap values: kept from their second request ------------------------------------------


def test_a_cheap_value_is_kept_only_when_asked_for_again(executor):
    cache = ByteLRU(10 * KB)
    calls = []

    async def ask(key="k", cheap=True):
        return await cache.get_or_compute(key, lambda: calls.append(key) or b"v", executor, cheap=cheap)

    async def main():
        assert await ask() == b"v"
        assert (len(cache), len(calls)) == (0, 1)  # a single pass leaves the cache as it was
        assert await ask() == b"v"
        assert (len(cache), len(calls)) == (1, 2)  # asked again: computed again, and kept
        assert await ask() == b"v"
        assert len(calls) == 2 and cache.stats.hits == 1
        assert await ask("costly", cheap=False) == b"v"
        assert len(cache) == 2  # what is costly to compute again is kept at once

    asyncio.run(main())


def test_cheap_keys_seen_long_ago_are_forgotten(executor, monkeypatch):
    monkeypatch.setattr(cache_module, "SEEN_KEYS", 4)
    cache = ByteLRU(10 * KB)

    async def main():
        for key in ["a", "b", "c", "d", "e", "a"]:  # "a" fell out of the last 4 seen
            await cache.get_or_compute(key, lambda: b"v", executor, cheap=True)
        assert len(cache) == 0
        await cache.get_or_compute("e", lambda: b"v", executor, cheap=True)
        assert cache.get("e") == (True, b"v") and len(cache) == 1

    asyncio.run(main())
