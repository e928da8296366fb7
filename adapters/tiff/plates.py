"""The plates of an OME-XML document, as the images of an opened source sit on them.

OME-XML counts wells from 0 (``Row``, ``Column``) and names rows and columns by the
plate's conventions (``RowNamingConvention`` / ``ColumnNamingConvention``: ``letter``
A, B, … Z, AA, AB…; ``number`` 1, 2, …); without one, rows are letters and columns
numbers, as plates are labelled (and as bioformats2raw names them). A plate lists every
row and column up to its declared size (``Rows``/``Columns``) or its last well.

A well's fields are its ``WellSample``s in document order whose ``ImageRef`` names an
image the source serves; a field belongs to the ``PlateAcquisition`` that lists its
sample (the acquisitions are numbered 0, 1… in document order). Wells left without a
field are left out, and a plate without wells is none. Odd references (an image no
sample can name, one image in two samples, two wells at one place) are warnings, and
the first use wins: the file is still served.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from adapters.plates import Plate, PlateAcquisition, PlateField, PlateWell
from adapters.tiff.ome_xml import OmeDocument, OmePlate

#: Rows or columns one plate may have: 48 x 72 is the largest plate made (3456 wells);
#: a declared size or a well index beyond this bound is a broken or hostile document,
#: which must not make the gateway list millions of row names.
MAX_PLATE_SIDE = 1024


def letter_name(index: int) -> str:
    """A, B, … Z, AA, AB, …: the ``letter`` convention, for a 0-based index."""
    name = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        name = chr(ord("A") + remainder) + name
    return name


def number_name(index: int) -> str:
    """1, 2, …: the ``number`` convention, for a 0-based index."""
    return str(index + 1)


def _namer(convention: str | None, default: Callable[[int], str]) -> Callable[[int], str]:
    if convention == "letter":
        return letter_name
    if convention == "number":
        return number_name
    return default


def plates_of(
    document: OmeDocument, image_ids: Sequence[str | None], warnings: list[str]
) -> tuple[Plate, ...]:
    """The plates of ``document``; ``image_ids[i]`` is the OME ``Image`` ID of the
    source's image ``i`` (None when it has none)."""
    positions: dict[str, int] = {}
    for position, image_id in enumerate(image_ids):
        if image_id is not None:
            positions.setdefault(image_id, position)
    used: set[int] = set()
    plates = []
    for index, ome_plate in enumerate(document.plates):
        plate = _plate(ome_plate, positions, used, warnings, f"Plate {index}")
        if plate is not None:
            plates.append(plate)
    return tuple(plates)


def _plate(
    ome: OmePlate, positions: dict[str, int], used: set[int], warnings: list[str], where: str
) -> Plate | None:
    acquisition_of: dict[str, int] = {}
    for number, run in enumerate(ome.acquisitions):
        for sample_id in run.samples:
            acquisition_of.setdefault(sample_id, number)
    wells: list[PlateWell] = []
    places: set[tuple[int, int]] = set()
    for well in ome.wells:
        at = f"{where}, well (row {well.row}, column {well.column})"
        if well.row >= MAX_PLATE_SIDE or well.column >= MAX_PLATE_SIDE:
            warnings.append(f"{at}: beyond {MAX_PLATE_SIDE} rows or columns; skipped")
            continue
        if (well.row, well.column) in places:
            warnings.append(f"{at}: a second well at the same place; skipped")
            continue
        fields = []
        for sample in well.samples:
            if sample.image is None:
                continue  # a sample without an image: nothing to serve
            position = positions.get(sample.image)
            if position is None:
                warnings.append(f"{at}: image {sample.image!r} is not served; its field is left out")
            elif position in used:
                warnings.append(f"{at}: image {sample.image!r} is already a field elsewhere; left out here")
            else:
                used.add(position)
                taken_in = acquisition_of.get(sample.id) if sample.id is not None else None
                fields.append(PlateField(image=position, acquisition=taken_in))
        if fields:
            places.add((well.row, well.column))
            wells.append(PlateWell(row=well.row, column=well.column, fields=tuple(fields)))
    if not wells:
        return None
    rows = _side(ome.rows, max(w.row for w in wells), "Rows", warnings, where)
    columns = _side(ome.columns, max(w.column for w in wells), "Columns", warnings, where)
    row_name = _namer(ome.row_naming, letter_name)
    column_name = _namer(ome.column_naming, number_name)
    acquisitions = tuple(
        PlateAcquisition(
            id=number,
            name=run.name,
            description=run.description,
            start_seconds=run.start_seconds,
            end_seconds=run.end_seconds,
            maximum_field_count=run.maximum_field_count,
        )
        for number, run in enumerate(ome.acquisitions)
    )
    return Plate(
        name=ome.name,
        rows=tuple(row_name(i) for i in range(rows)),
        columns=tuple(column_name(i) for i in range(columns)),
        wells=tuple(wells),
        acquisitions=acquisitions,
    )


def _side(declared: int | None, last_well: int, key: str, warnings: list[str], where: str) -> int:
    """How many rows (or columns) a plate lists: its declared size, at least up to its last well."""
    if declared is not None and declared > MAX_PLATE_SIDE:
        warnings.append(f"{where}: {key}={declared} is beyond {MAX_PLATE_SIDE}; sized by its wells")
        declared = None
    return max(declared or 0, last_well + 1)
