#!/usr/bin/env python3
"""Hot cached chunks (issue 10, item 5): the gateway against a bare Starlette app serving the
same bytes from a dict under the same uvicorn configuration, and against nginx serving them
from disk.

The bare app is the ceiling of the gateway's hot path (what uvicorn + Starlette cost for a
response of the same bytes and headers); nginx is the fastest server of those bytes. Two
request mixes of 64 chunks of 512x512 uint16 (12-bit noise, zstd tiles passed through as
they are stored, ~0.4 MB each):

- ``one level``: the 8x8 chunks of level 0 of one pyramidal OME-TIFF (4096x4096, 4 levels);
- ``16 files``: the 2x2 chunks of level 0 of each of 16 pyramidal OME-TIFFs (1024x1024).

1. Writes the files to a temporary directory under ``--workdir``; starts the gateway
   (``python -m gateway serve gateway.toml``: access log as deployed, JSON lines on stdout,
   here to a file; metrics on; a chunk cache that holds every chunk) and warms every chunk
   (GET twice: the second answer comes from the chunk cache).
2. Starts the bare app (``bare_app.py``): the gateway's answers, bytes and headers, in a
   dict, run by the same config file, socket binding, ``uvicorn_config`` and log level.
3. Starts Debian's nginx (its own ``nginx.conf``, the static server block in the
   conventions of ``deploy/nginx``) serving the same bytes as files, under the same paths.
4. Checks that all three answer every chunk with the same bytes; a warm-up pass of wrk for
   each server and mix; then ``--rounds`` rounds, alternating in one run (the order of the
   servers reversed every other round), wrk for ``--seconds`` at ``--connections``
   connections, cycling over the 64 paths of a mix.
5. Checks that the gateway's chunk cache missed nothing while measured, stops every process
   it started, prints a Markdown table (median per server over the rounds; ratios are
   medians of the per-round ratios, from runs seconds apart) and writes the full results,
   every run included, as JSON to ``--workdir``.

    python bench/bench_hot.py                          # ~2 min: 3 rounds x 2 mixes x 3 servers x 4 s
    python bench/bench_hot.py --seconds 3 --rounds 1   # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn

import httpx
import numpy as np
import tifffile

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

from bare_app import Chunks  # noqa: E402
from bench_nginx import WRK_SCRIPT, run_wrk  # noqa: E402

from gateway.config import load_settings  # noqa: E402
from gateway.web.serving import uvicorn_config  # noqa: E402
from tests.deploy.support import debian_main_config, free_port, metric_total  # noqa: E402

MIXES = ("one level", "16 files")
SERVERS = ("gateway", "bare", "nginx")
TILE = 512
#: headers each server sets itself: the bare app gets every other header of the gateway's answer
OWN_HEADERS = frozenset({"date", "server", "content-length", "connection", "keep-alive", "transfer-encoding"})

#: The gateway as deployed (deploy/README.md's systemd config and the Kubernetes ConfigMap
#: both log one JSON line per request), metrics on (the default), and a chunk cache far
#: larger than the 128 chunks (~50 MB), so every measured request is a cache hit.
GATEWAY_CONFIG = """\
[roots]
lab = "{root}"

[server]
access_log = "json"
metrics = true

[cache]
chunk_bytes = "512 MiB"
"""

#: nginx serving the chunk files: the server-block settings of deploy/nginx's template
#: (sendfile without TCP_CORK, TCP_NODELAY, keep-alive, open-file cache, no gzip) with an
#: access log like it, inside Debian's own nginx.conf.
STATIC_SITE = """\
server {{
    listen 127.0.0.1:{port};
    root {root};
    access_log {log};
    server_tokens off;
    gzip off;
    keepalive_requests 10000;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    open_file_cache max=256 inactive=20s;
    open_file_cache_valid 10s;
    location / {{}}
}}
"""


# --- the data -----------------------------------------------------------------------------


def write_pyramid(path: Path, data: np.ndarray, levels: int) -> None:
    """A pyramidal OME-TIFF: ``data`` and ``levels - 1`` halvings as SubIFDs, 512x512 zstd
    tiles (valid zarr chunks: the gateway passes them through)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"tile": (TILE, TILE), "compression": "zstd", "photometric": "minisblack"}
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(data, subifds=levels - 1, metadata={"axes": "YX"}, **options)
        for _ in range(1, levels):
            data = data[::2, ::2]
            tif.write(data, subfiletype=1, **options)


