"""Source adapters: one module per file family, tried in registry order.

``open_source`` is the single entry point the gateway uses; it knows nothing of HTTP.
"""

from __future__ import annotations

from pathlib import Path

from adapters.base import (
    Adapter,
    AdapterError,
    Axis,
    Channel,
    Image,
    Level,
    NoTileCache,
    OpenOptions,
    Source,
    SourceReadError,
    TileCache,
    UnsupportedSourceError,
    Window,
)
from adapters.hdf5.adapter import Hdf5Adapter
from adapters.hdf5.bdv import BdvAdapter
from adapters.tiff.adapter import TiffAdapter

#: Order is dispatch priority: the first adapter whose ``can_open`` accepts a file opens it.
REGISTRY: tuple[Adapter, ...] = (TiffAdapter(), Hdf5Adapter(), BdvAdapter())

#: Suffixes that many files other than datasets share (any XML file; netCDF-3, which is
#: not HDF5): such a file is a dataset only when an adapter's ``can_open`` accepts it.
SNIFFED_SUFFIXES = (".xml", ".nc")


def find_adapter(path: Path) -> Adapter | None:
    """The adapter that would open ``path`` (cheap: suffix and magic bytes only)."""
    return next((a for a in REGISTRY if a.can_open(path)), None)


def is_candidate(path: Path) -> bool:
    """Whether ``path`` has a suffix some adapter serves (no I/O)."""
    name = path.name.lower()
    return any(name.endswith(a.suffixes) for a in REGISTRY)


def is_dataset_file(path: Path) -> bool:
    """Whether the file ``path`` is a dataset to list and serve: a candidate suffix and,
    for ``SNIFFED_SUFFIXES``, content an adapter recognises (a cheap sniff)."""
    if not is_candidate(path):
        return False
    if path.name.lower().endswith(SNIFFED_SUFFIXES):
        return find_adapter(path) is not None
    return True


def open_source(path: Path, tiles: TileCache | None = None, options: OpenOptions | None = None) -> Source:
    """Open ``path`` with the first adapter that accepts it. A file that cannot be read
    at all raises its OSError (PermissionError...): ``can_open`` sniffs quietly, and
    "no adapter recognises this file" would be the wrong diagnosis."""
    adapter = find_adapter(path)
    if adapter is None:
        with open(path, "rb"):  # raises what keeps the sniff from reading it
            pass
        raise UnsupportedSourceError(f"{path.name}: no adapter recognises this file")
    return adapter.open(path, tiles or NoTileCache(), options)


__all__ = [
    "REGISTRY",
    "Adapter",
    "AdapterError",
    "Axis",
    "Channel",
    "Image",
    "Level",
    "NoTileCache",
    "OpenOptions",
    "Source",
    "SourceReadError",
    "TileCache",
    "UnsupportedSourceError",
    "Window",
    "find_adapter",
    "is_candidate",
    "is_dataset_file",
    "open_source",
]
