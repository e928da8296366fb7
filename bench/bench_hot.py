#!/usr/bin/env python3
"""Hot cached chunks: the gateway against a bare Starlette app serving the same bytes from a
dict under the same uvicorn configuration, and against nginx serving them from disk.

The ceiling of the gateway's hot path is what uvicorn + Starlette cost for a response of
the same size; nginx is the fastest server of the same bytes. Alternated in one run, each
for ``--seconds`` with wrk at ``--connections`` connections, on two request mixes:

- ``one level``: 64 chunks of level 0 of one 4096x4096 uint16 TIFF (512x512 zstd tiles,
  served as they are stored);
- ``16 files``: 64 chunks spread over 16 TIFFs of 1024x1024 (4 chunks each).

1. Writes the files (noise of 12 bits: ~0.4 MB chunks), starts ``python -m gateway serve``
   and warms every chunk (GET, bytes kept with the gateway's ETag and Cache-Control).
2. Starts the bare app in its own process: ``gateway.web.serving.uvicorn_config`` (the
   configuration ``ome-zarr-gateway serve`` runs with: same HTTP protocol, event loop,
   limits) around one Starlette route answering from a dict, with the same headers.
3. Starts Debian's nginx (tests/deploy harness) with a server block serving the chunk
   files from disk.
4. Prints req/s, p50/p99 and the ratios gateway / bare app and gateway / nginx per mix.

    python bench/bench_hot.py                 # ~1.5 min: 3 rounds x 2 mixes x 3 servers x 4 s
    python bench/bench_hot.py --rounds 1 --seconds 2
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np
import tifffile

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from bench_nginx import WRK_SCRIPT, run_wrk  # noqa: E402

from tests.deploy.support import free_port, running_nginx, start_gateway, wait_for  # noqa: E402

MIXES = ("one level", "16 files")
SERVERS = ("gateway", "bare", "nginx")


def write_data(root: Path) -> dict[str, list[str]]:
    """The TIFFs of both mixes; the URL paths of the 64 chunks of each."""
    rng = np.random.default_rng(3)
    one = root / "lab" / "one" / "image.tif"
    one.parent.mkdir(parents=True, exist_ok=True)
    data = rng.integers(0, 4096, (4096, 4096), dtype=np.uint16)
    tifffile.imwrite(one, data, tile=(512, 512), compression="zstd", photometric="minisblack")
    paths = {"one level": [f"/lab/one/image.tif/0/c/{y}/{x}" for y in range(8) for x in range(8)]}
    many: list[str] = []
    for index in range(16):
        path = root / "lab" / "many" / f"f{index:02d}.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        tile = rng.integers(0, 4096, (1024, 1024), dtype=np.uint16)
        tifffile.imwrite(path, tile, tile=(512, 512), compression="zstd", photometric="minisblack")
        many += [f"/lab/many/f{index:02d}.tif/0/c/{y}/{x}" for y in range(2) for x in range(2)]
    paths["16 files"] = many
    return paths


def warm(base: str, paths: list[str], static_root: Path) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Each chunk from the gateway (twice: the second from its chunk cache), its bytes and
    headers kept for the bare app and written for nginx."""
    kept: dict[str, tuple[bytes, dict[str, str]]] = {}
    with httpx.Client(timeout=60) as client:
        for path in paths:
            first = client.get(base + path)
            again = client.get(base + path)
            assert first.status_code == again.status_code == 200 and first.content == again.content, path
            headers = {k: again.headers[k] for k in ("etag", "cache-control", "last-modified")}
            kept[path] = (again.content, headers)
            target = static_root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(again.content)
    return kept


