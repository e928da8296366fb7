#!/usr/bin/env python3
"""A volume by voxel throughput (issue 11, item 6): the gateway in 3-D chunks and in planes
against nginx serving a converted copy, and against decode + encode of the same chunks in
this process, side by side in one run.

1. Writes once, cached in ``--workdir``, an HDF5 volume of ``--planes`` x 1024 x 1024 uint16
   (default 256 planes: 512 MiB of pixels) chunked 64 x 128 x 128 (2 MiB), gzip-1 + shuffle,
   smooth structure plus noise (compresses ~1.7x, like fluorescence, not like zeros).
2. Exports it once with ``ome-zarr-gateway export`` (default settings: served chunks follow
   the source, 64 x 128 x 128, level 0 the stored zlib streams in blosc frames): the
   "converted copy", holding exactly the bytes the gateway serves (made again when the
   defaults change what the gateway serves).
3. Per round, each of these on a fresh process or pool (cold caches; the page cache is warm
   for all alike), in an order reversed every other round (A B C D E, E D C B A, ...):
   - ``gateway``: ``python -m gateway serve`` with default settings (3-D chunks);
   - ``gateway z=1``: ``[chunks] z = 1``, one plane per chunk (the issue's "before");
   - ``nginx``: Debian's nginx with the static server block of ``bench_hot.py`` (deploy/nginx's
     conventions: sendfile, tcp_nodelay, open_file_cache) serving the export;
   - ``in-process numcodecs``: h5py's ``read_direct_chunk`` + numcodecs zlib and shuffle +
     the gateway's encoder of the same codec, in a thread pool as large as the server's;
   - ``in-process libdeflate``: ``os.pread`` + libdeflate + imagecodecs' byte unshuffle (the
     decoders the gateway uses) + the same encoder, same pool;
   - ``in-process shuffled`` (where the codec is blosc-zstd): ``os.pread`` + libdeflate, then
     the gateway's blosc-zstd frame of the byte planes as stored (no unshuffle, no shuffle).
   ``--codec zstd`` or ``blosc-zstd`` runs only the gateway so set and its in-process limits.
   Where the gateway sends the chunks as stored (the default for gzip and deflate sources:
   blosc frames; zstd and blosc sources), there is nothing to decode or encode: the gateway
   with one and two worker processes, and nginx.
   Over HTTP, ``zarr.json`` of level 0 and its first chunk are fetched untimed (the open),
   then ``--clients`` concurrent aiohttp clients (one connection each) fetch every other
   level-0 chunk once. The in-process runs do the same chunks.
4. Checks bytes: a sample of the gateway's chunks equals the export's files and nginx's
   answers, and the in-process encoder's output for the same chunks.
5. Stops every process it started (its own ``Popen``; also on errors, Ctrl-C and SIGTERM),
   prints a Markdown table (medians over rounds; ratios are medians of per-round ratios) and
   writes every run as JSON to ``--workdir``.

    python bench/bench_volume.py               # ~2 min on 2 cores (+ ~25 s once: volume, export)
    python bench/bench_volume.py --planes 128  # quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import h5py
import httpx
import imagecodecs
import numcodecs
import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

from bench_hot import Server, run_and_report, start_gateway, start_nginx  # noqa: E402

import adapters  # noqa: E402
from adapters.hdf5.filters import unshuffle  # noqa: E402
from gateway.config.settings import Settings  # noqa: E402
from gateway.levels.pyramid import downsample  # noqa: E402
from gateway.ngff.codecs import ChunkEncoding  # noqa: E402
from gateway.ngff.layout import ArrayNode, build_tree  # noqa: E402

SHAPE_YX = (1024, 1024)
CHUNK = (64, 128, 128)
CHUNK_BYTES = int(np.prod(CHUNK)) * 2
DATASET = "volume"
ROOT = "bench"
HTTP_SERVERS = ("gateway", "gateway z=1", "nginx")
IN_PROCESS = ("in-process numcodecs", "in-process libdeflate", "in-process shuffled", "in-process rewrapped")
SAMPLE = 24  # chunks whose bytes are compared across servers


# --- the volume and its converted copy ----------------------------------------------------


def _slabs(planes: int, shape_yx: tuple[int, int]) -> Iterator[tuple[int, np.ndarray]]:
    """(z0, planes z0..z0+64) of the volume, slab after slab: a drifting smooth pattern plus
    noise, the same pixels on every call (every file written from it holds one volume)."""
    y, x = np.ogrid[: shape_yx[0], : shape_yx[1]]
    base = 1500 + 900 * np.sin(y / 37.0) * np.cos(x / 53.0) + 400 * np.sin((x + y) / 11.0)
    base = np.clip(base, 0, 60000).astype(np.uint16)
    rng = np.random.default_rng(1)
    for z0 in range(0, planes, CHUNK[0]):
        depth = min(CHUNK[0], planes - z0)
        slab = np.stack([np.roll(base, (z * 3, z * 5), axis=(0, 1)) for z in range(z0, z0 + depth)])
        slab += rng.integers(0, 64, size=slab.shape, dtype=np.uint16)
        yield z0, slab


#: How the volume's chunks are stored: gzip is transcoded by the gateway; zstd and blosc
#: chunks are valid zarr chunks as stored, passed through.
SOURCES = ("gzip", "deflate", "zstd", "blosc")
#: sources whose chunks are decoded (the others are passed through as stored)
DEFLATED = ("gzip", "deflate")


def _filters(source: str) -> dict[str, Any]:
    if source == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    if source == "deflate":  # as BigDataViewer's and pybdv's writers store chunks: no shuffle
        return {"compression": "gzip", "compression_opts": 1}
    import hdf5plugin  # the test extras have it; only these two sources need it

    if source == "zstd":
        return dict(hdf5plugin.Zstd(clevel=1))
    return dict(hdf5plugin.Blosc("lz4", 5, hdf5plugin.Blosc.SHUFFLE))


def ensure_volume(
    directory: Path, planes: int, shape_yx: tuple[int, int] = SHAPE_YX, source: str = "gzip"
) -> Path:
    """The HDF5 volume, written once (through ``.partial``: a kept file is complete)."""
    suffix = "" if source == "gzip" else f"-{source}"
    path = directory / f"volume-{planes}x{shape_yx[0]}x{shape_yx[1]}{suffix}.h5"
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    print(
        f"writing {path} ({planes * shape_yx[0] * shape_yx[1] * 2 / 2**20:.0f} MiB of pixels)...", flush=True
    )
    partial = path.with_suffix(".partial")
    with h5py.File(partial, "w") as f:
        dataset = f.create_dataset(
            DATASET,
            shape=(planes, *shape_yx),
            dtype=np.uint16,
            chunks=CHUNK,
            **_filters(source),
        )
        for z0, slab in _slabs(planes, shape_yx):
            dataset[z0 : z0 + len(slab)] = slab
    partial.replace(path)
    return path


#: Mipmap levels of the BigDataViewer variant (``ensure_bdv``): each halves z, y and x.
BDV_LEVELS = 4


def ensure_bdv(directory: Path, planes: int, shape_yx: tuple[int, int] = SHAPE_YX) -> Path:
    """The same volume (the same pixels as ``ensure_volume``'s) as BigDataViewer writes a
    light-sheet stack: XML plus HDF5, one setup and time point, uint16 stored as int16,
    64 x 128 x 128 gzip-1 + shuffle chunks, and ``BDV_LEVELS`` native mipmap levels (each
    halving z, y and x) down to one chunk: what a viewer gets when nothing is synthesized."""
    name = f"volume-{planes}x{shape_yx[0]}x{shape_yx[1]}-bdv"
    xml = directory / f"{name}.xml"
    if xml.exists():
        return xml
    directory.mkdir(parents=True, exist_ok=True)
    print(f"writing {xml} and {name}.h5 ({BDV_LEVELS} levels) ...", flush=True)
    partial = directory / f"{name}.h5.partial"
    step = 2 ** (BDV_LEVELS - 1)
    if planes % step or any(n % step for n in shape_yx):
        raise ValueError(f"every size must be a multiple of {step} for {BDV_LEVELS} levels")
    with h5py.File(partial, "w") as f:
        f["s00/resolutions"] = np.array([[2.0**k] * 3 for k in range(BDV_LEVELS)])
        f["s00/subdivisions"] = np.array([[CHUNK[2], CHUNK[1], CHUNK[0]]] * BDV_LEVELS, dtype=np.int32)
        datasets = [
            f.create_dataset(
                f"t00000/s00/{k}/cells",
                shape=(planes >> k, shape_yx[0] >> k, shape_yx[1] >> k),
                dtype=np.int16,
                chunks=tuple(min(c, n >> k) for c, n in zip(CHUNK, (planes, *shape_yx), strict=True)),
                **_filters("gzip"),
            )
            for k in range(BDV_LEVELS)
        ]
        for z0, level in _slabs(planes, shape_yx):  # ensure_volume's slabs: the same pixels
            for k, dataset in enumerate(datasets):
                if k:
                    level = downsample(level, (2, 2, 2), "mean")  # as the gateway would
                dataset[z0 >> k : (z0 >> k) + len(level)] = level.view(np.int16)
    partial.replace(directory / f"{name}.h5")
    xml.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<SpimData version="0.2"><BasePath type="relative">.</BasePath>'
        f'<SequenceDescription><ImageLoader format="bdv.hdf5"><hdf5 type="relative">{name}.h5</hdf5>'
        "</ImageLoader><ViewSetups><ViewSetup><id>0</id><name>volume</name>"
        f"<size>{shape_yx[1]} {shape_yx[0]} {planes}</size><voxelSize><unit>µm</unit><size>1 1 1</size>"
        "</voxelSize></ViewSetup></ViewSetups>"
        '<Timepoints type="range"><first>0</first><last>0</last></Timepoints></SequenceDescription>'
        '<ViewRegistrations><ViewRegistration timepoint="0" setup="0"><ViewTransform type="affine">'
        "<affine>1 0 0 0 0 1 0 0 0 0 1 0</affine></ViewTransform></ViewRegistration></ViewRegistrations>"
        "</SpimData>\n",
        encoding="utf-8",
    )
    return xml


def ensure_export(volume: Path, static_root: Path) -> Path:
    """``ome-zarr-gateway export`` of the volume with default settings, under the URL path
    the gateway serves it at (``/<root>/<file>/``), so one path asks both servers. A rerun
    resumes or skips a complete export (the command's own behaviour); an export whose
    arrays' codecs are not what the gateway serves now (defaults changed) is made again."""
    dest = static_root / ROOT / volume.name
    if (dest / "zarr.json").exists() and not _export_is_current(volume, dest):
        print(f"{dest} holds other codecs than the gateway's defaults now: exporting again", flush=True)
        shutil.rmtree(dest)
    if not (dest / "zarr.json").exists():
        print(f"exporting {volume.name} to {dest} ...", flush=True)
        started = time.perf_counter()
        command = [sys.executable, "-m", "gateway", "export", str(volume), str(dest)]
        subprocess.run(command, check=True, cwd=REPO, stdin=subprocess.DEVNULL)
        print(f"  exported in {time.perf_counter() - started:.0f} s", flush=True)
    return dest


def served_arrays(source_path: Path, codec: str = "auto", z: int | None = None) -> dict[str, ArrayNode]:
    """The arrays the gateway serves ``source_path`` as with ``[chunks] codec`` (``auto``,
    the default, depends on the source: deflate chunks in blosc frames, blosc-zstd for
    other shuffled chunks, else zstd) and ``z`` when given."""
    source = adapters.open_source(source_path)
    chunks: dict[str, Any] = {"codec": codec} | ({} if z is None else {"z": z})
    try:
        return build_tree(source, Settings.from_mapping({"chunks": chunks}).chunks).arrays
    finally:
        source.close()


def _export_is_current(volume: Path, dest: Path) -> bool:
    """Whether every array of the export declares the codecs the gateway's default
    settings serve the volume's arrays with."""
    for path, node in served_arrays(volume).items():
        document = dest / path / "zarr.json"
        if not document.exists() or json.loads(document.read_bytes())["codecs"] != node.encoding.to_json(
            node.dtype
        ):
            return False
    return True


def chunk_keys(shape: list[int], chunk_shape: list[int], array: str = f"{DATASET}/0") -> list[str]:
    """The chunk keys of ``array`` (level 0), relative to the dataset, in C order of the grid."""
    grid = [-(-n // c) for n, c in zip(shape, chunk_shape, strict=True)]
    return [f"{array}/c/" + "/".join(map(str, index)) for index in np.ndindex(*grid)]


# --- one run ------------------------------------------------------------------------------


@dataclass
class Run:
    round: int
    server: str
    chunk_shape: list[int] = field(default_factory=list)
    chunks: int = 0
    voxels: int = 0
    wall_s: float = 0.0
    body_bytes: int = 0
    cpu_s: float = 0.0  # the server's (its workers included); this process's for in-process runs
    latencies: list[float] = field(default_factory=list)
    sample: dict[str, bytes] = field(default_factory=dict)

    @property
    def mvoxel_s(self) -> float:
        return self.voxels / 1e6 / self.wall_s

    @property
    def wire_mb_s(self) -> float:
        return self.body_bytes / 1e6 / self.wall_s

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1e3

    def summary(self) -> dict[str, Any]:
        kept = {k: v for k, v in asdict(self).items() if k not in ("latencies", "sample")}
        return kept | {
            "mvoxel_s": self.mvoxel_s,
            "wire_mb_s": self.wire_mb_s,
            "p50_ms": self.percentile_ms(0.5),
            "p99_ms": self.percentile_ms(0.99),
        }


async def fetch_all(base: str, keys: list[str], clients: int, run: Run, sample: set[str]) -> None:
    """Every key once, by ``clients`` workers sharing one queue (one connection each)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for key in keys:
        queue.put_nowait(key)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            key = queue.get_nowait()
            started = time.perf_counter()
            async with session.get(f"{base}/{key}") as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{base}/{key}: HTTP {response.status}: {body[:200]!r}")
            run.latencies.append(time.perf_counter() - started)
            run.body_bytes += len(body)
            run.chunks += 1
            if key in sample:
                run.sample[key] = body

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=900)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(clients)))


def fetch_with_curl(base: str, keys: list[str], clients: int, run: Run, sample: set[str]) -> None:
    """Every key once, by one ``curl --parallel`` process keeping ``clients`` connections
    busy (the sampled keys' bytes are fetched by ``measure_http`` afterwards, untimed).

    curl spends ~0.8 ms of CPU per 2 MiB chunk where 16 aiohttp clients spend ~3.3 ms: on
    two cores shared with the server, a Python client would measure itself."""
    lines = []
    for key in keys:
        lines += [f'url = "{base}/{key}"', 'output = "/dev/null"']
    with tempfile.NamedTemporaryFile("w", suffix=".curl", delete=False) as config:
        config.write("\n".join(lines) + "\n")
    try:
        done = subprocess.run(
            [
                "curl",
                "--silent",
                "--show-error",
                "--parallel",
                "--parallel-immediate",
                "--parallel-max",
                str(clients),
                "--write-out",
                "%{http_code} %{time_total} %{size_download}\n",
                "--config",
                config.name,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        )
    finally:
        os.unlink(config.name)
    for line in done.stdout.splitlines():
        status, seconds, size = line.split()
        if status != "200":
            raise RuntimeError(f"{base}: a chunk answered HTTP {status}")
        run.latencies.append(float(seconds))
        run.body_bytes += int(size)
        run.chunks += 1
    if run.chunks != len(keys):
        raise RuntimeError(f"{base}: {run.chunks} of {len(keys)} chunks fetched")


#: How ``measure_http`` fetches: ``curl`` (default) or ``aiohttp`` (the first measurements').
HTTP_CLIENT = {"client": "curl"}


def measure_http(
    server: Server, dataset_path: str, clients: int, run: Run, sample: set[str], array: str = f"{DATASET}/0"
) -> None:
    """The open (the ``zarr.json`` of ``array``, level 0, and its first chunk) untimed, then
    every other chunk of the grid it declares, timed."""
    base = server.base + dataset_path
    meta = httpx.get(f"{base}/{array}/zarr.json", timeout=60).json()
    run.chunk_shape = meta["chunk_grid"]["configuration"]["chunk_shape"]
    keys = chunk_keys(meta["shape"], run.chunk_shape, array)
    httpx.get(f"{base}/{keys[0]}", timeout=60).raise_for_status()
    cpu = server.cpu_seconds()
    started = time.perf_counter()
    if HTTP_CLIENT["client"] == "curl":
        fetch_with_curl(base, keys[1:], clients, run, sample)
    else:
        asyncio.run(fetch_all(base, keys[1:], clients, run, sample))
    run.wall_s = time.perf_counter() - started
    run.cpu_s = server.cpu_seconds() - cpu
    for key in sorted(sample.difference(run.sample).intersection(keys[1:])):
        run.sample[key] = httpx.get(f"{base}/{key}", timeout=60).content
    run.voxels = run.chunks * int(np.prod(run.chunk_shape))


# --- in-process decode + encode -----------------------------------------------------------


class SourceChunks:
    """The volume's stored chunks: where each lies (HDF5's chunk index, read once) and two
    decoders of them; no cache anywhere."""

    def __init__(self, path: Path) -> None:
        self.file = h5py.File(path, "r")
        self.dataset = self.file[DATASET]
        self.where: dict[tuple[int, ...], tuple[int, int]] = {}
        self.dataset.id.chunk_iter(
            lambda info: self.where.__setitem__(
                tuple(o // c for o, c in zip(info.chunk_offset, CHUNK, strict=True)),
                (info.byte_offset, info.size),
            )
        )
        self.fd = os.open(path, os.O_RDONLY)
        self.zlib = numcodecs.Zlib()
        self.shuffle = numcodecs.Shuffle(elementsize=2)

    def numcodecs(self, index: tuple[int, ...]) -> np.ndarray:
        """h5py reads the stored bytes (under its lock), numcodecs undoes zlib and shuffle."""
        offset = tuple(i * c for i, c in zip(index, CHUNK, strict=True))
        _, raw = self.dataset.id.read_direct_chunk(offset)
        plain = self.zlib.decode(raw)
        if self.dataset.shuffle:
            plain = self.shuffle.decode(plain)
        return np.frombuffer(plain, dtype="<u2").reshape(CHUNK)

    def libdeflate(self, index: tuple[int, ...]) -> np.ndarray:
        """``pread`` of the stored bytes, libdeflate and imagecodecs' unshuffle (GIL-free)."""
        offset, size = self.where[index]
        raw = os.pread(self.fd, size, offset)
        plain = imagecodecs.deflate_decode(raw, out=CHUNK_BYTES)
        if self.dataset.shuffle:
            plain = unshuffle(plain, 2)
        return np.frombuffer(plain, dtype="<u2").reshape(CHUNK)

    def stored(self, index: tuple[int, ...]) -> bytes:
        """``pread`` of the stored bytes only."""
        offset, size = self.where[index]
        return os.pread(self.fd, size, offset)

    def shuffled(self, index: tuple[int, ...]) -> np.ndarray:
        """``pread`` and libdeflate only: the chunk's byte planes as HDF5's shuffle stored
        them (what the gateway compresses for blosc-zstd)."""
        offset, size = self.where[index]
        raw = os.pread(self.fd, size, offset)
        return np.frombuffer(imagecodecs.deflate_decode(raw, out=CHUNK_BYTES), np.uint8).reshape(2, -1)

    def close(self) -> None:
        os.close(self.fd)
        self.file.close()


def key_index(key: str) -> tuple[int, ...]:
    return tuple(int(part) for part in key.rsplit("/c/", 1)[1].split("/"))


def in_process_chunk(
    name: str, source: SourceChunks, encoding: ChunkEncoding
) -> Callable[[tuple[int, ...]], bytes]:
    """How entry ``name`` makes a served chunk: decode (numcodecs or libdeflate) + the
    gateway's ``encoding``; or, "shuffled", inflate and compress the byte planes as they
    are (the gateway's own path for blosc-zstd of shuffled chunks)."""
    if name == IN_PROCESS[2]:
        dtype = np.dtype("<u2")
        return lambda index: encoding.encode_byte_planes(source.shuffled(index), dtype)
    if name == IN_PROCESS[3]:
        return lambda index: encoding.from_stored(source.stored(index), CHUNK_BYTES, np.dtype("<u2")) or b""
    decode = source.numcodecs if name == IN_PROCESS[0] else source.libdeflate
    return lambda index: encoding.encode(decode(index))


def measure_in_process_slabs(
    source: SourceChunks, encoding: ChunkEncoding, depth: int, threads: int, run: Run, sample: set[str]
) -> None:
    """The slabs of ``depth`` planes of every stored chunk, the way the gateway makes them
    (``--z``): each stored chunk inflated once, still shuffled, and each slab's run of byte
    planes compressed (``encode_byte_planes``), one stored chunk per task, ``threads`` at a
    time. The first slab is left out, as the HTTP runs leave out the open's chunk."""
    runs = CHUNK[0] // depth
    dtype = np.dtype("<u2")

    def slabs(index: tuple[int, ...]) -> list[tuple[str, bytes, float]]:
        started = time.perf_counter()
        planes = source.shuffled(index).reshape(2, runs, -1)
        made = []
        for run_ in range(runs):
            body = encoding.encode_byte_planes(np.ascontiguousarray(planes[:, run_]), dtype)
            key = f"{DATASET}/0/c/{index[0] * runs + run_}/{index[1]}/{index[2]}"
            made.append((key, body, time.perf_counter() - started))
        return made

    made_in_pool(
        slabs, sorted(source.where), threads, run, sample, [depth, *CHUNK[1:]], f"{DATASET}/0/c/0/0/0"
    )


def measure_in_process(
    make: Callable[[tuple[int, ...]], bytes],
    keys: list[str],
    threads: int,
    run: Run,
    sample: set[str],
) -> None:
    """``make`` each chunk of ``keys`` (``in_process_chunk``), ``threads`` at a time (a
    fresh pool)."""

    def one(key: str) -> tuple[str, bytes, float]:
        started = time.perf_counter()
        body = make(key_index(key))
        return key, body, time.perf_counter() - started

    made_in_pool(lambda key: [one(key)], keys[1:], threads, run, sample, list(CHUNK))


def made_in_pool(
    work: Callable[[Any], list[tuple[str, bytes, float]]],
    tasks: Sequence[Any],
    threads: int,
    run: Run,
    sample: set[str],
    chunk_shape: list[int],
    skip: str = "",
) -> None:
    """``work`` over ``tasks``, ``threads`` at a time (a fresh pool), each task making
    chunks as (key, bytes, seconds): recorded in ``run`` (all but ``skip``), with the
    wall and CPU time of the whole."""
    run.chunk_shape = chunk_shape
    cpu = time.process_time()
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for made in pool.map(work, tasks):
            for key, body, seconds in made:
                if key == skip:
                    continue
                run.latencies.append(seconds)
                run.body_bytes += len(body)
                run.chunks += 1
                if key in sample:
                    run.sample[key] = body
    run.wall_s = time.perf_counter() - started
    run.cpu_s = time.process_time() - cpu
    run.voxels = run.chunks * int(np.prod(chunk_shape))


# --- the schedule -------------------------------------------------------------------------


def schedule(rounds: int, entries: tuple[str, ...]) -> Iterator[tuple[int, str]]:
    """(round, entry): every entry each round, the order reversed every other round."""
    for round_ in range(rounds):
        yield from ((round_, name) for name in (entries if round_ % 2 == 0 else entries[::-1]))


def write_config(
    path: Path,
    data: Path,
    z: int | None,
    shard: list[int] | None = None,
    workers: int | None = None,
    codec: str | None = None,
    browse: dict[str, Any] | None = None,
) -> Path:
    """A gateway config serving ``data`` as root ``ROOT``: default chunks, or ``[chunks] z``
    and/or ``shard`` (virtual shards: inner chunks per shard along z, y, x) and/or ``codec``;
    ``workers`` processes (``[server] workers``) and the browsing view's settings
    (``[browse]``) when given."""
    chunks = "".join(
        f"{name} = {json.dumps(value)}\n"
        for name, value in (("z", z), ("shard", shard), ("codec", codec))
        if value is not None
    )
    text = f'[roots]\n{ROOT} = "{data}"\n' + (f"\n[chunks]\n{chunks}" if chunks else "")
    if browse:
        text += "\n[browse]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in browse.items())
    path.write_text(text + (f"\n[server]\nworkers = {workers}\n" if workers else ""))
    return path


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    volume = ensure_volume(workdir / "data", args.planes, source=args.source)
    # the export (nginx's copy) holds what the default settings serve: another codec is
    # measured against its own in-process limit only
    default = args.codec == "auto"
    export = ensure_export(volume, workdir / "static") if default else None
    level0 = served_arrays(volume, args.codec)[f"{DATASET}/0"]
    encoding = level0.encoding
    # in-process: decode + encode, and the gateway's shortcut to the same bytes if it has one
    # (a rewrapped gzip member is not what encoding afresh makes: then only the shortcut)
    if encoding.inflates_to_wrap:
        in_process: tuple[str, ...] = (IN_PROCESS[3],)
    elif encoding.takes_byte_planes(np.dtype("<u2")) and args.source == "gzip":
        in_process = IN_PROCESS[:3]
    else:
        in_process = IN_PROCESS[:2]
    # chunks sent as stored (zstd, blosc; deflate in blosc frames): nothing to decode or
    # encode, so no in-process limit and no z=1; the event loop's thread is their limit,
    # so also two worker processes
    entries: tuple[str, ...] = ("gateway", "gateway workers=2", "nginx")
    if args.source in DEFLATED and not level0.sends_stored_bytes:
        entries = (*HTTP_SERVERS, *in_process)
    if not default:
        entries = ("gateway", *[name for name in in_process if name != IN_PROCESS[0]])
    slabs = f"gateway z={args.z}", f"in-process slabs z={args.z}"
    if args.z:
        entries = (*entries, *slabs)
    dataset_path = f"/{ROOT}/{volume.name}"
    blocks = chunk_keys([args.planes, *SHAPE_YX], list(CHUNK))
    rng = random.Random(7)
    sample = set(rng.sample(blocks[1:], min(SAMPLE, len(blocks) - 1))) | {blocks[-1]}
    threads = Settings().server.threads
    configs = {
        "gateway": write_config(
            workdir / "gateway.toml" if default else workdir / f"gateway-{args.codec}.toml",
            volume.parent,
            None,
            codec=None if default else args.codec,
        ),
        "gateway z=1": write_config(workdir / "gateway-z1.toml", volume.parent, 1),
        "gateway workers=2": write_config(workdir / "gateway-workers2.toml", volume.parent, None, workers=2),
    }
    slab_sample: set[str] = set()
    if args.z:
        configs[slabs[0]] = write_config(workdir / f"gateway-z{args.z}.toml", volume.parent, args.z)
        slab_encoding = served_arrays(volume, args.codec, args.z)[f"{DATASET}/0"].encoding
        slab_sample = set(chunk_keys([args.planes, *SHAPE_YX], [args.z, *CHUNK[1:]])[1:SAMPLE])
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    source = SourceChunks(volume)
    runs: list[Run] = []
    try:
        for round_, name in schedule(args.rounds, entries):
            run = Run(round_, name)
            if name == slabs[1]:
                measure_in_process_slabs(source, slab_encoding, args.z, threads, run, slab_sample)
            elif name in IN_PROCESS:
                measure_in_process(in_process_chunk(name, source, encoding), blocks, threads, run, sample)
            else:
                with contextlib.ExitStack() as stack:  # stopped whatever happens
                    if name == "nginx":
                        server = start_nginx(logs / "nginx", workdir / "static", f"{dataset_path}/zarr.json")
                    else:
                        server = start_gateway(configs[name], logs / f"{name.replace(' ', '-')}-{round_}.log")
                    stack.callback(server.stop)
                    measure_http(
                        server, dataset_path, args.clients, run, slab_sample if name == slabs[0] else sample
                    )
            runs.append(run)
            print(
                f"  round {round_} {name:22s} {run.chunks:6d} chunks {run.wall_s:6.2f} s "
                f"{run.mvoxel_s:7.0f} Mvoxel/s {run.wire_mb_s:6.0f} MB/s  p50 {run.percentile_ms(0.5):6.1f} ms  "
                f"CPU {run.cpu_s:5.1f} s",
                flush=True,
            )
    finally:
        source.close()
    checked = check_bytes(runs, export, sample)
    return {
        "volume": {
            "name": volume.name,
            "shape": [args.planes, *SHAPE_YX],
            "chunks": list(CHUNK),
            "file_bytes": volume.stat().st_size,
            "compression": {
                "gzip": "gzip-1 + shuffle",
                "deflate": "gzip-1",
                "zstd": "zstd-1",
                "blosc": "blosc lz4-5 shuffle",
            }[args.source],
        },
        "served_codec": f"{encoding.describe(np.dtype('<u2'))} ({args.codec})",
        "clients": args.clients,
        "client": HTTP_CLIENT["client"],
        "threads": threads,
        "rounds": args.rounds,
        "runs": [run.summary() for run in runs],
        "summary": summarize(runs, entries),
        "bytes_checked": checked,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_after": os.getloadavg(),
    }


def check_bytes(runs: list[Run], export: Path | None, sample: set[str]) -> int:
    """The gateway's sampled chunks equal the export's files (when there is one), nginx's
    answers and the in-process encoder's output (every run's sample against the first
    gateway run's)."""
    reference = next(run.sample for run in runs if run.server == "gateway")
    if set(reference) != sample:
        raise RuntimeError(f"the gateway's sample misses {sorted(sample - set(reference))}")
    for key, body in reference.items():
        if export is not None and (export / key).read_bytes() != body:
            raise RuntimeError(f"{key}: the gateway's bytes differ from the export's file")
    for run in runs:
        if run.server != "gateway z=1" and not is_slab_run(run) and run.sample != reference:
            raise RuntimeError(f"round {run.round} {run.server}: sampled chunks differ from the gateway's")
    slab_runs = [run for run in runs if is_slab_run(run)]
    for run in slab_runs:  # --z: the gateway's slabs equal those made in-process
        if run.sample != slab_runs[0].sample or not run.sample:
            raise RuntimeError(f"round {run.round} {run.server}: sampled slabs differ")
    return len(reference) + (len(slab_runs[0].sample) if slab_runs else 0)


def is_slab_run(run: Run) -> bool:
    """Whether ``run`` is one of ``--z``'s (the gateway so set, or its in-process slabs)."""
    return is_slab_name(run.server)


def is_slab_name(name: str) -> bool:
    """Whether ``name`` is an entry of ``--z`` (the gateway so set, or its in-process slabs)."""
    return name.startswith(("gateway z=", "in-process slabs")) and name != "gateway z=1"


# --- report -------------------------------------------------------------------------------


def medians(mine: list[Run]) -> dict[str, Any]:
    """One server's runs summed up: its chunk count and the medians over rounds of time,
    throughput, latency and CPU (the columns every volume benchmark prints)."""
    return {
        "chunks": mine[0].chunks,
        "wall_s": statistics.median(r.wall_s for r in mine),
        "mvoxel_s": statistics.median(r.mvoxel_s for r in mine),
        "wire_mb_s": statistics.median(r.wire_mb_s for r in mine),
        "p50_ms": statistics.median(r.percentile_ms(0.5) for r in mine),
        "p99_ms": statistics.median(r.percentile_ms(0.99) for r in mine),
        "cpu_s": statistics.median(r.cpu_s for r in mine),
    }


def summarize(runs: list[Run], entries: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per entry: medians over rounds; ratios are medians of per-round ratios of Mvoxel/s."""
    rate = {(r.round, r.server): r.mvoxel_s for r in runs}
    rounds = sorted({r.round for r in runs})
    measured = [name for name in IN_PROCESS if name in entries]
    limit = {n: max(rate[n, name] for name in measured) for n in rounds} if measured else None

    def to_limit(name: str) -> float | None:
        """Median per-round ratio to the in-process limit: ``--z``'s entries to their own
        in-process slabs, the others to the fastest in-process decode + encode."""
        if is_slab_name(name):
            own = name.replace("gateway", "in-process slabs")
            return statistics.median(rate[n, name] / rate[n, own] for n in rounds)
        return None if limit is None else statistics.median(rate[n, name] / limit[n] for n in rounds)

    rows = []
    for name in entries:
        mine = [r for r in runs if r.server == name]
        rows.append(
            {
                "server": name,
                "chunk_shape": mine[0].chunk_shape,
                **medians(mine),
                "to_nginx": None
                if "nginx" not in entries
                else statistics.median(rate[n, name] / rate[n, "nginx"] for n in rounds),
                "to_limit": to_limit(name),
            }
        )
    return rows


def table(results: dict[str, Any]) -> str:
    volume = results["volume"]
    shape = "x".join(map(str, volume["shape"]))
    lines = [
        f"{shape} uint16, {volume['file_bytes'] / 2**20:.0f} MiB {volume['compression']} in 64x128x128 chunks, served as "
        f"{results.get('served_codec', 'zstd')}; "
        f"{results['clients']} clients, server and in-process pool {results['threads']} threads; "
        f"medians of {results['rounds']} alternating rounds; {results['bytes_checked']} chunks checked equal",
        "",
        "| server | chunk | chunks | wall s | Mvoxel/s | MB/s on the wire | p50 ms | p99 ms | CPU s | / nginx | / in-process limit |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {row['server']} | {'x'.join(map(str, row['chunk_shape']))} | {row['chunks']} "
        f"| {row['wall_s']:.2f} | {row['mvoxel_s']:.0f} | {row['wire_mb_s']:.0f} | {row['p50_ms']:.1f} "
        f"| {row['p99_ms']:.1f} | {row['cpu_s']:.2f} "
        f"| {'-' if row['to_nginx'] is None else format(row['to_nginx'], '.3f') + 'x'} "
        f"| {'-' if row['to_limit'] is None else format(row['to_limit'], '.2f') + 'x'} |"
        for row in results["summary"]
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ome-zarr-gateway-bench" / "volume"
    )
    parser.add_argument("--planes", type=int, default=256, help="z planes of 1024x1024 uint16 (256: 512 MiB)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="gzip",
        help="how the volume is stored: gzip (+ shuffle, transcoded, default), deflate (gzip without "
        "shuffle, as BigDataViewer writes) or zstd / blosc (passed through; then the gateway with one "
        "and two worker processes, and nginx)",
    )
    parser.add_argument(
        "--codec",
        default="auto",
        choices=("auto", "zstd", "blosc-zstd", "gzip"),
        help="[chunks] codec of the gateway; the in-process encoder makes the same chunks (auto: "
        "the default; another: then only the gateway and its in-process limits run)",
    )
    parser.add_argument(
        "--z",
        type=int,
        default=0,
        help="also the gateway with [chunks] z = Z (a divisor of 64: slabs of the stored chunks) and its "
        "in-process limit: each stored chunk inflated once, each slab compressed from its byte planes",
    )
    parser.add_argument(
        "--client",
        choices=["curl", "aiohttp"],
        default="curl",
        help="HTTP client: curl --parallel (default; ~0.8 ms CPU per 2 MiB chunk) or aiohttp (~3.3 ms)",
    )
    args = parser.parse_args()
    HTTP_CLIENT["client"] = args.client
    if args.planes % CHUNK[0]:
        parser.error(f"--planes must be a multiple of {CHUNK[0]}")
    if args.z and (CHUNK[0] % args.z or args.z == 1 or args.source != "gzip" or args.codec != "auto"):
        parser.error(f"--z takes a divisor of {CHUNK[0]} above 1, with the default --source and --codec")
    return run_and_report(args.workdir, "results", lambda: measure(args, args.workdir), table)


if __name__ == "__main__":
    sys.exit(main())
