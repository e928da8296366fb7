"""The mount table: URL paths → opened sources and their stores, kept inside the roots.

A dataset's URL path mirrors its file path under its root: ``<root>/<sub/dir/file.tif>``,
followed by a key inside the dataset (``zarr.json``, ``0/c/0/0``) that the dataset's store
parses (the catalog only finds the file). Which adapter opens a file is the injected
``Registry``'s decision; what an opened source is served as is the injected ``build``'s
(``gateway.store.mounts``). Files are opened lazily on first request and kept in a pool
bounded by count and by the bytes their parsed state pins (``gateway.store.pool``). A file whose identity (device, inode, mtime, size) or status change
time (ctime: permissions, owner, links, a rewrite with its mtime put back) changed is
reopened, and everything cached for its old version is dropped.

Leases: a request holds its dataset (``lease``/``acquire``...``release``) while it uses it;
a dataset leaves the pool (eviction, a change on disk) at any time, but its source is
closed only once no lease holds it. A housekeeping thread closes what left and sweeps the
pool every stat interval, so a deleted file's descriptors are closed without a request.

Readability: a file with no read permission bit for anyone is refused as "permission
denied" even where the process could read it (root ignores permissions; ``chmod 000`` is
how an operator withdraws a file), and so is a file the process cannot open.

Containment: a file path with an empty, ``.`` or ``..`` segment, a hidden segment, a NUL
or a backslash is refused before touching the disk; the resolved file (symlinks followed) must
lie inside the resolved root. A refusal is indistinguishable from a missing file (404).

Folders: ``list_folder`` pages a directory under the same rules without opening a file
(``gateway.store.folders``); what each file held when it was opened, or why it could not
be, is remembered per file version (``known``), and ``probe`` learns it for files nothing
is known of, without pooling them.
"""

from __future__ import annotations

import itertools
import logging
import os
import stat as statmode
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

from cachetools import LRUCache

from adapters.base import AdapterError, Dependency, PartOfSourceError, Source, SourceReadError
from adapters.diagnostics import add_failure
from adapters.io.files import FileAccess
from adapters.registry import SNIFFED_SUFFIXES, Registry
from gateway.config.settings import Settings
from gateway.ngff.layout import DatasetTree
from gateway.store.base import ServedStore
from gateway.store.cache import ByteLRU, NamespacedTiles
from gateway.store.entity import Identity
from gateway.store.folders import (
    Entry,
    FileVersion,
    FolderListing,
    Known,
    KnownFiles,
    failure_reason,
    file_version,
    inside,
    page_entries,
    scan_directory,
    summarise,
)
from gateway.store.logs import LogLimiter
from gateway.store.pool import OpenPool

logger = logging.getLogger(__name__)

#: Resolves a URL path to (dataset URL path, file, key inside it) without opening it.
ResolveFile = Callable[[str], "tuple[str, Path, str] | None"]
#: A lease on a dataset for the time a block runs (``with hold():``).
Hold = Callable[[], AbstractContextManager[None]]
#: st_ctime_ns of the file, then of each file it depends on: not part of ETags (a chmod
#: does not change the bytes) but a change reopens the file (and re-checks readability)
Status = tuple[int, ...]
#: The views of a dataset a URL can name: the canonical one, Zarr v2, browsing.
View = Literal["v3", "v2", "browse"]

#: Pooled datasets the sweep checks at most per round (bounded work per sweep).
SWEEP_BATCH = 64
#: The sweep runs every half stat interval, but not more often than this.
MIN_SWEEP_SECONDS = 0.25
#: A released dataset is re-measured (its parsed state may grow) at most this often.
MEASURE_INTERVAL_SECONDS = 0.25
#: URL paths whose split into (dataset, key) the catalog remembers (~0.2 KiB each).
SPLITS_REMEMBERED = 8192
#: Said instead of the OS's message (which names the file's absolute path).
PERMISSION_DENIED = "permission denied: the gateway may not read this file"


class SourceUnavailableError(Exception):
    """A file under a root looks like a dataset but cannot be opened as one."""

    def __init__(self, url_path: str, cause: Exception) -> None:
        super().__init__(f"{url_path}: {cause}")
        self.url_path = url_path
        self.cause = cause


