"""Cross-cutting behaviour as stores stacked on a ``DatasetStore`` (as zarr-python's
``WrapperStore``): each wrapper adds one concern and delegates the rest.

- ``ChunkCache``: encoded chunks in a byte-bounded LRU shared by every dataset, computed
  once for identical concurrent requests (a source's stored chunks sent as they are are
  kept from their second request on: the page cache holds their bytes already);
- ``ZarrV2View``: the same dataset as Zarr v2 / OME-Zarr 0.4 (``gateway.ngff.zarr_v2``);
  its chunks are the v3 chunks, so one cache serves both views;
- ``OverviewFirst``: an image's computed overview starts as soon as its group is read
  (the browsing view: viewers ask for the coarsest level first);
- ``Timed``: what was served (and the store's phases) into the request's timing.

The mount table stacks them once per opened file: ``Timed(ChunkCache(DatasetStore))``,
``Timed(ZarrV2View(ChunkCache(DatasetStore)))`` for the v2 view and
``Timed(OverviewFirst(ChunkCache(DatasetStore)))`` for the browsing view.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping
from functools import partial

from gateway.levels.pyramid import DownsampledLevel
from gateway.ngff.keys import grid_chunk_keys
from gateway.ngff.layout import DatasetTree
from gateway.store.base import NOT_READY, Ready, ServedStore
from gateway.store.cache import ByteLRU
from gateway.store.dataset import DatasetStore, document_description
from gateway.store.entity import Description, StoreItem
from gateway.store.timing import current_timing


class StoreWrapper(ServedStore):
    """Delegates everything to the wrapped store; subclasses override what they change."""

    def __init__(self, store: ServedStore) -> None:
        super().__init__()
        self.store = store

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r})"

    def __eq__(self, other: object) -> bool:
        """The same wrapper on an equal store (as zarr's ``WrapperStore``)."""
        return isinstance(other, type(self)) and other.store == self.store

    def __hash__(self) -> int:
        return hash((type(self), self.store))

    def describe(self, key: str) -> Description | None:
        return self.store.describe(key)

    async def item(self, key: str) -> StoreItem | None:
        return await self.store.item(key)

    def item_now(self, key: str) -> Ready:
        return self.store.item_now(key)

    def document_keys(self) -> Iterable[str]:
        return self.store.document_keys()

    def close(self) -> None:
        super().close()
        self.store.close()


class ChunkCache(StoreWrapper):
    """Encoded chunks (and "all fill", as None) of a dataset store, in a shared cache."""

    store: DatasetStore

    def __init__(self, store: DatasetStore, cache: ByteLRU[bytes | None]) -> None:
        super().__init__(store)
        self.cache = cache

    async def item(self, key: str) -> StoreItem | None:
        found = self.item_now(key)
        if found is not NOT_READY:
            return found
        target = self.store.resolve(key)
        assert target is not None  # item_now answers documents, absent keys and hits
        share = self.cache.get_or_compute
        if target.node is not None and target.node.sends_stored_bytes and target.node.shard_shape is None:
            share = partial(share, cheap=True)  # stored bytes: the page cache holds them already
        data = await self.store.render(target, share=share)
        return None if data is None else StoreItem(data, target.description)

    def item_now(self, key: str) -> Ready:
        target = self.store.resolve(key)
        if target is None:
            return None
        if target.document is not None:
            return StoreItem(target.document, target.description)
        cached, data = self.cache.hit(self.store.cache_key(target))
        if not cached:
            return NOT_READY
        return None if data is None else StoreItem(data, target.description)


class ZarrV2View(StoreWrapper):
    """A dataset as Zarr v2: its own documents (``.zgroup``, ``.zattrs``, ``.zarray``),
    and chunk keys ``<array>/<i>/<j>...`` that name the v3 chunks ``<array>/c/<i>/<j>...``
    of the wrapped store (same bytes, same entity tags)."""

    def __init__(self, store: ServedStore, tree: DatasetTree, identity: tuple[int, ...]) -> None:
        super().__init__(store)
        self.tree = tree  # the v2 tree: documents, and arrays by v2 key style
        self.identity = identity

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other) and isinstance(other, ZarrV2View) and other.tree is self.tree

    def __hash__(self) -> int:
        return super().__hash__()

    def _v3_key(self, key: str) -> str | None:
        found = self.tree.find_array(key)
        if found is None:
            return None
        node, chunk_key = found
        return f"{node.path}/{chunk_key}" if node.path else chunk_key

    def describe(self, key: str) -> Description | None:
        document = self.tree.documents.get(key)
        if document is not None:
            return document_description(key, document, self.identity)
        v3_key = self._v3_key(key)
        return None if v3_key is None else self.store.describe(v3_key)

    async def item(self, key: str) -> StoreItem | None:
        document = self.tree.documents.get(key)
        if document is not None:
            return StoreItem(document, document_description(key, document, self.identity))
        v3_key = self._v3_key(key)
        return None if v3_key is None else await self.store.item(v3_key)

    def item_now(self, key: str) -> Ready:
        document = self.tree.documents.get(key)
        if document is not None:
            return StoreItem(document, document_description(key, document, self.identity))
        v3_key = self._v3_key(key)
        return None if v3_key is None else self.store.item_now(v3_key)

    def document_keys(self) -> Iterable[str]:
        return self.tree.documents.keys()


