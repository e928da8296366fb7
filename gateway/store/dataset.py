"""``DatasetStore``: one opened source as a read-only zarr Store — the spine of the data path.

A dataset store owns the tree of one source (``gateway.ngff.layout``): its documents and
its arrays. A key is parsed once, into a ``Target``: a document, one chunk of one array, or
an image's thumbnail (``gateway.store.thumbnails``). ``describe`` answers from the target
alone (no pixel read); ``item`` produces the bytes — a document as it is, a chunk read,
padded and encoded (``gateway.store.render``), a thumbnail rendered, in a worker thread
within the work budget (``server.request_seconds``).

Cross-cutting behaviour stacks on it as wrappers (``gateway.store.wrappers``): the chunk
cache, the Zarr v2 view, request timing. The mount table (``gateway.store.mounts``) builds
one stack per opened file; HTTP serves it, and ``open_store`` gives it to in-process users.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from concurrent.futures import Executor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TypeVar

from cachetools import LRUCache

from gateway import __version__
from gateway.levels.budget import BudgetExceeded, WorkToken, bound
from gateway.levels.pyramid import is_synthesized
from gateway.ngff import zarr_v2
from gateway.ngff.keys import parse_chunk_key
from gateway.ngff.layout import ArrayNode, DatasetTree
from gateway.store import thumbnails
from gateway.store.base import NOT_READY, Ready, ServedStore
from gateway.store.entity import (
    Description,
    Identity,
    Kind,
    StoreItem,
    content_digest,
    entity_tag,
    media_type_for,
    modified_seconds,
)
from gateway.store.render import chunk_configuration, render_chunk, render_shard
from gateway.store.thumbnails import ThumbnailPlan
from gateway.store.timing import current_timing

V = TypeVar("V")
#: Parsed keys a dataset store remembers (each ~0.3 KiB: 1024 keys ≈ 0.3 MiB per store).
TARGETS_PER_STORE = 1024
#: Documents that are zarr metadata (the others: OME-XML, the RO-Crate).
METADATA_NAMES = ("zarr.json", *zarr_v2.METADATA_NAMES)
#: How a chunk is computed once for every request that wants it: a cache's single flight
#: (``ByteLRU.get_or_compute``), given the cache key, the work, its pool and how to stop it.
Share = Callable[[Hashable, Callable[[], V], Executor, Callable[[], None]], Awaitable[V]]


@dataclass(frozen=True, slots=True)
class Workers:
    """Where a store's blocking work runs, and how long one chunk may take."""

    io: Executor  # file reads, codecs: cheap, bounded work
    #: chunks of synthesized levels (one may read a pyramid): a pool of their own, so
    #: that they never hold every thread of ``io``
    heavy: Executor
    request_seconds: float


@dataclass(frozen=True, slots=True)
class Target:
    """What a key of a dataset names: a document, one chunk of one array (a shard of
    inner chunks when the array is sharded: ``coords`` then index its shards), or a
    thumbnail (``thumbnail``: what it reads and shows)."""

    key: str
    description: Description
    document: bytes | None = None
    node: ArrayNode | None = None
    coords: tuple[int, ...] = ()
    thumbnail: ThumbnailPlan | None = None


def document_description(key: str, data: bytes, identity: Identity) -> Description:
    """A document's description: its entity tag covers its bytes (a digest)."""
    kind: Kind = "metadata" if key.endswith(METADATA_NAMES) else "document"
    etag = entity_tag(identity, key, content_digest(data), __version__)
    return Description(kind, media_type_for(key), etag, modified_seconds(identity))


