"""``Mounts``: every root's datasets, as leased store stacks by URL path.

``<root>/<file path>/<key>`` names a key of a dataset's store; ``<v2 prefix>/<root>/...``
the same key space in the dataset's Zarr v2 view, ``<browse prefix>/<root>/...`` in its
browsing view. The catalog finds and leases the file
(``gateway.store.catalog``); ``StoreFactory`` builds what an opened source is served as:
its tree (pyramids, windows, labels, RO-Crate, the v2 view), a ``DatasetStore`` and the
wrappers on it. HTTP asks ``Mounts`` for a ``Mounted`` store and a key, and nothing else.

Blocking work (stat, open, read, decode, encode) runs in the pools of ``Workers``; encoded
chunks are cached in bytes, one cache for every dataset and both views.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import numpy as np

from adapters.base import Source
from adapters.registry import Registry, default_registry
from gateway.config.settings import Settings
from gateway.levels import labels
from gateway.ngff import rocrate
from gateway.ngff.keys import may_be_key, may_be_v2_key
from gateway.ngff.layout import DatasetTree, TreeOptions, build_tree
from gateway.store.base import NOT_READY, Ready, ServedStore, Waiting
from gateway.store.cache import ByteLRU, CacheStats, NamespacedTiles
from gateway.store.catalog import Catalog, Dataset, DatasetStores, Hold, Located, ResolveFile, View
from gateway.store.dataset import DatasetStore, Workers
from gateway.store.entity import Description, Identity, StoreItem
from gateway.store.folders import FolderListing, Prober
from gateway.store.timing import current_timing
from gateway.store.wrappers import ChunkCache, OverviewFirst, Timed, ZarrV2View, overview_keys

V = TypeVar("V")


class StoreFactory:
    """Builds the store stack of an opened source, the same for HTTP and in-process use."""

    def __init__(
        self, settings: Settings, tiles: ByteLRU[np.ndarray], chunks: ByteLRU[bytes | None], workers: Workers
    ) -> None:
        self.settings = settings
        self.tiles = tiles
        self.chunks = chunks
        self.workers = workers

    def tree(
        self, url_path: str, source: Source, namespace: Hashable, resolve_file: ResolveFile
    ) -> DatasetTree:
        """Pyramids, windows, the v2 view, declared labels (their sources opened and
        attached to ``source``) and the RO-Crate of the dataset at ``url_path``."""
        settings = self.settings
        tiles = NamespacedTiles(self.tiles, namespace)
        found = labels.resolve(
            url_path,
            source,
            settings.labels,
            resolve_file=resolve_file,
            tiles=tiles,
            options=settings.open_options(),
        )
        entry = rocrate.entry_for(url_path, settings.rocrate)
        chunks = settings.chunks.for_path(url_path)
        options = TreeOptions.from_settings(
            settings,
            tiles,
            labels=tuple(found.attachments),
            label_groups=frozenset(found.label_groups),
            rocrate=rocrate.crate(entry, url_path.rpartition("/")[2]) if entry else None,
            browse=settings.browse.chunk_settings(chunks) if settings.browse.enabled else None,
        )
        return build_tree(source, chunks, options)

    def stack(
        self, tree: DatasetTree, identity: Identity, namespace: Hashable, **options: Any
    ) -> DatasetStores:
        """``Timed(ChunkCache(DatasetStore))``, and the v2 and browsing views' stacks on the
        same cache. When the tree has shards, the v2 view reads a store of the same arrays
        unsharded (v2 has no shards); the browsing view is a stack of its own where it cuts
        arrays otherwise; closing the v3 stack releases what ``options`` say."""

        def cached(tree: DatasetTree, **options: Any) -> ChunkCache:
            omit_empty = self.settings.chunks.omit_empty
            dataset = DatasetStore(
                tree, identity, self.workers, namespace=namespace, omit_empty=omit_empty, **options
            )
            return ChunkCache(dataset, self.chunks)

        v3 = cached(tree, **options)
        hold = options.get("hold", nullcontext)  # the other views' own stores hold the dataset too
        v2 = None
        if tree.v2 is not None:
            plain = tree.unsharded()
            base = v3 if plain is tree else cached(plain, hold=hold)
            v2 = Timed(ZarrV2View(base, tree.v2, identity))
        browse: ServedStore | None = None
        if self.settings.browse.enabled:  # viewers: their overview computed ahead
            viewed = tree.browse or tree
            base = v3 if viewed is tree else cached(viewed, hold=hold)
            browse = Timed(OverviewFirst(base, overview_keys(viewed)))
        return DatasetStores(tree, Timed(v3), v2, browse)

    def build(self, dataset: Dataset, resolve_file: ResolveFile, hold: Hold) -> DatasetStores:
        """The stacks of a dataset the catalog just opened; a chunk computation holds a
        lease on it (``hold``) for as long as it runs."""
        tree = self.tree(dataset.url_path, dataset.source, dataset.namespace, resolve_file)
        return self.stack(tree, dataset.identity, dataset.namespace, hold=hold)


class KeySpace(Protocol):
    """Values by URL path: what HTTP's key route serves (``Mounts``: every root's
    datasets; ``StoreMount``: one store)."""

    def get_now(self, path: str) -> Ready: ...

    async def get(self, path: str) -> StoreItem | None: ...

    def describe_now(self, path: str) -> Description | Waiting | None: ...

    async def describe(self, path: str) -> Description | None: ...


class StoreMount:
    """One store at the root of a key space: a URL path is its key (``create_store_app``)."""

    def __init__(self, store: ServedStore) -> None:
        self.store = store

    def get_now(self, path: str) -> Ready:
        return self.store.item_now(path)

    async def get(self, path: str) -> StoreItem | None:
        return await self.store.item(path)

    def describe_now(self, path: str) -> Description | None:
        return self.store.describe(path)

    async def describe(self, path: str) -> Description | None:
        return self.store.describe(path)


@dataclass(frozen=True, slots=True)
class Mounted:
    """A leased dataset's store (the view a URL names) and the key inside it."""

    store: ServedStore
    key: str
    dataset: Dataset


