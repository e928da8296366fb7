#!/usr/bin/env python3
"""End-to-end benchmark of the gateway on a large pyramidal OME-TIFF, over real HTTP.

What it does, in one run (numbers side by side, so ratios are meaningful even on a noisy
machine; see bench/README.md for the figures and how to read them):

1. Generates once, cached in ``--workdir``, a pyramidal OME-TIFF with tifffile (default
   3 x 16384 x 16384 uint16 = 1.5 GiB of pixels, 512x512 tiles, zstd, 6 SubIFD levels),
   level by level from a tile generator so memory stays bounded. The content (dim uneven
   background, sparse bright blobs, shot noise) compresses like real fluorescence data
   (zstd-1 ~1.33x; cells3d nuclei ~1.3x), not like zeros. ``--file`` benchmarks an
   existing file instead.
2. Starts the gateway as separate processes (``python -m gateway serve <dir> --port 0``;
   SIGTERM to the started process at the end), in two modes: ``default`` (pass-through of
   source tiles that already are zarr chunks) and ``transcode`` (``passthrough = false``:
   decode + zstd-1 encode of every chunk), and measures:
   a. first pixels of a never-opened file: server start, GET ``zarr.json`` (opens the file),
      ``0/zarr.json``, one level-0 chunk, then small keep-alive responses, over ``--starts``
      fresh servers, with the file evicted from the page cache (``posix_fadvise``, checked
      with ``fincore``) and hot;
   b. cold throughput: ``--requests`` distinct level-0 chunks fetched by C concurrent aiohttp
      (or httpx) requests, each of ``--repeats`` on a fresh server (never requested before);
   c. warm throughput: the same chunks again (encoded-chunk cache), bytes checked equal;
   d. a whole coarse level read with zarr-python over HTTP, cold then warm, bit-identical to
      tifffile;
   e. server memory under ``--soak`` seconds of warm load.
3. Baselines in this process on the same regions with C threads, interleaved with (b, c):
   pread of the tiles, + tifffile/imagecodecs decode, + the gateway's zstd-1 encoder, and
   ``Mounts.get`` (the gateway without HTTP); tifffile's ``aszarr`` store with
   zarr-python; ``TiffFile`` open + first tile for (a); ``levels[k].asarray()`` for (d).

Prints compact tables and writes everything to ``<workdir>/results-<time>.json``. Server
and client share the machine's cores; the CPU time of each per request is reported.

    python bench/bench_tiff.py              # ~2-2.5 min (+ ~1 min once to write the file)
    python bench/bench_tiff.py --quick      # ~30 s, small file
    python bench/bench_tiff.py --file /data/big.ome.tif
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numcodecs
import numpy as np
import tifffile

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gateway.ngff.codecs import ChunkEncoding  # noqa: E402  (after the sys.path fix)

ROOT_NAME = "bench"
PROBE = "/__bench_probe__/ready"  # an unknown root: answered 404 without touching any file
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1e6


# ---------------------------------------------------------------------------------------
# Synthetic pyramidal OME-TIFF


def _interp_weights(coords: np.ndarray, spacing: float) -> tuple[np.ndarray, int, int]:
    """Bilinear weights of sample ``coords`` on a grid of ``spacing``: (W, first, stop)."""
    g = coords / spacing
    i0 = np.floor(g).astype(np.int64)
    frac = (g - i0).astype(np.float32)
    lo, hi = int(i0.min()), int(i0.max()) + 2
    weights = np.zeros((len(coords), hi - lo), np.float32)
    rows = np.arange(len(coords))
    weights[rows, i0 - lo] = 1 - frac
    weights[rows, i0 - lo + 1] = frac
    return weights, lo, hi


class SyntheticField:
    """A deterministic image defined in level-0 coordinates, so every pyramid level shows
    the same scene: a dim uneven background, mid-scale texture, sparse bright blobs
    (random^8 on a 32 px grid, bilinearly interpolated) and shot noise. Each tile costs a
    few small matrix products (bilinear interpolation is separable)."""

    COMPONENTS = ((2048, 60.0, 1), (256, 400.0, 4), (32, 3000.0, 8))  # spacing, amplitude, power

    def __init__(self, channels: int, size: int, tile: int, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.tile_size = tile
        self.grids = []
        for spacing, amplitude, power in self.COMPONENTS:
            n = size // spacing + 3
            self.grids.append((spacing, amplitude, rng.random((channels, n, n), dtype=np.float32) ** power))
        self.noise = np.random.default_rng(seed + 1)

    def tile(self, channel: int, level: int, ty: int, tx: int) -> np.ndarray:
        t, s = self.tile_size, 1 << level
        ys = (ty * t + np.arange(t)) * s + (s - 1) / 2
        xs = (tx * t + np.arange(t)) * s + (s - 1) / 2
        acc = np.full((t, t), 100.0 + 20 * channel, np.float32)
        for spacing, amplitude, grid in self.grids:
            wy, y0, y1 = _interp_weights(ys, spacing)
            wx, x0, x1 = _interp_weights(xs, spacing)
            acc += amplitude * (wy @ grid[channel, y0:y1, x0:x1] @ wx.T)
        acc += np.sqrt(acc) * self.noise.standard_normal((t, t), dtype=np.float32) / s
        return np.clip(acc, 0, 65535).astype(np.uint16)


def synthetic_name(args: argparse.Namespace) -> str:
    return f"synthetic-{args.channels}x{args.size}-t{args.tile}-{args.compression}-L{args.levels}.ome.tif"


def generate(path: Path, channels: int, size: int, tile: int, levels: int, compression: str) -> None:
    """Write the pyramid level by level from tile generators (bounded memory)."""
    field_ = SyntheticField(channels, size, tile)

    def tiles(level: int) -> Iterator[np.ndarray]:
        n = size >> level
        count = math.ceil(n / tile)
        for c in range(channels):
            for ty in range(count):
                for tx in range(count):
                    yield field_.tile(c, level, ty, tx)

    codec = {"zstd": "zstd", "deflate": "zlib", "none": None}[compression]
    tmp = path.with_name(path.name + ".part")
    started = time.perf_counter()
    options: dict[str, Any] = dict(
        dtype="uint16", tile=(tile, tile), compression=codec, photometric="minisblack"
    )
    with tifffile.TiffWriter(tmp, bigtiff=True, ome=True) as writer:
        writer.write(
            tiles(0),
            shape=(channels, size, size),
            subifds=levels - 1,
            resolution=(1e4 / 0.325, 1e4 / 0.325),
            resolutionunit="CENTIMETER",
            metadata={
                "axes": "CYX",
                "PhysicalSizeX": 0.325,
                "PhysicalSizeXUnit": "µm",
                "PhysicalSizeY": 0.325,
                "PhysicalSizeYUnit": "µm",
                "Channel": {"Name": [f"ch{c}" for c in range(channels)]},
            },
            **options,
        )
        for level in range(1, levels):
            n = size >> level
            writer.write(tiles(level), shape=(channels, n, n), subfiletype=1, **options)
            print(f"  level {level} written ({time.perf_counter() - started:.0f} s)", flush=True)
    with open(tmp, "rb") as fh:  # flushed to disk, so that page-cache eviction works later
        os.fsync(fh.fileno())
    tmp.rename(path)
    print(f"  wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.0f} s")


# ---------------------------------------------------------------------------------------
# Page cache, /proc


def evict_page_cache(path: Path) -> None:
    """Best effort: drop the file's clean pages from the OS page cache (no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm_page_cache(path: Path) -> None:
    with open(path, "rb", buffering=0) as fh:
        while fh.read(16 * 2**20):
            pass


