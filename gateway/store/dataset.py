"""The gateway store: zarr key → bytes (a metadata document or an encoded chunk).

``GatewayStore`` is the one data path: HTTP routes call it, and ``VirtualStore`` wraps it
as a read-only zarr-python ``Store`` for in-process users. Blocking work (stat, open,
read, decode, encode) runs in a bounded executor; encoded chunks are cached in bytes
and computed once for identical concurrent requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numpy as np
from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype

from adapters.base import PassThroughLevel, may_hold_data
from gateway.config.settings import Settings
from gateway.levels.pyramid import is_synthesized
from gateway.ngff import zarr_v2
from gateway.ngff.keys import chunk_region, may_be_key, may_be_v2_key, parse_chunk_key
from gateway.ngff.layout import ArrayNode
from gateway.store.budget import BudgetExceeded, WorkToken, bound
from gateway.store.cache import ByteLRU, CacheStats
from gateway.store.catalog import Catalog, Dataset, Identity, Located
from gateway.store.timing import RequestTiming, current_timing
from gateway.web.http import content_digest

V = TypeVar("V")
Kind = Literal["metadata", "chunk", "document"]
#: Documents that are zarr metadata (the others: OME-XML, the RO-Crate).
METADATA_NAMES = ("zarr.json", *zarr_v2.METADATA_NAMES)


@dataclass(frozen=True, slots=True)
class Description:
    """What HTTP needs to describe a value without its bytes: enough for an entity tag, so
    that a conditional request (``If-None-Match``) is answered without reading pixels."""

    kind: Kind
    media_type: str
    identity: Identity  # of the source file version the bytes come from
    #: what else decides the bytes (codecs and chunk shape; a digest for documents): ETags
    configuration: str = ""


@dataclass(frozen=True, slots=True)
class StoreItem:
    """A value of the store, with what HTTP needs to describe it."""

    data: bytes
    kind: Kind
    media_type: str
    identity: Identity  # of the source file version the bytes come from
    #: what else decides the bytes (codecs and chunk shape; a digest for documents): ETags
    configuration: str = ""

    @classmethod
    def described(cls, data: bytes, description: Description) -> StoreItem:
        d = description
        return cls(data, d.kind, d.media_type, d.identity, d.configuration)


@dataclass(frozen=True, slots=True)
class _Target:
    """What a key inside a dataset names: a document, or one chunk of an array."""

    inner: str
    document: bytes | None = None
    node: ArrayNode | None = None
    coords: tuple[int, ...] = ()

    def description(self, dataset: Dataset) -> Description:
        if self.document is not None:
            kind: Kind = "metadata" if self.inner.endswith(METADATA_NAMES) else "document"
            return Description(
                kind, media_type_for(self.inner), dataset.identity, content_digest(self.document)
            )
        assert self.node is not None
        return Description(
            "chunk", "application/octet-stream", dataset.identity, chunk_configuration(self.node)
        )


def media_type_for(key: str) -> str:
    if key.endswith(".json"):
        return "application/json"
    if key.endswith(".xml"):
        return "application/xml"
    return "application/octet-stream"


def is_all_fill(data: np.ndarray, fill_value: float) -> bool:
    """Whether every element has exactly the fill value's bits.

    Bitwise, because a client fills an absent chunk with exactly those bits: ``-0.0`` is
    not the fill value 0, nor is a NaN with another payload the fill value NaN.
    """
    if data.dtype.kind in "fc":
        unsigned = np.dtype(f"u{data.dtype.itemsize}")
        fill_bits = np.array(fill_value, dtype=data.dtype).view(unsigned)
        bits = data.view(unsigned)
        return not bits.any() if fill_bits == 0 else bool((bits == fill_bits).all())
    if fill_value == 0:
        return not data.any()
    return bool((data == fill_value).all())


def chunk_configuration(node: ArrayNode) -> str:
    """What decides a chunk's bytes besides the source and the key (for ETags)."""
    mode = "passthrough" if node.passthrough else "encoded"
    return f"{node.encoding.identity};{node.chunk_shape};{mode}"


