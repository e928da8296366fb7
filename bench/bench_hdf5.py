#!/usr/bin/env python3
"""HDF5 through the gateway, lock-free reads on and off, side by side, over real HTTP.

1. Generates once, cached in ``--workdir`` (outside the repository), one HDF5 volume of
   ``--planes`` x 1024 x 1024 uint16 (default 512 planes: 1 GiB of pixels), chunked
   16 x 256 x 256 (2 MiB per chunk) and compressed (``--compression``: gzip-1 + shuffle by
   default, as BigDataViewer and Imaris files are; or zstd / blosc). Content is smooth
   structure plus noise, slab by slab, so memory stays bounded and the data compresses
   like fluorescence (~2-3x), not like zeros.
2. For each round and each mode (lock-free ``on``, then ``off``: ``[hdf5] lock_free =
   false``, every read through h5py under one lock), starts the gateway as a separate
   process (``python -m gateway serve <config.toml> --port 0``) with served chunks equal to
   the HDF5 chunks (``chunks.z = 16``), opens the dataset (``zarr.json`` and one chunk, not
   timed), then has ``--clients`` concurrent HTTP clients (aiohttp, one connection each)
   fetch every chunk of the volume once, and stops the server. Each chunk is a fresh
   read + decode + encode (no cache can serve it).
3. Prints one table: chunks, wall time, decoded MB/s and chunks/s, latency p50/p95, and
   the server's CPU time, for each mode (best and median over rounds).

    python bench/bench_hdf5.py                     # ~2-4 min the first time (writes 1 GiB)
    python bench/bench_hdf5.py --planes 64         # quick: 128 MiB
    python bench/bench_hdf5.py --compression zstd  # a volume whose chunks pass through
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import h5py
import hdf5plugin
import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHAPE_YX = (1024, 1024)
CHUNK = (16, 256, 256)
DATASET = "volume"
COMPRESSIONS = {
    "gzip": {"compression": "gzip", "compression_opts": 1, "shuffle": True},
    "zstd": dict(hdf5plugin.Zstd(clevel=3)),
    "blosc": dict(hdf5plugin.Blosc("lz4", 5, hdf5plugin.Blosc.SHUFFLE)),
}


# ---------------------------------------------------------------------------------------
# The volume


def _slab(z0: int, depth: int, rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """Planes z0..z0+depth: a drifting smooth pattern plus Poisson-like noise."""
    planes = []
    for z in range(z0, z0 + depth):
        plane = np.roll(base, (z * 3, z * 5), axis=(0, 1))
        planes.append(plane)
    slab = np.stack(planes).astype(np.uint16)
    slab += rng.integers(0, 64, size=slab.shape, dtype=np.uint16)
    return slab


def ensure_volume(workdir: Path, planes: int, compression: str) -> Path:
    path = workdir / f"volume-{planes}x{SHAPE_YX[0]}x{SHAPE_YX[1]}-{compression}.h5"
    if path.exists():
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"writing {path} ({planes * SHAPE_YX[0] * SHAPE_YX[1] * 2 / 2**30:.2f} GiB of pixels)...", flush=True
    )
    started = time.perf_counter()
    y, x = np.ogrid[: SHAPE_YX[0], : SHAPE_YX[1]]
    base = (1500 + 900 * np.sin(y / 37.0) * np.cos(x / 53.0) + 400 * np.sin((x + y) / 11.0)).astype(
        np.float32
    )
    base = np.clip(base, 0, 60000).astype(np.uint16)
    rng = np.random.default_rng(1)
    partial = path.with_suffix(".partial")
    with h5py.File(partial, "w") as f:
        dataset = f.create_dataset(
            DATASET, shape=(planes, *SHAPE_YX), dtype=np.uint16, chunks=CHUNK, **COMPRESSIONS[compression]
        )
        for z0 in range(0, planes, CHUNK[0]):
            depth = min(CHUNK[0], planes - z0)
            dataset[z0 : z0 + depth] = _slab(z0, depth, rng, base)
    partial.replace(path)
    size = path.stat().st_size
    print(f"  {size / 2**20:.0f} MiB on disk, written in {time.perf_counter() - started:.0f} s", flush=True)
    return path


# ---------------------------------------------------------------------------------------
# The server (a separate process; stopped by its own pid)


class Gateway:
    def __init__(self, root: Path, lock_free: bool, threads: int | None, codec: str, log: Path) -> None:
        self.config = log.with_suffix(".toml")
        chunks = f'z = {CHUNK[0]}\ncodec = "{codec}"\n'
        server = f"threads = {threads}\n" if threads else ""
        self.config.write_text(
            f'[roots]\nbench = "{root}"\n\n[server]\n{server}\n[chunks]\n{chunks}\n'
            f"[hdf5]\nlock_free = {'true' if lock_free else 'false'}\n"
        )
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> Gateway:
        cmd = [
            sys.executable,
            "-m",
            "gateway",
            "--log-level",
            "warning",
            "serve",
            str(self.config),
            "--port",
            "0",
        ]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            match = re.search(r"at (http://127\.0\.0\.1:\d+)/", self.log.read_text(errors="replace"))
            if match and self._answers(match.group(1)):
                self.url = match.group(1)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"gateway did not start:\n{self.log.read_text(errors='replace')}")

    @staticmethod
    def _answers(url: str) -> bool:
        """The address is printed before uvicorn listens: wait for it to answer."""
        try:
            get(f"{url}/?format=json")
        except OSError:
            return False
        return True

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------------------------
# The clients


@dataclass
class Run:
    mode: str
    chunks: int = 0
    wall: float = 0.0
    body_bytes: int = 0
    server_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def decoded_mb_s(self) -> float:
        return self.chunks * np.prod(CHUNK) * 2 / 1e6 / self.wall

    @property
    def chunks_s(self) -> float:
        return self.chunks / self.wall


async def fetch_all(url: str, keys: list[str], clients: int, run: Run) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for key in keys:
        queue.put_nowait(key)
    timeout = aiohttp.ClientTimeout(total=600)

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            try:
                key = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            async with session.get(f"{url}/{key}") as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{key}: HTTP {response.status}: {body[:200]!r}")
            run.latencies.append(time.perf_counter() - started)
            run.body_bytes += len(body)
            run.chunks += 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(clients)))


def measure(root: Path, name: str, lock_free: bool, args: argparse.Namespace, planes: int, log: Path) -> Run:
    mode = "on" if lock_free else "off"
    run = Run(mode)
    grid = (-(-planes // CHUNK[0]), SHAPE_YX[0] // CHUNK[1], SHAPE_YX[1] // CHUNK[2])
    keys = [
        f"{name}/{DATASET}/0/c/{z}/{y}/{x}"
        for z in range(grid[0])
        for y in range(grid[1])
        for x in range(grid[2])
    ]
    with Gateway(root, lock_free, args.threads, args.codec, log) as gateway:
        array_url = f"{gateway.url}/bench"
        # open the file and learn its chunk index: not timed
        meta = json.loads(get(f"{array_url}/{name}/{DATASET}/0/zarr.json"))
        assert meta["chunk_grid"]["configuration"]["chunk_shape"] == list(CHUNK), meta
        get(f"{array_url}/{keys[0]}")
        cpu_before = gateway.cpu_seconds()
        started = time.perf_counter()
        asyncio.run(fetch_all(array_url, keys[1:], args.clients, run))
        run.wall = time.perf_counter() - started
        run.server_cpu = gateway.cpu_seconds() - cpu_before
    return run


def get(url: str) -> bytes:
    """A plain synchronous GET, for the untimed set-up."""
    with urllib.request.urlopen(url, timeout=120) as response:
        return bytes(response.read())


# ---------------------------------------------------------------------------------------
# Report


def summarize(runs: list[Run]) -> None:
    print()
    header = (
        f"{'lock-free':>9} {'round':>5} {'chunks':>6} {'wall s':>7} {'MB/s':>7} {'chunks/s':>8} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'srv CPU s':>9} {'served MB':>9}"
    )
    print(header)
    print("-" * len(header))
    for index, run in enumerate(runs):
        lat = sorted(run.latencies)
        p50 = lat[len(lat) // 2] * 1e3
        p95 = lat[int(len(lat) * 0.95)] * 1e3
        print(
            f"{run.mode:>9} {index // 2 + 1:>5} {run.chunks:>6} {run.wall:>7.2f} {run.decoded_mb_s:>7.0f} "
            f"{run.chunks_s:>8.1f} {p50:>7.1f} {p95:>7.1f} {run.server_cpu:>9.1f} {run.body_bytes / 1e6:>9.0f}"
        )
    print()
    by_mode = {m: [r.decoded_mb_s for r in runs if r.mode == m] for m in ("on", "off")}
    best = {m: max(v) for m, v in by_mode.items()}
    median = {m: statistics.median(v) for m, v in by_mode.items()}
    print(
        f"decoded MB/s  lock-free on: best {best['on']:.0f}, median {median['on']:.0f}   |   "
        f"off (h5py under one lock): best {best['off']:.0f}, median {median['off']:.0f}   |   "
        f"ratio (median) {median['on'] / median['off']:.2f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ome-zarr-gateway-bench" / "hdf5"
    )
    parser.add_argument("--planes", type=int, default=512, help="z planes of 1024x1024 uint16 (512: 1 GiB)")
    parser.add_argument("--compression", choices=sorted(COMPRESSIONS), default="gzip")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--rounds", type=int, default=2, help="alternating on/off rounds")
    parser.add_argument("--threads", type=int, default=None, help="server read/decode threads")
    parser.add_argument("--codec", default="zstd", help="served chunk codec (zstd, blosc, gzip, none)")
    args = parser.parse_args()
    volume = ensure_volume(args.workdir, args.planes, args.compression)
    root = volume.parent
    print(
        f"volume {volume.name}: {volume.stat().st_size / 2**20:.0f} MiB on disk, chunks {CHUNK}, "
        f"{args.clients} clients, served codec {args.codec}, {os.cpu_count()} CPUs (shared by server and clients)"
    )
    runs = []
    for round_index in range(args.rounds):
        for lock_free in (True, False):
            log = args.workdir / f"gateway-{'on' if lock_free else 'off'}-{round_index}.log"
            run = measure(root, volume.name, lock_free, args, args.planes, log)
            print(f"  round {round_index + 1} lock-free {run.mode}: {run.decoded_mb_s:.0f} MB/s", flush=True)
            runs.append(run)
    summarize(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