def resident_bytes(path: Path) -> int | None:
    """Bytes of the file in the page cache (util-linux ``fincore``), or None."""
    if shutil.which("fincore") is None:
        return None
    try:
        out = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        return int(out)
    except (subprocess.SubprocessError, ValueError):
        return None


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


def own_cpu_seconds() -> float:
    return time.process_time()


# ---------------------------------------------------------------------------------------
# The gateway as a separate process


class GatewayProcess:
    """``python -m gateway serve <dir|config.toml> --port 0`` in its own process.

    ``stop()`` terminates exactly the process started here (SIGTERM: uvicorn shuts down
    gracefully, then re-raises the signal, so the exit code is -15)."""

    _serial = itertools.count()

    def __init__(self, target: Path, workdir: Path, extra: Sequence[str] = ()) -> None:
        self.target = target  # a directory (served as root "bench") or a config .toml
        self.workdir = workdir
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""
        self.startup_s = math.nan
        self.notable_log = False

    def start(self, timeout: float = 60) -> GatewayProcess:
        log_path = self.workdir / "logs" / f"server-{os.getpid()}-{next(self._serial)}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        log = open(log_path, "wb")  # noqa: SIM115  (closed in stop)
        self._log = log
        name = [] if self.target.suffix == ".toml" else ["--name", ROOT_NAME]
        cmd = [sys.executable, "-m", "gateway", "--log-level", "warning", "serve", str(self.target), *name]
        cmd += ["--host", "127.0.0.1", "--port", "0", *self.extra]
        started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = started + timeout
        pattern = re.compile(r" at (http://127\.0\.0\.1:\d+)/")
        while not self.base:
            if self.proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"gateway did not start; see {log_path}:\n{log_path.read_text()[-2000:]}")
            match = pattern.search(log_path.read_text(errors="replace"))
            if match:
                self.base = match.group(1)
            else:
                time.sleep(0.005)
        # The socket is bound before that line is printed; wait until requests are answered.
        with httpx.Client(timeout=5) as client:
            while True:
                try:
                    client.get(self.base + PROBE)
                    break
                except httpx.TransportError:
                    if self.proc.poll() is not None or time.perf_counter() > deadline:
                        raise RuntimeError(f"gateway not answering; see {log_path}") from None
                    time.sleep(0.005)
        self.startup_s = time.perf_counter() - started
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def status(self) -> dict[str, int]:
        return proc_status(self.pid)

    def stop(self) -> int | None:
        """Terminate the process we started (SIGTERM, then SIGKILL after 20 s); keep its log
        only if it says more than the start-up line."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                print(f"  gateway pid {self.proc.pid} ignored SIGTERM for 20 s; killing it", flush=True)
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        code = self.proc.returncode
        self.proc = None
        lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        if code in (0, -15) and len(lines) <= 1:
            self.log_path.unlink()
        else:
            self.notable_log = True
        return code

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------
# Dataset description (from the served metadata)


@dataclass
class ArrayInfo:
    path: str  # URL path of the array, e.g. "bench/x.ome.tif/0"
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dims: tuple[str, ...]
    dtype: np.dtype[Any]
    codecs: list[dict[str, Any]]

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(math.ceil(n / c) for n, c in zip(self.shape, self.chunks, strict=True))

    def key(self, coords: Sequence[int]) -> str:
        return f"{self.path}/c/" + "/".join(str(i) for i in coords)

    def region(self, coords: Sequence[int]) -> tuple[slice, ...]:
        return tuple(
            slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(coords, self.chunks, self.shape, strict=True)
        )

    @property
    def chunk_nbytes(self) -> int:
        return math.prod(self.chunks) * self.dtype.itemsize

    def center(self) -> tuple[int, ...]:
        return tuple(g // 2 if d in ("y", "x") else 0 for g, d in zip(self.grid, self.dims, strict=True))

    def decode(self, data: bytes) -> np.ndarray:
        """Decode a served chunk with numcodecs, per the declared codec chain."""
        endian = "<"
        for codec in reversed(self.codecs):
            name, conf = codec["name"], codec.get("configuration", {})
            if name == "bytes":
                endian = "<" if conf.get("endian", "little") == "little" else ">"
            elif name == "zstd":
                data = numcodecs.Zstd().decode(data)
            elif name == "gzip":
                data = numcodecs.GZip().decode(data)
            elif name == "blosc":
                data = numcodecs.Blosc().decode(data)
            else:
                raise ValueError(f"codec {name} not handled by the benchmark")
        return np.frombuffer(bytes(data), dtype=self.dtype.newbyteorder(endian)).reshape(self.chunks)


def describe(client: httpx.Client, base: str, dataset: str) -> tuple[str, list[ArrayInfo]]:
    """(image group prefix, level arrays) of a served dataset."""
    root = client.get(f"{base}/{dataset}/zarr.json").json()
    prefix = ""
    if "bioformats2raw.layout" in root.get("attributes", {}).get("ome", {}):
        prefix = "0/"
        root = client.get(f"{base}/{dataset}/0/zarr.json").json()
    paths = [d["path"] for d in root["attributes"]["ome"]["multiscales"][0]["datasets"]]
    arrays = []
    for p in paths:
        meta = client.get(f"{base}/{dataset}/{prefix}{p}/zarr.json").json()
        arrays.append(
            ArrayInfo(
                path=f"{dataset}/{prefix}{p}",
                shape=tuple(meta["shape"]),
                chunks=tuple(meta["chunk_grid"]["configuration"]["chunk_shape"]),
                dims=tuple(meta["dimension_names"]),
                dtype=np.dtype(meta["data_type"]),
                codecs=meta["codecs"],
            )
        )
    return prefix, arrays


# ---------------------------------------------------------------------------------------
# Baseline: read the same regions straight from the TIFF, in this process


class TiffRegionReader:
    """Regions of one pyramid level read with ``os.pread`` + tifffile's tile decoder
    (imagecodecs), no caches: what the gateway's read path costs at the very least.

    Supports the common case: tiled single-sample pages whose leading dimensions flatten
    to the page index, and whose squeezed shape is the served shape in the same order.
    """

    def __init__(self, path: Path, level: int, served_shape: Sequence[int]) -> None:
        self.path = path
        self.tif = tifffile.TiffFile(path)
        series = self.tif.series[0]
        lvl = series.levels[level]
        keyframe = lvl.keyframe
        self.shape = tuple(lvl.shape)
        big_dims = [i for i, n in enumerate(self.shape) if n != 1]
        if tuple(self.shape[i] for i in big_dims) != tuple(served_shape):
            raise ValueError(f"tifffile shape {self.shape} does not match served {tuple(served_shape)}")
        if not keyframe.is_tiled or keyframe.samplesperpixel != 1 or keyframe.tiledepth != 1:
            raise ValueError("baseline reader needs tiled, single-sample, 2-D pages")
        if big_dims[-2:] != [len(self.shape) - 2, len(self.shape) - 1]:
            raise ValueError("y and x must be the last dimensions")
        self.big_dims = big_dims
        self.lead_shape = self.shape[:-2]
        pages = list(lvl.pages)
        if len(pages) != math.prod(self.lead_shape):
            raise ValueError("pages do not flatten to the leading dimensions")
        self.offsets = np.array([p.dataoffsets for p in pages], dtype=np.int64)
        self.counts = np.array([p.databytecounts for p in pages], dtype=np.int64)
        self.decoder = keyframe.decode
        self.tl, self.tw = keyframe.tilelength, keyframe.tilewidth
        self.ntx = math.ceil(self.shape[-1] / self.tw)
        self.dtype = keyframe.dtype
        self.fd = os.open(path, os.O_RDONLY)

    def close(self) -> None:
        os.close(self.fd)
        self.tif.close()

    def _plane(self, region: Sequence[slice]) -> tuple[int, slice, slice]:
        full = [slice(0, 1)] * len(self.shape)
        for dim, sl in zip(self.big_dims, region, strict=True):
            full[dim] = sl
        if any(s.stop - s.start != 1 for s in full[:-2]):
            raise ValueError("baseline reads one plane at a time")
        lead = [s.start for s in full[:-2]]
        page = int(np.ravel_multi_index(lead, self.lead_shape)) if lead else 0
        return page, full[-2], full[-1]

    def _tiles(self, ys: slice, xs: slice) -> Iterator[tuple[int, int, int]]:
        for ty in range(ys.start // self.tl, (ys.stop - 1) // self.tl + 1):
            for tx in range(xs.start // self.tw, (xs.stop - 1) // self.tw + 1):
                yield ty, tx, ty * self.ntx + tx

    def _pread(self, page: int, index: int) -> bytes:
        return os.pread(self.fd, int(self.counts[page, index]), int(self.offsets[page, index]))

    def raw_tile(self, region: Sequence[slice]) -> bytes | None:
        """The stored bytes of the one tile a region covers exactly, else None."""
        page, ys, xs = self._plane(region)
        tiles = list(self._tiles(ys, xs))
        if len(tiles) != 1 or ys.start % self.tl or xs.start % self.tw:
            return None
        return self._pread(page, tiles[0][2])

    def read(self, region: Sequence[slice], decode: bool = True) -> np.ndarray:
        """A served-axes region (size-1 dims dropped); ``decode=False`` only reads the tiles."""
        page, ys, xs = self._plane(region)
        out = np.empty((ys.stop - ys.start, xs.stop - xs.start), self.dtype)
        for ty, tx, index in self._tiles(ys, xs):
            data = self._pread(page, index)
            if not decode:
                continue
            tile, _, _ = self.decoder(data, index)
            tile = tile.reshape(self.tl, self.tw)
            y0, x0 = ty * self.tl, tx * self.tw
            sy = slice(max(ys.start, y0), min(ys.stop, y0 + self.tl))
            sx = slice(max(xs.start, x0), min(xs.stop, x0 + self.tw))
            out[sy.start - ys.start : sy.stop - ys.start, sx.start - xs.start : sx.stop - xs.start] = tile[
                sy.start - y0 : sy.stop - y0, sx.start - x0 : sx.stop - x0
            ]
        return out.reshape(tuple(s.stop - s.start for s in region))


def padded(data: np.ndarray, chunks: Sequence[int]) -> np.ndarray:
    if data.shape == tuple(chunks):
        return data
    out = np.zeros(chunks, data.dtype)
    out[tuple(slice(0, n) for n in data.shape)] = data
    return out


def run_threads(fn: Any, items: Sequence[Any], threads: int) -> float:
    """Wall seconds to apply ``fn`` to every item with ``threads`` workers."""
    started = time.perf_counter()
    if threads == 1:
        for item in items:
            fn(item)
    else:
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(fn, items):
                pass
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------
# HTTP passes


@dataclass
class Pass:
    label: str
    concurrency: int
    n: int
    seconds: float
    wire_bytes: int
    statuses: dict[int, int]
    errors: list[str]
    latencies: list[float] = field(repr=False)
    server_cpu_s: float = math.nan
    client_cpu_s: float = math.nan
    crcs: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def rps(self) -> float:
        return self.n / self.seconds

    @property
    def wire_mbps(self) -> float:
        return self.wire_bytes / MB / self.seconds

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else math.nan

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "concurrency": self.concurrency,
            "requests": self.n,
            "seconds": round(self.seconds, 4),
            "req_per_s": round(self.rps, 2),
            "wire_MB_per_s": round(self.wire_mbps, 2),
            "latency_ms_p50": round(self.pct(0.5), 2),
            "latency_ms_p95": round(self.pct(0.95), 2),
            "latency_ms_max": round(max(self.latencies) * 1000, 2) if self.latencies else None,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors[:5],
            "server_cpu_ms_per_req": round(1000 * self.server_cpu_s / self.n, 3),
            "client_cpu_ms_per_req": round(1000 * self.client_cpu_s / self.n, 3),
        }


async def _fetch_httpx(
    base: str, keys: Sequence[str], concurrency: int, record: Any, started: list[float]
) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=300) as client:
        await asyncio.gather(*(client.get(PROBE) for _ in range(concurrency)))  # open C connections
        started.append(time.perf_counter())
        queue = iter(keys)

        async def worker() -> None:
            for key in queue:  # one shared iterator: next() never awaits, so this is safe
                t0 = time.perf_counter()
                try:
                    response = await client.get("/" + key)
                except httpx.HTTPError as exc:
                    record(key, None, f"{type(exc).__name__}: {exc}", 0.0)
                    continue
                record(key, response.status_code, response.content, time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        started.append(time.perf_counter())


async def _fetch_aiohttp(
    base: str, keys: Sequence[str], concurrency: int, record: Any, started: list[float]
) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as session:

        async def probe() -> None:
            async with session.get(PROBE) as response:
                await response.read()

        await asyncio.gather(*(probe() for _ in range(concurrency)))  # open C connections
        started.append(time.perf_counter())
        queue = iter(keys)

        async def worker() -> None:
            for key in queue:
                t0 = time.perf_counter()
                try:
                    async with session.get("/" + key) as response:
                        body = await response.read()
                        status = response.status
                except aiohttp.ClientError as exc:
                    record(key, None, f"{type(exc).__name__}: {exc}", 0.0)
                    continue
                record(key, status, body, time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        started.append(time.perf_counter())


async def _fetch(base: str, keys: Sequence[str], concurrency: int, client: str) -> Pass:
    statuses: dict[int, int] = {}
    errors: list[str] = []
    latencies: list[float] = []
    crcs: dict[str, int] = {}
    wire = 0

    def record(key: str, status: int | None, body: bytes | str, seconds: float) -> None:
        nonlocal wire
        if status is None:
            errors.append(f"{key}: {body}")
            return
        latencies.append(seconds)
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            wire += len(body)
            crcs[key] = zlib.crc32(body)
        elif status != 404:
            errors.append(f"{key}: HTTP {status}: {bytes(body)[:300]!r}")

    fetch = _fetch_aiohttp if client == "aiohttp" else _fetch_httpx
    started: list[float] = []
    await fetch(base, keys, concurrency, record, started)
    seconds = started[1] - started[0]  # connections opened before, closed after
    return Pass("", concurrency, len(keys), seconds, wire, statuses, errors, latencies, crcs=crcs)


def http_pass(server: GatewayProcess, label: str, keys: Sequence[str], concurrency: int, client: str) -> Pass:
    cpu0, own0 = server.cpu(), own_cpu_seconds()
    result = asyncio.run(_fetch(server.base, keys, concurrency, client))
    result.server_cpu_s = server.cpu() - cpu0
    result.client_cpu_s = own_cpu_seconds() - own0
    result.label = label
    return result


# ---------------------------------------------------------------------------------------
# The measurements


def fmt(x: float, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


def first_chunk(
    args: argparse.Namespace, root: Path, file: Path, dataset: str, evict: bool
) -> dict[str, Any]:
    """(a) Fresh server per repeat; time GET zarr.json, 0/zarr.json and the first chunk."""
    rows: list[dict[str, float]] = []
    resident: list[int | None] = []
    for _ in range(args.starts):
        if evict:
            evict_page_cache(file)
            resident.append(resident_bytes(file))
        with (
            GatewayProcess(root, args.workdir, args.server_args) as server,
            httpx.Client(base_url=server.base, timeout=120) as client,
        ):
            t0 = time.perf_counter()
            group = client.get(f"/{dataset}/zarr.json")
            t1 = time.perf_counter()
            group.raise_for_status()
            prefix = "0/" if "bioformats2raw.layout" in group.json()["attributes"].get("ome", {}) else ""
            if prefix:
                client.get(f"/{dataset}/0/zarr.json").raise_for_status()
            t2 = time.perf_counter()
            array = client.get(f"/{dataset}/{prefix}0/zarr.json")
            t3 = time.perf_counter()
            meta = array.json()
            info = ArrayInfo(
                f"{dataset}/{prefix}0",
                tuple(meta["shape"]),
                tuple(meta["chunk_grid"]["configuration"]["chunk_shape"]),
                tuple(meta["dimension_names"]),
                np.dtype(meta["data_type"]),
                meta["codecs"],
            )
            t4 = time.perf_counter()
            chunk = client.get("/" + info.key(info.center()))
            t5 = time.perf_counter()
            if chunk.status_code not in (200, 404):
                raise RuntimeError(f"first chunk: HTTP {chunk.status_code} {chunk.text[:300]}")
            # Small responses on the same keep-alive connection (what a viewer sends next:
            # more metadata, and 404s for empty chunks).
            small = {"zarr_json": f"/{dataset}/{prefix}0/zarr.json", "404": "/" + info.key(info.grid)}
            repeated = {}
            for name, url in small.items():
                times = []
                for _ in range(5):
                    t = time.perf_counter()
                    client.get(url)
                    times.append(time.perf_counter() - t)
                repeated[name] = statistics.median(times)
            rows.append(
                {
                    "server_start_s": server.startup_s,
                    "group_zarr_json_s": t1 - t0,
                    "array_zarr_json_s": (t3 - t2) + (t2 - t1 if prefix else 0),
                    "first_chunk_s": t5 - t4,
                    "first_pixels_total_s": (t1 - t0) + (t3 - t2) + (t5 - t4),
                    "keepalive_zarr_json_s": repeated["zarr_json"],
                    "keepalive_404_s": repeated["404"],
                }
            )
    out: dict[str, Any] = {"evicted": evict, "repeats": rows, "resident_bytes_after_evict": resident}
    for key in rows[0]:
        values = [r[key] for r in rows]
        out[key] = {"median": statistics.median(values), "min": min(values)}
    # Baseline: tifffile in this process — open + parse the pyramid, then decode one tile.
    base_rows = []
    for _ in range(args.starts):
        if evict:
            evict_page_cache(file)
        t0 = time.perf_counter()
        with tifffile.TiffFile(file) as tif:
            series = tif.series[0]
            levels = series.levels  # parses the SubIFDs
            keyframe = levels[0].keyframe
            _ = tif.ome_metadata if tif.is_ome else None
            t1 = time.perf_counter()
            page = levels[0].pages[0]
            index = len(page.dataoffsets) // 2
            with open(file, "rb", buffering=0) as fh:
                fh.seek(page.dataoffsets[index])
                data = fh.read(page.databytecounts[index])
            keyframe.decode(data, index)
            t2 = time.perf_counter()
        base_rows.append({"open_parse_s": t1 - t0, "first_tile_s": t2 - t1})
    for key in base_rows[0]:
        values = [r[key] for r in base_rows]
        out["tifffile_" + key] = {"median": statistics.median(values), "min": min(values)}
    return out


@dataclass
class Mode:
    """A server configuration the throughput passes run under."""

    name: str
    target: Path  # directory or config .toml
    note: str


def server_modes(args: argparse.Namespace, root: Path) -> list[Mode]:
    """'default' (the gateway as shipped: pass-through of source tiles that already are zarr
    chunks, where it applies) and, when the setting exists, 'transcode' (passthrough = false:
    every chunk is decoded from the TIFF and encoded zstd-1)."""
    from gateway.config.settings import ChunkSettings

    modes = [Mode("default", root, "gateway defaults")]
    has_passthrough = "passthrough" in getattr(ChunkSettings, "__dataclass_fields__", {})
    if "transcode" in args.modes and has_passthrough:
        config = args.workdir / "bench-transcode.toml"
        config.write_text(
            f'[roots]\n{ROOT_NAME} = "{root}"\n\n[chunks]\npassthrough = false\ncodec = "zstd"\nlevel = 1\n'
        )
        modes.append(Mode("transcode", config, "passthrough = false: decode + zstd-1 encode"))
    return [m for m in modes if m.name in args.modes] or modes[:1]


def _median(values: Sequence[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


def _cpu_timed(fn: Any, items: Sequence[Any], threads: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) to apply fn to every item."""
    cpu0 = own_cpu_seconds()
    seconds = run_threads(fn, items, threads)
    return seconds, own_cpu_seconds() - cpu0


