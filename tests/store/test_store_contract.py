"""zarr-python's own store contract (``zarr.testing.store.StoreTests``) against our stores.

Run for a ``DatasetStore`` and for the stack ``open_store`` returns (and HTTP serves):
``Timed(ChunkCache(DatasetStore))``, both on a real dataset (a tiled TIFF in ``tmp_path``).

The contract writes its values "bypassing the store methods" (``set``/``get`` below): into
the documents of the dataset's tree, as MemoryStore's tests write into its dict. That dict
starts empty, as upstream expects; the arrays stay real. The upstream read tests then run
unchanged against our ``get``/``list*`` code. Tests that write through the store are
overridden with what a read-only store does instead.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import pytest
import tifffile
import zarr
from zarr.abc.store import SupportsDeleteSync, SupportsGetSync, SupportsSetSync
from zarr.core.buffer import Buffer, cpu, default_buffer_prototype
from zarr.core.sync import _collect_aiterator
from zarr.storage import MemoryStore
from zarr.testing.store import StoreTests

from gateway.config.settings import Settings
from gateway.store.base import ServedStore
from gateway.store.dataset import DatasetStore
from gateway.store.inprocess import open_store
from gateway.store.wrappers import StoreWrapper, Timed, ZarrV2View

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("anyio_backend")]

S = TypeVar("S", bound=ServedStore)
READ_ONLY = "store was opened in read-only mode and does not support writing"
#: One source tile, 128 x 128, is one served chunk; the chunk at (1, 2) is all zero.
TILE = 128
CHUNK_KEY = "0/c/0/1"
EMPTY_CHUNK_KEY = "0/c/1/2"
#: No display-window estimate: it would read every tile when ``zarr.json`` is built.
SETTINGS = Settings.from_mapping({"metadata": {"estimate_windows": False}})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pixels() -> np.ndarray:
    data = np.arange(2 * TILE * 3 * TILE, dtype=np.uint16).reshape(2 * TILE, 3 * TILE) % 4093 + 1
    data[TILE:, 2 * TILE :] = 0
    return data


@pytest.fixture
def served(tmp_path: Path, pixels: np.ndarray) -> Iterator[ServedStore]:
    """What ``open_store`` gives for a tiled, compressed TIFF; closed (with its file) after."""
    path = tmp_path / "tiles.tif"
    tifffile.imwrite(path, pixels, tile=(TILE, TILE), photometric="minisblack", compression="zlib")
    store = open_store(path, SETTINGS, threads=2)
    try:
        yield store
    finally:
        store.close()


def dataset_of(store: ServedStore) -> DatasetStore:
    """The ``DatasetStore`` at the bottom of a stack of wrappers."""
    while isinstance(store, StoreWrapper):
        store = store.store
    assert isinstance(store, DatasetStore)
    return store


class ReadOnlyStoreTests(StoreTests[S, cpu.Buffer]):
    """The upstream contract for a store of our stack; subclasses give ``store_kwargs``."""

    buffer_cls = cpu.Buffer
    expected_repr: ClassVar[str]

    async def set(self, store: S, key: str, value: Buffer) -> None:
        dataset_of(store).tree.documents[key] = value.to_bytes()

    async def get(self, store: S, key: str) -> Buffer:
        return self.buffer_cls.from_bytes(dataset_of(store).tree.documents[key])

    def seed_through_tree(self, store: S) -> S:
        """``store`` (this test's own) whose ``_set_many`` writes into its tree, as ``set``
        above does: the upstream tests that seed with it then read through our listing code."""

        async def set_many(values: Iterable[tuple[str, Buffer]]) -> None:
            for key, value in values:
                await self.set(store, key, value)

        store._set_many = set_many  # type: ignore[method-assign]
        return store

    # -- what the store says about itself ------------------------------------------------------

    def test_store_repr(self, store: S) -> None:
        assert repr(store).startswith(self.expected_repr)
        assert repr(dataset_of(store).namespace) in repr(store)

    def test_store_supports_writes(self, store: S) -> None:
        assert not store.supports_writes
        assert not store.supports_deletes

    def test_store_supports_listing(self, store: S) -> None:
        assert store.supports_listing

    def test_store_read_only(self, store: S) -> None:
        assert store.read_only
        with pytest.raises(AttributeError):
            store.read_only = False  # type: ignore[misc]

    async def test_store_open_read_only(self, open_kwargs: dict[str, Any]) -> None:
        """Always read-only: there is no writable mode to ask for."""
        store = await self.store_cls.open(**open_kwargs)
        assert store._is_open
        assert store.read_only
        with pytest.raises(TypeError, match="read_only"):
            await self.store_cls.open(**open_kwargs, read_only=False)

    async def test_serializable_store(self, store: S) -> None:
        """It serves a file opened in this process: pickling says so instead of failing
        on some lock or handle inside."""
        with pytest.raises(TypeError, match=r"cannot be pickled.*open_store"):
            pickle.dumps(store)

    # -- writes are refused ---------------------------------------------------------------------

    async def test_read_only_store_raises(self, open_kwargs: dict[str, Any]) -> None:
        store = await self.store_cls.open(**open_kwargs)
        with pytest.raises(ValueError, match=READ_ONLY):
            await store.set("foo", self.buffer_cls.from_bytes(b"bar"))
        with pytest.raises(ValueError, match=READ_ONLY):
            await store.delete("foo")

    async def test_with_read_only_store(self, open_kwargs: dict[str, Any]) -> None:
        """No writable (or other) copy of a served dataset exists."""
        store = await self.store_cls.open(**open_kwargs)
        for read_only in (False, True):
            with pytest.raises(NotImplementedError, match="with_read_only is not implemented"):
                store.with_read_only(read_only=read_only)

    @pytest.mark.parametrize("key", ["zarr.json", "c/0", "foo/c/0.0", "foo/0/0", CHUNK_KEY])
    @pytest.mark.parametrize("data", [b"\x01\x02\x03\x04", b""])
    async def test_set(self, store: S, key: str, data: bytes) -> None:
        with pytest.raises(ValueError, match=READ_ONLY):
            await store.set(key, self.buffer_cls.from_bytes(data))
        assert key not in dataset_of(store).tree.documents

    async def test_set_not_open(self, store_not_open: S) -> None:
        assert not store_not_open._is_open
        with pytest.raises(ValueError, match=READ_ONLY):
            await store_not_open.set("c/0", self.buffer_cls.from_bytes(b"\x01\x02\x03\x04"))

    async def test_set_many(self, store: S) -> None:
        values = [(key, self.buffer_cls.from_bytes(key.encode())) for key in ("zarr.json", "c/0")]
        with pytest.raises(ValueError, match=READ_ONLY):
            await store._set_many(values)
        assert await store.is_empty("")

    async def test_set_if_not_exists(self, store: S) -> None:
        """An existing key is left alone (as upstream); a new one is a refused write."""
        await self.set(store, "k", self.buffer_cls.from_bytes(b"0000"))
        await store.set_if_not_exists("k", self.buffer_cls.from_bytes(b"1111"))
        assert (await self.get(store, "k")).to_bytes() == b"0000"
        with pytest.raises(ValueError, match=READ_ONLY):
            await store.set_if_not_exists("k2", self.buffer_cls.from_bytes(b"1111"))
        assert not await store.exists("k2")

    async def test_exists(self, store: S) -> None:
        assert not await store.exists("foo")
        await self.set(store, "foo/zarr.json", self.buffer_cls.from_bytes(b"bar"))
        assert await store.exists("foo/zarr.json")
        assert not await store.exists("foo")

    async def test_delete(self, store: S) -> None:
        await self.set(store, "foo/zarr.json", self.buffer_cls.from_bytes(b"bar"))
        with pytest.raises(ValueError, match=READ_ONLY):
            await store.delete("foo/zarr.json")
        assert await store.exists("foo/zarr.json")

    async def test_delete_nonexistent_key_does_not_raise(self, store: S) -> None:
        """Refused before any lookup: a read-only store answers every delete alike."""
        with pytest.raises(ValueError, match=READ_ONLY):
            await store.delete("nonexistent_key")

    async def test_delete_dir(self, store: S) -> None:
        """zarr's answer for a store without deletes (``supports_deletes`` is False)."""
        await self.set(store, "foo/zarr.json", self.buffer_cls.from_bytes(b"bar"))
        with pytest.raises(NotImplementedError):
            await store.delete_dir("foo")
        assert await store.exists("foo/zarr.json")

    async def test_clear(self, store: S) -> None:
        await self.set(store, "key", self.buffer_cls.from_bytes(b"something"))
        with pytest.raises(NotImplementedError):
            await store.clear()
        assert not await store.is_empty("")

    # -- upstream read tests that seed with ``_set_many`` ---------------------------------------

    async def test_getsize_prefix(self, store: S) -> None:
        await super().test_getsize_prefix(self.seed_through_tree(store))

    async def test_list(self, store: S) -> None:
        await super().test_list(self.seed_through_tree(store))

    async def test_list_prefix(self, store: S) -> None:
        await super().test_list_prefix(self.seed_through_tree(store))

    async def test_list_empty_path(self, store: S) -> None:
        await super().test_list_empty_path(self.seed_through_tree(store))

    async def test_list_dir(self, store: S) -> None:
        await super().test_list_dir(self.seed_through_tree(store))

    # -- zarr's synchronous store protocols: not offered, zarr uses the async methods -----------

    def test_get_sync(self, store: S) -> None:
        assert not isinstance(store, SupportsGetSync)

    def test_get_sync_missing(self, store: S) -> None:
        assert not isinstance(store, SupportsGetSync)

    def test_set_sync(self, store: S) -> None:
        assert not isinstance(store, SupportsSetSync)

    def test_delete_sync(self, store: S) -> None:
        assert not isinstance(store, SupportsDeleteSync)

    def test_delete_sync_missing(self, store: S) -> None:
        assert not isinstance(store, SupportsDeleteSync)


class TestDatasetStore(ReadOnlyStoreTests[DatasetStore]):
    store_cls = DatasetStore
    expected_repr = "DatasetStore(namespace="

    @pytest.fixture
    def store_kwargs(self, served: ServedStore) -> dict[str, Any]:
        dataset = dataset_of(served)
        dataset.tree.documents.clear()
        return {
            "tree": dataset.tree,
            "identity": dataset.identity,
            "workers": dataset.workers,
            "namespace": dataset.namespace,
        }


class TestServedStack(ReadOnlyStoreTests[Timed]):
    """The stack as ``open_store`` built it: ``Timed`` on its own ``ChunkCache``."""

    store_cls = Timed
    expected_repr = "Timed(ChunkCache(DatasetStore(namespace="

    @pytest.fixture
    def store_kwargs(self, served: ServedStore) -> dict[str, Any]:
        assert isinstance(served, Timed)
        dataset_of(served).tree.documents.clear()
        return {"store": served.store}


# -- beyond the contract: real chunks ----------------------------------------------------------


@pytest.fixture(params=["dataset", "stack"])
def layer(request: pytest.FixtureRequest, served: ServedStore) -> ServedStore:
    """The dataset's own store, and the stack on it (whose cache must not change a byte)."""
    return dataset_of(served) if request.param == "dataset" else served


async def test_chunk_decodes_to_source_pixels(layer: ServedStore, pixels: np.ndarray) -> None:
    """The chunk's bytes alone, next to its array's ``zarr.json``, are the source tile."""
    prototype = default_buffer_prototype()
    metadata = await layer.get("0/zarr.json", prototype)
    chunk = await layer.get(CHUNK_KEY, prototype)
    assert metadata is not None and chunk is not None
    alone = MemoryStore({"zarr.json": metadata, "c/0/1": chunk})
    array = await zarr.api.asynchronous.open_array(store=alone, mode="r")
    tile = await array.getitem((slice(0, TILE), slice(TILE, 2 * TILE)))
    np.testing.assert_array_equal(tile, pixels[:TILE, TILE : 2 * TILE])


async def test_describe_reads_no_pixels(layer: ServedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    level = dataset_of(layer).tree.arrays["0"].level

    def no_read(*args: object) -> np.ndarray:
        raise AssertionError("read a pixel")

    monkeypatch.setattr(type(level), "read", no_read)
    if hasattr(level, "read_raw_chunk"):  # a chunk sent as stored is read so
        monkeypatch.setattr(type(level), "read_raw_chunk", no_read)
    description = layer.describe(CHUNK_KEY)
    assert description is not None and description.kind == "chunk"
    with pytest.raises(AssertionError, match="read a pixel"):  # the patch does bite
        await layer.get(CHUNK_KEY, default_buffer_prototype())


async def test_absent_chunk_is_none(layer: ServedStore) -> None:
    """A chunk of the grid holding only the fill value: described, but no value (a 404)."""
    assert layer.describe(EMPTY_CHUNK_KEY) is not None
    assert await layer.get(EMPTY_CHUNK_KEY, default_buffer_prototype()) is None
    assert not await layer.exists(EMPTY_CHUNK_KEY)
    assert await layer.exists(CHUNK_KEY)


async def test_chunk_keys_outside_the_grid_are_none(layer: ServedStore) -> None:
    assert layer.describe("0/c/2/0") is None
    assert await layer.get("0/c/2/0", default_buffer_prototype()) is None
    assert await layer.get("9/c/0/0", default_buffer_prototype()) is None


async def test_list_is_the_documents(layer: ServedStore) -> None:
    """Chunk keys are not enumerated (they are virtual); every document is."""
    listed = await _collect_aiterator(layer.list())
    assert listed == ("0/zarr.json", "1/zarr.json", "2/zarr.json", "zarr.json")
    assert await _collect_aiterator(layer.list_dir("0")) == ("zarr.json",)


def test_equal_stores_share_tree_version_and_namespace(served: ServedStore) -> None:
    """Equality is what the store serves: not its pools or its lease on the source."""
    dataset = dataset_of(served)
    same = DatasetStore(dataset.tree, dataset.identity, dataset.workers, namespace=dataset.namespace)
    device, inode, mtime_ns, size = dataset.identity
    rewritten = (device, inode, mtime_ns + 1, size)
    assert same == dataset and hash(same) == hash(dataset)
    assert Timed(dataset) == Timed(same)
    for other in (
        DatasetStore(replace(dataset.tree), dataset.identity, dataset.workers, namespace=dataset.namespace),
        DatasetStore(dataset.tree, rewritten, dataset.workers, namespace=dataset.namespace),
        DatasetStore(dataset.tree, dataset.identity, dataset.workers, namespace=("another",)),
    ):
        assert other != dataset
        assert Timed(other) != Timed(dataset)


def test_v2_views_are_equal_over_the_same_v2_tree(served: ServedStore) -> None:
    dataset = dataset_of(served)
    v2 = dataset.tree.v2
    assert v2 is not None
    view = ZarrV2View(dataset, v2, dataset.identity)
    assert view == ZarrV2View(dataset, v2, dataset.identity)
    assert view != ZarrV2View(dataset, replace(v2), dataset.identity)
