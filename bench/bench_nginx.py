#!/usr/bin/env python3
"""nginx proxy-cache HITs through the shipped site config against the same nginx serving the
same bytes as static files, inside Debian's default ``nginx.conf``.

1. Writes a tiled TIFF (``--chunks`` tiles of 256x256 uint16, zstd; noise of varying depth,
   so the chunks are ~90-125 KB like real fluorescence chunks) into ``--workdir``.
2. Starts one gateway (``python -m gateway serve``) and Debian's nginx with Debian's
   ``/etc/nginx/nginx.conf`` (``sendfile on; tcp_nopush on;`` as shipped; only pid, logs,
   temp paths, user and the site include changed: tests/deploy/support.py
   ``debian_main_config``), including the rendered deploy/nginx template (``--template``
   to measure another one) and a second server block that serves a directory holding every
   chunk's bytes as plain files under the same paths.
3. Warms the proxy cache (every chunk requested until nginx says HIT), checks the HIT bytes
   equal the static files, then alternates, ``--rounds`` times: at 16 connections and on 1
   keep-alive connection, (a) cache HITs through the template and (b) static files, each
   for ``--seconds`` with ``wrk`` cycling over every chunk path (a bounded Python load
   generator when wrk is missing; ``apt-get install wrk`` gets it).
4. Prints req/s, p50/p99 latency and the HIT/static ratio (median over rounds); writes the
   full results as JSON to the work directory.

    python bench/bench_nginx.py                   # ~1 min: 3 rounds x 4 runs x 4 s
    python bench/bench_nginx.py --quick           # ~15 s
    python bench/bench_nginx.py --template old.conf.template   # another template
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
import tifffile

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.deploy.support import free_port, running_nginx, start_gateway  # noqa: E402

PREFIX = "/zarr"
FILE = "lab/chunks.tif"
TILE = 256
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGETS = {16: 0.9, 1: 0.5}  # HIT/static at 16 connections and on one (issue 9, item 10)

WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("BENCH %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), bad))
end
"""


@dataclass
class Run:
    kind: str  # "hit" or "static"
    connections: int
    round: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str
    cpu_us: float = 0.0  # nginx workers' CPU time per request: steadier than req/s when shared

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def write_tiff(path: Path, tiles_per_side: int) -> None:
    """Noise whose depth varies from tile to tile: zstd chunks of ~90-125 KB."""
    rng = np.random.default_rng(9)
    size = tiles_per_side * TILE
    depth = np.linspace(9, 14, tiles_per_side * tiles_per_side).reshape(tiles_per_side, tiles_per_side)
    data = np.empty((size, size), np.uint16)
    for (ty, tx), bits in np.ndenumerate(depth):
        tile = rng.integers(0, 2 ** round(float(bits)), (TILE, TILE), dtype=np.uint16) + 1
        data[ty * TILE : (ty + 1) * TILE, tx * TILE : (tx + 1) * TILE] = tile
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data, tile=(TILE, TILE), compression="zstd", photometric="minisblack")


def warm(base: str, static_root: Path, paths: list[str]) -> list[int]:
    """Every chunk through nginx until it is a HIT; its bytes written as the static file."""
    sizes = []
    with httpx.Client(timeout=30) as client:
        for path in paths:
            first = client.get(base + path)
            assert first.status_code == 200, (path, first.status_code)
            target = static_root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(first.content)
            again = client.get(base + path)
            assert again.headers.get("x-cache-status") == "HIT", (path, again.headers)
            assert again.content == first.content
            sizes.append(len(first.content))
    return sizes


def worker_cpu_seconds(master_pid: int) -> float:
    """User + system CPU time of nginx's worker processes (children of the master)."""
    total = 0
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    for pid in children:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / CLK_TCK


