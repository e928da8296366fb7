#!/usr/bin/env python3
"""``ome-zarr-gateway export`` throughput against doing the same work by hand, in this process.

One run, side by side (see bench/README.md, "Export"):

1. Writes once, cached in ``--workdir``, a tiled OME-TIFF (default 2 x 4096 x 4096 uint16,
   512 x 512 zstd tiles: 128 tiles = 64 MiB of pixels; noisy, compresses ~1.7x).
2. Exports it with the pyramid off, so that the export writes exactly the level-0 chunks,
   in two modes:
   - ``transcode`` (``passthrough = false``): every chunk decoded and encoded zstd-1;
   - ``passthrough`` (the default): the stored tiles copied as they are.
3. Baselines on the same chunks with the same number of threads and no gateway code on the
   read path: ``os.pread`` of each tile, + tifffile's decoder, + the gateway's zstd-1 encoder
   (``ChunkEncoding``), with and without writing each chunk to a file (``.partial`` + rename,
   as the export writes). The encoded bytes are checked equal to the exported chunks.
4. For reference, the full default export (synthesized pyramid levels included).

MB/s are of chunk bytes written (compressed), best of ``--repeats``.

    python bench/bench_export.py            # ~20-40 s on 2 cores (+ a few s once for the file)
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tifffile

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gateway.config.settings import Settings  # noqa: E402  (after the sys.path fix)
from gateway.export import Progress, export_file, write_atomically  # noqa: E402
from gateway.ngff.codecs import ChunkEncoding  # noqa: E402

MB = 1e6


def generate(path: Path, channels: int, size: int, tile: int) -> None:
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:size, 0:size]
    background = (200 + 100 * np.sin(y / 300) * np.cos(x / 400)).astype(np.uint16)
    data = np.stack([background + rng.poisson(20, (size, size)).astype(np.uint16) for _ in range(channels)])
    tifffile.imwrite(
        path,
        data,
        ome=True,
        tile=(tile, tile),
        compression="zstd",
        photometric="minisblack",
        metadata={"axes": "CYX"},
    )


class Tiles:
    """The level-0 tiles of the file: pread, and tifffile's decoder (no caches)."""

    def __init__(self, path: Path) -> None:
        self.tif = tifffile.TiffFile(path)
        pages = list(self.tif.series[0].pages)
        self.offsets = [p.dataoffsets for p in pages]
        self.counts = [p.databytecounts for p in pages]
        self.decode = pages[0].keyframe.decode
        keyframe = pages[0].keyframe
        self.shape = (keyframe.tilelength, keyframe.tilewidth)
        self.fd = os.open(path, os.O_RDONLY)

    def keys(self) -> list[tuple[int, int]]:
        return [(page, index) for page, offsets in enumerate(self.offsets) for index in range(len(offsets))]

    def raw(self, page: int, index: int) -> bytes:
        return os.pread(self.fd, int(self.counts[page][index]), int(self.offsets[page][index]))

    def close(self) -> None:
        os.close(self.fd)
        self.tif.close()


def timed(work: Callable[[], int], repeats: int) -> tuple[float, int]:
    """Best seconds of ``repeats`` runs, and the bytes the work reports."""
    best, size = math.inf, 0
    for _ in range(repeats):
        started = time.perf_counter()
        size = work()
        best = min(best, time.perf_counter() - started)
    return best, size


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ome-zarr-gateway-bench-export"
    )
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    source = args.workdir / f"bench-{args.channels}x{args.size}.ome.tif"
    if not source.exists():
        print(f"writing {source} ...", flush=True)
        generate(source, args.channels, args.size, 512)
    out = args.workdir / "out"
    encoding = ChunkEncoding.from_settings("zstd", 1)
    tiles = Tiles(source)
    keys = tiles.keys()
    pool = ThreadPoolExecutor(args.threads)

    def fresh() -> Path:
        shutil.rmtree(out, ignore_errors=True)
        return out

    def export(**sections: object) -> Callable[[], int]:
        settings = Settings.from_mapping({"server": {"threads": args.threads}, **sections})

        def run() -> int:
            done: Progress = export_file(source, fresh(), settings)
            return done.chunk_bytes

        return run

    def decode_encode(key: tuple[int, int]) -> bytes:
        tile, _, _ = tiles.decode(tiles.raw(*key), key[1])
        return encoding.encode(tile.reshape(tiles.shape))

    def by_hand(step: Callable[[tuple[int, int]], bytes], write: bool) -> Callable[[], int]:
        def one(key: tuple[int, int]) -> int:
            data = step(key)
            if write:
                page, index = key
                per_row = math.ceil(args.size / tiles.shape[1])
                write_atomically(
                    out / "0" / "c" / str(page) / str(index // per_row) / str(index % per_row), data
                )
            return len(data)

        def run() -> int:
            fresh()
            return sum(pool.map(one, keys))

        return run

    no_pyramid = {"pyramids": {"enabled": False}}
    rows: list[tuple[str, float, int]] = []
    for name, work in [
        ("export, transcode (decode + zstd-1 + write)", export(chunks={"passthrough": False}, **no_pyramid)),
        ("  by hand: pread + decode + zstd-1", by_hand(decode_encode, write=False)),
        ("  by hand: pread + decode + zstd-1 + write", by_hand(decode_encode, write=True)),
        ("export, pass-through (copy stored tiles)", export(**no_pyramid)),
        ("  by hand: pread + write", by_hand(lambda key: tiles.raw(*key), write=True)),
        ("export, defaults (pyramid levels too)", export()),
    ]:
        seconds, size = timed(work, args.repeats)
        rows.append((name, seconds, size))
        print(
            f"{name:48s} {size / MB:7.1f} MB in {seconds:6.2f} s = {size / MB / seconds:7.1f} MB/s",
            flush=True,
        )

    # the transcoded export wrote the same bytes as the encoder by hand
    export(chunks={"passthrough": False}, **no_pyramid)()
    per_row = math.ceil(args.size / tiles.shape[1])
    for key in keys[:: max(1, len(keys) // 16)]:
        page, index = key
        chunk = out / "0" / "c" / str(page) / str(index // per_row) / str(index % per_row)
        assert chunk.read_bytes() == decode_encode(key), chunk
    base = {name.strip(): seconds for name, seconds, _ in rows}
    ratio = base["by hand: pread + decode + zstd-1"] / base["export, transcode (decode + zstd-1 + write)"]
    print(f"transcoding export at {ratio:.2f}x the in-process decode+encode of the same chunks")
    pool.shutdown()
    tiles.close()
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
