"""OME-Zarr 0.5 high-content screening groups: plates, their rows and wells.

A plate group carries ``plate`` (rows and columns by name, wells by path and index,
acquisitions, ``field_count``, ``name``, and ``version`` inside ``plate`` too, as
ome-zarr-py writes it and ome-zarr-models expects), each row a plain group, each well
``<row>/<column>`` the ``well`` metadata listing its fields (``0``, ``1``…, each with its
acquisition). The fields are image groups the tree builder adds like any image; where
they sit is ``gateway.levels.placement``'s rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.plates import Plate, PlateAcquisition, PlateWell
from gateway.levels.placement import plate_prefixes
from gateway.ngff.ome import OME_VERSION, bioformats2raw_attributes


def _acquisition(acquisition: PlateAcquisition) -> dict[str, Any]:
    described: dict[str, Any] = {"id": acquisition.id}
    optional = {
        "name": acquisition.name,
        "description": acquisition.description,
        "starttime": acquisition.start_seconds,
        "endtime": acquisition.end_seconds,
        "maximumfieldcount": acquisition.maximum_field_count,
    }
    described.update({key: value for key, value in optional.items() if value is not None})
    return described


def plate_attributes(plate: Plate, name: str) -> dict[str, Any]:
    """``attributes`` of a plate group; ``name`` stands in when the plate has none."""
    described: dict[str, Any] = {
        "name": plate.name or name,
        "rows": [{"name": row} for row in plate.rows],
        "columns": [{"name": column} for column in plate.columns],
        "wells": [
            {"path": plate.well_path(well), "rowIndex": well.row, "columnIndex": well.column}
            for well in plate.wells
        ],
        "field_count": plate.field_count,
        "version": OME_VERSION,
    }
    if plate.acquisitions:
        described["acquisitions"] = [_acquisition(a) for a in plate.acquisitions]
    return {"ome": {"version": OME_VERSION, "plate": described}}


def well_attributes(well: PlateWell) -> dict[str, Any]:
    """``attributes`` of a well group: its fields, ``0``, ``1``… in order."""
    images: list[dict[str, Any]] = []
    for index, field in enumerate(well.fields):
        image: dict[str, Any] = {"path": str(index)}
        if field.acquisition is not None:
            image["acquisition"] = field.acquisition
        images.append(image)
    return {"ome": {"version": OME_VERSION, "well": {"images": images}}}


def plate_groups(plates: Sequence[Plate], image_count: int, file_name: str) -> dict[str, dict[str, Any]]:
    """Group prefix → ``attributes`` of every group above the fields of ``plates``: the
    root (a plate that also says ``bioformats2raw.layout``, or a bioformats2raw collection
    of several), each plate, its rows and its wells. Plates without a name of their own
    are named after the file (``<file> #<k>`` for plate *k* of several)."""
    if not plates:
        return {}
    prefixes = plate_prefixes(plates, image_count)
    groups: dict[str, dict[str, Any]] = {}
    if prefixes != [""]:
        groups[""] = bioformats2raw_attributes()
    for index, (plate, prefix) in enumerate(zip(plates, prefixes, strict=True)):
        attributes = plate_attributes(plate, file_name if prefix == "" else f"{file_name} #{index}")
        if prefix == "":
            attributes["ome"].update(bioformats2raw_attributes()["ome"])
        groups[prefix] = attributes
        for well in plate.wells:
            groups.setdefault(f"{prefix}{plate.rows[well.row]}/", {})
            groups[f"{prefix}{plate.well_path(well)}/"] = well_attributes(well)
    return groups
