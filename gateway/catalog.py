"""URL paths → opened sources, kept safely inside the configured roots.

A dataset's URL path mirrors its file path under its root: ``<root>/<sub/dir/file.tif>``,
followed by a key inside the dataset (``zarr.json``, ``0/c/0/0``). Files are opened lazily
on first request and kept in a bounded pool; a file whose identity (device, inode, mtime,
size) changed is reopened and everything cached for its old identity is dropped.

Containment: a path with an empty, ``.`` or ``..`` segment, a hidden segment, a NUL or a
backslash is refused before touching the disk; the resolved file (symlinks followed) must
lie inside the resolved root. A refusal is indistinguishable from a missing file (404).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cachetools import LRUCache

import adapters
from adapters.base import AdapterError, Dependency, Source
from gateway import labels, rocrate
from gateway.cache import ByteLRU, NamespacedTiles
from gateway.layout import DatasetTree, TreeOptions, build_tree
from gateway.settings import Settings

logger = logging.getLogger(__name__)

#: st_dev, st_ino, st_mtime_ns, st_size of the file, then of each file it depends on
#: (``Source.dependencies``: a BigDataViewer XML's HDF5 file)
Identity = tuple[int, ...]


class SourceUnavailableError(Exception):
    """A file under a root looks like a dataset but cannot be opened as one."""

    def __init__(self, url_path: str, cause: Exception) -> None:
        super().__init__(f"{url_path}: {cause}")
        self.url_path = url_path
        self.cause = cause


@dataclass(slots=True)
class Dataset:
    """An opened source and the tree it serves, valid for one file identity."""

    url_path: str
    path: Path
    identity: Identity
    source: Source
    tree: DatasetTree
    #: Prefix of every cache key that belongs to this opening of the file (unique per
    #: opening: reads in flight on a replaced version never feed the new one)
    namespace: Hashable = None
    checked_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Located:
    dataset: Dataset
    key: str  # key inside the dataset


def _identity(stat: os.stat_result) -> Identity:
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _dependency_identity(dependencies: Iterable[Dependency], *, current: bool) -> Identity:
    """The identities of a source's other files: as opened, or (``current``) as now on
    disk (a missing file counts as a change)."""
    identity: Identity = ()
    for dependency in dependencies:
        if not current:
            identity += _identity(dependency.stat)
            continue
        try:
            identity += _identity(os.stat(dependency.path))
        except OSError:
            identity += (0, 0, 0, 0)
    return identity


def split_url_path(path: str) -> list[str] | None:
    """Segments of a request path, or None if any segment is unsafe or empty."""
    if not path or "\x00" in path or "\\" in path:
        return None
    segments = path.split("/")
    for segment in segments:
        if segment in ("", ".", "..") or segment.startswith("."):
            return None
    return segments


class _OpenPool(LRUCache[str, Dataset]):
    """LRU of opened datasets that closes what it evicts."""

    def popitem(self) -> tuple[str, Dataset]:
        key, dataset = super().popitem()
        dataset.source.close()
        return key, dataset


class Catalog:
    def __init__(
        self,
        settings: Settings,
        tiles: ByteLRU[Any],
        on_stale: Callable[[Hashable], None] | None = None,
    ) -> None:
        self.settings = settings
        self.roots = {name: Path(os.path.realpath(path)) for name, path in settings.roots.items()}
        self._tiles = tiles
        self._on_stale = on_stale
        self._pool = _OpenPool(maxsize=settings.cache.open_files)
        self._opening: dict[str, Future[Dataset]] = {}
        self._failures: LRUCache[str, tuple[Identity, Exception, float]] = LRUCache(maxsize=1024)
        self._openings = itertools.count()
        self._lock = threading.Lock()

    # -- lookup ---------------------------------------------------------------------------

    @staticmethod
    def _candidates(segments: list[str]) -> Iterator[int]:
        """Numbers of leading segments that could name a dataset file, by suffix (no I/O).
        Several when a directory is named like a file (``run.tif/image.tif``)."""
        for index, segment in enumerate(segments[1:], start=2):
            if adapters.is_candidate(Path(segment)):
                yield index

    def locate_cached(self, url_path: str) -> Located | None:
        """Fast path without I/O: a dataset already open and checked recently, else None."""
        segments = split_url_path(url_path)
        if not segments:
            return None
        interval = self.settings.cache.stat_interval_seconds
        for count in self._candidates(segments):
            with self._lock:
                dataset = self._pool.get("/".join(segments[:count]))
            if dataset is not None:
                if time.monotonic() - dataset.checked_at >= interval:
                    return None
                return Located(dataset, "/".join(segments[count:]))
        return None

    def locate(self, url_path: str) -> Located | None:
        """The dataset and inner key of a request path; None when there is none (404).

        Blocking (stat, open): call from a worker thread. Raises SourceUnavailableError
        for a file that exists but cannot be opened.
        """
        found = self.resolve_file(url_path)
        if found is None:
            return None
        dataset_path, file_path, key = found
        dataset = self._dataset(dataset_path, file_path)
        return None if dataset is None else Located(dataset, key)

    def _contained_file(self, root_name: str, relative: list[str]) -> Path | None:
        root = self.roots[root_name]
        candidate = root.joinpath(*relative)
        try:
            resolved = Path(os.path.realpath(candidate, strict=True))
        except (OSError, RuntimeError):
            return None
        if os.path.commonpath([root, resolved]) != str(root) or not resolved.is_file():
            return None
        return resolved

    def _dataset(self, url_path: str, file_path: Path) -> Dataset | None:
        try:
            identity = _identity(os.stat(file_path))
        except OSError:
            return None
        with self._lock:
            current = self._pool.get(url_path)
        if current is not None and current.source.dependencies:
            identity += _dependency_identity(current.source.dependencies, current=True)
        with self._lock:
            dataset = self._pool.get(url_path)
            if dataset is not None and dataset.identity == identity and dataset.path == file_path:
                dataset.checked_at = time.monotonic()
                return dataset
            failure = self._failures.get(url_path)
            # a failure is retried after the stat interval too: a file it depends on
            # (a BigDataViewer XML's HDF5 file) may have been repaired meanwhile
            if (
                failure is not None
                and failure[0] == identity
                and time.monotonic() - failure[2] < self.settings.cache.stat_interval_seconds
            ):
                raise SourceUnavailableError(url_path, failure[1])
            future = self._opening.get(url_path)
            owner = future is None
            if future is None:
                future = Future()
                self._opening[url_path] = future
        if not owner:
            return future.result()
        try:
            if dataset is not None:
                self._retire(url_path, dataset)
            opened = self._open(url_path, file_path, identity)
        except SourceUnavailableError as exc:
            with self._lock:
                self._failures[url_path] = (identity, exc.cause, time.monotonic())
                self._opening.pop(url_path, None)
            future.set_exception(exc)
            raise
        except BaseException as exc:
            with self._lock:
                self._opening.pop(url_path, None)
            future.set_exception(exc)
            raise
        with self._lock:
            self._pool[url_path] = opened
            self._failures.pop(url_path, None)
            self._opening.pop(url_path, None)
        future.set_result(opened)
        return opened

    def _retire(self, url_path: str, dataset: Dataset) -> None:
        """A served file changed on disk: close it and drop every byte cached for it."""
        logger.info("%s changed on disk; reopening", url_path)
        with self._lock:
            if self._pool.get(url_path) is dataset:
                del self._pool[url_path]
        dataset.source.close()
        namespace = dataset.namespace
        self._tiles.drop(lambda key: isinstance(key, tuple) and key[0] == namespace)
        if self._on_stale is not None:
            self._on_stale(namespace)

    def _open(self, url_path: str, file_path: Path, identity: Identity) -> Dataset:
        identity = identity[:4]  # the file's own; its dependencies' come from the source
        namespace = (str(file_path), identity, next(self._openings))
        started = time.perf_counter()
        tiles = NamespacedTiles(self._tiles, namespace)
        try:
            source = adapters.open_source(file_path, tiles, self.settings.hdf5.open_options())
        except AdapterError as exc:
            logger.warning("cannot open %s: %s", url_path, exc)
            raise SourceUnavailableError(url_path, exc) from exc
        except OSError as exc:
            raise SourceUnavailableError(url_path, exc) from exc
        try:
            tree = build_tree(source, self.settings.chunks, self._tree_options(url_path, source, tiles))
        except Exception as exc:
            source.close()
            logger.exception("cannot describe %s", url_path)
            raise SourceUnavailableError(url_path, exc) from exc
        logger.info("opened %s (%s) in %.3f s", url_path, source.format, time.perf_counter() - started)
        identity += _dependency_identity(source.dependencies, current=False)
        return Dataset(
            url_path=url_path,
            path=file_path,
            identity=identity,
            source=source,
            tree=tree,
            namespace=namespace,
        )

    def _tree_options(self, url_path: str, source: Source, tiles: NamespacedTiles) -> TreeOptions:
        """Pyramids, windows, the v2 view, declared labels (their sources opened and
        attached to ``source``) and the RO-Crate of the dataset at ``url_path``."""
        settings = self.settings
        found = labels.resolve(
            url_path,
            source,
            settings.labels,
            resolve_file=self.resolve_file,
            tiles=tiles,
            options=settings.hdf5.open_options(),
        )
        entry = rocrate.entry_for(url_path, settings.rocrate)
        return TreeOptions.from_settings(
            settings,
            tiles,
            labels=tuple(found.attachments),
            label_groups=frozenset(found.label_groups),
            rocrate=rocrate.crate(entry, url_path.rpartition("/")[2]) if entry else None,
        )

    def resolve_file(self, url_path: str) -> tuple[str, Path, str] | None:
        """(dataset URL path, file, key inside it) of a URL path, without opening the file;
        None when no dataset file under a root holds it. Blocking (stat)."""
        segments = split_url_path(url_path)
        if not segments or segments[0] not in self.roots:
            return None
        for count in self._candidates(segments):
            file_path = self._contained_file(segments[0], segments[1:count])
            if file_path is not None and adapters.is_dataset_file(file_path):
                return "/".join(segments[:count]), file_path, "/".join(segments[count:])
        return None

    # -- discovery --------------------------------------------------------------------------

    def iter_datasets(self, limit: int | None = None) -> Iterator[tuple[str, Path]]:
        """(URL path, file) of every dataset file under the roots (by suffix, sniffed where
        the suffix is ambiguous), sorted per directory; hidden entries and symlinks leading
        out of the root are skipped."""
        count = 0
        for name, root in sorted(self.roots.items()):
            for directory, subdirs, files in os.walk(root, followlinks=False):
                subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
                for filename in sorted(files):
                    path = Path(directory, filename)
                    if filename.startswith(".") or not adapters.is_dataset_file(path):
                        continue
                    resolved = os.path.realpath(path)
                    if os.path.commonpath([root, resolved]) != str(root):
                        continue
                    relative = path.relative_to(root).as_posix()
                    yield f"{name}/{relative}", path
                    count += 1
                    if limit is not None and count >= limit:
                        return

    def directory_entries(self, url_path: str) -> list[str]:
        """Subdirectories and candidate files of a directory under a root (sorted); [] if
        the path is not such a directory."""
        segments = split_url_path(url_path)
        if not segments or segments[0] not in self.roots:
            return []
        root = self.roots[segments[0]]
        directory = Path(os.path.realpath(root.joinpath(*segments[1:])))
        if os.path.commonpath([root, directory]) != str(root) or not directory.is_dir():
            return []
        entries = []
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith("."):
                continue
            resolved = os.path.realpath(entry)
            if os.path.commonpath([root, resolved]) != str(root):
                continue
            if entry.is_dir() or (entry.is_file() and adapters.is_dataset_file(entry)):
                entries.append(entry.name)
        return entries

    @property
    def open_count(self) -> int:
        """Datasets held open (for metrics)."""
        with self._lock:
            return len(self._pool)

    def close(self) -> None:
        with self._lock:
            datasets = list(self._pool.values())
            self._pool.clear()
        for dataset in datasets:
            dataset.source.close()
