"""Decompression bombs and giant chunks are refused before they are allocated.

The files are real: HDF5 written by h5py with hdf5plugin's filters, each holding one bomb
chunk (written as stored bytes with ``write_direct_chunk``) beside an honest one; a TIFF
whose zstd tile is a bomb. Memory is measured in a fresh interpreter (its peak RSS, which
only grows: a bomb that inflated would leave it gigabytes higher), never by timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

import adapters
from adapters.base import NoTileCache, OpenOptions, SourceReadError
from adapters.hdf5.filters import BLOSC, DEFLATE, LZ4, ZSTD, Filter, FilterPipeline
from tests.bombs import (
    BOMB,
    BOMBS,
    CHUNK_BYTES,
    MiB,
    write_bomb_h5,
    write_giant_chunk_h5,
    write_zstd_tiff_bomb,
)
from tests.hostile.frames import blosc_zstd_frame, lz4_h5_frame, zstd_rle_frame

PROJECT = Path(__file__).resolve().parents[2]


def read_level(path: Path, region: tuple[slice, ...], **options: Any) -> np.ndarray:
    source = adapters.open_source(path, NoTileCache(), OpenOptions(**options))
    try:
        return np.asarray(source.images[0].levels[0].read(region))
    finally:
        source.close()


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_hdf5_bomb_chunk_is_an_error_and_its_neighbour_reads(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.h5"
    honest = write_bomb_h5(path, name)
    with pytest.raises(SourceReadError, match=BOMBS[name][2]):
        read_level(path, (slice(0, 256), slice(0, 256)))
    np.testing.assert_array_equal(read_level(path, (slice(0, 256), slice(256, 512))), honest[:, 256:])


def test_zstd_tiff_bomb_tile_is_an_error_and_its_neighbour_reads(tmp_path: Path) -> None:
    path = tmp_path / "bomb.tif"
    honest = write_zstd_tiff_bomb(path)
    with pytest.raises(SourceReadError):
        read_level(path, (slice(0, 256), slice(0, 256)))
    np.testing.assert_array_equal(read_level(path, (slice(0, 256), slice(256, 512))), honest[:, 256:])


def test_chunk_over_the_budget_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "giant.h5"
    write_giant_chunk_h5(path, edge=4096)  # 16 MiB
    with pytest.raises(SourceReadError, match="16777216 bytes, more than the 8388608 allowed per chunk"):
        read_level(path, (slice(0, 16), slice(0, 16)), max_chunk_bytes=8 * MiB)
    assert (read_level(path, (slice(0, 16), slice(0, 16))) == 7).all()  # within the default


def test_chunk_over_the_budget_is_refused_through_h5py_too(tmp_path: Path) -> None:
    path = tmp_path / "giant.h5"
    write_giant_chunk_h5(path, edge=4096)
    with pytest.raises(SourceReadError, match="allowed per chunk"):
        read_level(path, (slice(0, 16), slice(0, 16)), max_chunk_bytes=8 * MiB, lock_free=False)


def test_tiff_tile_over_the_budget_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tiles.tif"
    tifffile.imwrite(path, np.ones((512, 512), np.uint16), tile=(256, 256), photometric="minisblack")
    with pytest.raises(SourceReadError, match="131072 bytes, more than the 65536 allowed"):
        read_level(path, (slice(0, 1), slice(0, 1)), max_chunk_bytes=64 * 1024)


def test_stage_of_unknown_size_is_bounded_by_the_budget() -> None:
    # written deflate, then zstd: zstd's output (deflate's input) has no known size
    chain = (Filter(DEFLATE, 0, (4,), "deflate"), Filter(ZSTD, 0, (), "zstd"))
    pipeline = FilterPipeline(chain, 1, CHUNK_BYTES, max_bytes=MiB)
    with pytest.raises(SourceReadError, match=f"declares {BOMB} decoded bytes, more than the {MiB} allowed"):
        pipeline.decode(zstd_rle_frame(BOMB))
    understated = zstd_rle_frame(BOMB, declared=1000)
    with pytest.raises(Exception, match="Destination buffer is too small"):
        pipeline.decode(understated)


def test_blosc_header_claiming_more_than_is_stored_is_refused() -> None:
    honest = blosc_zstd_frame(CHUNK_BYTES)
    pipeline = FilterPipeline((Filter(BLOSC, 0, (), "blosc"),), 1, CHUNK_BYTES)
    assert len(pipeline.decode(honest)) == CHUNK_BYTES
    with pytest.raises(SourceReadError, match="blosc header claims"):
        pipeline.decode(honest[:-1])


def test_lz4_total_must_be_the_chunk_size() -> None:
    pipeline = FilterPipeline((Filter(LZ4, 0, (), "lz4"),), 1, CHUNK_BYTES)
    assert len(pipeline.decode(lz4_h5_frame(CHUNK_BYTES))) == CHUNK_BYTES
    with pytest.raises(SourceReadError, match="lz4 data declares 65537 decoded bytes instead of 65536"):
        pipeline.decode(lz4_h5_frame(CHUNK_BYTES, declared=CHUNK_BYTES + 1))


_MEASURE = """
import json, resource, sys
import numpy as np
import adapters
from adapters.base import NoTileCache, AdapterError

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

results = {}
start = peak()
for path in sys.argv[1:]:
    source = adapters.open_source(__import__("pathlib").Path(path), NoTileCache())
    try:
        source.images[0].levels[0].read((slice(0, 256), slice(0, 256)))
        results[path] = "read"
    except AdapterError as exc:
        results[path] = type(exc).__name__
    finally:
        source.close()
print(json.dumps({"start": start, "end": peak(), "results": results}))
"""


def test_no_bomb_moves_peak_memory(tmp_path: Path) -> None:
    """Every bomb (2 GiB each) and a 1 GiB chunk, read in one fresh interpreter: its peak
    RSS grows by less than 128 MiB (before the bounds, the first bomb alone took GiBs)."""
    paths = []
    for name in sorted(BOMBS):
        write_bomb_h5(tmp_path / f"{name}.h5", name)
        paths.append(tmp_path / f"{name}.h5")
    write_zstd_tiff_bomb(tmp_path / "bomb.tif")
    write_giant_chunk_h5(tmp_path / "giant.h5")
    paths += [tmp_path / "bomb.tif", tmp_path / "giant.h5"]
    completed = subprocess.run(
        [sys.executable, "-c", _MEASURE, *map(str, paths)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(completed.stdout)
    assert set(report["results"].values()) == {"SourceReadError"}, report["results"]
    assert report["end"] - report["start"] < 128 * MiB, report