def store_pass(
    args: argparse.Namespace, mode: Mode, keys: Sequence[str], concurrency: int
) -> dict[str, float]:
    """The gateway's store in this process (no HTTP), fresh caches: Mounts.get for
    every key with C concurrent coroutines. Shows what HTTP adds to the store's own cost."""
    from gateway.config import load_settings
    from gateway.store.dataset import Workers
    from gateway.store.mounts import Mounts

    config = mode.target if mode.target.suffix == ".toml" else None
    roots = None if config else {ROOT_NAME: mode.target}
    settings = load_settings(config, {}, roots, overrides={"server": {"threads": args.threads}})
    executor = ThreadPoolExecutor(settings.server.threads)
    store = Mounts(settings, Workers(executor, executor, settings.server.request_seconds))

    async def run() -> tuple[float, float]:
        await store.get(keys[0].split("/0/c/")[0] + "/zarr.json")  # open the file first
        queue = iter(keys)

        async def worker() -> None:
            for key in queue:
                await store.get(key)

        cpu0, t0 = own_cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0, own_cpu_seconds() - cpu0

    try:
        wall, cpu = asyncio.run(run())
    finally:
        store.close()
        executor.shutdown(wait=True)
    return {"req_per_s": len(keys) / wall, "cpu_ms": 1000 * cpu / len(keys)}


