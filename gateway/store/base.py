"""``ServedStore``: a read-only zarr-python Store whose values carry their description.

Every store the gateway serves (a dataset's own store and the wrappers stacked on it)
answers two questions beyond zarr's ``get``: ``describe(key)`` (kind, media type, entity
tag, without producing bytes) and ``item(key)`` (the bytes with that description). The
zarr ``Store`` interface is implemented once, here, from those two, so that HTTP and an
in-process zarr-python user read the very same objects.
"""

from __future__ import annotations

import asyncio
import builtins
import enum
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterable
from typing import Final, NoReturn

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype

from gateway.store.entity import Description, StoreItem


def slice_bytes(data: bytes, byte_range: ByteRequest | None) -> bytes:
    """The part of ``data`` a zarr byte request names (clamped, as HTTP clamps)."""
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return data[-byte_range.suffix :] if byte_range.suffix else b""
    raise TypeError(f"Unexpected byte_range, got {byte_range!r}")


class Waiting(enum.Enum):
    NOT_READY = "not ready"


#: What ``item_now`` answers for a value that needs work (I/O, decoding, encoding).
NOT_READY: Final = Waiting.NOT_READY
Ready = StoreItem | None | Waiting


class ServedStore(Store):
    """A read-only Store of metadata documents and virtual chunks.

    Chunk keys are not listed (there are as many as the grid has cells, and absent ones
    are all fill); ``list*`` enumerate the documents, as a client needs to walk a tree."""

    supports_writes = False
    supports_deletes = False
    supports_partial_writes = False
    supports_listing = True

    def __init__(self) -> None:
        super().__init__(read_only=True)

    # -- what subclasses answer --------------------------------------------------------------

    @abstractmethod
    def describe(self, key: str) -> Description | None:
        """The description of the value at ``key`` without producing it (no pixel read);
        None when the key names no document and no chunk of a grid. A chunk described
        here may still be absent from ``item`` (all fill)."""

    @abstractmethod
    async def item(self, key: str) -> StoreItem | None:
        """The value at ``key`` with its description, or None when there is none."""

    def item_now(self, key: str) -> Ready:
        """``item(key)`` if it can be answered at once, without I/O or codec work (a
        document, a cached chunk); else ``NOT_READY``. The hot path: a caller that gets a
        value here needs no task, no thread and no disconnect watch."""
        return NOT_READY

    @abstractmethod
    def document_keys(self) -> Iterable[str]:
        """Keys of the documents (metadata and others), in any order."""

    def close(self) -> None:
        super().close()

    # -- zarr's Store, from the above ---------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __reduce__(self) -> NoReturn:
        # Without this, pickle fails deep inside on a lock or a file handle.
        raise TypeError(
            f"{type(self).__name__} cannot be pickled: it serves a file opened in this process "
            "(its handles, worker pools and caches); open the file in the other process "
            "(gateway.store.inprocess.open_store) or read it over HTTP"
        )

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        found = await self.item(key)
        if found is None:
            return None
        return prototype.buffer.from_bytes(slice_bytes(found.data, byte_range))

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges)))

    async def exists(self, key: str) -> bool:
        description = self.describe(key)
        if description is None:
            return False
        return description.kind != "chunk" or await self.item(key) is not None

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()

    async def delete(self, key: str) -> None:
        self._check_writable()

    async def list(self) -> AsyncIterator[str]:
        for key in sorted(self.document_keys()):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for key in sorted(self.document_keys()):
            if key.startswith(prefix):
                yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        for name in self.children(prefix):
            yield name

    def children(self, prefix: str) -> builtins.list[str]:
        """Names directly under ``prefix`` (documents and groups), sorted."""
        inner = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        names = {key[len(inner) :].partition("/")[0] for key in self.document_keys() if key.startswith(inner)}
        return sorted(names)