class DatasetStore(ServedStore):
    """The documents and chunks of one source, for one version of its file(s).

    ``identity``: the file version the bytes come from (entity tags); ``namespace``: the
    prefix of this opening's cache keys; ``hold``: a lease on the source for the time a
    chunk computation runs (it may outlive the request that started it); ``on_close``:
    what closing the store releases (an in-process store's source and pools; a mounted
    store's source is the mount table's to close)."""

    def __init__(
        self,
        tree: DatasetTree,
        identity: Identity,
        workers: Workers,
        *,
        namespace: Hashable = None,
        omit_empty: bool = True,
        hold: Callable[[], AbstractContextManager[object]] = nullcontext,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.tree = tree
        self.identity = identity
        self.workers = workers
        self.namespace = namespace
        self.omit_empty = omit_empty
        self._hold = hold
        self._on_close = on_close
        self._modified = modified_seconds(identity)
        #: per array: what decides its chunks' bytes besides the key (computed once)
        self._configurations = {path: chunk_configuration(node) for path, node in tree.arrays.items()}
        #: parsed keys, bounded (touched from the event loop only)
        self._targets: LRUCache[str, Target] = LRUCache(maxsize=TARGETS_PER_STORE)

    def __repr__(self) -> str:
        return f"DatasetStore(namespace={self.namespace!r})"

    def __eq__(self, other: object) -> bool:
        """Equal stores serve the same bytes for every key: the same tree, of the same file
        version, under the same cache namespace (zarr compares stores by what they hold)."""
        return (
            isinstance(other, type(self))
            and other.tree is self.tree
            and other.identity == self.identity
            and other.namespace == self.namespace
            and other.omit_empty == self.omit_empty
        )

    def __hash__(self) -> int:
        return hash((id(self.tree), self.identity, self.namespace, self.omit_empty))

    # -- keys -----------------------------------------------------------------------------------

    def resolve(self, key: str) -> Target | None:
        """The document or chunk ``key`` names, parsed once; None when none. Hot keys
        (a viewer asks for the same chunks again and again) are remembered."""
        target = self._targets.get(key)
        if target is None:
            target = self._resolve(key)
            if target is not None:
                self._targets[key] = target
        return target

    def _resolve(self, key: str) -> Target | None:
        document = self.tree.documents.get(key)
        if document is not None:
            return Target(key, document_description(key, document, self.identity), document=document)
        found = self.tree.find_array(key)
        if found is None:
            return self._thumbnail(key)
        node, chunk_key = found
        coords = parse_chunk_key(chunk_key, node.key_grid)
        if coords is None:
            return None
        etag = entity_tag(self.identity, key, self._configurations[node.path], __version__)
        description = Description("chunk", "application/octet-stream", etag, self._modified)
        return Target(key, description, node=node, coords=coords)

    def _thumbnail(self, key: str) -> Target | None:
        """The thumbnail ``key`` names, planned from the served documents (no pixel read);
        its entity tag is its canonical key's (a root alias shares its image's)."""
        wanted = thumbnails.parse_key(key)
        found = None if wanted is None else thumbnails.plan(self.tree, wanted)
        if found is None:
            return None
        etag = entity_tag(self.identity, found.key, found.configuration, __version__)
        description = Description("thumbnail", found.media_type, etag, self._modified)
        return Target(key, description, thumbnail=found)

    def describe(self, key: str) -> Description | None:
        target = self.resolve(key)
        return None if target is None else target.description

    def item_now(self, key: str) -> Ready:
        target = self.resolve(key)
        if target is None:
            return None
        return StoreItem(target.document, target.description) if target.document is not None else NOT_READY

    def document_keys(self) -> Iterable[str]:
        return self.tree.documents.keys()

    # -- values ---------------------------------------------------------------------------------

    async def item(self, key: str) -> StoreItem | None:
        target = self.resolve(key)
        if target is None:
            return None
        if target.document is not None:
            return StoreItem(target.document, target.description)
        data = await self.render(target)
        return None if data is None else StoreItem(data, target.description)

    def cache_key(self, target: Target) -> Hashable:
        """The key of a chunk in a cache shared by every dataset (and by every view); it
        names the chunk's shape and a shard's shape too (the v2 view's store has the same
        arrays unsharded, the browsing view's some in thinner chunks); a thumbnail's is its
        canonical key."""
        if target.thumbnail is not None:
            return (self.namespace, "thumbnail", target.thumbnail.key)
        node = target.node
        assert node is not None
        return (self.namespace, node.path, node.chunk_shape, node.shard_shape, target.coords)

    async def render(self, target: Target, share: Share[bytes | None] | None = None) -> bytes | None:
        """The encoded bytes of the chunk (or shard) ``target`` names (None: all fill), or of its
        thumbnail, computed in the pool its level's cost calls for, within the work budget.
        ``share``: a cache's single flight, so that identical concurrent requests compute it once."""
        token = WorkToken(self.workers.request_seconds)  # checked by the worker
        timing = current_timing()
        omit_empty = self.omit_empty
        plan = target.thumbnail
        node = target.node if plan is None else plan.node
        assert node is not None

        def compute() -> bytes | None:
            with self._hold():
                if plan is not None:
                    return thumbnails.render(plan, timing)
                if node.shard_shape is None:
                    return render_chunk(node, target.coords, omit_empty, timing)
                return render_shard(node, target.coords, omit_empty, timing)

        work = bound(token, compute)
        pool = self.workers.heavy if is_synthesized(node.level) else self.workers.io
        try:
            async with asyncio.timeout(token.seconds) as scope:
                if share is not None:
                    return await share(self.cache_key(target), work, pool, token.cancel)
                pending = asyncio.get_running_loop().run_in_executor(pool, work)
                try:
                    return await pending
                except asyncio.CancelledError:
                    token.cancel()  # nobody waits any more: the worker stops at its next check
                    raise
        except TimeoutError:
            # ours only if this timeout fired (not by comparing clocks: uvloop's timers
            # fire by the loop's cached time, a little before time.monotonic() says so)
            if scope.expired():
                raise BudgetExceeded(token.seconds) from None
            raise

    def close(self) -> None:
        super().close()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()
