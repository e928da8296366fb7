"""The gateway's stores for in-process zarr-python users: the same objects HTTP serves.

>>> store = open_store("cells.ome.tif")        # one file, as its dataset's root
>>> group = zarr.open_group(store=store, mode="r")

``MountedStore`` serves every configured root under ``<root>/<file>/<key>`` (the URL
paths of HTTP), through the same mount table as the app. Neither imports Starlette.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype

from adapters.registry import Registry, default_registry
from gateway.config.settings import Settings
from gateway.store.base import ServedStore, slice_bytes
from gateway.store.cache import ByteLRU, NamespacedTiles
from gateway.store.catalog import identity_of
from gateway.store.dataset import Workers
from gateway.store.entity import Identity
from gateway.store.mounts import Mounts, StoreFactory

_openings = itertools.count()


def _workers(settings: Settings, threads: int | None) -> tuple[Workers, ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(threads or settings.server.threads, thread_name_prefix="gateway-inprocess")
    return Workers(pool, pool, settings.server.request_seconds), pool


def open_store(
    path: str | Path,
    settings: Settings | None = None,
    *,
    registry: Registry | None = None,
    threads: int | None = None,
) -> ServedStore:
    """The store stack of one file (``Timed(ChunkCache(DatasetStore))``, as HTTP serves
    it), with its own pool and caches; closing it closes the file. Declared labels are
    not resolved (they name files by URL path under a root: use ``MountedStore``)."""
    file = Path(path).expanduser().resolve()
    settings = settings or Settings()
    workers, pool = _workers(settings, threads)
    tiles: ByteLRU[np.ndarray] = ByteLRU(settings.cache.tile_bytes)
    chunks: ByteLRU[bytes | None] = ByteLRU(settings.cache.chunk_bytes)
    identity: Identity = identity_of(os.stat(file))
    namespace = (str(file), identity, next(_openings))
    source = (registry or default_registry()).open(
        file, NamespacedTiles(tiles, namespace), settings.open_options()
    )

    def close() -> None:
        source.close()
        pool.shutdown(wait=False, cancel_futures=True)

    try:
        factory = StoreFactory(settings, tiles, chunks, workers)
        tree = factory.tree(file.name, source, namespace, lambda url_path: None)
        identity += tuple(n for dependency in source.dependencies for n in identity_of(dependency.stat))
        return factory.stack(tree, identity, namespace, on_close=close).v3
    except BaseException:
        close()
        raise


class MountedStore(Store):
    """Every configured root as one read-only zarr Store, keys ``<root>/<file>/<key>``."""

    supports_writes = False
    supports_deletes = False
    supports_partial_writes = False
    supports_listing = True

    def __init__(
        self, settings: Settings, *, registry: Registry | None = None, threads: int | None = None
    ) -> None:
        super().__init__(read_only=True)
        workers, self._pool = _workers(settings, threads)
        self.mounts = Mounts(settings, workers, registry)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        found = await self.mounts.get(key)
        return None if found is None else prototype.buffer.from_bytes(slice_bytes(found.data, byte_range))

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges)))

    async def exists(self, key: str) -> bool:
        return await self.mounts.get(key) is not None

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()

    async def delete(self, key: str) -> None:
        self._check_writable()

    async def list(self) -> AsyncIterator[str]:
        async for key in self.list_prefix(""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        """Document keys under ``prefix`` (chunk keys are not enumerated: they are virtual)."""
        pending = [prefix.strip("/")]
        while pending:
            current = pending.pop()
            for child, is_key in await self.mounts.list_dir(current):
                key = f"{current}/{child}" if current else child
                if is_key:
                    yield key
                else:
                    pending.append(key)

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        for child, _is_key in await self.mounts.list_dir(prefix):
            yield child

    def close(self) -> None:
        super().close()
        self.mounts.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
