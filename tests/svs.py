"""Aperio SVS files written by tests (tifffile), laid out as the Aperio library writes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def write_svs(path: Path, *, mpp: str = "0.3", size: tuple[int, int] = (512, 384), fields: str = "") -> None:
    """An Aperio SVS as the Aperio library lays it out: a tiled baseline, a striped
    thumbnail (the baseline scaled by 1/4, its description saying so), a tiled reduced
    level, then label (subfile type 1) and macro (9)."""
    height, width = size
    base = np.random.default_rng(7).integers(0, 255, (height, width, 3), np.uint8)
    thumb = base[::4, ::4]
    header = f"Aperio Image Library vTest\r\n{width}x{height} [0,0 {width}x{height}] (256x256) RAW/RGB"
    common = f"|AppMag = 40|MPP = {mpp}|Date = 03/14/21|Time = 15:09:26|ScanScope ID = SS1234"
    common += f"|Left = 10.5|Top = 20.25{fields}"
    scaled = f"Aperio Image Library vTest\n{width}x{height} -> {thumb.shape[1]}x{thumb.shape[0]} - "
    with tifffile.TiffWriter(path) as tif:
        tif.write(base, tile=(256, 256), photometric="rgb", description=header + common, metadata=None)
        tif.write(thumb, photometric="rgb", description=scaled + common, metadata=None)
        tif.write(
            base[::2, ::2], tile=(256, 256), photometric="rgb", description=header + common, metadata=None
        )
        label = "Aperio Image Library vTest\nlabel 80x100"
        tif.write(base[:100, :80], photometric="rgb", subfiletype=1, description=label, metadata=None)
        macro = "Aperio Image Library vTest\nmacro 120x50"
        tif.write(base[:50, :120], photometric="rgb", subfiletype=9, description=macro, metadata=None)