def throughput(
    args: argparse.Namespace,
    modes: list[Mode],
    dataset: str,
    level0: ArrayInfo,
    reader: TiffRegionReader | None,
) -> dict[str, Any]:
    """(b) cold and (c) warm passes over HTTP, for every mode and concurrency, each repeat
    on a fresh server (empty caches, page cache hot), interleaved with the in-process
    baselines on the same regions so that machine noise hits both alike."""
    coords_all = list(itertools.product(*(range(g) for g in level0.grid)))
    random.Random(0).shuffle(coords_all)
    coords = coords_all[: args.requests]
    keys = [level0.key(c) for c in coords]
    regions = [level0.region(c) for c in coords]
    encoding = _encoding_of_settings()
    runs: dict[str, Any] = {"requests": len(keys), "repeats": args.repeats, "modes": {}, "baselines": {}}
    passes: dict[tuple[str, int], list[dict[str, Any]]] = {}
    baselines: dict[int, list[dict[str, float]]] = {}
    rss: dict[str, list[float]] = {}
    for conc in args.concurrency:
        for _rep in range(args.repeats):
            for mode in modes:
                with GatewayProcess(mode.target, args.workdir, args.server_args) as server:
                    cold = http_pass(server, "cold", keys, conc, args.client)
                    warm = http_pass(server, "warm", keys, conc, args.client)
                    differ = sum(1 for k in keys if k in cold.crcs and warm.crcs.get(k) != cold.crcs[k])
                    entry = {"cold": cold.summary(), "warm": warm.summary(), "warm_differs": differ}
                    entry["server_rss_MiB"] = round(server.status()["VmRSS"] / 1024, 1)
                    passes.setdefault((mode.name, conc), []).append(entry)
                    rss.setdefault(mode.name, []).append(entry["server_rss_MiB"])
            if reader is not None:
                base: dict[str, float] = {}

                def pread_only(region: tuple[slice, ...]) -> None:
                    reader.read(region, decode=False)

                def decode_encode(region: tuple[slice, ...]) -> bytes:
                    return encoding.encode(padded(reader.read(region), level0.chunks))

                for label, fn in (
                    ("pread", pread_only),
                    ("raw_decode", reader.read),
                    ("decode_encode", decode_encode),
                ):
                    wall, cpu = _cpu_timed(fn, regions, conc)
                    base[f"{label}_req_per_s"] = len(regions) / wall
                    base[f"{label}_cpu_ms"] = 1000 * cpu / len(regions)
                baselines.setdefault(conc, []).append(base)
            if reader is None:
                baselines.setdefault(conc, []).append({})
            for mode in modes:
                if args.no_store_baseline:
                    break
                try:
                    measured = store_pass(args, mode, keys, conc)
                except Exception as exc:  # the store's API may move; the benchmark goes on
                    print(f"  (in-process store baseline failed: {type(exc).__name__}: {exc})")
                    args.no_store_baseline = True
                    break
                baselines[conc][-1][f"store_{mode.name}_req_per_s"] = measured["req_per_s"]
                baselines[conc][-1][f"store_{mode.name}_cpu_ms"] = measured["cpu_ms"]
        print_throughput_rows(conc, modes, passes, baselines.get(conc, []))
    for (mode_name, conc), entries in passes.items():
        summary: dict[str, Any] = {"repeats": entries}
        for label in ("cold", "warm"):
            values = [e[label]["req_per_s"] for e in entries]
            summary[f"{label}_req_per_s_median"] = _median(values)
            summary[f"{label}_req_per_s_min"] = min(values)
            summary[f"{label}_req_per_s_max"] = max(values)
            summary[f"{label}_wire_MB_per_s_median"] = _median([e[label]["wire_MB_per_s"] for e in entries])
            summary[f"{label}_p50_ms_median"] = _median([e[label]["latency_ms_p50"] for e in entries])
            summary[f"{label}_p95_ms_median"] = _median([e[label]["latency_ms_p95"] for e in entries])
            summary[f"{label}_server_cpu_ms_median"] = _median(
                [e[label]["server_cpu_ms_per_req"] for e in entries]
            )
            summary[f"{label}_client_cpu_ms_median"] = _median(
                [e[label]["client_cpu_ms_per_req"] for e in entries]
            )
        runs["modes"].setdefault(mode_name, {})[str(conc)] = summary
    for conc, entries in baselines.items():
        names = {k for e in entries for k in e}
        runs["baselines"][str(conc)] = {k: _median([e[k] for e in entries if k in e]) for k in names} | {
            "repeats": entries
        }
    runs["server_rss_MiB_after_passes"] = rss
    if reader is not None:  # served chunks must be the source pixels
        runs["verified"] = verify_chunks(modes, args, dataset, reader, coords[:8])
    return runs


