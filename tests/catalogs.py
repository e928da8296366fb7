"""A catalog as the app builds it (default registry, the store factory), for tests of
the catalog itself. Its workers are never used by those tests: nothing renders chunks."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from adapters.registry import default_registry
from gateway.config.settings import Settings
from gateway.store.cache import ByteLRU
from gateway.store.catalog import Catalog
from gateway.store.dataset import Workers
from gateway.store.mounts import StoreFactory

_POOL = ThreadPoolExecutor(1, thread_name_prefix="test-catalog")


def make_catalog(settings: Settings, tiles: ByteLRU[Any]) -> Catalog:
    workers = Workers(_POOL, _POOL, settings.server.request_seconds)
    factory = StoreFactory(settings, tiles, ByteLRU(1 << 20), workers)
    return Catalog(settings, tiles, default_registry(), factory.build)