def render_chunk(
    node: ArrayNode, coords: tuple[int, ...], omit_empty: bool, timing: RequestTiming | None = None
) -> bytes | None:
    """Read, pad and encode one chunk; None when it holds only the fill value.

    A pass-through array first asks for the stored bytes of the chunk as they are.
    ``timing`` (of the request that computes the chunk) receives the read and encode times."""
    timing = timing or RequestTiming()
    started = time.perf_counter()
    if node.passthrough:  # the layout only sets it for a PassThroughLevel
        raw = cast(PassThroughLevel, node.level).read_raw_chunk(coords)
        if raw is not None:
            timing.since("read", started)
            return raw
    region = chunk_region(coords, node.chunk_shape, node.shape)
    if omit_empty and not may_hold_data(node.level, region):
        timing.since("read", started)
        return None  # nothing stored under it (absent tiles, an empty pyramid block): fill
    data = node.level.read(region)
    started = timing.since("read", started)
    if omit_empty and is_all_fill(data, node.fill_value):
        return None
    if data.shape != node.chunk_shape:
        padded = np.full(node.chunk_shape, node.fill_value, dtype=data.dtype)
        padded[tuple(slice(0, n) for n in data.shape)] = data
        data = padded
    encoded = node.encoding.encode(data)
    timing.since("encode", started)
    return encoded


