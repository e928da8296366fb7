"""HDF5 family: generic HDF5 (and netCDF-4), Imaris ``.ims``, BigDataViewer HDF5.

h5py parses the file's structure once, under ``HDF5_LOCK``; pixels are then read
lock-free wherever the chunk layout and filters allow (see ``hdf5_chunks``). What a file
becomes is decided by the first flavour in ``FLAVOURS`` that recognises it (order is
priority); the generic flavour accepts any HDF5 file.

BigDataViewer datasets are normally opened through their XML (``adapters.hdf5.bdv``); this
family serves their HDF5 file too, without the XML's calibration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adapters.base import Image, OpenOptions, Source, TileCache, UnsupportedSourceError
from adapters.hdf5.bdv import bdv_hdf5_images, is_bdv_hdf5
from adapters.hdf5.file import HDF5_FILE_BYTES, H5File, Hdf5Context, has_hdf5_signature
from adapters.hdf5.generic import generic_images
from adapters.hdf5.imaris import imaris_images, is_imaris


@dataclass(frozen=True, slots=True)
class Flavour:
    name: str
    applies: Callable[[H5File], bool]  # under the lock; objects only through H5File.get
    images: Callable[[Hdf5Context], list[Image]]


#: Order is dispatch priority: the first flavour whose test passes describes the file.
FLAVOURS: tuple[Flavour, ...] = (
    Flavour("Imaris", is_imaris, imaris_images),
    Flavour("BigDataViewer HDF5", is_bdv_hdf5, bdv_hdf5_images),
    Flavour("HDF5", lambda file: True, generic_images),
)


class Hdf5Adapter:
    """Opens HDF5-based files (see module docstring); ``can_open`` checks the signature,
    so netCDF-3 ``.nc`` files (not HDF5) are left alone."""

    name = "hdf5"
    suffixes = (".h5", ".hdf5", ".he5", ".nc", ".nc4", ".ims")

    def can_open(self, path: Path) -> bool:
        return path.name.lower().endswith(self.suffixes) and has_hdf5_signature(path)

    def open(self, path: Path, tiles: TileCache, options: OpenOptions | None = None) -> Source:
        options = options or OpenOptions()
        file = H5File(path, options.access)
        try:
            context = Hdf5Context(file, tiles, options)
            with file.locked():
                try:
                    flavour = next(f for f in FLAVOURS if f.applies(file))
                except (OSError, RuntimeError, ValueError, KeyError) as exc:
                    raise UnsupportedSourceError(f"{path.name}: cannot read its structure: {exc}") from exc
            try:
                images = flavour.images(context)
            except (OSError, RuntimeError, KeyError) as exc:
                raise UnsupportedSourceError(f"{path.name}: cannot read its structure: {exc}") from exc
            if not images:
                detail = "; ".join(context.warnings) or "no numeric dataset of two or more dimensions"
                raise UnsupportedSourceError(f"{path.name}: no servable image ({detail})")
            return Source(
                path=path,
                format=flavour.name,
                images=tuple(images),
                warnings=context.warnings,
                dependencies=file.dependencies(exclude=path),
                file_bytes=HDF5_FILE_BYTES,
                _closers=[file.close],
            )
        except Exception:
            file.close()
            raise