def serve_bare(dump: Path, port: int) -> None:
    """The bare app (runs in its own process): the dict, one route, the gateway's uvicorn
    configuration."""
    import socket

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from gateway.config.settings import ServerSettings
    from gateway.web.serving import uvicorn_config

    chunks: dict[str, tuple[bytes, dict[str, str]]] = pickle.loads(dump.read_bytes())

    async def chunk(request: Request) -> Response:
        body, headers = chunks["/" + request.path_params["path"]]
        return Response(body, media_type="application/octet-stream", headers=headers)

    app = Starlette(routes=[Route("/{path:path}", chunk)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    uvicorn.Server(uvicorn_config(app, ServerSettings(), "warning")).run(sockets=[sock])


def measure(args: argparse.Namespace) -> list[dict[str, object]]:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="hot-", dir=workdir))
    paths = write_data(run_dir / "data")
    config = run_dir / "gateway.toml"
    config.write_text(
        f'[roots]\nlab = "{run_dir / "data" / "lab"}"\n[server]\naccess_log = "off"\n'
        '[cache]\nchunk_bytes = "256 MiB"\n'
    )
    static_root = run_dir / "static"
    static_port, bare_port = free_port(), free_port()
    static_site = (
        f"server {{\n    listen 127.0.0.1:{static_port};\n    root {static_root};\n"
        "    keepalive_requests 100000;\n    access_log off;\n    location / {}\n}\n"
    )
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is needed (Debian: apt-get install wrk)")
    script = run_dir / "paths.lua"
    script.write_text(WRK_SCRIPT)
    gateway = start_gateway(config, "hot")
    bare = None
    runs: list[dict[str, object]] = []
    try:
        kept = {}
        for mix in MIXES:
            kept.update(warm(gateway.base, paths[mix], static_root))
        dump = run_dir / "chunks.pickle"
        dump.write_bytes(pickle.dumps(kept))
        command = [sys.executable, __file__, "--serve-bare", str(dump), "--port", str(bare_port)]
        bare = subprocess.Popen(command, cwd=BENCH.parent)
        bare_base = f"http://127.0.0.1:{bare_port}"
        wait_for(lambda: httpx.get(bare_base + paths["one level"][0]).status_code == 200, "the bare app up")
        with running_nginx(run_dir / "nginx", [gateway], extra_site=static_site) as _nginx:
            bases = {"gateway": gateway.base, "bare": bare_base, "nginx": f"http://127.0.0.1:{static_port}"}
            for name, base in bases.items():  # same bytes from all three
                for path in (paths["one level"][5], paths["16 files"][37]):
                    assert httpx.get(base + path, timeout=30).content == kept[path][0], (name, path)
            for round_ in range(args.rounds):
                for mix in MIXES:
                    paths_file = run_dir / f"paths-{MIXES.index(mix)}.txt"
                    paths_file.write_text("\n".join(paths[mix]) + "\n")
                    for server in SERVERS:
                        requests, seconds, p50, p99, errors = run_wrk(
                            wrk, bases[server], paths_file, script, args.connections, args.seconds
                        )
                        run = {
                            "round": round_,
                            "mix": mix,
                            "server": server,
                            "rate": requests / seconds,
                            "p50_ms": p50,
                            "p99_ms": p99,
                            "errors": errors,
                        }
                        runs.append(run)
                        print(
                            f"  round {round_} {mix:9s} {server:7s} {run['rate']:8.0f} req/s "
                            f"p50 {p50:6.2f} ms p99 {p99:6.2f} ms errors {errors}",
                            flush=True,
                        )
    finally:
        gateway.process.stop()
        if bare is not None:
            bare.terminate()
            bare.wait(timeout=30)
    (run_dir / "results.json").write_text(json.dumps(runs, indent=1))
    return runs


def summarize(runs: list[dict[str, object]], connections: int) -> None:
    sizes = "~0.4 MB chunks of 512x512 uint16"
    print(f"\n{connections} connections, {sizes}; medians over rounds")
    print("| mix | server | req/s | p50 / p99 ms | gateway / this |")
    print("|---|---|---:|---:|---:|")
    for mix in MIXES:
        rates = {}
        for server in SERVERS:
            mine = [r for r in runs if r["mix"] == mix and r["server"] == server]
            rates[server] = statistics.median(float(r["rate"]) for r in mine)  # type: ignore[arg-type]
            p50 = statistics.median(float(r["p50_ms"]) for r in mine)  # type: ignore[arg-type]
            p99 = statistics.median(float(r["p99_ms"]) for r in mine)  # type: ignore[arg-type]
            ratio = rates["gateway"] / rates[server]
            print(f"| {mix} | {server} | {rates[server]:.0f} | {p50:.2f} / {p99:.2f} | {ratio:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir", default=str(Path(tempfile.gettempdir()) / "ome-zarr-gateway-bench" / "hot")
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--serve-bare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:
        serve_bare(args.serve_bare, args.port)
        return
    summarize(measure(args), args.connections)


if __name__ == "__main__":
    main()
