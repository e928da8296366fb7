#!/usr/bin/env python3
"""A whole level read over HTTP (issue 11, item 6): level 0 of a gzip HDF5 volume read by
zarr-python and by tensorstore from the gateway, against h5py reading the same file in this
process (``dataset[...]``), side by side in one run.

1. Writes once, cached in ``--workdir``, an HDF5 volume of ``--planes`` x ``--size`` x
   ``--size`` uint16 (default 256 x 512 x 512: 128 MiB of pixels) in 64 x 128 x 128 chunks,
   gzip-1 + shuffle (``--source deflate``: without shuffle; ``bench_volume.py``'s content),
   and its ``ome-zarr-gateway export`` (default settings) for nginx.
2. Per round, in an order reversed every other round, each of these once:
   - ``h5py``: ``h5py.File(path)[name][...]`` in this process (open included);
   - ``zarr-python <server>``: ``zarr.open_array(<level 0 URL>)[...]`` (FsspecStore over HTTP,
     zarr's default concurrency);
   - ``tensorstore <server>``: ``ts.open({"driver": "zarr3", "kvstore": <URL>}).read()``;
   where ``<server>`` is the gateway with default settings (a fresh process per read: cold
   caches; the file is in the page cache for all alike), ``--shard`` adds the gateway with
   virtual shards, ``--codecs`` the gateway with other ``[chunks] codec`` values, ``--z``
   the gateway with other ``[chunks] z`` depths (what a viewer-first layout costs), and nginx
   serving the export is the reference of a static copy.
3. Checks every read bit for bit against h5py's array, stops every process it started, prints
   a Markdown table (medians over rounds; ratios are medians of per-round ratios to h5py) and
   writes every run as JSON to ``--workdir``.

    python bench/bench_wholelevel.py            # 3 rounds, ~1 min on 2 cores (+ ~10 s once)
    python bench/bench_wholelevel.py --quick    # 64 planes, 1 round, ~15 s
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tensorstore as ts
import zarr

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

from bench_hot import Server, run_and_report, start_gateway, start_nginx  # noqa: E402
from bench_volume import DATASET, ROOT, ensure_export, ensure_volume, write_config  # noqa: E402

#: ``--source``: how the volume's chunks are stored (``bench_volume.py``'s sources)
COMPRESSION = {"gzip": "gzip-1 + shuffle", "deflate": "gzip-1"}

CLIENTS = ("zarr-python", "tensorstore")


@dataclass
class Read:
    round: int
    entry: str
    seconds: float
    server_cpu_s: float | None
    bit_exact: bool

    def mvoxel_s(self, voxels: int) -> float:
        return voxels / 1e6 / self.seconds


def read_zarr_python(url: str) -> np.ndarray:
    return np.asarray(zarr.open_array(url, mode="r")[...])


def read_tensorstore(url: str) -> np.ndarray:
    store = ts.open({"driver": "zarr3", "kvstore": url + "/"}, read=True).result()
    return np.asarray(store.read().result())


READERS: dict[str, Callable[[str], np.ndarray]] = {
    "zarr-python": read_zarr_python,
    "tensorstore": read_tensorstore,
}


def read_h5py(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return np.asarray(f[DATASET][...])


def entries(servers: list[str]) -> list[str]:
    return ["h5py", *(f"{client} {server}" for server in servers for client in CLIENTS)]


def schedule(names: list[str], rounds: int) -> Iterator[tuple[int, str]]:
    for round_ in range(rounds):
        yield from ((round_, name) for name in (names if round_ % 2 == 0 else names[::-1]))


@contextlib.contextmanager
def server_for(name: str, configs: dict[str, Path], workdir: Path, ready: str, tag: str) -> Iterator[Server]:
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    if name == "nginx":
        server = start_nginx(logs / "nginx", workdir / "static", ready)
    else:
        server = start_gateway(configs[name], logs / f"{name.replace(' ', '-')}-{tag}.log")
    try:
        yield server
    finally:
        server.stop()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    workdir: Path = args.workdir
    volume = ensure_volume(workdir / "data", args.planes, (args.size, args.size), source=args.source)
    ensure_export(volume, workdir / "static")
    expected = read_h5py(volume)
    level_path = f"/{ROOT}/{volume.name}/{DATASET}/0"
    configs = {"gateway": write_config(workdir / "gateway.toml", volume.parent, None)}
    servers = ["gateway"]
    for codec in filter(None, args.codecs.split(",")):
        configs[f"gateway {codec}"] = write_config(
            workdir / f"gateway-{codec}.toml", volume.parent, None, codec=codec
        )
        servers.append(f"gateway {codec}")
    for depth in (int(n) for n in filter(None, args.z.split(","))):
        configs[f"gateway z={depth}"] = write_config(workdir / f"gateway-z{depth}.toml", volume.parent, depth)
        servers.append(f"gateway z={depth}")
    if args.shard:
        shard = [int(n) for n in args.shard.split(",")]
        configs["gateway sharded"] = write_config(workdir / "gateway-sharded.toml", volume.parent, 1, shard)
        servers.append("gateway sharded")
    servers.append("nginx")
    names = entries(servers)
    reads: list[Read] = []
    for round_, name in schedule(names, args.rounds):
        if name == "h5py":
            started = time.perf_counter()
            data = read_h5py(volume)
            reads.append(
                Read(round_, name, time.perf_counter() - started, None, np.array_equal(data, expected))
            )
        else:
            client, server_name = name.split(" ", 1)
            with server_for(server_name, configs, workdir, f"{level_path}/zarr.json", f"{round_}") as server:
                cpu = server.cpu_seconds()
                started = time.perf_counter()
                data = READERS[client](server.base + level_path)
                seconds = time.perf_counter() - started
                reads.append(
                    Read(round_, name, seconds, server.cpu_seconds() - cpu, np.array_equal(data, expected))
                )
        del data
        last = reads[-1]
        print(
            f"  round {round_} {name:28s} {last.seconds:6.2f} s {last.mvoxel_s(expected.size):7.0f} Mvoxel/s"
            f"  bit-exact {last.bit_exact}",
            flush=True,
        )
    bad = [r for r in reads if not r.bit_exact]
    if bad:
        raise RuntimeError(f"reads that differ from h5py's array: {[(r.round, r.entry) for r in bad]}")
    return {
        "volume": {
            "name": volume.name,
            "shape": list(expected.shape),
            "chunks": [64, 128, 128],
            "file_bytes": volume.stat().st_size,
            "compression": COMPRESSION[args.source],
        },
        "rounds": args.rounds,
        "versions": {m: version(m) for m in ("zarr", "tensorstore", "h5py", "fsspec", "aiohttp")},
        "reads": [asdict(r) for r in reads],
        "summary": summarize(reads, names, expected.size),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_after": os.getloadavg(),
    }


def summarize(reads: list[Read], names: list[str], voxels: int) -> list[dict[str, Any]]:
    """Per entry: medians over rounds; ``to_h5py`` is the median of per-round speed ratios."""
    seconds = {(r.round, r.entry): r.seconds for r in reads}
    rounds = sorted({r.round for r in reads})
    rows = []
    for name in names:
        mine = [r for r in reads if r.entry == name]
        cpu = [r.server_cpu_s for r in mine if r.server_cpu_s is not None]
        rows.append(
            {
                "entry": name,
                "seconds": statistics.median(r.seconds for r in mine),
                "mvoxel_s": statistics.median(r.mvoxel_s(voxels) for r in mine),
                "server_cpu_s": statistics.median(cpu) if cpu else None,
                "to_h5py": statistics.median(seconds[n, "h5py"] / seconds[n, name] for n in rounds),
            }
        )
    return rows


def table(results: dict[str, Any]) -> str:
    volume = results["volume"]
    lines = [
        f"level 0 of {'x'.join(map(str, volume['shape']))} uint16, {volume['file_bytes'] / 2**20:.0f} MiB "
        f"{volume['compression']} in 64x128x128 chunks; medians of {results['rounds']} alternating rounds; "
        "every read bit-exact to h5py",
        "",
        "| reader | s | Mvoxel/s | server CPU s | / h5py |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in results["summary"]:
        cpu = "-" if row["server_cpu_s"] is None else f"{row['server_cpu_s']:.2f}"
        lines.append(
            f"| {row['entry']} | {row['seconds']:.2f} | {row['mvoxel_s']:.0f} | {cpu} | {row['to_h5py']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ome-zarr-gateway-bench" / "wholelevel"
    )
    parser.add_argument("--planes", type=int, default=256, help="z planes (default 256)")
    parser.add_argument("--size", type=int, default=512, help="y and x (default 512)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument(
        "--shard",
        default="64,1,1",
        help="add the gateway with [chunks] z = 1, shard = [..] ('' to leave it out)",
    )
    parser.add_argument(
        "--codecs",
        default="",
        help="comma-separated [chunks] codec values (zstd, blosc-zstd, gzip): a gateway so set for each",
    )
    parser.add_argument(
        "--z", default="", help="comma-separated [chunks] z depths: a gateway so set for each (e.g. 16)"
    )
    parser.add_argument(
        "--source",
        choices=sorted(COMPRESSION),
        default="gzip",
        help="gzip (+ shuffle, default) or deflate (gzip without shuffle, as BigDataViewer writes)",
    )
    parser.add_argument("--quick", action="store_true", help="64 planes, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.planes, args.rounds = 64, 1
    if args.planes % 64 or args.size % 128:
        parser.error("--planes must be a multiple of 64 and --size of 128")
    return run_and_report(args.workdir, "results", lambda: measure(args), table)


if __name__ == "__main__":
    sys.exit(main())