def verify_chunks(
    modes: list[Mode], args: argparse.Namespace, dataset: str, reader: TiffRegionReader, coords: list[Any]
) -> dict[str, Any]:
    """Fetch a few chunks from a fresh server per mode; compare with tifffile's pixels."""
    out: dict[str, Any] = {}
    for mode in modes:
        bad = 0
        identical_to_tile = 0
        with (
            GatewayProcess(mode.target, args.workdir, args.server_args) as server,
            httpx.Client(base_url=server.base, timeout=60) as client,
        ):
            _, arrays = describe(client, server.base, dataset)
            info = arrays[0]
            for c in coords:
                response = client.get("/" + info.key(c))
                expected = padded(reader.read(info.region(c)), info.chunks)
                if response.status_code == 404:
                    bad += int(expected.any())
                elif response.status_code != 200 or not np.array_equal(
                    info.decode(response.content), expected
                ):
                    bad += 1
                elif response.content == reader.raw_tile(info.region(c)):
                    identical_to_tile += 1
        out[mode.name] = {
            "checked": len(coords),
            "mismatches": bad,
            "served_bytes_identical_to_tiff_tile": identical_to_tile,
            "codecs": [c["name"] for c in info.codecs],
        }
    return out


def _encoding_of_settings() -> ChunkEncoding:
    """The encoder the gateway uses when it transcodes (its configured default codec)."""
    from gateway.config.settings import ChunkSettings

    defaults = ChunkSettings()
    return ChunkEncoding.from_settings(defaults.codec, defaults.level)