logger = logging.getLogger(__name__)

#: An overview of more chunks than this (many channels or time points) is not computed
#: ahead: a viewer shows one or a few of them first.
MAX_OVERVIEW_CHUNKS = 4


def overview_keys(tree: DatasetTree, limit: int = MAX_OVERVIEW_CHUNKS) -> dict[str, tuple[str, ...]]:
    """Image group ``zarr.json`` key → the chunk keys of the image's coarsest level, for
    images whose coarsest level is computed (a synthesized pyramid level: read from the
    whole image) and has at most ``limit`` chunks (or shards)."""
    found: dict[str, tuple[str, ...]] = {}
    for group, image in tree.images.items():
        prefix = f"{group}/" if group else ""
        node = tree.arrays.get(f"{prefix}{len(image.levels) - 1}")
        if node is None or not isinstance(node.level, DownsampledLevel):
            continue
        if math.prod(node.key_grid) <= limit:
            found[f"{prefix}zarr.json"] = tuple(grid_chunk_keys(f"{node.path}/", node.key_grid))
    return found


class OverviewFirst(StoreWrapper):
    """Starts an image's computed overview when its group document is served.

    A viewer opening an image reads its group's ``zarr.json``, then (Neuroglancer, Viv)
    asks for the coarsest level first, and shows nothing until that arrives. Where the file
    has no pyramid of its own, that level is computed from the whole image (a full pass
    over a volume: seconds), where a converted copy has it on disk. Started here, ~0.5-1 s
    earlier than the viewer's own request (its start-up in between), the chunk is cached,
    or still being computed when the viewer asks (the cache's single flight then answers
    both at once). Once per image and opening of the file; the same work the viewer's
    request would do, in the same pools and work budget."""

    def __init__(self, store: ServedStore, overviews: Mapping[str, tuple[str, ...]]) -> None:
        super().__init__(store)
        self._waiting = dict(overviews)  # document key → chunk keys not started yet
        self._running: set[asyncio.Task[None]] = set()

    def _start(self, key: str) -> None:
        chunk_keys = self._waiting.pop(key, None) if self._waiting else None
        if not chunk_keys:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a caller without an event loop: nothing to start it on
            return
        for chunk_key in chunk_keys:
            task = loop.create_task(self._compute(chunk_key))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _compute(self, chunk_key: str) -> None:
        try:
            await self.store.item(chunk_key)
        except Exception as exc:  # the viewer's own request reports it
            logger.debug("overview %s not computed ahead: %r", chunk_key, exc)

    async def item(self, key: str) -> StoreItem | None:
        self._start(key)
        return await self.store.item(key)

    def item_now(self, key: str) -> Ready:
        self._start(key)
        return self.store.item_now(key)

    def close(self) -> None:
        for task in self._running:
            task.cancel()
        super().close()


class Timed(StoreWrapper):
    """Records what kind of value a request was served (for metrics, the access log and
    ``Server-Timing``); the wrapped store records its read and encode phases itself."""

    def describe(self, key: str) -> Description | None:
        description = self.store.describe(key)
        timing = current_timing()
        if timing is not None and description is not None:
            timing.kind = description.kind
        return description

    async def item(self, key: str) -> StoreItem | None:
        found = await self.store.item(key)
        _record_kind(found)
        return found

    def item_now(self, key: str) -> Ready:
        found = self.store.item_now(key)
        if isinstance(found, StoreItem):
            _record_kind(found)
        return found


def _record_kind(found: StoreItem | None) -> None:
    timing = current_timing()
    if timing is not None and found is not None:
        timing.kind = found.kind  # an absent chunk (all fill): no kind for a 404
