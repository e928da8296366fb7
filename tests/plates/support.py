"""What the plate fixtures are (per the OME-XML) and where they are served, for the plate tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from tests.plates.writers import WrittenImage

ROOT = "screens"


@dataclass(frozen=True)
class Expected:
    """What a fixture's OME-XML says a plate is: its group, row and column names, and
    per well the acquisition of each field."""

    group: str
    name: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    wells: dict[str, list[int | None]]


_FOUR_WELLS = {"B/2": [0, 1], "B/3": [0, 1], "C/2": [0, 1, None, None, None], "C/3": [0, 1]}
EXPECTED: dict[str, list[Expected]] = {
    # Wells at Row/Column 1 and 2 (0-based in OME-XML): rows A-C, columns 1-3, A and 1 empty
    "one-screen-one-plate-four-wells": [
        Expected("", "one-screen-one-plate-four-wells.ome.tif", ("A", "B", "C"), ("1", "2", "3"), _FOUR_WELLS)
    ],
    # two plates: groups of a bioformats2raw root; plate 2's one acquisition took the second samples
    "two-screens-two-plates-four-wells": [
        Expected(
            "plate0",
            "two-screens-two-plates-four-wells.ome.tif #0",
            ("A", "B", "C"),
            ("1", "2", "3"),
            _FOUR_WELLS,
        ),
        Expected(
            "plate1",
            "twoName",
            ("A", "B", "C"),
            ("1", "2", "3"),
            {"B/2": [None, 0], "B/3": [None, 0], "C/2": [None, 0, None, None, None], "C/3": [None, 0]},
        ),
    ],
    # Rows="8" Columns="12", rows by number, columns by letter
    "hcs": [
        Expected(
            "", "Control Plate", tuple(str(i) for i in range(1, 9)), tuple("ABCDEFGHIJKL"), {"1/A": [None]}
        )
    ],
    "fake-plate-rows-2": [Expected("", "Plate Name 0", ("A", "B"), ("1",), {"A/1": [0], "B/1": [0]})],
}


@dataclass(frozen=True)
class Fixture:
    path: Path
    images: list[WrittenImage]

    def series_of(self, image_id: str) -> np.ndarray:
        """tifffile's pixels of the Image ``image_id`` (each Image of these files has
        pixels, so its series is at its document position)."""
        index = [image.id for image in self.images].index(image_id)
        with tifffile.TiffFile(self.path) as tif:
            return tif.series[index].asarray()


def url_of(base: str, name: str, group: str = "", *, v2: bool = False) -> str:
    return "/".join(p for p in (base, "v2" if v2 else "", ROOT, f"{name}.ome.tif", group) if p)