class Mounts:
    """URL paths → leased store stacks, for every configured root."""

    def __init__(self, settings: Settings, workers: Workers, registry: Registry | None = None) -> None:
        self.settings = settings
        self.workers = workers
        self.tiles: ByteLRU[np.ndarray] = ByteLRU(settings.cache.tile_bytes)
        self.chunks: ByteLRU[bytes | None] = ByteLRU(settings.cache.chunk_bytes)
        self.factory = StoreFactory(settings, self.tiles, self.chunks, workers)
        self.catalog = Catalog(
            settings,
            self.tiles,
            registry or default_registry(),
            self.factory.build,
            on_stale=self._drop_chunks,
        )
        # listed files are learnt in the background on at most half the io threads (none
        # with a single thread: a request must never wait behind a probe)
        probes = min(2, settings.server.threads // 2)
        self.prober = Prober(self.catalog.probe, workers.io, concurrency=probes)

    def _drop_chunks(self, namespace: Hashable) -> None:
        self.chunks.drop(lambda key: isinstance(key, tuple) and key[0] == namespace)

    def _lookup(self, path: str, *, probes: bool = True) -> tuple[str, View] | None:
        """(path to look the dataset up by, the view it names); None for keys no dataset
        can have (the probes of zarr v2, N5 and precomputed clients), decided before any
        file is looked up (``probes``: only where a lookup may touch files)."""
        head, sep, rest = path.partition("/")
        if sep:
            v2, browse = self.settings.zarr_v2, self.settings.browse
            if v2.enabled and head == v2.prefix:
                return (rest, "v2") if not probes or may_be_v2_key(rest) else None
            if browse.enabled and head == browse.prefix:
                return (rest, "browse") if not probes or may_be_key(rest) else None
        return (path, "v3") if not probes or may_be_key(path) else None

    @asynccontextmanager
    async def lease(self, path: str) -> AsyncIterator[Mounted | None]:
        """The store and key ``path`` names, with a lease held on the dataset: its source
        is not closed (evicted from the pool, replaced on disk) while the block runs."""
        lookup = self._lookup(path)
        if lookup is None:
            yield None
            return
        url_path, view = lookup
        timing = current_timing()
        started = time.perf_counter()
        located = self.catalog.acquire_cached(url_path)
        if located is None:
            pending = asyncio.get_running_loop().run_in_executor(
                self.workers.io, self.catalog.acquire, url_path
            )
            try:
                located = await asyncio.shield(pending)
            except asyncio.CancelledError:  # the lease taken after we left is given back
                pending.add_done_callback(self._release_orphan)
                raise
        if timing is not None:
            timing.since("locate", started)
        try:
            if located is None:
                yield None
            else:
                stores = located.dataset.stores
                assert stores is not None
                store = stores.view(view)
                yield None if store is None else Mounted(store, located.key, located.dataset)
        finally:
            if located is not None:
                self.catalog.release(located.dataset, defer_close=True)

    def _release_orphan(self, future: asyncio.Future[Located | None]) -> None:
        if not future.cancelled() and future.exception() is None:
            located = future.result()
            if located is not None:
                self.catalog.release(located.dataset, defer_close=True)

    async def describe(self, path: str) -> Description | None:
        """The description of the value at ``path`` without producing it (no pixel read)."""
        async with self.lease(path) as mounted:
            return None if mounted is None else mounted.store.describe(mounted.key)

    async def get(self, path: str) -> StoreItem | None:
        """The value at ``path``, or None when there is none (→ 404)."""
        async with self.lease(path) as mounted:
            return None if mounted is None else await mounted.store.item(mounted.key)

    def describe_now(self, path: str) -> Description | Waiting | None:
        """``describe`` when the dataset is open and fresh (no I/O); else ``NOT_READY``."""
        found = self._ready_store(path)
        if found is None or found is NOT_READY:
            return found
        store, key, dataset = found
        try:
            return store.describe(key)
        finally:
            self.catalog.release(dataset, defer_close=True)

    def _ready_store(self, path: str) -> tuple[ServedStore, str, Dataset] | Waiting | None:
        """The store and key ``path`` names, leased, when its dataset is pooled and fresh
        (release the dataset); None when the path names no store; else ``NOT_READY``."""
        lookup = self._lookup(path, probes=False)
        if lookup is None:
            return None
        url_path, view = lookup
        located = self.catalog.acquire_cached(url_path)
        if located is None:
            return NOT_READY
        stores = located.dataset.stores
        assert stores is not None
        store = stores.view(view)
        if store is None:
            self.catalog.release(located.dataset, defer_close=True)
            return None
        return store, located.key, located.dataset

    def get_now(self, path: str) -> Ready:
        """The value at ``path`` if it can be answered at once: a dataset open and checked
        within the stat interval, and a value its store has without work (a document, a
        cached chunk); else ``NOT_READY`` (then ``get``). No I/O, so no probe check: a
        probe finds no pooled dataset, or no such key in one."""
        started = time.perf_counter()
        found = self._ready_store(path)
        if found is None or found is NOT_READY:
            return found
        timing = current_timing()
        if timing is not None:
            timing.since("locate", started)
        store, key, dataset = found
        try:
            return store.item_now(key)
        finally:
            self.catalog.release(dataset, defer_close=True)

    async def locate(self, path: str) -> Located | None:
        """The dataset at ``path``, unleased: its tree, for pages (not its source)."""
        located = self.catalog.locate_cached(path)
        if located is None:
            located = await self.run(self.catalog.locate, path)
        return located

    async def run(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in the io pool (blocking work of pages and probes)."""
        return await asyncio.get_running_loop().run_in_executor(self.workers.io, fn, *args)

    async def list_dir(self, prefix: str) -> list[tuple[str, bool]]:
        """Immediate children of ``prefix`` as (name, is_key): roots, directories and
        datasets (not keys: they have children), then keys and groups inside a dataset."""
        children: list[tuple[str, bool]] = await self.run(self._list_dir_sync, prefix.strip("/"))
        return children

    def _list_dir_sync(self, prefix: str) -> list[tuple[str, bool]]:
        if not prefix:
            return [(name, False) for name in sorted(self.catalog.roots)]
        with self.catalog.lease(prefix) as located:
            if located is None or located.dataset.stores is None:
                return [(name, False) for name in self.catalog.directory_entries(prefix)]
            documents = located.dataset.stores.v3.document_keys()
            inner = f"{located.key}/" if located.key else ""
            children: dict[str, bool] = {}
            for key in documents:
                if key.startswith(inner):
                    name, sep, _ = key[len(inner) :].partition("/")
                    children[name] = children.get(name, False) or not sep
            return sorted(children.items())

    async def list_folder(self, url_path: str, **options: Any) -> FolderListing | None:
        """A page of a folder (``Catalog.list_folder``), listed in the io pool."""
        listing: FolderListing | None = await self.run(partial(self.catalog.list_folder, url_path, **options))
        return listing

    def cache_stats(self) -> dict[str, tuple[CacheStats, int, int]]:
        """(statistics, bytes held, entries) of each cache, for metrics."""
        return {
            "chunks": (self.chunks.stats, self.chunks.current_bytes, len(self.chunks)),
            "tiles": (self.tiles.stats, self.tiles.current_bytes, len(self.tiles)),
        }

    def open_datasets(self) -> int:
        return self.catalog.open_count

    def close(self) -> None:
        self.prober.close()
        self.catalog.close()