def tifffile_zarr_baseline(file: Path, level0: ArrayInfo, n: int, threads: int) -> dict[str, Any] | None:
    """tifffile's own zarr store (TiffFile.aszarr) read with zarr-python, region by region."""
    try:
        import zarr

        coords_all = list(itertools.product(*(range(g) for g in level0.grid)))
        random.Random(1).shuffle(coords_all)
        regions = [level0.region(c) for c in coords_all[:n]]
        with tifffile.TiffFile(file) as tif:
            store = tif.aszarr(series=0, level=0)
            array = zarr.open_array(store=store, mode="r")
            big = [i for i, s in enumerate(array.shape) if s != 1]
            if len(big) != len(level0.shape):
                return None

            def read(region: tuple[slice, ...]) -> np.ndarray:
                full = [slice(0, 1)] * array.ndim
                for d, s in zip(big, region, strict=True):
                    full[d] = s
                return array[tuple(full)]

            seconds = run_threads(read, regions, threads)
        return {"threads": threads, "requests": n, "seconds": seconds, "req_per_s": n / seconds}
    except Exception as exc:  # a baseline must not kill the run
        return {"error": f"{type(exc).__name__}: {exc}"}


def coarse_level(args: argparse.Namespace, mode: Mode, file: Path, arrays: list[ArrayInfo]) -> dict[str, Any]:
    """(d) a whole coarse level with zarr-python over HTTP (cold, then warm) vs tifffile."""
    import zarr

    if args.coarse_level is not None:
        k = args.coarse_level
    else:  # the level closest to 2048 px on its longer side
        k = min(range(len(arrays)), key=lambda i: abs(math.log2(max(arrays[i].shape[-2:]) / 2048)))
    info = arrays[k]
    out: dict[str, Any] = {"mode": mode.name, "level": k, "shape": info.shape, "chunks": math.prod(info.grid)}
    data = None
    with GatewayProcess(mode.target, args.workdir, args.server_args) as server:
        url = f"{server.base}/{info.path}"
        for label in ("cold", "warm"):
            cpu0 = server.cpu()
            t0 = time.perf_counter()
            array = zarr.open_array(url, mode="r")
            data = array[...]
            out[f"zarr_http_{label}_s"] = time.perf_counter() - t0
            out[f"zarr_http_{label}_server_cpu_s"] = server.cpu() - cpu0
    t0 = time.perf_counter()
    with tifffile.TiffFile(file) as tif:
        expected = tif.series[0].levels[k].asarray()
    out["tifffile_asarray_s"] = time.perf_counter() - t0
    out["MB"] = expected.nbytes / MB
    out["bit_identical"] = bool(
        data is not None and np.array_equal(np.asarray(data), expected.reshape(np.asarray(data).shape))
    )
    return out


def soak(args: argparse.Namespace, mode: Mode, keys: Sequence[str]) -> dict[str, Any]:
    """(e) the same warm set requested again and again for ``--soak`` seconds at the highest
    concurrency, sampling the server's memory: it must stay flat once the caches are full."""
    conc = max(args.concurrency)
    samples = []
    requests = 0
    errors: list[str] = []
    with GatewayProcess(mode.target, args.workdir, args.server_args) as server:
        http_pass(server, "fill", keys, conc, args.client)
        samples.append(server.status()["VmRSS"] / 1024)
        t_end = time.perf_counter() + args.soak
        started = time.perf_counter()
        cpu0 = server.cpu()
        while time.perf_counter() < t_end:
            result = http_pass(server, "soak", keys, conc, args.client)
            requests += result.n
            errors += result.errors
            samples.append(server.status()["VmRSS"] / 1024)
        seconds = time.perf_counter() - started
        cpu = server.cpu() - cpu0
        threads = server.status()["Threads"]
    return {
        "mode": mode.name,
        "concurrency": conc,
        "requests": requests,
        "req_per_s": requests / seconds,
        "server_cpu_ms_per_req": 1000 * cpu / max(requests, 1),
        "rss_MiB_samples": [round(x, 1) for x in samples],
        "rss_growth_MiB": round(samples[-1] - samples[0], 1),
        "threads_at_end": threads,
        "errors": errors[:5],
    }


# ---------------------------------------------------------------------------------------
# Output


def print_throughput_header(level0: ArrayInfo, args: argparse.Namespace, modes: list[Mode]) -> None:
    chunk = "x".join(str(c) for c in level0.chunks)
    print(
        f"\n(b,c) {args.requests} distinct level-0 chunks {chunk} {level0.dtype} ({level0.chunk_nbytes / MB:.2f} MB "
        f"raw each), C concurrent {args.client} requests; fresh server per repeat, median of {args.repeats}.\n"
        "      cold: never requested before; warm: the same again (encoded-chunk cache).\n"
        "      in-process baselines, same regions, C threads: pread of the tiles; + tifffile/imagecodecs decode;\n"
        "      + the gateway's zstd-1 encoder; and the gateway's own store (Mounts.get, fresh caches).\n"
        "      ms: CPU per request (server srv, client cli) or per chunk.\n"
        "      modes: " + "; ".join(f"{m.name} = {m.note}" for m in modes)
    )
    print(
        f"{'C':>3} {'mode':<10}| {'cold req/s':>10} {'MB/s':>6} {'p50':>5} {'p95':>5} | {'warm req/s':>10} {'p50':>5} |"
        f" {'srv ms c/w':>11} | {'cli ms c/w':>11} | {'cold/dec':>8} {'cold/d+e':>8} {'warm/dec':>8}"
    )


