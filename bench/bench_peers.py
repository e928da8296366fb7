#!/usr/bin/env python3
"""The volume of ``bench_volume.py`` served by peers (issue 11, item 6): tiled, xpublish and
chunkmirage against the gateway and nginx serving a converted copy, by voxel throughput,
side by side in one run.

1. The volume and its export are ``bench_volume.py``'s (the same ``--workdir`` reuses them):
   ``--planes`` x 1024 x 1024 uint16 in 64 x 128 x 128 chunks, gzip-1 + shuffle.
2. Each peer runs from its own virtual environment, ``<--venvs>/<peer>``, made on first use
   with ``python3 -m venv`` and ``pip install`` of the versions pinned in ``PEERS`` (never
   the project's environment), and serves the HDF5 file by its own natural path:
   - ``tiled``: ``tiled serve directory`` (its HDF5 adapter), read through its Zarr v3
     endpoint ``/zarr/v3/<file>/<dataset>`` (blosc-lz4 chunks of the source's chunk shape);
   - ``xpublish``: ``xarray.open_dataset(engine="h5netcdf", chunks={})`` (dask chunks = the
     HDF5 chunks) served by ``ds.rest.serve`` with the ``xpublish-zarr`` plugin, ``/zarr/volume``;
   - ``chunkmirage``: ``chunkmirage serve file.h5::/volume --no-raw``, its Zarr v3 frontend
     ``/volume/zarr3/s0`` (level 0; blosc-zstd chunks, its default).
3. Also measured: the gateway with default settings, the gateway with virtual shards
   (``[chunks] z = 1, shard = --shard``: 64-plane shards of one-plane inner chunks, each
   fetched whole) and nginx serving the export.
   Per round, each server fresh (cold caches; the file is in the page cache for all alike),
   in an order reversed every other round: level 0's ``zarr.json`` and first chunk untimed,
   then ``--clients`` aiohttp clients (one connection each) fetch every other chunk once
   (``bench_volume.measure_http``). All serve 64 x 128 x 128 chunks (checked).
4. A sample of chunks from every run is decoded with zarr-python, by the codecs the server
   declared, and compared bit for bit with h5py's pixels.
5. Stops every process it started, prints a Markdown table (medians over rounds; ratios are
   medians of per-round ratios) and writes every run as JSON to ``--workdir``.

    python bench/bench_peers.py                        # 3 rounds, all peers (+ venvs once)
    python bench/bench_peers.py --quick --peers xpublish   # 64 planes, 1 round, one peer
"""

from __future__ import annotations

import argparse
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import zarr
import zarr.storage
from zarr.core.buffer import default_buffer_prototype

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

from bench_hot import Server, run_and_report, start_gateway, start_nginx  # noqa: E402
from bench_volume import (  # noqa: E402
    CHUNK,
    DATASET,
    ROOT,
    SAMPLE,
    Run,
    chunk_keys,
    ensure_export,
    ensure_volume,
    key_index,
    measure_http,
    medians,
    write_config,
)

from tests.deploy.support import free_port  # noqa: E402

#: xpublish has no command line: this script, run by the xpublish venv's Python, serves the file.
XPUBLISH_SERVE = """\
import sys

import xarray as xr
import xpublish  # noqa: F401  (registers the ``rest`` accessor)

path, variable, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
ds = xr.open_dataset(path, engine="h5netcdf", phony_dims="sort", chunks={})[[variable]]
ds.rest.serve(host="127.0.0.1", port=port, log_level="warning")
"""


@dataclass(frozen=True)
class Launch:
    args: list[str]
    array: str  # level 0's array, relative to the server's base URL (no leading slash)


@dataclass(frozen=True)
class Peer:
    name: str
    requirements: tuple[str, ...]  # pinned: a rerun measures the same versions
    launch: Callable[[Path, Path, Path, int], Launch]  # (venv, volume, workdir, port)


