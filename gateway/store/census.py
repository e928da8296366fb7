"""How many datasets the roots hold, counted in the background while the server starts.

``serve`` says what it found, but a tree of tens of thousands of files takes a while to
walk, and serving must not wait for it: the count runs in a thread of its own, reports
progress every few seconds and a summary when done, and stops when the server does. It
opens no file: names decide, as for the listing, except the suffixes other files share
(``.xml``, ``.nc``), which are sniffed (a few bytes each).

What is counted is what the listing shows: regular files (or links to them inside the
root) with a served suffix; hidden entries, links that leave the root and folders reached
through links are left out (as ``Catalog.iter_datasets`` does).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from adapters.registry import Registry

#: Seconds between progress lines while counting.
REPORT_SECONDS = 5.0


@dataclass(slots=True)
class Census:
    """Datasets counted per root so far, and folders that could not be read."""

    by_root: dict[str, int] = field(default_factory=dict)
    unreadable_folders: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_root.values())

    def summary(self, seconds: float) -> str:
        """``Found 12 datasets in 3 roots in 0.4 s (lab 10, scratch 2, empty 0)``."""
        total = self.total
        noun = "dataset" if total == 1 else "datasets"
        if len(self.by_root) == 1:
            where = f"in {next(iter(self.by_root))}"
        else:
            counts = ", ".join(f"{name} {count:,}" for name, count in self.by_root.items())
            where = f"in {len(self.by_root)} roots ({counts})"
        text = f"Found {total:,} {noun} {where} in {seconds:.1f} s"
        if self.unreadable_folders:
            text += f"; {self.unreadable_folders:,} folder(s) could not be read"
        return text


def count_datasets(
    roots: Mapping[str, Path],
    registry: Registry,
    stop: threading.Event | None = None,
    progress: Callable[[Census], None] | None = None,
) -> Census:
    """Walk every root (sorted by name) and count its dataset files; ``progress`` is
    called with the census after each folder; a set ``stop`` ends the walk early."""
    census = Census()
    for name, root in sorted(roots.items()):
        census.by_root[name] = 0
        real_root = os.path.realpath(root)
        for files in _folders(real_root, census):
            census.by_root[name] += sum(1 for entry in files if _is_dataset(entry, real_root, registry))
            if progress is not None:
                progress(census)
            if stop is not None and stop.is_set():
                return census
    return census


def _folders(root: str, census: Census) -> Iterator[list[os.DirEntry[str]]]:
    """The non-hidden file entries of each folder under ``root``, depth first; folders
    reached through links are not entered (no cycles, no escape)."""
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as entries:
                listed = [entry for entry in entries if not entry.name.startswith(".")]
        except OSError:
            census.unreadable_folders += 1
            continue
        files = []
        for entry in listed:
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                else:
                    files.append(entry)
            except OSError:
                continue
        yield files


def _is_dataset(entry: os.DirEntry[str], root: str, registry: Registry) -> bool:
    if not registry.is_candidate_name(entry.name):
        return False
    try:
        if entry.is_symlink():
            target = os.path.realpath(entry.path)
            if os.path.commonpath([root, target]) != root or not os.path.isfile(target):
                return False
        elif not entry.is_file(follow_symlinks=False):
            return False
    except (OSError, ValueError):
        return False
    return registry.is_dataset_file(Path(entry.path))  # sniffs the suffixes others share


class BackgroundCount:
    """``count_datasets`` in a daemon thread, reporting lines through ``report``: one
    every ``report_seconds`` while it runs (only if it runs that long), then the summary."""

    def __init__(
        self,
        roots: Mapping[str, Path],
        registry: Registry,
        report: Callable[[str], None],
        report_seconds: float = REPORT_SECONDS,
    ) -> None:
        self._roots = dict(roots)
        self._registry = registry
        self._report = report
        self._every = report_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-census", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)

    def _run(self) -> None:
        started = time.monotonic()
        next_report = started + self._every

        def progress(census: Census) -> None:
            nonlocal next_report
            now = time.monotonic()
            if now >= next_report:
                next_report = now + self._every
                self._say(f"Counting datasets: {census.total:,} so far...")

        census = count_datasets(self._roots, self._registry, self._stop, progress)
        if not self._stop.is_set():
            self._say(census.summary(time.monotonic() - started))

    def _say(self, line: str) -> None:
        try:
            self._report(line)
        except (OSError, ValueError):  # the output is gone (a closed pipe): the count is moot
            self._stop.set()