def print_throughput_rows(
    conc: int,
    modes: list[Mode],
    passes: dict[tuple[str, int], list[dict[str, Any]]],
    baselines: list[dict[str, float]],
) -> None:
    names = {k for b in baselines for k in b}
    base = {k: _median([b[k] for b in baselines if k in b]) for k in names}
    dec = base.get("raw_decode_req_per_s", math.nan)
    de = base.get("decode_encode_req_per_s", math.nan)
    for mode in modes:
        entries = passes[(mode.name, conc)]

        def med(label: str, key: str, entries: list[dict[str, Any]] = entries) -> float:
            return _median([e[label][key] for e in entries])

        cold, warm = med("cold", "req_per_s"), med("warm", "req_per_s")
        srv = f"{fmt(med('cold', 'server_cpu_ms_per_req'), 2)}/{fmt(med('warm', 'server_cpu_ms_per_req'), 2)}"
        cli = f"{fmt(med('cold', 'client_cpu_ms_per_req'), 2)}/{fmt(med('warm', 'client_cpu_ms_per_req'), 2)}"
        print(
            f"{conc:>3} {mode.name:<10}| {fmt(cold):>10} {fmt(med('cold', 'wire_MB_per_s')):>6} "
            f"{fmt(med('cold', 'latency_ms_p50')):>5} {fmt(med('cold', 'latency_ms_p95')):>5} | "
            f"{fmt(warm):>10} {fmt(med('warm', 'latency_ms_p50')):>5} | {srv:>11} | {cli:>11} | "
            f"{fmt(cold / dec, 2):>8} {fmt(cold / de, 2):>8} {fmt(warm / dec, 2):>8}",
            flush=True,
        )
        problems = []
        for e in entries:
            for label in ("cold", "warm"):
                if e[label]["errors"]:
                    problems.append(f"{label} errors: {e[label]['errors']}")
                other = {k: v for k, v in e[label]["statuses"].items() if k not in ("200", "404")}
                if other:
                    problems.append(f"{label} statuses {other}")
            if e["warm_differs"]:
                problems.append(f"{e['warm_differs']} warm chunks differ from cold")
        for problem in problems[:5]:
            print(f"    !! {problem}", flush=True)
    if "pread_req_per_s" in base:
        print(
            f"{conc:>3} {'in-process':<10}| pread {fmt(base['pread_req_per_s'], 0)}/s "
            f"({fmt(base['pread_cpu_ms'], 2)} ms); decode {fmt(dec, 0)}/s ({fmt(base['raw_decode_cpu_ms'], 2)} ms); "
            f"decode+encode {fmt(de, 0)}/s ({fmt(base['decode_encode_cpu_ms'], 2)} ms)",
            flush=True,
        )
    stores = [
        f"{m.name} {fmt(base[f'store_{m.name}_req_per_s'], 0)}/s ({fmt(base[f'store_{m.name}_cpu_ms'], 2)} ms; "
        f"HTTP cold/store {fmt(_median([e['cold']['req_per_s'] for e in passes[(m.name, conc)]]) / base[f'store_{m.name}_req_per_s'], 2)})"
        for m in modes
        if f"store_{m.name}_req_per_s" in base
    ]
    if stores:
        print(
            f"{conc:>3} {'in-process':<10}| Mounts.get, no HTTP, fresh caches: " + "; ".join(stores),
            flush=True,
        )


def print_first_chunk(results: list[dict[str, Any]]) -> None:
    print("\n(a) first chunk of a never-opened file (fresh server each time), seconds median / min")
    print(
        f"{'':40} | "
        + " | ".join(f"{('page cache evicted' if r['evicted'] else 'page cache hot'):>20}" for r in results)
    )
    rows = [
        ("server start (process → listening)", "server_start_s"),
        ("GET zarr.json (opens the file)", "group_zarr_json_s"),
        ("GET 0/zarr.json", "array_zarr_json_s"),
        ("GET first level-0 chunk", "first_chunk_s"),
        ("total to first pixels", "first_pixels_total_s"),
        ("then GET 0/zarr.json again (x5)", "keepalive_zarr_json_s"),
        ("then GET an out-of-grid chunk (404, x5)", "keepalive_404_s"),
        ("tifffile open+parse (in-process)", "tifffile_open_parse_s"),
        ("tifffile first tile (in-process)", "tifffile_first_tile_s"),
    ]
    for title, key in rows:
        cells = [f"{fmt(r[key]['median'], 4)} / {fmt(r[key]['min'], 4)}" for r in results]
        print(f"{title:40} | " + " | ".join(f"{c:>20}" for c in cells))
    for r in results:
        if (
            r["evicted"]
            and r["resident_bytes_after_evict"]
            and r["resident_bytes_after_evict"][0] is not None
        ):
            print(f"  (page-cache resident bytes after each eviction: {r['resident_bytes_after_evict']})")


# ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="End-to-end HTTP benchmark of the gateway on a large pyramidal OME-TIFF.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/ome-zarr-gateway-bench"),
        help="generated files, server logs and JSON results (outside the repo)",
    )
    p.add_argument("--file", type=Path, help="benchmark this existing TIFF instead of generating one")
    p.add_argument(
        "--quick",
        action="store_true",
        help="small file (3x4096x4096) and few requests: ~30 s once the file exists",
    )
    g = p.add_argument_group("generated file")
    g.add_argument("--channels", type=int, default=3, help="channels (one page per channel)")
    g.add_argument("--size", type=int, default=16384, help="level-0 width and height")
    g.add_argument("--tile", type=int, default=512, help="square tile edge of every level")
    g.add_argument("--levels", type=int, default=6, help="pyramid levels (SubIFDs + 1)")
    g.add_argument(
        "--compression",
        choices=["zstd", "deflate", "none"],
        default="zstd",
        help="TIFF tile compression (deflate: zlib)",
    )
    m = p.add_argument_group("measurements")
    m.add_argument("--starts", type=int, default=5, help="fresh server starts for the first-chunk latency")
    m.add_argument("--requests", type=int, default=400, help="distinct level-0 chunks in the cold/warm set")
    m.add_argument("--repeats", type=int, default=7, help="fresh-server repeats of every cold/warm pass")
    m.add_argument(
        "--modes",
        type=lambda s: s.split(","),
        default=["default", "transcode"],
        help="server configurations: default (pass-through where possible), transcode (passthrough = false)",
    )
    m.add_argument("--no-store-baseline", action="store_true", help="skip the in-process Mounts baseline")
    m.add_argument("--soak", type=float, default=20, help="seconds of sustained warm load for (e); 0 skips")
    m.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 4, 16],
        help="comma-separated client concurrencies",
    )
    m.add_argument(
        "--coarse-level", type=int, help="level read whole in (d); default: the one closest to 2048 px"
    )
    m.add_argument("--no-evict", action="store_true", help="skip the page-cache-evicted first-chunk runs")
    m.add_argument(
        "--client",
        choices=["aiohttp", "httpx"],
        default="aiohttp",
        help="HTTP client of the throughput passes (httpx costs ~5x more client CPU per request)",
    )
    m.add_argument("--threads", type=int, help="gateway --threads; default: the gateway's own default")
    args = p.parse_args(argv)
    if args.quick:
        defaults = {"size": 4096, "levels": 4, "starts": 3, "requests": 96, "repeats": 2, "soak": 3}
        for key, value in defaults.items():
            if getattr(args, key) == p.get_default(key):
                setattr(args, key, value)
    args.server_args = ["--threads", str(args.threads)] if args.threads else []
    args.workdir = args.workdir.expanduser().resolve()
    if args.workdir == REPO or REPO in args.workdir.parents:
        p.error("--workdir must be outside the repository")
    return args