def launch_tiled(venv: Path, volume: Path, workdir: Path, port: int) -> Launch:
    """``tiled serve directory`` on a folder holding only the volume (it indexes the folder
    at start-up into its own catalog)."""
    folder = workdir / "peers" / f"tiled-{volume.stem}"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / volume.name
    if not link.exists():
        link.symlink_to(volume)
    args = [str(venv / "bin" / "tiled"), "serve", "directory", str(folder), "--public"]
    args += ["--host", "127.0.0.1", "--port", str(port)]
    return Launch(args, f"zarr/v3/{volume.stem}/{DATASET}")


def launch_xpublish(venv: Path, volume: Path, workdir: Path, port: int) -> Launch:
    script = workdir / "peers" / "xpublish_serve.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(XPUBLISH_SERVE)
    return Launch(
        [str(venv / "bin" / "python"), str(script), str(volume), DATASET, str(port)], f"zarr/{DATASET}"
    )


def launch_chunkmirage(venv: Path, volume: Path, workdir: Path, port: int) -> Launch:
    args = [
        str(venv / "bin" / "chunkmirage"),
        "serve",
        f"{volume}::/{DATASET}",
        "--name",
        DATASET,
        "--no-raw",
    ]
    args += ["--host", "127.0.0.1", "--port", str(port)]
    return Launch(args, f"{DATASET}/zarr3/s0")


PEERS = {
    peer.name: peer
    for peer in (
        Peer("tiled", ("tiled[server]==0.2.20", "h5py==3.16.0"), launch_tiled),
        Peer(
            "xpublish",
            (
                "xpublish==0.5.2",
                "xpublish-zarr==0.1.0",
                "xarray==2026.9.0",
                "h5netcdf==1.8.2",
                "h5py==3.16.0",
                "uvicorn==0.54.0",
            ),
            launch_xpublish,
        ),
        Peer("chunkmirage", ("chunkmirage==0.1.0a5", "h5py==3.16.0"), launch_chunkmirage),
    )
}


def ensure_venv(venvs: Path, peer: Peer) -> Path:
    """``<venvs>/<peer>`` with the pinned requirements, made (or remade) when its marker
    file does not list exactly them."""
    venv = venvs / peer.name
    marker = venv / "bench-requirements.txt"
    wanted = "\n".join(peer.requirements) + "\n"
    if marker.exists() and marker.read_text() == wanted:
        return venv
    python = shutil.which("python3") or sys.executable
    print(f"making {venv} ({' '.join(peer.requirements)}) ...", flush=True)
    log = venvs / f"{peer.name}-pip.log"
    venvs.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        for command in (
            [python, "-m", "venv", str(venv)],
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                *peer.requirements,
            ],
        ):
            if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                raise RuntimeError(f"{' '.join(command)} failed (see {log}):\n{tail}")
    marker.write_text(wanted)
    return venv


# --- checking the bytes -------------------------------------------------------------------


def decode_sample(meta: bytes, bodies: dict[str, bytes]) -> dict[tuple[int, ...], np.ndarray]:
    """The sampled chunks decoded by zarr-python with the codecs the server declared (an
    in-memory store holding the array's ``zarr.json`` and exactly the bytes received)."""
    prototype = default_buffer_prototype()
    items = {"zarr.json": prototype.buffer.from_bytes(meta)}
    for key, body in bodies.items():
        items["c/" + key.rsplit("/c/", 1)[1]] = prototype.buffer.from_bytes(body)
    array = zarr.open_array(zarr.storage.MemoryStore(items), mode="r")
    grid = json.loads(meta)["chunk_grid"]["configuration"]["chunk_shape"]  # shards, if sharded
    decoded = {}
    for key in bodies:
        index = key_index(key)
        region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, grid, strict=True))
        decoded[index] = np.asarray(array[region])
    return decoded


def check_sample(run: Run, meta: bytes, dataset: h5py.Dataset, sample: set[tuple[int, ...]]) -> int:
    got = {key_index(key) for key in run.sample}
    if got != sample:
        raise RuntimeError(f"round {run.round} {run.server}: sampled chunks missing {sorted(sample - got)}")
    for index, pixels in decode_sample(meta, run.sample).items():
        region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, CHUNK, strict=True))
        if not np.array_equal(pixels, dataset[region]):
            raise RuntimeError(f"round {run.round} {run.server}: chunk {index} differs from h5py's pixels")
    return len(sample)


