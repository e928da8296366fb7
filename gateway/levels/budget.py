"""Bounded work per request: a deadline and a cancel flag that long computations check.

A ``WorkToken`` belongs to one computation (one chunk being rendered, shared by every
request that waits for it: single flight). The event loop cancels it when no request
waits any more (clients hung up, or they gave up at their deadline); the worker thread
notices at its next ``checkpoint()`` — between blocks of a synthesized level — and stops
with ``WorkCancelled`` or ``BudgetExceeded``. Nothing is pre-empted: a computation stops
cooperatively, so the checks sit where work repeats (``gateway/levels/pyramid.py``).

Threads of an executor do not inherit the submitting request's context variables, so the
token is handed to the worker explicitly (``bound``), which sets it as the thread's
current token for the duration of the call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

V = TypeVar("V")


class WorkStopped(Exception):
    """A computation stopped before its end because its token said so."""


class WorkCancelled(WorkStopped):
    """Nobody waits for the result any more (every requesting client went away)."""


class BudgetExceeded(WorkStopped):
    """The work took longer than the request budget (``server.request_seconds``)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the request needed more than its budget of {seconds:g} s of work; work done so far is "
            "kept, so a retry gets further"
        )
        self.seconds = seconds


class WorkToken:
    """The deadline (``time.monotonic``) and cancel flag of one computation; thread-safe."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        """Raise ``WorkCancelled`` or ``BudgetExceeded`` when the work should stop."""
        if self._cancelled.is_set():
            raise WorkCancelled("nobody waits for this result any more")
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(self.seconds)


_current: ContextVar[WorkToken | None] = ContextVar("gateway_work_token", default=None)


def current_token() -> WorkToken | None:
    """The token of the computation running in this thread, if any."""
    return _current.get()


def checkpoint() -> None:
    """Stop here (raise) if the current computation was cancelled or is over budget; a
    no-op outside a bounded computation (in-process zarr reads, the CLI, tests)."""
    token = _current.get()
    if token is not None:
        token.check()


def bound(token: WorkToken, compute: Callable[[], V]) -> Callable[[], V]:
    """``compute`` run with ``token`` as the current token of the thread that runs it."""

    def run() -> V:
        token.check()  # cancelled while queued: do not start
        reset = _current.set(token)
        try:
            return compute()
        finally:
            _current.reset(reset)

    return run
