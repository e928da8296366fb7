"""gateway.store.cache single flight under cancellation: shared work is abandoned only when no
caller waits any more, and whoever still wants a value whose computation stopped gets it."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway.levels.budget import WorkCancelled, WorkToken, bound, checkpoint
from gateway.store.cache import ByteLRU

KB = 1000
WAIT = 10.0


@pytest.fixture
def executor():
    pool = ThreadPoolExecutor(4)
    yield pool
    pool.shutdown(wait=True)


class Held:
    """A computation that waits for ``release`` and then checks its token."""

    def __init__(self, value: bytes = b"v") -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.value = value
        self.runs = 0

    def __call__(self) -> bytes:
        self.runs += 1
        self.started.set()
        self.release.wait(WAIT)
        checkpoint()
        return self.value


async def _started(held: Held) -> None:
    await asyncio.get_running_loop().run_in_executor(None, held.started.wait, WAIT)


def test_the_only_caller_leaving_abandons_the_computation(executor):
    cache: ByteLRU[bytes] = ByteLRU(10 * KB)
    held, token = Held(), WorkToken(60)

    async def main() -> None:
        caller = asyncio.ensure_future(cache.get_or_compute("k", bound(token, held), executor, token.cancel))
        await _started(held)
        caller.cancel()
        await asyncio.wait([caller])

    asyncio.run(main())
    assert token.cancelled
    held.release.set()


def test_shared_work_goes_on_while_a_caller_still_waits(executor):
    cache: ByteLRU[bytes] = ByteLRU(10 * KB)
    held, token = Held(), WorkToken(60)

    async def main() -> bytes:
        first = asyncio.ensure_future(cache.get_or_compute("k", bound(token, held), executor, token.cancel))
        await _started(held)
        second = asyncio.ensure_future(cache.get_or_compute("k", held, executor, None))
        await asyncio.sleep(0)  # registered as a waiter
        first.cancel()
        await asyncio.wait([first])
        assert not token.cancelled
        held.release.set()
        return await second

    assert asyncio.run(main()) == b"v"
    assert held.runs == 1


def test_a_caller_that_joined_abandoned_work_starts_afresh(executor):
    cache: ByteLRU[bytes] = ByteLRU(10 * KB)
    held, token = Held(), WorkToken(60)
    again = Held(b"w")
    again.release.set()

    async def main() -> bytes:
        first = asyncio.ensure_future(cache.get_or_compute("k", bound(token, held), executor, token.cancel))
        await _started(held)
        first.cancel()
        await asyncio.wait([first])
        assert token.cancelled
        later = asyncio.ensure_future(cache.get_or_compute("k", again, executor, None))
        await asyncio.sleep(0)  # joins the abandoned computation...
        held.release.set()  # ...which then stops at its checkpoint
        return await later

    assert asyncio.run(main()) == b"w"
    assert again.runs == 1


def test_a_thread_waiting_for_stopped_work_computes_the_value_itself():
    cache: ByteLRU[bytes] = ByteLRU(10 * KB)
    token = WorkToken(60)
    started, release = threading.Event(), threading.Event()

    def stopping(keys):
        started.set()
        release.wait(WAIT)
        checkpoint()  # cancelled meanwhile: raises
        return {k: b"never" for k in keys}

    errors: list[BaseException] = []

    def first() -> None:
        try:
            bound(token, lambda: cache.get_many(["t"], stopping))()
        except WorkCancelled as exc:
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(WAIT)
    results: list[bytes] = []
    waiter = threading.Thread(
        target=lambda: results.extend(cache.get_many(["t"], lambda keys: {"t": b"mine"}))
    )
    waiter.start()
    for _ in range(int(WAIT * 1000)):  # until the second thread waits for the first one's work
        if cache.stats.shared >= 1:
            break
        started.wait(0.001)
    assert cache.stats.shared == 1
    token.cancel()
    release.set()
    thread.join(WAIT)
    waiter.join(WAIT)
    assert len(errors) == 1
    assert results == [b"mine"]


def test_a_waiting_thread_notices_its_own_cancellation():
    cache: ByteLRU[bytes] = ByteLRU(10 * KB)
    started, release = threading.Event(), threading.Event()

    def slow(keys):
        started.set()
        release.wait(WAIT)
        return {k: b"v" for k in keys}

    owner = threading.Thread(target=lambda: cache.get_many(["t"], slow))
    owner.start()
    assert started.wait(WAIT)
    token = WorkToken(60)
    outcome: list[BaseException] = []

    def waiter() -> None:
        try:
            bound(token, lambda: cache.get_many(["t"], slow))()
        except WorkCancelled as exc:
            outcome.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    token.cancel()
    thread.join(WAIT)  # returns without the owner's computation having finished
    assert not thread.is_alive() and len(outcome) == 1
    assert not release.is_set()
    release.set()
    owner.join(WAIT)