def codecs_of(meta: bytes) -> str:
    """``zstd``, ``blosc lz4``, ``shards of zstd``...: what the server compresses with."""

    def names(codecs: list[dict[str, Any]]) -> list[str]:
        found = []
        for codec in codecs:
            config = codec.get("configuration", {})
            if codec["name"] == "sharding_indexed":
                found.append("shards of " + "+".join(names(config.get("codecs", []))))
            elif codec["name"] != "bytes":
                found.append(" ".join(str(x) for x in (codec["name"], config.get("cname")) if x))
        return found

    return "+".join(names(json.loads(meta).get("codecs", []))) or "none"


# --- the schedule -------------------------------------------------------------------------


def schedule(names: list[str], rounds: int) -> Iterator[tuple[int, str]]:
    for round_ in range(rounds):
        yield from ((round_, name) for name in (names if round_ % 2 == 0 else names[::-1]))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    workdir: Path = args.workdir
    volume = ensure_volume(workdir / "data", args.planes)
    ensure_export(volume, workdir / "static")
    peers = [PEERS[name] for name in args.peers]
    venvs = {peer.name: ensure_venv(args.venvs, peer) for peer in peers}
    dataset_path = f"/{ROOT}/{volume.name}"
    configs = {"gateway": write_config(workdir / "gateway.toml", volume.parent, None)}
    if args.shard:
        shard = [int(n) for n in args.shard.split(",")]
        configs["gateway sharded"] = write_config(workdir / "gateway-sharded.toml", volume.parent, 1, shard)
    blocks = [key_index(key) for key in chunk_keys([args.planes, 1024, 1024], list(CHUNK))]
    sample = set(random.Random(7).sample(blocks[1:], min(SAMPLE, len(blocks) - 1))) | {blocks[-1]}
    names = [*configs, "nginx", *(peer.name for peer in peers)]
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    runs: list[Run] = []
    codecs: dict[str, str] = {}
    checked = 0
    with h5py.File(volume, "r") as f:
        pixels = f[DATASET]
        for round_, name in schedule(names, args.rounds):
            run = Run(round_, name)
            with contextlib.ExitStack() as stack:  # stopped whatever happens
                if name not in PEERS:
                    base, array = dataset_path, f"{DATASET}/0"
                    if name == "nginx":
                        server = start_nginx(logs / "nginx", workdir / "static", f"{base}/zarr.json")
                    else:
                        log = logs / f"{name.replace(' ', '-')}-{round_}.log"
                        server = start_gateway(configs[name], log)
                else:
                    port = free_port()
                    launch = PEERS[name].launch(venvs[name], volume, workdir, port)
                    base, array = "", launch.array
                    log = logs / f"{name}-{round_}.log"
                    server = Server.start(name, port, launch.args, log, f"/{array}/zarr.json")
                stack.callback(server.stop)
                keys = {f"{array}/c/" + "/".join(map(str, index)) for index in sample}
                measure_http(server, base, args.clients, run, keys, array)
                meta = httpx.get(f"{server.base}{base}/{array}/zarr.json", timeout=60).content
            if run.chunk_shape != list(CHUNK):
                raise RuntimeError(f"{name} serves {run.chunk_shape} chunks, not {list(CHUNK)}")
            checked += check_sample(run, meta, pixels, sample)
            codecs[name] = codecs_of(meta)
            runs.append(run)
            print(
                f"  round {round_} {name:12s} {run.chunks:5d} chunks {run.wall_s:6.2f} s "
                f"{run.mvoxel_s:7.1f} Mvoxel/s {run.wire_mb_s:6.0f} MB/s  p50 {run.percentile_ms(0.5):7.1f} ms  "
                f"CPU {run.cpu_s:5.1f} s",
                flush=True,
            )
    return {
        "volume": {
            "name": volume.name,
            "shape": [args.planes, 1024, 1024],
            "chunks": list(CHUNK),
            "file_bytes": volume.stat().st_size,
            "compression": "gzip-1 + shuffle",
        },
        "clients": args.clients,
        "rounds": args.rounds,
        "peers": {peer.name: list(peer.requirements) for peer in peers},
        "codecs": codecs,
        "runs": [run.summary() for run in runs],
        "summary": summarize(runs, names, codecs),
        "chunks_checked_bit_exact": checked,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_after": os.getloadavg(),
    }