def environment() -> dict[str, Any]:
    import imagecodecs
    import starlette
    import uvicorn
    import zarr

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "versions": {
            "tifffile": tifffile.__version__,
            "imagecodecs": imagecodecs.__version__,
            "numcodecs": numcodecs.__version__,
            "numpy": np.__version__,
            "zarr": zarr.__version__,
            "httpx": httpx.__version__,
            "uvicorn": uvicorn.__version__,
            "starlette": starlette.__version__,
        },
        "gateway_source": source_version(),
        "uvicorn_http_impl": "httptools" if _has("httptools") else "h11",
        "uvicorn_loop": "uvloop" if _has("uvloop") else "asyncio",
    }


def source_version() -> str:
    """Which gateway is measured: its directory, git commit, and whether gateway/ or adapters/
    have uncommitted changes."""
    import gateway

    where = str(Path(gateway.__file__).resolve().parent.parent)
    try:
        head = subprocess.run(
            ["git", "-C", where, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--", "gateway", "adapters"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"{where} (not a git checkout)"
    return f"{where} @ {head}" + (" + uncommitted changes in gateway/ or adapters/" if dirty else "")


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.client == "aiohttp":
        import aiohttp  # noqa: F401  (imported before any timing)
    args.workdir.mkdir(parents=True, exist_ok=True)
    run_started = time.perf_counter()
    if args.file:
        file = args.file.expanduser().resolve()
        root = file.parent
    else:
        root = args.workdir / "data"
        root.mkdir(exist_ok=True)
        file = root / synthetic_name(args)
        if not file.exists():
            raw = args.channels * args.size**2 * 2
            print(f"Generating {file.name} ({raw / 2**30:.2f} GiB of uint16 pixels), once...", flush=True)
            generate(file, args.channels, args.size, args.tile, args.levels, args.compression)
    dataset = f"{ROOT_NAME}/{file.relative_to(root).as_posix()}"
    env = environment()
    print(
        f"File {file} ({file.stat().st_size / 2**20:.0f} MiB on disk); {env['cpus']} CPUs, "
        f"load {env['loadavg_start'][0]:.2f}; uvicorn {env['uvicorn_http_impl']}/{env['uvicorn_loop']}\n"
        f"Gateway measured: {env['gateway_source']}",
        flush=True,
    )

    results: dict[str, Any] = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "file": str(file),
        "file_bytes": file.stat().st_size,
        "environment": env,
    }

    # (a) first chunk, page cache evicted and hot
    first = []
    if not args.no_evict:
        first.append(first_chunk(args, root, file, dataset, evict=True))
    warm_page_cache(file)
    first.append(first_chunk(args, root, file, dataset, evict=False))
    results["first_chunk"] = first
    print_first_chunk(first)

    # (b, c) fresh servers per repeat; page cache hot for servers and baselines alike
    warm_page_cache(file)
    modes = server_modes(args, root)
    with GatewayProcess(root, args.workdir, args.server_args) as server, httpx.Client(timeout=120) as client:
        _, arrays = describe(client, server.base, dataset)
    level0 = arrays[0]
    results["levels"] = [
        {"shape": a.shape, "chunks": a.chunks, "dims": a.dims, "dtype": str(a.dtype)} for a in arrays
    ]
    if args.requests > math.prod(level0.grid):
        args.requests = math.prod(level0.grid)
    try:
        reader: TiffRegionReader | None = TiffRegionReader(file, 0, level0.shape)
    except Exception as exc:
        print(f"  (in-process baselines unavailable for this file: {exc})")
        reader = None
    print_throughput_header(level0, args, modes)
    results["throughput"] = throughput(args, modes, dataset, level0, reader)
    for name, v in results["throughput"].get("verified", {}).items():
        print(
            f"  {name}: {v['checked'] - v['mismatches']}/{v['checked']} chunks bit-identical to tifffile "
            f"(codecs {'+'.join(v['codecs'])}; {v['served_bytes_identical_to_tiff_tile']} served as the TIFF tile bytes)"
        )
    if reader is not None:
        reader.close()
    zb = [
        tifffile_zarr_baseline(file, level0, min(args.requests, 100), t) for t in (1, max(args.concurrency))
    ]
    results["tifffile_zarr_baseline"] = zb
    for z in zb:
        if z and "req_per_s" in z:
            print(
                f"  tifffile aszarr + zarr-python, in-process, {z['threads']} thread(s): {z['req_per_s']:.0f} req/s"
            )
        elif z:
            print(f"  tifffile aszarr baseline failed: {z.get('error')}")

    # (d) a whole coarse level, per mode
    results["coarse_level"] = []
    print()
    for mode in modes:
        coarse = coarse_level(args, mode, file, arrays)
        results["coarse_level"].append(coarse)
        print(
            f"(d) {mode.name}: whole level {coarse['level']} {coarse['shape']} ({coarse['chunks']} chunks, "
            f"{coarse['MB']:.0f} MB) with zarr-python over HTTP: cold {coarse['zarr_http_cold_s']:.3f} s, "
            f"warm {coarse['zarr_http_warm_s']:.3f} s; tifffile levels[{coarse['level']}].asarray() "
            f"{coarse['tifffile_asarray_s']:.3f} s (cold/tifffile {coarse['zarr_http_cold_s'] / coarse['tifffile_asarray_s']:.1f}x); "
            f"bit-identical: {coarse['bit_identical']}"
        )

    # (e) memory under sustained warm load
    if args.soak > 0:
        keys = [
            level0.key(c)
            for c in itertools.islice(itertools.product(*(range(g) for g in level0.grid)), args.requests)
        ]
        results["soak"] = soak(args, modes[0], keys)
        sk = results["soak"]
        print(
            f"\n(e) {sk['mode']}: {sk['requests']} warm requests in {args.soak:.0f} s at C={sk['concurrency']} "
            f"({sk['req_per_s']:.0f} req/s, server {sk['server_cpu_ms_per_req']:.2f} ms CPU/req): server RSS "
            f"{sk['rss_MiB_samples'][0]:.0f} -> {sk['rss_MiB_samples'][-1]:.0f} MiB, threads {sk['threads_at_end']}"
            + (f"; errors {sk['errors']}" if sk["errors"] else "")
        )
    logs = sorted((args.workdir / "logs").glob(f"server-{os.getpid()}-*.log"))
    if logs:
        print(f"\n!! server logs with warnings or errors: {[str(p) for p in logs]}")
    results["server_logs_kept"] = [str(p) for p in logs]
    results["environment"]["loadavg_end"] = os.getloadavg()
    results["total_seconds"] = time.perf_counter() - run_started
    out = args.workdir / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nload {results['environment']['loadavg_end'][0]:.2f}; total {results['total_seconds']:.0f} s")
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