def run_wrk(wrk: str, base: str, paths_file: Path, script: Path, connections: int, seconds: int) -> tuple:
    threads = min(connections, 2)
    done = subprocess.run(
        [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), base],
        env={"BENCH_PATHS": str(paths_file), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH "))
    requests, micros, p50, p99, errors = (int(v) for v in line.split()[1:])
    return requests, micros / 1e6, p50 / 1e3, p99 / 1e3, errors


async def _python_load(host: str, port: int, paths: list[str], connections: int, seconds: float) -> tuple:
    """Keep-alive HTTP/1.1 GETs over ``connections`` sockets for ``seconds`` (bounded)."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def one(offset: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        index = offset
        try:
            while time.perf_counter() < deadline:
                path = paths[index % len(paths)]
                index += 1
                start = time.perf_counter()
                writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(v)
                    for k, _, v in (x.partition(b":") for x in head.split(b"\r\n"))
                    if k.lower() == b"content-length"
                )
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
                errors += not head.startswith(b"HTTP/1.1 200")
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(one(i * 7) for i in range(connections)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1e3
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3
    return len(latencies), elapsed, p50, p99, errors


def measure(args: argparse.Namespace) -> dict:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="nginx-", dir=workdir))
    data = run_dir / "data"
    write_tiff(data / FILE, args.tiles)
    config = run_dir / "gateway.toml"
    config.write_text(f'[roots]\nlab = "{data / "lab"}"\n[server]\nroot_path = "{PREFIX}"\n')
    static_root = run_dir / "static"
    static_root.mkdir()
    static_port = free_port()
    static_site = (
        "# the same bytes as files, with whatever the surrounding http block sets\n"
        f"server {{\n    listen 127.0.0.1:{static_port};\n    root {static_root};\n"
        "    keepalive_requests 10000;\n    location / {}\n}\n"
    )
    wrk = shutil.which("wrk")
    if wrk is None:
        print(
            "wrk is missing (Debian: apt-get install wrk): using the Python load generator", file=sys.stderr
        )
    gateway = start_gateway(config, "bench")
    runs: list[Run] = []
    try:
        template = Path(args.template) if args.template else None
        with running_nginx(run_dir / "nginx", [gateway], extra_site=static_site, template=template) as nginx:
            paths = [f"{PREFIX}/{FILE}/0/c/{y}/{x}" for y in range(args.tiles) for x in range(args.tiles)]
            sizes = warm(nginx.http, static_root, paths)
            paths_file = run_dir / "paths.txt"
            paths_file.write_text("\n".join(paths) + "\n")
            script = run_dir / "paths.lua"
            script.write_text(WRK_SCRIPT)
            static_paths = [p for p in paths]  # the static tree mirrors the URL paths
            bases = {"hit": (nginx.http_port, paths), "static": (static_port, static_paths)}
            for round_ in range(args.rounds):
                for connections in (16, 1):
                    for kind in ("hit", "static"):
                        port, kind_paths = bases[kind]
                        base = f"http://127.0.0.1:{port}"
                        cpu = worker_cpu_seconds(nginx.process.popen.pid)
                        if wrk:
                            figures = run_wrk(wrk, base, paths_file, script, connections, args.seconds)
                        else:
                            figures = asyncio.run(
                                _python_load("127.0.0.1", port, kind_paths, connections, args.seconds)
                            )
                        cpu = worker_cpu_seconds(nginx.process.popen.pid) - cpu
                        tool = "wrk" if wrk else "python"
                        run = Run(kind, connections, round_, *figures, tool, cpu * 1e6 / max(figures[0], 1))
                        runs.append(run)
                        print(
                            f"  round {round_} c={connections:2d} {kind:6s} {run.rate:9.0f} req/s "
                            f"p50 {run.p50_ms:6.2f} ms p99 {run.p99_ms:6.2f} ms nginx CPU {run.cpu_us:5.1f} us/req "
                            f"errors {run.errors}",
                            flush=True,
                        )
            hits = [line for line in nginx.access_log.splitlines() if "cache=HIT" in line]
            assert hits, "no cache HIT in nginx's access log"
    finally:
        gateway.process.stop()
    return {
        "chunk_bytes": {"min": min(sizes), "median": statistics.median(sizes), "max": max(sizes)},
        "runs": [asdict(r) | {"rate": r.rate} for r in runs],
        "template": args.template or "deploy/nginx/ome-zarr-gateway.conf.template",
        "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
        "machine": platform.platform(),
    }


def summarize(results: dict) -> None:
    runs = [Run(**{k: v for k, v in r.items() if k != "rate"}) for r in results["runs"]]
    sizes = results["chunk_bytes"]
    print(
        f"\nchunks {sizes['min'] / 1e3:.0f}-{sizes['max'] / 1e3:.0f} KB (median {sizes['median'] / 1e3:.0f})"
    )
    print(
        "| connections | cache HIT req/s | p50 / p99 ms | static req/s | p50 / p99 ms "
        "| HIT/static | target | nginx CPU us/req HIT / static |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for connections, target in TARGETS.items():
        row = {}
        for kind in ("hit", "static"):
            mine = [r for r in runs if r.kind == kind and r.connections == connections]
            row[kind] = (
                statistics.median(r.rate for r in mine),
                statistics.median(r.p50_ms for r in mine),
                statistics.median(r.p99_ms for r in mine),
                statistics.median(r.cpu_us for r in mine),
            )
        ratio = row["hit"][0] / row["static"][0]
        print(
            f"| {connections} | {row['hit'][0]:.0f} | {row['hit'][1]:.2f} / {row['hit'][2]:.2f} "
            f"| {row['static'][0]:.0f} | {row['static'][1]:.2f} / {row['static'][2]:.2f} "
            f"| {ratio:.2f}x | >= {target}x {'ok' if ratio >= target else 'MISSED'} "
            f"| {row['hit'][3]:.0f} / {row['static'][3]:.0f} |"
        )
    errors = sum(r.errors for r in runs)
    if errors:
        print(f"{errors} non-200 answers or socket errors")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir", default=str(Path(tempfile.gettempdir()) / "ome-zarr-gateway-bench" / "nginx")
    )
    parser.add_argument("--template", help="a site template to measure instead of the shipped one")
    parser.add_argument("--tiles", type=int, default=8, help="tiles per side (8: 64 chunks)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--seconds", type=int, default=4, help="seconds per run")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 2
    results = measure(args)
    out = Path(args.workdir) / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=1))
    summarize(results)
    print(f"full results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