def write_data(root: Path) -> dict[str, list[str]]:
    """The files of both mixes under ``root/lab``; the URL paths of each mix's 64 chunks."""
    rng = np.random.default_rng(3)
    write_pyramid(root / "one" / "image.ome.tif", rng.integers(0, 4096, (4096, 4096), dtype=np.uint16), 4)
    paths = {"one level": [f"/lab/one/image.ome.tif/0/c/{y}/{x}" for y in range(8) for x in range(8)]}
    many: list[str] = []
    for index in range(16):
        name = f"f{index:02d}.ome.tif"
        write_pyramid(root / "many" / name, rng.integers(0, 4096, (1024, 1024), dtype=np.uint16), 2)
        many += [f"/lab/many/{name}/0/c/{y}/{x}" for y in range(2) for x in range(2)]
    paths["16 files"] = many
    return paths


# --- the servers --------------------------------------------------------------------------


@dataclass
class Server:
    """A server process this benchmark started (and stops, through its own Popen); its
    output goes to a file, so that reading it costs the benchmark no CPU while it measures."""

    name: str
    base: str
    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, port: int, args: list[str], log: Path, ready_path: str) -> Server:
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO
            )
        server = cls(name, f"http://127.0.0.1:{port}", popen, log)
        try:
            server.wait_until_ready(ready_path)
        except BaseException:
            server.stop()
            raise
        return server

    def wait_until_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}):\n{self.tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.base + path, timeout=5).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready in {timeout} s:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process and its children (nginx's workers)."""
        pids = [self.popen.pid]
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{self.popen.pid}/task").iterdir():
                pids += [int(p) for p in (task / "children").read_text().split()]
        ticks = 0
        for pid in pids:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (graceful), SIGKILL after ``timeout``."""
        if self.popen.poll() is None:
            self.popen.terminate()
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def start_gateway(config: Path, log: Path) -> Server:
    port = free_port()
    args = [sys.executable, "-m", "gateway", "serve", str(config), "--port", str(port)]
    return Server.start("gateway", port, args, log, "/health")


def start_bare(chunks: Chunks, config: Path, directory: Path) -> Server:
    dump = directory / "chunks.pickle"
    dump.write_bytes(pickle.dumps(chunks))
    port = free_port()
    args = [sys.executable, str(BENCH / "bare_app.py"), str(dump), str(config), str(port)]
    return Server.start("bare", port, args, directory / "bare.log", next(iter(chunks)))


def start_nginx(
    directory: Path, static_root: Path, ready_path: str, site_template: str = STATIC_SITE
) -> Server:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is needed (Debian: apt-get install nginx-light)")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)  # workers may run as another user
    port = free_port()
    site = directory / "static.conf"
    site.write_text(site_template.format(port=port, root=static_root, log=directory / "static-access.log"))
    conf = directory / "nginx.conf"
    conf.write_text(debian_main_config(directory, [site]))
    args = [nginx, "-c", str(conf), "-e", str(directory / "error.log"), "-g", "daemon off;"]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{check.stderr}")
    return Server.start("nginx", port, args, directory / "nginx.log", ready_path)


# --- warming and checking -----------------------------------------------------------------


def warm(base: str, paths: list[str], static_root: Path) -> Chunks:
    """Every chunk from the gateway twice (the second from its chunk cache): its bytes and
    headers kept for the bare app and written as a file for nginx."""
    kept: Chunks = {}
    with httpx.Client(timeout=60) as client:
        for path in paths:
            first, again = client.get(base + path), client.get(base + path)
            if not (first.status_code == again.status_code == 200 and first.content == again.content):
                raise RuntimeError(f"{path}: {first.status_code}, then {again.status_code} or other bytes")
            headers = {k: v for k, v in again.headers.items() if k.lower() not in OWN_HEADERS}
            kept[path] = (again.content, headers)
            target = static_root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(again.content)
    return kept


def check_same_bytes(servers: dict[str, Server], kept: Chunks) -> None:
    for server in servers.values():
        with httpx.Client(base_url=server.base, timeout=30) as client:
            for path, (body, _) in kept.items():
                answer = client.get(path)
                if answer.status_code != 200 or answer.content != body:
                    raise RuntimeError(f"{server.name} {path}: {answer.status_code}, not the gateway's bytes")


def chunk_cache_lookups(gateway: Server) -> dict[str, float]:
    text = httpx.get(gateway.base + "/metrics", timeout=10).text
    return {
        result: metric_total(text, "gateway_cache_lookups_total", cache="chunks", result=result)
        for result in ("hit", "miss", "shared")
    }


# --- measuring ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    round: int
    mix: str
    server: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx/3xx answers and socket errors, as wrk counts them
    cpu_us: float  # the server's CPU time per request: steadier than req/s on a shared machine

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


class Load:
    """wrk cycling over one mix's paths (one file of paths per mix, one Lua script)."""

    def __init__(self, directory: Path, paths: dict[str, list[str]], connections: int) -> None:
        wrk = shutil.which("wrk")
        if wrk is None:
            raise SystemExit("wrk is needed (Debian: apt-get install wrk)")
        self.wrk = wrk
        self.script = directory / "paths.lua"
        self.script.write_text(WRK_SCRIPT)
        self.files: dict[str, Path] = {}
        for index, mix in enumerate(MIXES):
            self.files[mix] = directory / f"paths-{index}.txt"
            self.files[mix].write_text("\n".join(paths[mix]) + "\n")
        self.connections = connections

    def run(self, server: Server, mix: str, seconds: int, round_: int) -> Run:
        cpu = server.cpu_seconds()
        requests, elapsed, p50, p99, errors = run_wrk(
            self.wrk, server.base, self.files[mix], self.script, self.connections, seconds
        )
        cpu = server.cpu_seconds() - cpu
        return Run(
            round_, mix, server.name, requests, elapsed, p50, p99, errors, cpu * 1e6 / max(requests, 1)
        )


def schedule(rounds: int) -> Iterator[tuple[int, str, str]]:
    """(round, mix, server): every server on every mix per round, the order reversed every
    other round, so that no server always runs first or after the same neighbour."""
    plan = [(mix, server) for mix in MIXES for server in SERVERS]
    for round_ in range(rounds):
        for mix, server in plan if round_ % 2 == 0 else plan[::-1]:
            yield round_, mix, server


def measure(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    paths = write_data(run_dir / "data" / "lab")
    config = run_dir / "gateway.toml"
    config.write_text(GATEWAY_CONFIG.format(root=run_dir / "data" / "lab"))
    static_root = run_dir / "static"
    load = Load(run_dir, paths, args.connections)
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:  # every server started is stopped, whatever happens
        gateway = start_gateway(config, run_dir / "gateway.log")
        stack.callback(gateway.stop)
        kept: Chunks = {}
        for mix in MIXES:
            kept |= warm(gateway.base, paths[mix], static_root)
        bare = start_bare(kept, config, run_dir)
        stack.callback(bare.stop)
        nginx = start_nginx(run_dir / "nginx", static_root, paths["one level"][0])
        stack.callback(nginx.stop)
        servers = {"gateway": gateway, "bare": bare, "nginx": nginx}
        check_same_bytes(servers, kept)
        if args.warmup > 0:
            print(f"warm-up: {args.warmup} s per server and mix", flush=True)
            for _, mix, name in schedule(1):
                load.run(servers[name], mix, args.warmup, -1)
        before = chunk_cache_lookups(gateway)
        for round_, mix, name in schedule(args.rounds):
            run = load.run(servers[name], mix, args.seconds, round_)
            runs.append(run)
            print(
                f"  round {round_} {mix:9s} {name:7s} {run.rate:8.0f} req/s  p50 {run.p50_ms:6.2f} ms"
                f"  p99 {run.p99_ms:6.2f} ms  CPU {run.cpu_us:5.0f} us/req  errors {run.errors}",
                flush=True,
            )
        after = chunk_cache_lookups(gateway)
    access_lines = sum(1 for line in (run_dir / "gateway.log").open(errors="replace") if line.startswith("{"))
    cache = {result: after[result] - before[result] for result in after}
    if cache["miss"] or cache["shared"]:
        print(f"WARNING: the chunk cache was not hot while measured: {cache}", file=sys.stderr)
    return {
        "runs": [asdict(run) | {"rate": run.rate} for run in runs],
        "summary": summarize(runs),
        "chunk_bytes": {
            mix: {"min": min(sizes), "median": statistics.median(sizes), "max": max(sizes)}
            for mix in MIXES
            for sizes in [[len(kept[p][0]) for p in paths[mix]]]
        },
        "chunk_cache_during_measurement": cache,
        "gateway_access_log_lines": access_lines,
        "gateway_config": GATEWAY_CONFIG.format(root="<data>"),
        "uvicorn": uvicorn_settings(config),
        "versions": versions(),
        "connections": args.connections,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "warmup_seconds": args.warmup,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_after": os.getloadavg(),
    }


def summarize(runs: list[Run]) -> list[dict[str, Any]]:
    """Per mix and server: medians over the rounds; ratios are medians of the per-round
    ratios (each against the bare app's and nginx's run of the same round)."""
    rows = []
    for mix in MIXES:
        rate = {(r.round, r.server): r.rate for r in runs if r.mix == mix}
        rounds = sorted({r.round for r in runs if r.mix == mix})
        for server in SERVERS:
            mine = [r for r in runs if r.mix == mix and r.server == server]
            rows.append(
                {
                    "mix": mix,
                    "server": server,
                    "rate": statistics.median(r.rate for r in mine),
                    "to_bare": statistics.median(rate[n, server] / rate[n, "bare"] for n in rounds),
                    "to_nginx": statistics.median(rate[n, server] / rate[n, "nginx"] for n in rounds),
                    "p50_ms": statistics.median(r.p50_ms for r in mine),
                    "p99_ms": statistics.median(r.p99_ms for r in mine),
                    "cpu_us": statistics.median(r.cpu_us for r in mine),
                    "errors": sum(r.errors for r in mine),
                }
            )
    return rows


def table(results: dict[str, Any]) -> str:
    sizes = results["chunk_bytes"]
    lines = [
        f"{results['connections']} connections, 512x512 uint16 chunks "
        + ", ".join(f"{mix}: median {sizes[mix]['median'] / 1e3:.0f} KB" for mix in MIXES)
        + f"; medians of {results['rounds']} alternating rounds of {results['seconds']} s",
        "",
        "| mix | server | req/s | / bare | / nginx | p50 ms | p99 ms | server CPU us/req | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {row['mix']} | {row['server']} | {row['rate']:.0f} | {row['to_bare']:.2f}x "
        f"| {row['to_nginx']:.2f}x | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} "
        f"| {row['cpu_us']:.0f} | {row['errors']} |"
        for row in results["summary"]
    ]
    return "\n".join(lines)


def uvicorn_settings(config: Path) -> dict[str, Any]:
    """What both uvicorn processes ran with (the same function builds both configurations)."""
    server = load_settings(config, os.environ).server
    built = uvicorn_config(None, server, "info")
    return {
        "http": getattr(built.http, "__name__", str(built.http)),
        "loop": built.loop,
        "uvloop_installed": _installed("uvloop"),
        "timeout_keep_alive": built.timeout_keep_alive,
        "limit_concurrency": built.limit_concurrency,
        "uvicorn_access_log": built.access_log,
        "log_level": "info",
        "gateway_access_log": server.access_log,
        "gateway_metrics": server.metrics,
    }


def _installed(name: str) -> bool:
    try:
        version(name)
    except PackageNotFoundError:
        return False
    return True


def versions() -> dict[str, str]:
    found = {
        name: version(name) for name in ("uvicorn", "starlette", "httptools", "uvloop") if _installed(name)
    }
    found["python"] = platform.python_version()
    nginx = subprocess.run([shutil.which("nginx") or "/usr/sbin/nginx", "-v"], capture_output=True, text=True)
    found["nginx"] = nginx.stderr.strip()
    wrk = subprocess.run([shutil.which("wrk") or "wrk", "-v"], capture_output=True, text=True)
    found["wrk"] = (wrk.stdout.splitlines() or [""])[0]
    return found


def _stop_on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds measure(): the servers it started are stopped


def run_and_report(
    workdir: Path, prefix: str, measure: Callable[[], dict[str, Any]], table: Callable[[dict[str, Any]], str]
) -> int:
    """What every benchmark's ``main`` ends with: stop cleanly on SIGTERM, measure, write
    the full results as JSON to ``workdir`` and print the table."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    workdir.mkdir(parents=True, exist_ok=True)
    results = measure()
    out = workdir / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=1))
    print()
    print(table(results))
    print(f"\nfull results: {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir", default=str(Path(tempfile.gettempdir()) / "ome-zarr-gateway-bench" / "hot")
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--seconds", type=int, default=4, help="seconds per measured run (default 4)")
    parser.add_argument(
        "--warmup", type=int, default=2, help="seconds of wrk per server and mix first (default 2)"
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--keep", action="store_true", help="keep the files, chunk copies and server logs")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    try:
        results = measure(args, run_dir)
    finally:
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    out = workdir / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=1))
    print()
    print(table(results))
    cache = results["chunk_cache_during_measurement"]
    print(
        f"\ngateway: access log {results['uvicorn']['gateway_access_log']} "
        f"({results['gateway_access_log_lines']} lines), metrics {'on' if results['uvicorn']['gateway_metrics'] else 'off'}; "
        f"chunk cache while measured: {cache['hit']:.0f} hits, {cache['miss']:.0f} misses"
    )
    print(f"full results: {out}" + (f" (files kept in {run_dir})" if args.keep else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