class PartOfDatasetError(SourceUnavailableError):
    """The file is one piece of the dataset at URL path ``dataset`` (a member of a
    multi-file OME-TIFF set), not a dataset of its own."""

    def __init__(self, url_path: str, cause: Exception, dataset: str) -> None:
        super().__init__(url_path, cause)
        self.args = (f"{url_path} is part of the dataset {dataset}; open that instead",)
        self.dataset = dataset


@dataclass(frozen=True, slots=True)
class DatasetStores:
    """What one opened source is served as: its tree, its store stack, and the Zarr v2
    and browsing views' (the browsing view is the store stack itself where it cuts no
    array otherwise)."""

    tree: DatasetTree
    v3: ServedStore
    v2: ServedStore | None = None
    browse: ServedStore | None = None

    def view(self, view: View) -> ServedStore | None:
        """The store a URL's view names (None: that view is off)."""
        if view == "v2":
            return self.v2
        return self.browse if view == "browse" else self.v3


@dataclass(slots=True)
class Dataset:
    """An opened source and the stores it is served as, valid for one file identity."""

    url_path: str
    path: Path
    identity: Identity
    source: Source
    stores: DatasetStores | None = None  # set right after opening (``Catalog`` ``build``)
    #: Prefix of every cache key that belongs to this opening of the file (unique per
    #: opening: reads in flight on a replaced version never feed the new one)
    namespace: Hashable = None
    checked_at: float = field(default_factory=time.monotonic)
    status: Status = ()
    # -- guarded by the catalog's lock ----------------------------------------------------
    leases: int = 0  # requests (and chunk computations) using the source now
    pooled: bool = False  # in the open-file pool (found by new requests)
    closed: bool = False  # closed, or about to be: no new lease
    measured_at: float = 0.0

    @property
    def tree(self) -> DatasetTree:
        assert self.stores is not None, "a dataset is built before the catalog hands it out"
        return self.stores.tree


@dataclass(frozen=True, slots=True)
class Located:
    dataset: Dataset
    key: str  # key inside the dataset


def identity_of(stat: os.stat_result) -> Identity:
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _readable(stat: os.stat_result) -> bool:
    """Whether the gateway serves a file of this mode: some read permission bit is set."""
    return bool(stat.st_mode & (statmode.S_IRUSR | statmode.S_IRGRP | statmode.S_IROTH))


def _denied(url_path: str) -> SourceUnavailableError:
    return SourceUnavailableError(url_path, PermissionError(PERMISSION_DENIED))


def _known_failure(version: FileVersion, exc: SourceUnavailableError) -> Known:
    """What a failure to open a file teaches listings: why, or whose part it is."""
    part_of = exc.dataset if isinstance(exc, PartOfDatasetError) else ""
    return Known(version, reason=failure_reason(exc.cause, version), part_of=part_of)


def _dependency_status(dependencies: Iterable[Dependency], *, current: bool) -> Status:
    """The ctimes of a source's other files, as opened or (``current``) as now."""
    status: Status = ()
    for dependency in dependencies:
        if not current:
            status += (dependency.stat.st_ctime_ns,)
            continue
        try:
            status += (os.stat(dependency.path).st_ctime_ns,)
        except OSError:
            status += (0,)
    return status


def _dependency_identity(dependencies: Iterable[Dependency], *, current: bool) -> Identity:
    """The identities of a source's other files: as opened, or (``current``) as now on
    disk (a missing file counts as a change)."""
    identity: Identity = ()
    for dependency in dependencies:
        if not current:
            identity += identity_of(dependency.stat)
            continue
        try:
            identity += identity_of(os.stat(dependency.path))
        except OSError:
            identity += (0, 0, 0, 0)
    return identity


def split_url_path(path: str) -> list[str] | None:
    """Segments of a request path, or None if any segment is unsafe or empty."""
    segments = _split(path)
    return segments if segments is not None and _safe(segments) else None


def _split(path: str) -> list[str] | None:
    """Segments of a request path; None for a path with a NUL, a backslash, or an empty,
    ``.`` or ``..`` segment anywhere (no key has one either)."""
    if not path or "\x00" in path or "\\" in path:
        return None
    segments = path.split("/")
    return None if any(segment in ("", ".", "..") for segment in segments) else segments


def _safe(segments: Iterable[str]) -> bool:
    """Whether segments may name a file under a root: none empty, ``.``, ``..`` or hidden.
    (Only the file's segments: the key inside a dataset is the dataset store's to parse.)"""
    return not any(segment in ("", ".", "..") or segment.startswith(".") for segment in segments)