# --- report -------------------------------------------------------------------------------


def summarize(runs: list[Run], names: list[str], codecs: dict[str, str]) -> list[dict[str, Any]]:
    """Per server: medians over rounds; ratios are medians of per-round ratios of Mvoxel/s."""
    rate = {(r.round, r.server): r.mvoxel_s for r in runs}
    rounds = sorted({r.round for r in runs})
    rows = []
    for name in names:
        mine = [r for r in runs if r.server == name]
        rows.append(
            {
                "server": name,
                "codec": codecs[name],
                **medians(mine),
                "to_nginx": statistics.median(rate[n, name] / rate[n, "nginx"] for n in rounds),
                "to_gateway": statistics.median(rate[n, name] / rate[n, "gateway"] for n in rounds),
            }
        )
    return rows


def table(results: dict[str, Any]) -> str:
    volume = results["volume"]
    lines = [
        f"{'x'.join(map(str, volume['shape']))} uint16, {volume['file_bytes'] / 2**20:.0f} MiB gzip-1 + shuffle "
        f"in 64x128x128 chunks, every server serving 64x128x128 chunks; {results['clients']} clients; medians of "
        f"{results['rounds']} alternating rounds; {results['chunks_checked_bit_exact']} chunks decoded bit-exact",
        "",
        "| server | codec | chunks | wall s | Mvoxel/s | MB/s on the wire | p50 ms | p99 ms | server CPU s "
        "| / nginx | / gateway |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {row['server']} | {row['codec']} | {row['chunks']} | {row['wall_s']:.2f} | {row['mvoxel_s']:.1f} "
        f"| {row['wire_mb_s']:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['cpu_s']:.2f} "
        f"| {row['to_nginx']:.3f}x | {row['to_gateway']:.3f}x |"
        for row in results["summary"]
    ]
    peers = [row for row in results["summary"] if row["server"] in PEERS]
    if peers:
        lines += [
            "",
            "gateway ÷ peer: " + ", ".join(f"{1 / row['to_gateway']:.1f}x {row['server']}" for row in peers),
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    bench_dir = Path(tempfile.gettempdir()) / "ome-zarr-gateway-bench"
    parser.add_argument(
        "--workdir", type=Path, default=bench_dir / "volume", help="shared with bench_volume.py"
    )
    parser.add_argument(
        "--venvs", type=Path, default=bench_dir / "venvs", help="the peers' virtual environments"
    )
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, of {', '.join(PEERS)}")
    parser.add_argument("--planes", type=int, default=256, help="z planes of 1024x1024 uint16 (256: 512 MiB)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument(
        "--shard",
        default="64,1,1",
        help="add the gateway with [chunks] z = 1, shard = [..] ('' to leave it out)",
    )
    parser.add_argument("--quick", action="store_true", help="64 planes, 1 round")
    args = parser.parse_args()
    args.peers = [name for name in args.peers.split(",") if name]
    if unknown := set(args.peers) - set(PEERS):
        parser.error(f"unknown peers {sorted(unknown)}; known: {', '.join(PEERS)}")
    if args.quick:
        args.planes, args.rounds = 64, 1
    if args.planes % CHUNK[0]:
        parser.error(f"--planes must be a multiple of {CHUNK[0]}")
    return run_and_report(args.workdir, "peers", lambda: measure(args), table)


if __name__ == "__main__":
    sys.exit(main())
