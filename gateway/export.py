"""Export: a dataset as a static OME-Zarr 0.5 folder, with exactly the bytes the gateway serves.

The export reads a zarr ``Store`` (the very stack HTTP serves: ``open_store`` for a file,
``MountedStore`` for a file under a configured root) and writes every document and every
present chunk under ``dest``. Chunk keys are enumerated from the arrays' own ``zarr.json``
(shape, chunk grid, key encoding), so whatever the documents declare is what is written;
absent chunks (all fill) are not written, as zarr's ``write_empty_chunks=False``.

Resumable and never half-written: every object is written to ``<name>.partial`` and renamed
into place, so a final name always holds a complete object and a rerun skips it. Documents
are written last: a folder without its root ``zarr.json`` is an export still under way. A
marker file holds the identity of the source and of its documents; a folder that holds
another export (or anything else) is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype

from gateway.config.settings import Settings
from gateway.ngff.keys import grid_chunk_keys
from gateway.store.inprocess import MountedStore, open_store

#: The marker of an export: which source (and which documents) the folder holds.
MARKER = ".ome-zarr-gateway-export.json"
PARTIAL = ".partial"
MB = 1e6


class ExportError(Exception):
    """An export that cannot start (a refused destination, a source not served)."""


class ExportFailed(Exception):
    """An object could not be read or written; ``key`` names it."""

    def __init__(self, key: str, cause: BaseException) -> None:
        super().__init__(f"{key}: {type(cause).__name__}: {cause}")
        self.key = key
        self.cause = cause


@dataclass
class Progress:
    """Counts of an export so far (chunks are counted as keys of the grid, present or not)."""

    chunks_total: int = 0
    chunks_done: int = 0
    written: int = 0  # objects written by this run (chunks and documents)
    skipped: int = 0  # objects already complete (an earlier run)
    absent: int = 0  # chunks all fill: nothing to write
    chunk_bytes: int = 0  # bytes of chunks written by this run
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return max(time.perf_counter() - self.started, 1e-9)

    def line(self) -> str:
        percent = 100 * self.chunks_done / self.chunks_total if self.chunks_total else 100.0
        rate = self.chunk_bytes / MB / self.elapsed()
        return f"chunks {self.chunks_done}/{self.chunks_total} ({percent:.0f}%), {rate:.1f} MB/s"

    def summary(self) -> str:
        parts = [
            f"{self.written} objects written ({self.chunk_bytes / MB:.1f} MB of chunks, "
            f"{self.chunk_bytes / MB / self.elapsed():.1f} MB/s)",
            f"{self.absent} chunks absent (all fill, not written)",
        ]
        if self.skipped:
            parts.append(f"{self.skipped} already complete (skipped)")
        return f"{', '.join(parts)} in {self.elapsed():.1f} s"


def _grid(document_key: str, metadata: dict[str, Any]) -> tuple[list[int], str]:
    """The chunk grid of an array's ``zarr.json`` and its key separator (regular grids
    with the default key encoding: what the gateway serves)."""
    grid_spec, encoding = metadata["chunk_grid"], metadata["chunk_key_encoding"]
    if grid_spec["name"] != "regular" or encoding["name"] != "default":
        raise ExportError(f"{document_key}: unsupported chunk grid or key encoding")
    chunk_shape = grid_spec["configuration"]["chunk_shape"]
    grid = [math.ceil(n / c) for n, c in zip(metadata["shape"], chunk_shape, strict=True)]
    return grid, encoding.get("configuration", {}).get("separator", "/")


def chunk_keys(document_key: str, metadata: dict[str, Any]) -> Iterator[str]:
    """Every chunk key of the array whose ``zarr.json`` is ``metadata`` (at ``document_key``),
    in C order of the grid."""
    grid, separator = _grid(document_key, metadata)
    return grid_chunk_keys(document_key.removesuffix("zarr.json"), grid, separator)


def chunk_count(document_key: str, metadata: dict[str, Any]) -> int:
    return math.prod(_grid(document_key, metadata)[0])


def _local_path(dest: Path, key: str) -> Path:
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ExportError(f"refusing to write a key with an empty or relative segment: {key!r}")
    return dest.joinpath(*parts)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through ``<path>.partial`` and a rename: ``path`` either
    does not exist or holds all of ``data`` (the ``.partial`` is removed on failure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + PARTIAL)
    try:
        partial.write_bytes(data)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _identity(source: Path, documents: dict[str, bytes]) -> dict[str, Any]:
    """What a folder must have been exported from to be resumed: the same file version
    and the same documents (they fix chunk shapes and codecs, hence every chunk's bytes).
    The source path is kept as a digest: the folder may be published."""
    stat = source.stat()
    digest = hashlib.sha256()
    for key in sorted(documents):
        digest.update(key.encode() + b"\0" + hashlib.sha256(documents[key]).digest())
    return {
        "source": source.name,
        "source_path_sha256": hashlib.sha256(str(source).encode()).hexdigest(),
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
        "documents_sha256": digest.hexdigest(),
    }


def prepare_destination(dest: Path, identity: dict[str, Any]) -> None:
    """Create ``dest`` or accept it: empty, or a previous export of the same source (its
    marker matches). Leftover ``.partial`` files of a killed run are removed."""
    marker = dest / MARKER
    if dest.exists() and not dest.is_dir():
        raise ExportError(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()):
        try:
            previous = json.loads(marker.read_text())
        except (OSError, ValueError):
            raise ExportError(f"{dest} is not empty and holds no export (no valid {MARKER})") from None
        if previous != identity:
            raise ExportError(
                f"{dest} holds an export of another source, or of another version of it or its "
                "documents (settings); export to an empty folder"
            )
        for leftover in dest.rglob(f"*{PARTIAL}"):
            leftover.unlink()
        return
    dest.mkdir(parents=True, exist_ok=True)
    write_atomically(marker, json.dumps(identity, indent=2).encode() + b"\n")


async def read_documents(store: Store, prefix: str) -> dict[str, bytes]:
    """The documents of the dataset at ``prefix`` (keys relative to it)."""
    inner = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    prototype = default_buffer_prototype()
    documents: dict[str, bytes] = {}
    async for key in store.list_prefix(inner):
        found = await store.get(key, prototype)
        if found is not None:
            documents[key[len(inner) :]] = found.to_bytes()
    if "zarr.json" not in documents:
        raise ExportError(f"nothing served at {prefix or 'the store root'!r} (no zarr.json)")
    return documents


def array_documents(documents: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    """The ``zarr.json`` of each array, by key."""
    arrays = {}
    for key, data in documents.items():
        if key.rpartition("/")[2] == "zarr.json":
            metadata = json.loads(data)
            if metadata.get("node_type") == "array":
                arrays[key] = metadata
    return arrays


async def export_store(
    store: Store,
    dest: Path,
    source: Path,
    *,
    prefix: str = "",
    concurrency: int = 8,
    progress: Callable[[Progress], None] | None = None,
) -> Progress:
    """Export the dataset at ``prefix`` of ``store`` (read from the file ``source``) to
    ``dest``. At most ``concurrency`` chunks are read at once; ``progress`` is called
    after each chunk. Raises ``ExportError`` before writing anything, ``ExportFailed`` at
    the first object that cannot be read or written (what was complete is kept)."""
    documents = await read_documents(store, prefix)
    arrays = array_documents(documents)
    state = Progress(chunks_total=sum(chunk_count(k, m) for k, m in arrays.items()))
    prepare_destination(dest, _identity(source, documents))
    inner = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    prototype = default_buffer_prototype()
    keys = (key for document_key, metadata in arrays.items() for key in chunk_keys(document_key, metadata))
    failure: list[ExportFailed] = []

    async def copy_chunk(key: str) -> None:
        path = _local_path(dest, key)
        if await asyncio.to_thread(path.exists):
            state.skipped += 1
            return
        found = await store.get(inner + key, prototype)
        if found is None:
            state.absent += 1
            return
        data = found.to_bytes()
        await asyncio.to_thread(write_atomically, path, data)
        state.written += 1
        state.chunk_bytes += len(data)

    async def worker() -> None:
        for key in keys:  # one shared iterator: each key is taken once
            if failure:
                return
            try:
                await copy_chunk(key)
            except Exception as exc:
                failure.append(ExportFailed(key, exc))
                return
            state.chunks_done += 1
            if progress is not None:
                progress(state)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    if failure:
        raise failure[0]
    # documents last: the root zarr.json appears when every chunk is in place
    for key in sorted(documents, key=lambda k: (k == "zarr.json", k)):
        path = _local_path(dest, key)
        if path.exists():
            state.skipped += 1
            continue
        try:
            write_atomically(path, documents[key])
        except OSError as exc:
            raise ExportFailed(key, exc) from exc
        state.written += 1
    return state


def served_path(source: Path, settings: Settings) -> str | None:
    """The URL path ``source`` is served at under a configured root, or None."""
    for name, root in settings.roots.items():
        try:
            relative = source.relative_to(Path(root).expanduser().resolve())
        except ValueError:
            continue
        if relative.parts:
            return f"{name}/{relative.as_posix()}"
    return None


def export_file(
    source: Path,
    dest: Path,
    settings: Settings,
    *,
    concurrency: int | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> Progress:
    """Export the file ``source`` as the gateway serves it with ``settings``: under a
    configured root through the mount table (its URL path decides the RO-Crate, declared
    labels resolve), else as ``open_store`` serves the file alone."""
    source = source.expanduser().resolve()
    if not source.is_file():
        raise ExportError(f"{source}: no such file")
    url_path = served_path(source, settings)
    store: Store = MountedStore(settings) if url_path is not None else open_store(source, settings)
    try:
        return asyncio.run(
            export_store(
                store,
                dest,
                source,
                prefix=url_path or "",
                concurrency=concurrency or default_concurrency(settings.server.threads),
                progress=progress,
            )
        )
    finally:
        store.close()


class ProgressLine:
    """A progress line rewritten in place on a terminal, at most ``per_second`` times a
    second; nothing on other streams (a log gets the summary only)."""

    def __init__(self, stream: TextIO = sys.stderr, per_second: float = 5.0) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.interval = 1 / per_second
        self._last = 0.0

    def __call__(self, state: Progress) -> None:
        now = time.perf_counter()
        if self.enabled and (now - self._last >= self.interval or state.chunks_done == state.chunks_total):
            self._last = now
            self.stream.write(f"\r{state.line()}\x1b[K")
            self.stream.flush()

    def end(self) -> None:
        if self.enabled and self._last:
            self.stream.write("\n")
            self.stream.flush()


def default_concurrency(threads: int) -> int:
    """Chunks in flight: enough to keep the store's ``threads`` busy while others write."""
    return max(2, 2 * threads)


__all__ = [
    "MARKER",
    "ExportError",
    "ExportFailed",
    "Progress",
    "ProgressLine",
    "chunk_keys",
    "default_concurrency",
    "export_file",
    "export_store",
    "write_atomically",
]