class _ClosedMeanwhileError(Exception):
    """The opening another request waited for was closed before this one could lease it
    (evicted at once under pressure): look again."""


class Catalog:
    """URL paths → leased datasets. ``build`` makes the stores of a dataset just opened,
    given it, ``resolve_file`` (declared labels find their files with it) and a ``Hold``
    on it (a chunk computation holds the source open while it runs)."""

    def __init__(
        self,
        settings: Settings,
        tiles: ByteLRU[Any],
        registry: Registry,
        build: Callable[[Dataset, ResolveFile, Hold], DatasetStores],
        on_stale: Callable[[Hashable], None] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self._build = build
        self.roots = {name: Path(os.path.realpath(path)) for name, path in settings.roots.items()}
        self._tiles = tiles
        self._on_stale = on_stale
        cache = settings.cache
        self._pool: OpenPool[str, Dataset] = OpenPool(cache.open_files, cache.open_file_bytes)
        self._stat_interval = cache.stat_interval_seconds
        #: URL path → (dataset URL path, key): hot keys split once (see ``_split_pooled``)
        self._splits: LRUCache[str, tuple[str, str]] = LRUCache(maxsize=SPLITS_REMEMBERED)
        self._opening: dict[str, Future[Dataset]] = {}
        self._failures: LRUCache[str, tuple[Identity, Exception, float]] = LRUCache(maxsize=1024)
        #: what each file opened (or failed to open) held, for folder listings
        self.known = KnownFiles()
        self._openings = itertools.count()
        self._log = LogLimiter()  # a file failing under load: one line per interval
        self._lock = threading.Lock()
        self._to_close: list[Dataset] = []  # left the pool, no lease: for the housekeeper
        self._wake = threading.Event()
        self._stopping = False
        self._housekeeper: threading.Thread | None = None

    # -- lookup ---------------------------------------------------------------------------

    def _candidates(self, segments: list[str]) -> Iterator[int]:
        """Numbers of leading segments that could name a dataset file, by suffix (no I/O):
        several when a directory is named like a file (``run.tif/image.tif``). Stops at
        the first unsafe segment: no file lies beyond it."""
        for index, segment in enumerate(segments[1:], start=2):
            if not _safe((segment,)):
                return
            if self.registry.is_candidate_name(segment):
                yield index

    def locate_cached(self, url_path: str) -> Located | None:
        """Fast path without I/O: a dataset already open and checked recently, else None.
        Unleased: see ``acquire_cached``."""
        return self._cached(url_path, lease=False)

    def acquire_cached(self, url_path: str) -> Located | None:
        """``locate_cached`` with a lease held on the dataset (``release`` it)."""
        return self._cached(url_path, lease=True)

    def _cached(self, url_path: str, *, lease: bool) -> Located | None:
        with self._lock:
            split = self._splits.get(url_path)
            if split is not None:
                return self._fresh(split, lease)
        split = self._split_pooled(url_path)
        if split is None:
            return None
        with self._lock:
            return self._fresh(split, lease)

    def _fresh(self, split: tuple[str, str], lease: bool) -> Located | None:
        """The pooled dataset of a split URL path, if checked within the stat interval
        (and leased when ``lease``). Hold ``self._lock``."""
        dataset = self._pool.get(split[0])
        if dataset is None or time.monotonic() - dataset.checked_at >= self._stat_interval:
            return None
        if lease and not self._acquire(dataset):
            return None
        return Located(dataset, split[1])

    def _split_pooled(self, url_path: str) -> tuple[str, str] | None:
        """(dataset URL path, key inside it) of a URL path whose dataset is in the pool,
        remembered (``_splits``: bounded) so that a hot key is split once. What it
        remembers is checked against the pool at each use: a dataset that left the pool
        sends the request down the slow path (stat, open) again."""
        segments = _split(url_path)
        if not segments or not _safe(segments[:1]):
            return None
        for count in self._candidates(segments):
            dataset_path = "/".join(segments[:count])
            with self._lock:
                if dataset_path in self._pool:
                    split = (dataset_path, "/".join(segments[count:]))
                    self._splits[url_path] = split
                    return split
        return None

    def locate(self, url_path: str) -> Located | None:
        """The dataset and inner key of a request path; None when there is none (404).

        Blocking (stat, open): call from a worker thread. Raises SourceUnavailableError
        for a file that exists but cannot be opened. Unleased: what it returns may be
        closed at any time (its tree stays usable); readers use ``acquire``/``lease``.
        """
        return self._locate(url_path, lease=False)

    def acquire(self, url_path: str) -> Located | None:
        """``locate`` with a lease held on the dataset: its source stays open until
        ``release``. Blocking: call from a worker thread."""
        return self._locate(url_path, lease=True)

    @contextmanager
    def lease(self, url_path: str) -> Iterator[Located | None]:
        """``with catalog.lease(path) as located:`` — ``acquire`` and ``release``."""
        located = self.acquire(url_path)
        try:
            yield located
        finally:
            if located is not None:
                self.release(located.dataset)

    @contextmanager
    def hold(self, dataset: Dataset) -> Iterator[None]:
        """Another lease on a dataset found earlier (a chunk computation in the executor,
        which may outlive the request that started it). SourceUnavailableError when it
        was closed meanwhile: then no request waits for the computation any more."""
        with self._lock:
            held = self._acquire(dataset)
        if not held:
            raise SourceUnavailableError(dataset.url_path, SourceReadError("closed before the read started"))
        try:
            yield
        except AdapterError as exc:  # damage met while reading: said on the dataset's page
            add_failure(dataset.source.warnings, f"reading failed: {exc}")
            raise
        finally:
            self.release(dataset)

    def release(self, dataset: Dataset, *, defer_close: bool = False) -> None:
        """End one lease. The last lease of a dataset that left the pool closes it (in
        the housekeeping thread when ``defer_close``: closing an HDF5 file waits for the
        HDF5 lock, which the event loop must never do). Re-measures the dataset's parsed
        state now and then: it may have grown (chunk indexes learnt), and the pool evicts
        by bytes."""
        now = time.monotonic()
        nbytes = None
        if dataset.pooled:
            if now - dataset.measured_at < MEASURE_INTERVAL_SECONDS:
                with self._lock:
                    if dataset.pooled:  # still: nothing to close, nothing to measure
                        dataset.leases -= 1
                        return
            else:
                nbytes = dataset.source.parsed_bytes()
        with self._lock:
            dataset.leases -= 1
            left: list[Dataset] = []
            if nbytes is not None and dataset.pooled:
                dataset.measured_at = now
                left = self._pool.resize(dataset.url_path, dataset, nbytes)
            doomed = self._leaving(left, [dataset])
        self._close(doomed, defer=defer_close)

    def _locate(self, url_path: str, *, lease: bool) -> Located | None:
        found = self.resolve_file(url_path)
        if found is None:
            return None
        dataset_path, file_path, key = found
        dataset = self._dataset(dataset_path, file_path, lease=lease)
        return None if dataset is None else Located(dataset, key)

    def _acquire(self, dataset: Dataset) -> bool:
        """Take a lease unless the dataset is closed. Hold ``self._lock``."""
        if dataset.closed:
            return False
        dataset.leases += 1
        return True

    def _leaving(self, left: Iterable[Dataset], others: Iterable[Dataset] = ()) -> list[Dataset]:
        """Mark ``left`` as out of the pool; of them and ``others``, those out of the pool
        that no lease holds are returned to be closed (and marked closed: no new lease).
        Hold ``self._lock``."""
        left = list(left)
        for dataset in left:
            dataset.pooled = False
        doomed = []
        for dataset in [*left, *others]:
            if not dataset.pooled and dataset.leases == 0 and not dataset.closed:
                dataset.closed = True
                doomed.append(dataset)
        return doomed

    def _close(self, datasets: list[Dataset], *, defer: bool = False) -> None:
        if not datasets:
            return
        if defer:
            with self._lock:
                deferred = self._housekeeper is not None and not self._stopping
                if deferred:
                    self._to_close.extend(datasets)
            if deferred:
                self._wake.set()
                return
        for dataset in datasets:
            try:
                dataset.source.close()
            except Exception:  # a close that fails must not fail the request that released it
                logger.exception("closing %s failed", dataset.url_path)

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

    def _version(self, file_path: Path, dependencies: Iterable[Dependency]) -> tuple[Identity, Status]:
        """(identity, status) of a file and its dependencies as now on disk; OSError when
        the file is gone."""
        stat = os.stat(file_path)
        if not _readable(stat):
            raise PermissionError(PERMISSION_DENIED)
        dependencies = tuple(dependencies)
        identity = identity_of(stat) + _dependency_identity(dependencies, current=True)
        return identity, (stat.st_ctime_ns, *_dependency_status(dependencies, current=True))

    def _dataset(self, url_path: str, file_path: Path, *, lease: bool = False) -> Dataset | None:
        while True:
            try:
                return self._dataset_once(url_path, file_path, lease)
            except _ClosedMeanwhileError:
                continue

    def _dataset_once(self, url_path: str, file_path: Path, lease: bool) -> Dataset | None:
        with self._lock:
            current = self._pool.get(url_path)
        try:
            identity, status = self._version(file_path, current.source.dependencies if current else ())
        except PermissionError:
            if current is not None:
                self._retire(current, "is no longer readable")
            raise _denied(url_path) from None
        except OSError:
            if current is not None:
                self._retire(current, "is gone")
            return None
        with self._lock:
            dataset = self._pool.get(url_path)
            if (
                dataset is not None
                and (dataset.identity, dataset.status) == (identity, status)
                and dataset.path == file_path
                and (not lease or self._acquire(dataset))
            ):
                dataset.checked_at = time.monotonic()
                return dataset
            failure = self._failures.get(url_path)
            # a failure is retried after the stat interval too: a file it depends on
            # (a BigDataViewer XML's HDF5 file) may have been repaired meanwhile
            if (
                failure is not None
                and failure[0] == identity + status
                and time.monotonic() - failure[2] < self.settings.cache.stat_interval_seconds
            ):
                raise self._unavailable(url_path, failure[1])
            future = self._opening.get(url_path)
            owner = future is None
            if future is None:
                future = Future()
                self._opening[url_path] = future
        if not owner:
            waited = future.result()
            with self._lock:
                if lease and not self._acquire(waited):
                    raise _ClosedMeanwhileError
                return waited
        try:
            if dataset is not None:
                self._retire(dataset, "changed on disk; reopening")
            opened = self._open(url_path, file_path, identity, status)
        except SourceUnavailableError as exc:
            with self._lock:
                self._failures[url_path] = (identity + status, exc.cause, time.monotonic())
                self._opening.pop(url_path, None)
            version = identity[:4] + status[:1]
            self.known.put(url_path, _known_failure(version, exc))
            future.set_exception(exc)
            raise
        except BaseException as exc:
            with self._lock:
                self._opening.pop(url_path, None)
            future.set_exception(exc)
            raise
        nbytes = opened.source.parsed_bytes()
        with self._lock:
            if lease:
                self._acquire(opened)
            opened.pooled = True
            opened.measured_at = time.monotonic()
            doomed = self._leaving(self._pool.put(url_path, opened, nbytes))
            self._failures.pop(url_path, None)
            self._opening.pop(url_path, None)
        self._close(doomed)
        self._start_housekeeper()
        self._remember(opened)
        future.set_result(opened)
        return opened

    def _remember(self, dataset: Dataset) -> Known | None:
        """Note what an opened dataset holds, for listings (valid for its file's version).
        A summary that fails is a bug of its own: logged, and never the request's failure."""
        try:
            summary = summarise(dataset.tree, dataset.source)
        except Exception:
            logger.exception("summarising %s for listings failed", dataset.url_path)
            return None
        self._remember_parts(dataset)
        return self.known.put(dataset.url_path, Known(dataset.identity[:4] + dataset.status[:1], summary))

    def _remember_parts(self, dataset: Dataset) -> None:
        """Note the files an opened dataset is made of (a multi-file set's members) as its
        parts, for listings: known without opening each of them."""
        root_name = dataset.url_path.split("/", 1)[0]
        root = self.roots[root_name]
        for part in dataset.source.parts:
            real = Path(os.path.realpath(part))
            if not real.is_relative_to(root):
                continue
            try:
                version = file_version(os.stat(real))
            except OSError:
                continue
            part_path = f"{root_name}/{real.relative_to(root).as_posix()}"
            self.known.put(part_path, Known(version, part_of=dataset.url_path))

    def _retire(self, dataset: Dataset, reason: str) -> None:
        """A served file changed on disk or vanished: take it out of the pool (closed once
        no lease holds it) and drop every byte cached for it."""
        with self._lock:
            if not self._pool.remove(dataset.url_path, dataset):
                return  # another thread retired it already
            doomed = self._leaving([dataset])
        logger.info("%s %s", dataset.url_path, reason)
        self._close(doomed)
        namespace = dataset.namespace
        self._tiles.drop(lambda key: isinstance(key, tuple) and key[0] == namespace)
        if self._on_stale is not None:
            self._on_stale(namespace)

    def _open(self, url_path: str, file_path: Path, identity: Identity, status: Status) -> Dataset:
        identity = identity[:4]  # the file's own; its dependencies' come from the source
        status = status[:1]
        namespace = (str(file_path), identity, next(self._openings))
        started = time.perf_counter()
        tiles = NamespacedTiles(self._tiles, namespace)
        try:
            # every other file the source opens must lie in this dataset's root: not in
            # another root (a public root must not reach a protected root's files)
            root = FileAccess.under(self.roots[url_path.split("/", 1)[0]])
            options = replace(self.settings.open_options(), access=root)
            source = self.registry.open(file_path, tiles, options)
        except AdapterError as exc:
            # a member of a multi-file set is no fault: it is served as part of its set
            level = logging.INFO if isinstance(exc, PartOfSourceError) else logging.WARNING
            self._log.log(logger, level, (url_path, "open"), f"cannot open {url_path}: {exc}")
            raise self._unavailable(url_path, exc) from exc
        except PermissionError:
            raise _denied(url_path) from None
        except OSError as exc:
            raise SourceUnavailableError(url_path, exc) from exc
        identity += _dependency_identity(source.dependencies, current=False)
        status += _dependency_status(source.dependencies, current=False)
        dataset = Dataset(
            url_path=url_path,
            path=file_path,
            identity=identity,
            source=source,
            namespace=namespace,
            status=status,
        )
        try:
            dataset.stores = self._build(dataset, self.resolve_file, partial(self.hold, dataset))
        except Exception as exc:
            source.close()
            self._log.log(logger, logging.ERROR, (url_path, "describe"), f"cannot describe {url_path}", exc)
            raise SourceUnavailableError(url_path, exc) from exc
        seconds = time.perf_counter() - started
        if source.warnings:  # one line per dataset; the list is on its page (a truncated file)
            logger.warning(
                "opened %s (%s) in %.3f s with %d warning(s), shown on its page; first: %s",
                url_path,
                source.format,
                seconds,
                len(source.warnings),
                source.warnings[0],
            )
        else:
            logger.info("opened %s (%s) in %.3f s", url_path, source.format, seconds)
        return dataset

    def _unavailable(self, url_path: str, cause: Exception) -> SourceUnavailableError:
        """Why the file at ``url_path`` is not served: a piece of another dataset in the
        same root (a member of a multi-file set) names that dataset's URL path."""
        if isinstance(cause, PartOfSourceError):
            root_name = url_path.split("/", 1)[0]
            root = self.roots[root_name]
            source = Path(os.path.realpath(cause.source))
            if source.is_relative_to(root):
                dataset = f"{root_name}/{source.relative_to(root).as_posix()}"
                return PartOfDatasetError(url_path, cause, dataset)
        return SourceUnavailableError(url_path, cause)

    def resolve_file(self, url_path: str) -> tuple[str, Path, str] | None:
        """(dataset URL path, file, key inside it) of a URL path, without opening the file;
        None when no dataset file under a root holds it. Blocking (stat)."""
        segments = _split(url_path)
        if not segments or segments[0] not in self.roots:
            return None
        for count in self._candidates(segments):
            file_path = self._contained_file(segments[0], segments[1:count])
            if file_path is not None and self.registry.is_dataset_file(file_path):
                return "/".join(segments[:count]), file_path, "/".join(segments[count:])
        return None

    # -- discovery --------------------------------------------------------------------------

    def iter_datasets(self, limit: int | None = None) -> Iterator[tuple[str, Path]]:
        """(URL path, file) of every dataset file under the roots (by suffix, sniffed where
        the suffix is ambiguous), sorted per directory; hidden entries, symlinks leading
        out of the root and what is not a regular file (a FIFO named ``x.tif``: a request
        for it is a 404) are skipped."""
        count = 0
        for name, root in sorted(self.roots.items()):
            for directory, subdirs, files in os.walk(root, followlinks=False):
                subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
                for filename in sorted(files):
                    path = Path(directory, filename)
                    if filename.startswith(".") or not self.registry.is_dataset_file(path):
                        continue
                    resolved = os.path.realpath(path)
                    if os.path.commonpath([root, resolved]) != str(root) or not os.path.isfile(resolved):
                        continue
                    relative = path.relative_to(root).as_posix()
                    yield f"{name}/{relative}", path
                    count += 1
                    if limit is not None and count >= limit:
                        return

    def directory_entries(self, url_path: str) -> list[str]:
        """Subdirectories and dataset files of a directory under a root (sorted as folder
        pages sort them: folders first), for in-process listings: files of a sniffed
        suffix are sniffed here (a page never does); [] if the path is no such directory."""
        directory = self.folder_path(url_path)
        if directory is None:
            return []
        root = self.roots[url_path.split("/", 1)[0]]
        return [
            entry.name
            for entry in scan_directory(root, directory, self.registry.is_candidate_name)
            if entry.is_folder or self.registry.is_dataset_file(Path(entry.path))
        ]

    def folder_path(self, url_path: str) -> Path | None:
        """The directory a URL path names under a root (symlinks resolved, kept inside the
        root, the rules of ``resolve_file``), or None. Blocking (stat)."""
        segments = split_url_path(url_path)
        if not segments or segments[0] not in self.roots:
            return None
        root = self.roots[segments[0]]
        directory = root.joinpath(*segments[1:])
        try:
            if not inside(root, directory) or not directory.is_dir():
                return None
        except OSError:  # a name too long, no permission...: no folder to serve
            return None
        return directory

    def list_folder(
        self,
        url_path: str,
        *,
        query: str = "",
        after: str = "",
        limit: int = 100,
        visible: Callable[[str], bool] | None = None,
    ) -> FolderListing | None:
        """A page of the folder at ``url_path`` ("": the roots), filtered by name, with what
        is known of its datasets; None when no such folder is served. Opens no file (see
        ``gateway.store.folders``): a dataset nothing is known of yet is not looked at;
        one known stats its file, so that what is shown belongs to its current version.
        ``visible``: which URL paths the caller may see (roots a token does not grant).
        Blocking (scandir): call from a worker thread."""
        if url_path:
            directory = self.folder_path(url_path)
            if directory is None:
                return None
            root = self.roots[url_path.split("/", 1)[0]]
            entries = scan_directory(root, directory, self.registry.is_candidate_name)
            prefix = f"{url_path}/"
        else:
            entries = [Entry(name, True, str(path)) for name, path in self.roots.items()]
            entries.sort(key=lambda e: (e.name.casefold(), e.name))
            prefix = ""
        if visible is not None:
            entries = [e for e in entries if visible(prefix + e.name)]
        known: dict[str, Known] = {}
        # a sniffed suffix (.xml) no adapter recognised is no dataset: left out once known
        sniffed = [e for e in entries if not e.is_folder and e.name.lower().endswith(SNIFFED_SUFFIXES)]
        for entry in sniffed:
            found = self._known_now(prefix + entry.name, entry.path)
            if found is not None:
                known[entry.name] = found
        entries = [e for e in entries if e.name not in known or known[e.name].is_dataset]
        page = page_entries(entries, query, after, limit)
        for entry in page.entries:
            if not entry.is_folder and entry.name not in known:
                found = self._known_now(prefix + entry.name, entry.path)
                if found is not None:
                    known[entry.name] = found
        on_page = {e.name for e in page.entries}
        return FolderListing(url_path, page, {name: k for name, k in known.items() if name in on_page})

    def _known_now(self, url_path: str, path: str) -> Known | None:
        """What is known of the file at ``url_path`` as it is now (a stat, only when
        something is known of it)."""
        if url_path not in self.known:
            return None
        try:
            return self.known.get(url_path, file_version(os.stat(path)))
        except OSError:
            return None

    def probe(self, url_path: str) -> Known | None:
        """Learn what a listed dataset file holds: open it as a request would, remember its
        summary or why it failed, and close it again. Not pooled: probing a folder of
        thousands of files must not evict the datasets being served. None when
        ``url_path`` is no dataset file (any more). Blocking: a worker thread's job."""
        segments = split_url_path(url_path)  # contained again: the folder may have changed
        if not segments or len(segments) < 2 or segments[0] not in self.roots:
            return None
        if not self.registry.is_candidate_name(segments[-1]):
            return None
        file_path = self._contained_file(segments[0], segments[1:])
        if file_path is None:
            return None
        try:
            stat = os.stat(file_path)
        except OSError:
            return None
        version = file_version(stat)
        known = self.known.get(url_path, version)
        if known is not None:
            return known
        if not _readable(stat):
            return self.known.put(url_path, Known(version, reason=PERMISSION_DENIED))
        if file_path.name.lower().endswith(SNIFFED_SUFFIXES) and self.registry.find(file_path) is None:
            return self.known.put(url_path, Known(version, is_dataset=False))
        try:
            dataset = self._open(url_path, file_path, identity_of(stat), (stat.st_ctime_ns,))
        except SourceUnavailableError as exc:
            return self.known.put(url_path, _known_failure(version, exc))
        except Exception as exc:  # a file no adapter expected: unreadable, like a request would find it
            logger.warning("probing %s failed: %s", url_path, failure_reason(exc))
            return self.known.put(url_path, Known(version, reason=failure_reason(exc, version)))
        try:
            return self._remember(dataset)
        finally:
            dataset.source.close()

    @property
    def open_count(self) -> int:
        """Datasets in the pool (for metrics; leased ones that left it are not counted)."""
        with self._lock:
            return len(self._pool)

    @property
    def open_bytes(self) -> int:
        """Estimated parsed-state bytes of the datasets in the pool (for metrics)."""
        with self._lock:
            return self._pool.total_bytes

    # -- housekeeping -----------------------------------------------------------------------

    def sweep(self, limit: int = SWEEP_BATCH) -> int:
        """Check up to ``limit`` pooled datasets not checked for half a stat interval
        (oldest first) without waiting for a request: a file deleted, replaced, changed or
        made unreadable leaves the pool, and its descriptors are closed once no lease
        holds them. Re-measures the others. Returns how many were checked.

        Half: run every half interval, the sweep checks a dataset before its check is a
        whole interval old, so requests for it keep finding it fresh (the hot path, no
        stat in the request) while a change is still noticed within the interval."""
        now = time.monotonic()
        interval = self.settings.cache.stat_interval_seconds / 2
        with self._lock:
            due = sorted(
                (d for d in self._pool.values() if now - d.checked_at >= interval), key=lambda d: d.checked_at
            )[:limit]
        for dataset in due:
            try:
                version = self._version(dataset.path, dataset.source.dependencies)
            except PermissionError:
                self._retire(dataset, "is no longer readable")
                continue
            except OSError:
                self._retire(dataset, "is gone")
                continue
            if version != (dataset.identity, dataset.status):
                self._retire(dataset, "changed on disk")
                continue
            nbytes = dataset.source.parsed_bytes()
            with self._lock:
                dataset.checked_at = dataset.measured_at = time.monotonic()
                doomed = self._leaving(self._pool.resize(dataset.url_path, dataset, nbytes))
            self._close(doomed)
        return len(due)

    def _start_housekeeper(self) -> None:
        with self._lock:
            if self._housekeeper is not None or self._stopping:
                return
            self._housekeeper = threading.Thread(target=self._housekeep, name="catalog-sweep", daemon=True)
        self._housekeeper.start()

    def _housekeep(self) -> None:
        """Close what left the pool (deferred closes) and sweep every half stat interval."""
        period = max(self.settings.cache.stat_interval_seconds / 2, MIN_SWEEP_SECONDS)
        next_sweep = time.monotonic() + period
        while True:
            self._wake.wait(timeout=max(0.0, next_sweep - time.monotonic()))
            self._wake.clear()
            with self._lock:
                doomed, self._to_close = self._to_close, []
                stopping = self._stopping
            self._close(doomed)
            if stopping:
                return
            if time.monotonic() >= next_sweep:
                try:
                    self.sweep()
                except Exception:  # the sweep must outlive one bad file
                    logger.exception("sweeping the open-file pool failed")
                next_sweep = time.monotonic() + period

    def close(self) -> None:
        """Stop the housekeeping thread and close every pooled dataset (one still leased
        is closed by its last release)."""
        with self._lock:
            self._stopping = True
            housekeeper = self._housekeeper
        self._wake.set()
        if housekeeper is not None:
            housekeeper.join(timeout=10)
        with self._lock:
            datasets = self._pool.clear() + self._to_close
            self._to_close = []
            for dataset in datasets:
                dataset.pooled = False
                dataset.closed = True
        self._close(datasets)
