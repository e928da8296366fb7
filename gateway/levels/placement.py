"""Where the images of a source with plates (high-content screening) sit in its tree.

One plate holding every image of the file makes the root that plate, as bioformats2raw
writes it (and as viewers pointed at the file expect): fields at ``<row>/<column>/<field>``.
Otherwise — several plates, or images on no plate beside one — the root is a
bioformats2raw collection: plate *k* (in document order) is the group ``plate<k>/``, and an
image on no plate stays where a multi-image file puts it, ``<its index>/``. The OME-Zarr
specification allows no plate and loose images side by side at one root, and group names
with letters never meet the series' numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.plates import Plate


def plate_prefixes(plates: Sequence[Plate], image_count: int) -> list[str]:
    """The group prefix of each plate: ``""`` when it is the root, else ``"plate<k>/"``."""
    if len(plates) == 1 and len(plates[0].field_paths()) == image_count:
        return [""]
    return [f"plate{index}/" for index in range(len(plates))]


def image_prefixes(plates: Sequence[Plate], image_count: int) -> list[str]:
    """The group prefix of each of ``image_count`` images of a source with ``plates``."""
    prefixes = [f"{index}/" for index in range(image_count)]
    for plate, prefix in zip(plates, plate_prefixes(plates, image_count), strict=True):
        for image, path in plate.field_paths().items():
            prefixes[image] = f"{prefix}{path}/"
    return prefixes
