"""Which adapter opens a file: an ordered table of adapter families.

A ``Registry`` is a value the application is built with (``create_app(..., registry=)``,
``Catalog(..., registry=)``), not a global it reaches for: a deployment or a test serves
exactly the families it names, in the order it names them. Order is dispatch priority
(as tifffile's ``TIFF.SERIES``): the first adapter whose ``can_open`` accepts a file opens it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from adapters.base import Adapter, NoTileCache, OpenOptions, Source, TileCache, UnsupportedSourceError

#: Suffixes that many files other than datasets share (any XML file; netCDF-3, which is
#: not HDF5; a companion ``.ome`` file is XML too): such a file is a dataset only when an
#: adapter's ``can_open`` accepts it.
SNIFFED_SUFFIXES = (".xml", ".nc", ".companion.ome")


@dataclass(frozen=True, slots=True)
class Registry:
    """Adapter families in dispatch order."""

    adapters: tuple[Adapter, ...]
    #: every adapter's suffixes, lower case (asked for each segment of each request path)
    _suffixes: tuple[str, ...]

    def __init__(self, adapters: Sequence[Adapter]) -> None:
        adapters = tuple(adapters)
        object.__setattr__(self, "adapters", adapters)
        object.__setattr__(self, "_suffixes", tuple(s.lower() for a in adapters for s in a.suffixes))

    def __iter__(self) -> Iterator[Adapter]:
        return iter(self.adapters)

    @property
    def suffixes(self) -> tuple[str, ...]:
        return tuple(suffix for adapter in self.adapters for suffix in adapter.suffixes)

    def find(self, path: Path) -> Adapter | None:
        """The adapter that would open ``path`` (cheap: suffix and magic bytes only).
        Only a regular file is sniffed: opening a FIFO someone named ``x.xml`` in a served
        folder would block until a writer comes, and hang whoever asked."""
        if not _is_regular_file(path):
            return None
        return next((a for a in self.adapters if a.can_open(path)), None)

    def is_candidate(self, path: Path) -> bool:
        """Whether ``path`` has a suffix some adapter serves (no I/O)."""
        return self.is_candidate_name(path.name)

    def is_candidate_name(self, name: str) -> bool:
        """``is_candidate`` of a file name."""
        return name.lower().endswith(self._suffixes)

    def is_dataset_file(self, path: Path) -> bool:
        """Whether the file ``path`` is a dataset to list and serve: a candidate suffix and,
        for ``SNIFFED_SUFFIXES``, content an adapter recognises (a cheap sniff)."""
        if not self.is_candidate(path):
            return False
        if path.name.lower().endswith(SNIFFED_SUFFIXES):
            return self.find(path) is not None
        return True

    def open(self, path: Path, tiles: TileCache | None = None, options: OpenOptions | None = None) -> Source:
        """Open ``path`` with the first adapter that accepts it. A file that cannot be read
        at all raises its OSError (PermissionError...): ``can_open`` sniffs quietly, and
        "no adapter recognises this file" would be the wrong diagnosis."""
        if not stat.S_ISREG(os.stat(path).st_mode):  # raises for a missing file
            raise UnsupportedSourceError(f"{path.name}: not a regular file")
        adapter = self.find(path)
        if adapter is None:
            with open(path, "rb"):  # raises what keeps the sniff from reading it
                pass
            raise UnsupportedSourceError(f"{path.name}: no adapter recognises this file")
        return adapter.open(path, tiles or NoTileCache(), options)


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):  # missing, unreadable directory, a NUL in the name
        return False


def default_registry() -> Registry:
    """Every family this package ships: TIFF, then HDF5 (generic, BigDataViewer's file,
    Imaris), then BigDataViewer's XML."""
    from adapters.hdf5.adapter import Hdf5Adapter
    from adapters.hdf5.bdv import BdvAdapter
    from adapters.tiff.adapter import TiffAdapter

    return Registry((TiffAdapter(), Hdf5Adapter(), BdvAdapter()))
