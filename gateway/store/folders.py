"""Folders under the roots: what a directory lists, paged and filtered, without opening a file.

A folder page must answer at once even for thousands of files on a slow disk, so listing
is a ``scandir`` and nothing else: sub-folders, and regular files whose *name* an adapter
serves (no magic bytes are read, not even for the suffixes that need a sniff, ``.xml``);
hidden entries, other file types and symlinks leading out of the root are left out, as
the catalog's containment rules leave them out of URLs.

What each listed file holds is filled in from what the catalog has learnt when it opened
or failed to open the file (``KnownFiles``), valid for one version of the file (identity
and status change time). What is still unknown is learnt in the background
(``Prober``): a few files at a time in the worker pool, a bounded backlog, so a reload
shows them and no request waits for them.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from cachetools import LRUCache

from adapters.base import Source
from gateway.levels import variants
from gateway.ngff.layout import DatasetTree

logger = logging.getLogger(__name__)

#: Files whose summary or failure the catalog remembers for listings (~0.3 KiB each).
KNOWN_REMEMBERED = 8192
#: Files queued for probing at most; beyond, a later listing asks again.
PROBE_BACKLOG = 256

#: (device, inode, mtime, size, ctime) of a file: what a remembered fact is valid for.
FileVersion = tuple[int, ...]


def file_version(stat: os.stat_result) -> FileVersion:
    """The version a fact about a file holds for: a rewrite changes the identity, a
    ``chmod`` the status change time."""
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size, stat.st_ctime_ns)


# -- what a file holds ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Summary:
    """A dataset at a glance, for listings: its first image (the one a viewer opens)."""

    format: str
    images: int
    shape: tuple[int, ...]
    dtype: str
    axes: str
    levels: int
    warnings: int


@dataclass(frozen=True, slots=True)
class Known:
    """What opening a file taught: its summary, or why it could not be served.
    ``is_dataset`` false: a file of a sniffed suffix (``.xml``) no adapter recognises,
    which is not a broken dataset but no dataset at all (listings leave it out)."""

    version: FileVersion
    summary: Summary | None = None
    reason: str = ""
    is_dataset: bool = True
    #: the URL path of the dataset this file is a piece of (a member of a multi-file
    #: OME-TIFF set): listed as its part, not as a dataset
    part_of: str = ""


def summarise(tree: DatasetTree, source: Source) -> Summary:
    """The summary of an opened dataset, from its served tree (levels the gateway adds
    count: they are what clients see)."""
    paths = sorted((p for p in tree.images if _is_image_group(p)), key=_image_order)
    if not paths:  # nothing a viewer would open (a file of labels only)
        return Summary(source.format, 0, (), "", "", 0, len(source.warnings))
    image = tree.images[paths[0]]
    level = image.levels[0]
    return Summary(
        format=source.format,
        images=len(paths),
        shape=tuple(level.shape),
        dtype=level.dtype.name,
        axes="".join(image.axis_names),
        levels=len(image.levels),
        warnings=len(source.warnings),
    )


def _is_image_group(path: str) -> bool:
    """An image of the file's own: not a served variant, not a label image."""
    return not variants.is_variant_group(path) and "/labels/" not in f"/{path}"


def _image_order(path: str) -> list[int]:
    return [int(s) if s.isdigit() else -1 for s in path.split("/") if s]


def failure_reason(cause: BaseException, version: FileVersion | None = None) -> str:
    """Why a file (of ``version``) cannot be served, in one line and without the server's
    file paths; an empty file says so (the commonest broken file: a copy that failed)."""
    if version is not None and version[3] == 0:
        return "empty file (0 bytes)"
    if isinstance(cause, OSError) and cause.strerror:
        text = cause.strerror
    else:
        text = str(cause) or type(cause).__name__
    flat = " ".join(text.split())
    return flat if len(flat) <= 300 else flat[:299] + "…"


class KnownFiles:
    """What the catalog learnt of files, by URL path: a bounded LRU, thread-safe."""

    def __init__(self, maxsize: int = KNOWN_REMEMBERED) -> None:
        self._known: LRUCache[str, Known] = LRUCache(maxsize=maxsize)
        self._lock = threading.Lock()

    def get(self, url_path: str, version: FileVersion) -> Known | None:
        """What is known of this version of the file, or None."""
        with self._lock:
            known = self._known.get(url_path)
        return known if known is not None and known.version == version else None

    def __contains__(self, url_path: object) -> bool:
        with self._lock:
            return url_path in self._known

    def put(self, url_path: str, known: Known) -> Known:
        with self._lock:
            self._known[url_path] = known
        return known


# -- a directory, paged ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """A sub-folder or a dataset file of a directory, as listed (a symlink stays one)."""

    name: str
    is_folder: bool
    path: str  # a str, not a Path: building 5,000 Paths costs more than the scandir

    @property
    def cursor(self) -> str:
        """Where a page ending here continues: ``name/`` for a folder, ``name`` for a file
        (no name holds a ``/``)."""
        return f"{self.name}/" if self.is_folder else self.name


def _order(is_folder: bool, name: str) -> tuple[int, str, str]:
    """Folders first, then files; by name, case-insensitively (ties by exact name)."""
    return (0 if is_folder else 1, name.casefold(), name)


