"""High-content screening: how a source's images sit on plates, independent of file formats.

A plate is a grid of named rows and columns; a well at one (row, column) holds fields of
view, each one of the source's images (by its position in ``Source.images``), taken in
one of the plate's acquisitions or in none. This is what OME-XML's ``Plate`` / ``Well`` /
``WellSample`` / ``PlateAcquisition`` say, and what an OME-Zarr plate (``plate`` and
``well`` metadata) needs. The model is checked when built: a broken plate description is
refused here, once, not half-served.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: OME-Zarr's rule for row, column and field names (they are path segments).
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True, slots=True)
class PlateAcquisition:
    """One acquisition run over (part of) a plate. Times are whole seconds since the
    epoch (OME-Zarr's ``starttime``/``endtime``)."""

    id: int
    name: str | None = None
    description: str | None = None
    start_seconds: int | None = None
    end_seconds: int | None = None
    maximum_field_count: int | None = None

    def __post_init__(self) -> None:
        if self.id < 0:
            raise ValueError(f"acquisition id {self.id} is negative")
        if self.maximum_field_count is not None and self.maximum_field_count < 1:
            raise ValueError(f"maximum field count {self.maximum_field_count} is not positive")


@dataclass(frozen=True, slots=True)
class PlateField:
    """A field of view: image ``image`` of the source, from acquisition ``acquisition``."""

    image: int
    acquisition: int | None = None


@dataclass(frozen=True, slots=True)
class PlateWell:
    """The well at ``rows[row]``, ``columns[column]`` of its plate, with its fields in order."""

    row: int
    column: int
    fields: tuple[PlateField, ...]


@dataclass(frozen=True, slots=True)
class Plate:
    """A plate: names of all its rows and columns (wells or not), its wells that hold
    fields, and its acquisitions."""

    name: str | None
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    wells: tuple[PlateWell, ...]
    acquisitions: tuple[PlateAcquisition, ...] = ()

    def __post_init__(self) -> None:
        for kind, names in (("row", self.rows), ("column", self.columns)):
            if not names:
                raise ValueError(f"a plate needs at least one {kind}")
            if len(set(names)) != len(names):
                raise ValueError(f"{kind} names {names} are not unique")
            bad = [n for n in names if not _ALPHANUMERIC.fullmatch(n)]
            if bad:
                raise ValueError(f"{kind} names {bad} are not alphanumeric")
        if not self.wells:
            raise ValueError("a plate needs at least one well with a field")
        acquisitions = {a.id for a in self.acquisitions}
        if len(acquisitions) != len(self.acquisitions):
            raise ValueError("acquisition ids are not unique")
        places: set[tuple[int, int]] = set()
        images: set[int] = set()
        for well in self.wells:
            if not (0 <= well.row < len(self.rows) and 0 <= well.column < len(self.columns)):
                raise ValueError(f"well ({well.row}, {well.column}) lies outside the plate")
            if (well.row, well.column) in places:
                raise ValueError(f"two wells at ({well.row}, {well.column})")
            places.add((well.row, well.column))
            if not well.fields:
                raise ValueError(f"well {self.well_path(well)} has no field")
            for field in well.fields:
                if field.image < 0 or field.image in images:
                    raise ValueError(f"image {field.image} is not a valid, unused image index")
                images.add(field.image)
                if field.acquisition is not None and field.acquisition not in acquisitions:
                    raise ValueError(
                        f"field of well {self.well_path(well)}: no acquisition {field.acquisition}"
                    )

    @property
    def field_count(self) -> int:
        """The most fields any well holds (OME-Zarr's ``field_count``)."""
        return max(len(well.fields) for well in self.wells)

    def well_path(self, well: PlateWell) -> str:
        """``<row name>/<column name>``: the well's place below the plate."""
        return f"{self.rows[well.row]}/{self.columns[well.column]}"

    def field_paths(self) -> dict[int, str]:
        """Image index → ``<row>/<column>/<field index>`` below the plate."""
        return {
            field.image: f"{self.well_path(well)}/{index}"
            for well in self.wells
            for index, field in enumerate(well.fields)
        }
