#!/usr/bin/env python3
"""Revalidation on a server that has never rendered the chunk: ``If-None-Match`` (304)
against ``GET`` (200), both on fresh gateway processes, alternated in one run.

A viewer's cache, a dask job re-run, or nginx revalidating a stale entry against an
instance that has restarted (or never served that dataset) all ask "is my copy still
good?". The gateway answers from the entity tag alone (``DatasetStore.describe``), so a
304 should cost a fraction of the GET that computes the chunk.

1. Writes (once, cached in ``--workdir``) a ``--size``² uint16 tiled TIFF (256x256 zstd tiles,
   no pyramid: levels 1..n are synthesized by the gateway).
2. Per round: a fresh ``python -m gateway serve`` GETs every chunk of ``--level`` in turn on one
   keep-alive connection (cold: each is read, downsampled and encoded) and keeps the ETags;
   then another fresh server answers the same chunks with ``If-None-Match: <etag>``.
3. Prints the median latency of each and the ratio 304 / GET per round and overall.

    python bench/bench_revalidation.py            # ~1 min
    python bench/bench_revalidation.py --level 0  # native level-0 chunks instead
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.deploy.support import start_gateway


def write_source(path: Path, size: int) -> None:
    if path.exists():
        return
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4096, (size, size), dtype=np.uint16)
    tifffile.imwrite(path, data, tile=(256, 256), compression="zstd", photometric="minisblack")


def chunk_keys(base: str, dataset: str, level: int) -> list[str]:
    array = httpx.get(f"{base}/{dataset}/{level}/zarr.json", timeout=30).json()
    grid = [
        -(-n // c)
        for n, c in zip(array["shape"], array["chunk_grid"]["configuration"]["chunk_shape"], strict=True)
    ]
    return [f"{dataset}/{level}/c/{j}/{i}" for j in range(grid[0]) for i in range(grid[1])]


def timed(client: httpx.Client, url: str, headers: dict[str, str]) -> tuple[float, httpx.Response]:
    start = time.perf_counter()
    response = client.get(url, headers=headers)
    return time.perf_counter() - start, response


def one_round(config: Path, dataset: str, level: int) -> dict[str, float]:
    etags: dict[str, str] = {}
    get_times: list[float] = []
    gateway = start_gateway(config, "get")
    try:
        keys = chunk_keys(gateway.base, dataset, level)
        with httpx.Client(timeout=60) as client:
            for key in keys:
                seconds, response = timed(client, f"{gateway.base}/{key}", {})
                assert response.status_code == 200, (key, response.status_code)
                etags[key] = response.headers["etag"]
                get_times.append(seconds)
    finally:
        gateway.process.stop()
    not_modified: list[float] = []
    gateway = start_gateway(config, "revalidate")
    try:
        httpx.get(f"{gateway.base}/{dataset}/zarr.json", timeout=30)  # the file opened, as for the GETs
        with httpx.Client(timeout=60) as client:
            for key, etag in etags.items():
                seconds, response = timed(client, f"{gateway.base}/{key}", {"If-None-Match": etag})
                assert response.status_code == 304, (key, response.status_code)
                not_modified.append(seconds)
    finally:
        gateway.process.stop()
    get_ms, not_modified_ms = statistics.median(get_times) * 1e3, statistics.median(not_modified) * 1e3
    return {
        "chunks": len(etags),
        "get_ms": get_ms,
        "304_ms": not_modified_ms,
        "ratio": not_modified_ms / get_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ome-zarr-gateway-bench" / "reval"
    )
    parser.add_argument("--size", type=int, default=8192, help="level-0 width and height")
    parser.add_argument("--level", type=int, default=2, help="pyramid level whose chunks are requested")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = args.workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_source(data / "image.tif", args.size)
    config = args.workdir / "gateway.toml"
    config.write_text(f'[roots]\ndata = "{data}"\n[server]\naccess_log = "off"\n')
    rounds = [one_round(config, "data/image.tif", args.level) for _ in range(args.rounds)]
    print(
        f"level {args.level} of a {args.size}x{args.size} uint16 TIFF, fresh servers, one keep-alive connection"
    )
    print("| round | chunks | GET median ms | 304 median ms | 304 / GET |")
    print("|---:|---:|---:|---:|---:|")
    for index, r in enumerate(rounds):
        print(f"| {index} | {r['chunks']} | {r['get_ms']:.2f} | {r['304_ms']:.2f} | {r['ratio']:.3f}x |")
    ratio = statistics.median(r["ratio"] for r in rounds)
    print(f"median 304 / GET: {ratio:.3f}x (target <= 0.2x)")
    (args.workdir / "results.json").write_text(json.dumps(rounds, indent=1))


if __name__ == "__main__":
    main()
