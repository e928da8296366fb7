"""What a source says is wrong with it: warnings collected per dataset, not logged per tile.

A truncated or damaged file makes the libraries that parse it log, once per page or tile
(tifffile logs ~66 lines for one cut pyramid): under a gateway serving thousands of files
that buries the log and tells the person looking at the dataset nothing. Instead, what a
library logs while a source is opened is captured (``captured_logs``) and becomes the
source's ``warnings``, summarised and bounded (``add_warnings``); the dataset page shows
them and the gateway logs one line per dataset.

Capture is per thread: the open runs in one worker thread, and records logged meanwhile by
other threads (other datasets opening in the pool) go to their own collectors or to the
log as usual.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

#: Warnings a source keeps at most; the last slot then says how many more there were.
MAX_WARNINGS = 24
#: One warning is cut here: a library's message can quote a whole damaged tag.
MAX_WARNING_CHARS = 400
#: Said in the last slot of a full list.
MORE = "more warnings not shown"
#: Records one capture keeps at most (a file of 10^5 broken pages logs 10^5 lines).
MAX_RECORDS = 10_000

_lock = threading.RLock()  # appends to a source's list come from worker threads too
#: Parts of a message that differ between repeats of the same problem: offsets, counts,
#: indexes. A message with these replaced is its "shape", repeats of which are one warning.
_NUMBERS = re.compile(r"\d+")
#: tifffile prefixes messages with the file's repr; the page is that file's already.
_FILE_REPR = re.compile(r"<tifffile\.TiffFile '[^']*'>\s*")


def add_warnings(warnings: list[str], messages: Iterable[str], limit: int = MAX_WARNINGS) -> None:
    """Append ``messages`` to ``warnings``: each on one line, cut at ``MAX_WARNING_CHARS``,
    none twice, at most ``limit`` in all (the last one then counts what was left out).
    Thread-safe (reads in the pool add what they meet)."""
    with _lock:
        for message in messages:
            text = _one_line(message)
            if text in warnings:
                continue
            if len(warnings) < limit - 1:
                warnings.append(text)
                continue
            if len(warnings) == limit - 1:
                warnings.append(f"1 {MORE}")
            elif warnings[-1].endswith(MORE):
                count = int(warnings[-1].split(" ", 1)[0]) + 1
                warnings[-1] = f"{count} {MORE}"


def add_failure(warnings: list[str], message: str) -> None:
    """Add a read failure met while serving (a tile cut off or not decodable) unless one
    like it (equal but for its numbers: another tile of the same kind of damage) is there."""
    shape = _NUMBERS.sub("#", _one_line(message))
    with _lock:
        if not any(_NUMBERS.sub("#", known) == shape for known in warnings):
            add_warnings(warnings, [message])


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_WARNING_CHARS else flat[: MAX_WARNING_CHARS - 1] + "…"


def summarise(messages: Iterable[str], source: str = "") -> list[str]:
    """Repeats of one problem (messages equal but for their numbers) as one line: the
    first, and how many like it followed. ``source`` prefixes each (``tifffile: ``)."""
    groups: dict[str, list[str]] = {}
    for message in messages:
        text = _FILE_REPR.sub("", message).strip()
        groups.setdefault(_NUMBERS.sub("#", text), []).append(text)
    lines = []
    for same in groups.values():
        more = f" (and {len(same) - 1:,} more like it)" if len(same) > 1 else ""
        lines.append(f"{source}{same[0]}{more}")
    return lines


class _Collector:
    __slots__ = ("dropped", "messages")

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.dropped = 0


class _ThreadRouter(logging.Filter):
    """On a library's logger: a record logged while this thread captures goes to its
    collector and not to the log; any other record passes."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        collector: _Collector | None = getattr(self.local, "collector", None)
        if collector is None:
            return True
        if len(collector.messages) < MAX_RECORDS:
            collector.messages.append(record.getMessage())
        else:
            collector.dropped += 1
        return False


_routers: dict[str, _ThreadRouter] = {}


def _router(logger_name: str) -> _ThreadRouter:
    with _lock:
        router = _routers.get(logger_name)
        if router is None:
            router = _routers[logger_name] = _ThreadRouter()
            logging.getLogger(logger_name).addFilter(router)
        return router


@contextmanager
def captured_logs(logger_name: str) -> Iterator[list[str]]:
    """``with captured_logs("tifffile") as messages:`` — what that logger logs in this
    thread while the block runs is appended to ``messages`` instead of written to the log
    (at most ``MAX_RECORDS``). Nested captures of one logger: the innermost collects."""
    router = _router(logger_name)
    collector = _Collector()
    outer = getattr(router.local, "collector", None)
    router.local.collector = collector
    try:
        yield collector.messages
    finally:
        router.local.collector = outer
        if collector.dropped:
            collector.messages.append(f"{collector.dropped:,} further messages of {logger_name} dropped")
