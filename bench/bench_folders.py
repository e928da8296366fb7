#!/usr/bin/env python3
"""The first page of a folder of 5,000 files on a cold server (issue 12: "well under a second").

A folder page lists without opening a file (``gateway/store/folders.py``), so its latency is
a ``scandir`` of the folder, a sort and the rendering of one page, whatever the files hold.

1. Writes (once, cached in ``--workdir``) ``--files`` small uint16 TIFFs (64x64) into one
   folder, named ``img0000.tif``...
2. Per round (``--rounds``, 5): a fresh ``python -m gateway serve`` process (nothing opened,
   nothing learnt), then, timed on one connection: the first page (100 entries) as JSON
   (``?format=json``); the same page as HTML, while the background probes started by the
   first run beside it (in the same process); and the time until the probes have filled in
   the first page (every entry's ``status`` other than ``unknown``).
3. Prints the median of each (and every round) and writes them as JSON to the work directory.

The directory itself stays in the OS's dentry cache between rounds (only the server is
cold); the files are never read by the timed requests.

    python bench/bench_folders.py                 # ~25 s (+ ~20 s once to write the files)
    python bench/bench_folders.py --files 20000   # a bigger folder
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.deploy.support import start_gateway


def write_folder(folder: Path, count: int) -> None:
    """``count`` small TIFFs in ``folder`` (kept between runs: written once)."""
    folder.mkdir(parents=True, exist_ok=True)
    image = (np.arange(64 * 64, dtype=np.uint16) % 4096).reshape(64, 64)
    for index in range(count):
        path = folder / f"img{index:04d}.tif"
        if not path.exists():
            tifffile.imwrite(path, image, photometric="minisblack")


def timed_get(client: httpx.Client, url: str, **params: str) -> tuple[float, httpx.Response]:
    start = time.perf_counter()
    response = client.get(url, params=params)
    seconds = time.perf_counter() - start
    assert response.status_code == 200, (url, response.status_code, response.text[:200])
    return seconds, response


def one_round(config: Path, round_index: int) -> dict[str, float]:
    """On a fresh server: the first page as JSON, then as HTML while the background probes
    run, and the time until they have filled the page in."""
    gateway = start_gateway(config, f"folders-{round_index}")
    try:
        url = f"{gateway.base}/big/"
        with httpx.Client(timeout=60) as client:
            first, response = timed_get(client, url, format="json")
            document = response.json()
            assert len(document["datasets"]) == 100 and document["next"], document["total"]
            html, _ = timed_get(client, url, format="html")
            started = time.perf_counter()
            while True:
                datasets = client.get(url, params={"format": "json"}).json()["datasets"]
                if all(d["status"] != "unknown" for d in datasets):
                    break
                time.sleep(0.02)
            known = time.perf_counter() - started + first + html
            assert {d["status"] for d in datasets} == {"ok"}, {d["status"] for d in datasets}
    finally:
        gateway.process.stop()
    return {"first_page_json": first, "then_html_probing": html, "first_page_known": known}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", default="/tmp/ome-zarr-gateway-bench")
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    folder = workdir / "folders" / f"big-{args.files}"
    write_folder(folder, args.files)
    config = workdir / "folders" / f"folders-{args.files}.toml"
    config.write_text(f'[roots]\nbig = "{folder}"\n\n[server]\naccess_log = "off"\n')
    rounds = [one_round(config, index) for index in range(args.rounds)]
    medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    print(f"folder of {args.files} files, first page (100 entries) on a fresh server, {args.rounds} rounds")
    for key, median in medians.items():
        each = ", ".join(f"{r[key] * 1000:.0f}" for r in rounds)
        print(f"  {key:<18} median {median * 1000:7.1f} ms   (rounds: {each} ms)")
    result = workdir / "folders" / "bench_folders.json"
    result.write_text(json.dumps({"files": args.files, "rounds": rounds, "medians": medians}, indent=2))
    print(f"results: {result}")


if __name__ == "__main__":
    main()