class GatewayStore:
    """Keys are URL paths: ``<root>/<file path>/<key inside the dataset>``."""

    def __init__(self, settings: Settings, executor: Executor, heavy: Executor | None = None) -> None:
        self.settings = settings
        self.executor = executor  # file reads, codecs, metadata: cheap, bounded work
        #: chunks of synthesized levels (one may read a pyramid): a pool of their own, so
        #: that they never hold every thread of ``executor`` (None: share ``executor``)
        self.heavy = heavy or executor
        self.tiles: ByteLRU[np.ndarray] = ByteLRU(settings.cache.tile_bytes)
        self.chunks: ByteLRU[bytes | None] = ByteLRU(settings.cache.chunk_bytes)
        self.catalog = Catalog(settings, self.tiles, on_stale=self._drop_chunks)

    def _drop_chunks(self, namespace: Hashable) -> None:
        self.chunks.drop(lambda key: isinstance(key, tuple) and key[0] == namespace)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def locate(self, key: str) -> Located | None:
        """The dataset at ``key``, unleased (its tree, not its source: see ``leased``)."""
        located = self.catalog.locate_cached(key)
        if located is None:
            located = await self._run(self.catalog.locate, key)
        return located

    @asynccontextmanager
    async def leased(self, key: str) -> AsyncIterator[Located | None]:
        """The dataset at ``key`` with a lease held: its source is not closed (evicted
        from the pool, replaced on disk) while the block runs."""
        located = self.catalog.acquire_cached(key)
        if located is None:
            pending = asyncio.get_running_loop().run_in_executor(self.executor, self.catalog.acquire, key)
            try:
                located = await asyncio.shield(pending)
            except asyncio.CancelledError:  # the lease taken after we left is given back
                pending.add_done_callback(self._release_orphan)
                raise
        try:
            yield located
        finally:
            if located is not None:
                self.catalog.release(located.dataset, defer_close=True)

    def _release_orphan(self, future: asyncio.Future[Located | None]) -> None:
        if not future.cancelled() and future.exception() is None:
            located = future.result()
            if located is not None:
                self.catalog.release(located.dataset, defer_close=True)

    def _holding(self, dataset: Dataset, compute: Callable[[], V]) -> Callable[[], V]:
        """``compute`` holding a lease of its own while it runs in the executor: it may
        outlive the request that started it (a client hanging up)."""

        def run() -> V:
            with self.catalog.hold(dataset):
                return compute()

        return run

    @staticmethod
    def _split_key(key: str, settings: Settings) -> tuple[str, str | None] | None:
        """(lookup key, key of the Zarr v2 view or None); None for keys no dataset can
        have (the probes of zarr v2, N5 and precomputed clients), before any file is
        looked up."""
        v2_key = zarr_v2.split_key(key, settings)  # the Zarr v2 view (gateway/zarr_v2.py)
        if v2_key is not None:
            return (zarr_v2.lookup_key(v2_key), v2_key) if may_be_v2_key(v2_key) else None
        return (key, None) if may_be_key(key) else None

    @staticmethod
    def _target(located: Located, v2_key: str | None) -> _Target | None:
        """The document or chunk a located key names, parsed once; None when none."""
        inner = located.key
        if v2_key is not None:
            inner = zarr_v2.inner_key(inner, v2_key)
        tree = located.dataset.tree if v2_key is None else located.dataset.tree.v2
        if tree is None:
            return None
        document = tree.documents.get(inner)
        if document is not None:
            return _Target(inner, document=document)
        found = tree.find_array(inner)
        if found is None:
            return None
        node, chunk_key = found
        coords = parse_chunk_key(chunk_key, node.grid)
        return None if coords is None else _Target(inner, node=node, coords=coords)

    async def describe(self, key: str) -> Description | None:
        """Kind, media type and what decides the bytes of the value at ``key``, without
        producing them (no pixel is read). None when the key names no document or chunk
        of the grid; a chunk described here may still be absent (all fill) for ``get``."""
        parts = self._split_key(key, self.settings)
        if parts is None:
            return None
        async with self.leased(parts[0]) as located:
            target = None if located is None else self._target(located, parts[1])
            if located is None or target is None:
                return None
            description = target.description(located.dataset)
        timing = current_timing()
        if timing is not None:
            timing.kind = description.kind
        return description

    async def get(self, key: str) -> StoreItem | None:
        """The value at ``key``, or None when the key does not exist (→ 404)."""
        parts = self._split_key(key, self.settings)
        if parts is None:
            return None
        timing = current_timing()
        started = time.perf_counter()
        async with self.leased(parts[0]) as located:
            if timing is not None:
                timing.since("locate", started)
            target = None if located is None else self._target(located, parts[1])
            if located is None or target is None:
                return None
            return await self._item(located.dataset, target, timing)

    async def _item(
        self, dataset: Dataset, target: _Target, timing: RequestTiming | None
    ) -> StoreItem | None:
        """The document or chunk ``target`` names (the caller holds the lease)."""
        description = target.description(dataset)
        if target.document is not None:
            data: bytes | None = target.document
        else:
            assert target.node is not None
            cache_key = (dataset.namespace, target.node.path, target.coords)
            cached, data = self.chunks.hit(cache_key)
            if not cached:
                data = await self._render(dataset, target.node, target.coords, cache_key, timing)
        if data is None:
            return None  # an absent chunk (all fill): no kind is recorded for a 404
        if timing is not None:
            timing.kind = description.kind
        return StoreItem.described(data, description)

    async def _render(
        self,
        dataset: Dataset,
        node: ArrayNode,
        coords: tuple[int, ...],
        cache_key: Hashable,
        timing: RequestTiming | None,
    ) -> bytes | None:
        """Compute a chunk once for every request that wants it, within the work budget
        (``server.request_seconds``), in the pool its level's cost calls for."""
        omit_empty = self.settings.chunks.omit_empty
        token = WorkToken(self.settings.server.request_seconds)  # checked by the worker
        render = bound(token, lambda: render_chunk(node, coords, omit_empty, timing))
        try:
            async with asyncio.timeout(token.seconds) as scope:
                return await self.chunks.get_or_compute(
                    cache_key,
                    self._holding(dataset, render),
                    self.heavy if is_synthesized(node.level) else self.executor,
                    abandon=token.cancel,  # when no request waits any more
                )
        except TimeoutError:
            # ours only if this timeout fired (not by comparing clocks: uvloop's timers
            # fire by the loop's cached time, a little before time.monotonic() says so)
            if scope.expired():
                raise BudgetExceeded(token.seconds) from None
            raise

    async def list_dir(self, prefix: str) -> list[tuple[str, bool]]:
        """Immediate children of ``prefix`` as (name, is_key): roots, directories and
        datasets (not keys: they have children), then keys and groups inside a dataset."""
        children: list[tuple[str, bool]] = await self._run(self._list_dir_sync, prefix.rstrip("/"))
        return children

    def _list_dir_sync(self, prefix: str) -> list[tuple[str, bool]]:
        if not prefix:
            return [(name, False) for name in sorted(self.catalog.roots)]
        with self.catalog.lease(prefix) as located:
            if located is None:
                return [(name, False) for name in self.catalog.directory_entries(prefix)]
            inner = f"{located.key}/" if located.key else ""
            children: dict[str, bool] = {}
            for key in located.dataset.tree.documents:
                if key.startswith(inner):
                    name, sep, _ = key[len(inner) :].partition("/")
                    children[name] = children.get(name, False) or not sep
            return sorted(children.items())

    def cache_stats(self) -> dict[str, tuple[CacheStats, int, int]]:
        """(statistics, bytes held, entries) of each cache, for metrics."""
        return {
            "chunks": (self.chunks.stats, self.chunks.current_bytes, len(self.chunks)),
            "tiles": (self.tiles.stats, self.tiles.current_bytes, len(self.tiles)),
        }

    def open_datasets(self) -> int:
        return self.catalog.open_count

    def close(self) -> None:
        self.catalog.close()


