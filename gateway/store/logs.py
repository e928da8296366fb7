"""Logs that stay readable under faults: one line per (dataset, error kind) per interval.

A truncated or corrupt file under load fails every request that touches it; logging each
failure buried everything else (211k lines in 8 s). ``LogLimiter`` lets the first line of
a key through, counts the repeats for ``interval_seconds``, and adds the count to the next
line it lets through: ``... (repeated 5,812 times in the last 10 s)``. Its memory is an
LRU of keys, so a client that makes many keys (many datasets) cannot grow it; an evicted
key only loses its count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

import adapters

#: Default interval between two lines of one key.
INTERVAL_SECONDS = 10.0
#: Keys remembered at once (least recently seen forgotten first).
MAX_KEYS = 1024
#: A logged message is cut here: an exception's text can embed a whole hostile header.
MAX_MESSAGE_CHARS = 500
#: ... and a dataset label (a key) here.
MAX_LABEL_CHARS = 200


@dataclass(slots=True)
class _Window:
    started: float
    suppressed: int = 0


class LogLimiter:
    """Decides which lines of a repeating fault are written; thread-safe.

    ``clock`` is injectable (``time.monotonic`` by default) so tests need no sleeps."""

    def __init__(
        self,
        interval_seconds: float = INTERVAL_SECONDS,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_seconds = interval_seconds
        self.max_keys = max_keys
        self._clock = clock
        self._windows: OrderedDict[Hashable, _Window] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._windows)

    def admit(self, key: Hashable) -> str | None:
        """None when a line for ``key`` was written less than an interval ago (counted);
        else the suffix for the line to write: ``""``, or the repeats it stands for."""
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is not None:
                self._windows.move_to_end(key)
                if now - window.started < self.interval_seconds:
                    window.suppressed += 1
                    return None
            suffix = ""
            if window is not None and window.suppressed:
                times = "time" if window.suppressed == 1 else "times"
                elapsed = now - window.started
                suffix = f" (repeated {window.suppressed:,} {times} in the last {elapsed:,.0f} s)"
            self._windows[key] = _Window(now)
            while len(self._windows) > self.max_keys:
                self._windows.popitem(last=False)
            return suffix

    def log(
        self,
        logger: logging.Logger,
        level: int,
        key: Hashable,
        message: str,
        exc_info: BaseException | None = None,
    ) -> bool:
        """Write ``message`` (one line, capped) unless ``key`` is within its interval;
        ``exc_info`` adds a traceback to the line that is written. Whether it was."""
        if not logger.isEnabledFor(level):
            return False
        suffix = self.admit(key)
        if suffix is None:
            return False
        logger.log(level, "%s%s", one_line(message), suffix, exc_info=exc_info)
        return True


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` on one line, at most ``limit`` characters (a log line per event)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def dataset_label(path: str) -> str:
    """The dataset a request path names (``lab/sub/a.tif`` of ``/lab/sub/a.tif/0/c/0/0``),
    by file suffix and without I/O; the path itself (capped) when none is named. A log key:
    every key of one dataset shares it."""
    segments = path.strip("/").split("/")
    for index, segment in enumerate(segments[1:], start=2):
        if adapters.is_candidate(Path(segment)):
            return "/".join(segments[:index])[:MAX_LABEL_CHARS]
    return "/".join(segments)[:MAX_LABEL_CHARS]


class RepeatFilter(logging.Filter):
    """A logging filter that rate-limits the warnings of a logger we do not own (uvicorn's
    ``Invalid HTTP request received.``: one per malformed request), keyed by the logger and
    the message template. Lines below ``WARNING`` pass untouched."""

    def __init__(self, limiter: LogLimiter | None = None) -> None:
        super().__init__()
        self.limiter = LogLimiter() if limiter is None else limiter

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        suffix = self.limiter.admit((record.name, str(record.msg)))
        if suffix is None:
            return False
        if suffix:
            record.msg = f"{record.msg}{suffix}"
        return True