def _cursor_order(cursor: str) -> tuple[int, str, str]:
    folder = cursor.endswith("/")
    return _order(folder, cursor[:-1] if folder else cursor)


def inside(root: Path, path: str | Path) -> bool:
    """Whether ``path``, symlinks resolved, lies under ``root`` (itself resolved)."""
    resolved = os.path.realpath(path)
    return os.path.commonpath([root, resolved]) == str(root)


def _listable_name(name: str) -> bool:
    """A name a URL can reach: not hidden, no backslash (the catalog refuses both), and
    valid UTF-8 (undecodable bytes come back from the OS as surrogates no URL holds)."""
    if name.startswith(".") or "\\" in name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def scan_directory(root: Path, directory: Path, is_candidate_name: Callable[[str], bool]) -> list[Entry]:
    """Sub-folders and dataset-named regular files of ``directory``, sorted (``_order``).

    One ``scandir``: the entry types come with the directory listing, so no file is
    opened and none is stat-ed but symlinks (resolved to keep them inside ``root``). A FIFO
    or socket named ``x.tif`` is not a regular file: left out."""
    entries = []
    with os.scandir(directory) as found:
        for item in found:
            name = item.name
            if not _listable_name(name):
                continue
            try:
                if item.is_symlink() and not inside(root, item.path):
                    continue
                if item.is_dir():
                    entries.append(Entry(name, True, item.path))
                elif is_candidate_name(name) and item.is_file():
                    entries.append(Entry(name, False, item.path))
            except OSError:  # vanished meanwhile, a symlink loop, no permission
                continue
    entries.sort(key=lambda e: _order(e.is_folder, e.name))
    return entries


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a directory's entries that match a filter."""

    entries: tuple[Entry, ...]
    total: int  # entries matching the filter, on every page
    next_cursor: str | None  # None: this is the last page


def page_entries(entries: list[Entry], query: str = "", after: str = "", limit: int = 100) -> Page:
    """The ``limit`` entries (sorted as ``scan_directory`` sorts) after the cursor ``after``
    whose names contain ``query`` (case-insensitive). A cursor is a position, not an entry:
    one whose entry was deleted meanwhile still continues where it was."""
    if query:
        needle = query.casefold()
        entries = [e for e in entries if needle in e.name.casefold()]
    start = 0
    if after:
        keys = [_order(e.is_folder, e.name) for e in entries]
        start = bisect.bisect_right(keys, _cursor_order(after))
    chosen = tuple(entries[start : start + limit])
    more = start + limit < len(entries)
    return Page(chosen, len(entries), chosen[-1].cursor if more and chosen else None)


@dataclass(frozen=True, slots=True)
class FolderListing:
    """A page of a folder (``path``: its URL path, "" for the list of roots) and what is
    known of each dataset on it (absent: not known yet, see ``Prober``)."""

    path: str
    page: Page
    known: dict[str, Known]  # by entry name

    def url_path(self, entry: Entry) -> str:
        return f"{self.path}/{entry.name}" if self.path else entry.name

    def unknown(self) -> list[str]:
        """URL paths of the datasets on this page nothing is known of yet."""
        return [self.url_path(e) for e in self.page.entries if not e.is_folder and e.name not in self.known]


# -- learning in the background ----------------------------------------------------------------


class Prober:
    """Learns what listed files hold after their listing was answered: ``probe`` (the
    catalog's: open, remember, close) runs in ``executor`` for at most ``concurrency``
    files at a time, so requests always find threads free; at most ``backlog`` files wait,
    the rest is dropped (a later listing of them asks again). Lives on the event loop."""

    def __init__(
        self,
        probe: Callable[[str], object],
        executor: Executor,
        concurrency: int = 2,
        backlog: int = PROBE_BACKLOG,
    ) -> None:
        self._probe = probe
        self._executor = executor
        self.concurrency = concurrency
        self.backlog = backlog
        self._queued: dict[str, None] = {}  # insertion-ordered: first listed, first probed
        self._active: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def enqueue(self, url_paths: Iterable[str]) -> int:
        """Queue files for probing (call from the event loop); how many were queued."""
        if self._closed or self.concurrency < 1:
            return 0
        added = 0
        for url_path in url_paths:
            if len(self._queued) >= self.backlog:
                break
            if url_path not in self._queued and url_path not in self._active:
                self._queued[url_path] = None
                added += 1
        while self._queued and len(self._tasks) < self.concurrency:
            task = asyncio.get_running_loop().create_task(self._work())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return added

    @property
    def pending(self) -> int:
        """Files queued or being probed."""
        return len(self._queued) + len(self._active)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queued and not self._closed:
            url_path = next(iter(self._queued))
            del self._queued[url_path]
            self._active.add(url_path)
            try:
                await loop.run_in_executor(self._executor, self._probe, url_path)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad file must not stop the others being learnt
                logger.exception("probing %s failed", url_path)
            finally:
                self._active.discard(url_path)

    def close(self) -> None:
        """Stop: nothing more is queued or started (a probe in a thread finishes alone)."""
        self._closed = True
        self._queued.clear()
        for task in list(self._tasks):
            task.cancel()