def _slice(data: bytes, byte_range: ByteRequest | None) -> bytes:
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return data[-byte_range.suffix :] if byte_range.suffix else b""
    raise TypeError(f"unexpected byte range {byte_range!r}")


class VirtualStore(Store):
    """A read-only zarr-python Store over the gateway: the same bytes HTTP serves.

    >>> store = VirtualStore.for_file("cells.ome.tif")
    >>> group = zarr.open_group(store=store, mode="r")
    """

    supports_writes = False
    supports_deletes = False
    supports_partial_writes = False
    supports_listing = True

    def __init__(self, gateway: GatewayStore, prefix: str = "", *, owns_gateway: bool = False) -> None:
        super().__init__(read_only=True)
        self.gateway = gateway
        self.prefix = prefix.strip("/")
        self._owns_gateway = owns_gateway

    @classmethod
    def for_settings(cls, settings: Settings, threads: int | None = None) -> VirtualStore:
        executor = ThreadPoolExecutor(max_workers=threads or settings.server.threads)
        return cls(GatewayStore(settings, executor), owns_gateway=True)

    @classmethod
    def for_file(cls, path: str | Path, settings: Settings | None = None) -> VirtualStore:
        """A store whose root is the dataset one file becomes."""
        file = Path(path).expanduser().resolve()
        base = settings or Settings()
        local = Settings(
            roots={"file": file.parent}, server=base.server, chunks=base.chunks, cache=base.cache
        )
        store = cls.for_settings(local)
        store.prefix = f"file/{file.name}"
        return store

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, VirtualStore) and other.gateway is self.gateway and other.prefix == self.prefix
        )

    def __hash__(self) -> int:
        return hash((id(self.gateway), self.prefix))

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        item = await self.gateway.get(self._key(key))
        if item is None:
            return None
        return prototype.buffer.from_bytes(_slice(item.data, byte_range))

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges)))

    async def exists(self, key: str) -> bool:
        return await self.gateway.get(self._key(key)) is not None

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()

    async def delete(self, key: str) -> None:
        self._check_writable()

    async def list(self) -> AsyncIterator[str]:
        async for key in self.list_prefix(""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        """Metadata keys under ``prefix`` (chunk keys are not enumerated: they are virtual)."""
        pending = [prefix.strip("/")]
        while pending:
            current = pending.pop()
            for child, is_key in await self.gateway.list_dir(self._key(current)):
                key = f"{current}/{child}" if current else child
                if is_key:
                    yield key
                else:
                    pending.append(key)

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        for child, _is_key in await self.gateway.list_dir(self._key(prefix.strip("/"))):
            yield child

    def close(self) -> None:
        super().close()
        if self._owns_gateway:
            self.gateway.close()
            if isinstance(self.gateway.executor, ThreadPoolExecutor):
                self.gateway.executor.shutdown(wait=False)
