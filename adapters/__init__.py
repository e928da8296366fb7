"""Source adapters: what a file holds, one sub-package per file family; no HTTP, no zarr.

A ``Registry`` (``adapters.registry``) decides which family opens a file; the gateway is
built with one. ``open_source`` and friends use the default registry, for tools and tests.
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
from adapters.registry import SNIFFED_SUFFIXES, Registry, default_registry

#: The default registry, for tools and scripts (the application takes its own).
REGISTRY: Registry = default_registry()


def find_adapter(path: Path) -> Adapter | None:
    """The adapter of the default registry that would open ``path``."""
    return REGISTRY.find(path)


def is_candidate(path: Path) -> bool:
    return REGISTRY.is_candidate(path)


def is_dataset_file(path: Path) -> bool:
    return REGISTRY.is_dataset_file(path)


def open_source(path: Path, tiles: TileCache | None = None, options: OpenOptions | None = None) -> Source:
    """Open ``path`` with the default registry (see ``Registry.open``)."""
    return REGISTRY.open(path, tiles, options)


__all__ = [
    "REGISTRY",
    "SNIFFED_SUFFIXES",
    "Adapter",
    "AdapterError",
    "Axis",
    "Channel",
    "Image",
    "Level",
    "NoTileCache",
    "OpenOptions",
    "Registry",
    "Source",
    "SourceReadError",
    "TileCache",
    "UnsupportedSourceError",
    "Window",
    "default_registry",
    "find_adapter",
    "is_candidate",
    "is_dataset_file",
    "open_source",
]
