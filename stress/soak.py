"""Soak: concurrent clients mixing metadata, chunk, HEAD, Range and conditional requests
over several datasets for a fixed time, while the server's RSS and descriptors are sampled
every second against the stated budget.

Errors: any 5xx, a request without an answer, an unexpected status, or a chunk whose bytes
differ between two answers (the files do not change during the soak).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import h5py
import hdf5plugin
import numpy as np

from stress.process import MiB, sampling
from stress.profiles import Profile
from stress.report import SectionResult, status_counts
from stress.serving import base_config, serving
from tests.hdf5.writers import smooth
from tests.http.support import write_tiff

SHAPE = (2048, 2048)


def write_datasets(root: Path) -> list[str]:
    """Four 2048x2048 uint16 sources of different paths through the gateway."""
    image = smooth(SHAPE, np.uint16, seed=1)
    write_tiff(root / "zlib.tif", image, tile=(256, 256), compression="zlib")
    write_tiff(root / "zstd.tif", image + 1, tile=(512, 512), compression="zstd")  # pass-through
    write_tiff(root / "strips.tif", image + 2, rowsperstrip=64)
    with h5py.File(root / "volume.h5", "w") as f:
        f.create_dataset("gzip", data=image[:1024, :1024] + 3, chunks=(256, 256), compression="gzip")
        f.create_dataset(
            "blosc", data=image[:1024, :1024] + 4, chunks=(256, 256), **hdf5plugin.Blosc(cname="zstd")
        )
    return ["zlib.tif", "zstd.tif", "strips.tif", "volume.h5"]


@dataclass
class Target:
    """One array: its metadata URL and chunk keys, learnt from the served documents."""

    array: str
    group: str
    chunks: list[str]


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    etags: dict[str, tuple[str, str]] = field(default_factory=dict)


async def discover(session: aiohttp.ClientSession, base: str, datasets: list[str]) -> list[Target]:
    targets = []
    for dataset in datasets:
        async with session.get(f"{base}/data/{dataset}/?format=json") as response:
            page = await response.json()
        for image in page["images"]:
            for level in image["levels"]:
                grid = [-(-s // c) for s, c in zip(level["shape"], level["chunks"], strict=True)]
                keys = [
                    "c/" + "/".join(str(i) for i in np.unravel_index(n, grid))
                    for n in range(min(int(np.prod(grid)), 64))
                ]
                group = image["url"].split("://", 1)[1].split("/", 1)[1]
                targets.append(Target(f"/{group}{level['path']}", f"/{group}", keys))
    return targets


def pick(
    rng: random.Random, targets: list[Target], tally: Tally
) -> tuple[str, str, dict[str, str], set[int]]:
    """(kind, path, headers, acceptable statuses) of one request of the mix."""
    target = rng.choice(targets)
    chunk = f"{target.array}/{rng.choice(target.chunks)}"
    roll = rng.random()
    if roll < 0.10:
        return "group", f"{target.group}zarr.json", {}, {200}
    if roll < 0.20:
        return "array", f"{target.array}/zarr.json", {}, {200}
    if roll < 0.25:
        return "probe", f"{target.array}/.zarray", {}, {404}
    if roll < 0.55:
        return "chunk", chunk, {}, {200, 404}
    if roll < 0.65:
        return "head", chunk, {}, {200, 404}
    if roll < 0.80:
        value = rng.choice(["bytes=0-99", "bytes=-64", "bytes=100-", "bytes=0-0"])
        return "range", chunk, {"Range": value}, {206, 404, 416}
    known = tally.etags.get(chunk)
    if known is None:
        return "chunk", chunk, {}, {200, 404}
    if roll < 0.9:
        return "if-none-match", chunk, {"If-None-Match": known[0]}, {304}
    return "if-modified-since", chunk, {"If-Modified-Since": known[1]}, {304, 200}


async def client(
    session: aiohttp.ClientSession, base: str, targets: list[Target], tally: Tally, deadline: float, seed: int
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        kind, path, headers, acceptable = pick(rng, targets, tally)
        method = "HEAD" if kind == "head" else "GET"
        started = time.monotonic()
        try:
            async with session.request(method, base + path, headers=headers) as response:
                body = await response.read()
                status = response.status
                etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
        except (TimeoutError, aiohttp.ClientError) as exc:
            tally.errors[f"no answer ({type(exc).__name__})"] += 1
            continue
        tally.latencies.append(time.monotonic() - started)
        tally.statuses[status] += 1
        tally.kinds[kind] += 1
        if status >= 500:
            tally.errors[f"{status} on {kind}"] += 1
        elif status not in acceptable:
            tally.errors[f"unexpected {status} on {kind}"] += 1
        if kind == "chunk" and status == 200:
            digest = hashlib.blake2b(body, digest_size=16).hexdigest()
            if tally.digests.setdefault(path, digest) != digest:
                tally.errors["chunk bytes changed between answers"] += 1
            if etag and modified:
                tally.etags[path] = (etag, modified)


async def soak(base: str, datasets: list[str], clients: int, seconds: float) -> Tally:
    tally = Tally()
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector, auto_decompress=False) as session:
        targets = await discover(session, base, datasets)
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(client(session, base, targets, tally, deadline, n) for n in range(clients)))
    return tally


def run(workdir: Path, profile: Profile) -> SectionResult:
    result = SectionResult("soak")
    root = workdir / "root"
    root.mkdir(parents=True)
    datasets = write_datasets(root)
    with serving(workdir, "soak", base_config(root, profile)) as served:
        log_before = served.server.log_lines()
        started = time.monotonic()
        with sampling(served.server.pid, 1.0) as samples:
            tally = asyncio.run(soak(served.base, datasets, profile.soak_clients, profile.soak_seconds))
        elapsed = time.monotonic() - started
        log_lines = served.server.log_lines() - log_before
    budget = served.budget
    latencies = sorted(tally.latencies) or [0.0]
    requests = sum(tally.statuses.values())
    result.figures = {
        "clients": profile.soak_clients,
        "seconds": round(elapsed, 1),
        "requests": requests,
        "requests_per_second": round(requests / elapsed, 1),
        "statuses": status_counts(tally.statuses),
        "mix": dict(sorted(tally.kinds.items())),
        "errors": dict(tally.errors),
        "latency_ms_p50_p99_max": [
            round(1000 * latencies[int(q * (len(latencies) - 1))], 1) for q in (0.5, 0.99, 1.0)
        ],
        **samples.summary(),
        "budget_mib": round(budget.total_bytes / MiB),
        "budget_parts_mib": {k: round(v / MiB) for k, v in budget.parts.items()},
        "budget_notes": list(budget.notes),
        "server_log_lines": log_lines,
    }
    for error, count in tally.errors.items():
        result.fail(f"{count} x {error}")
    if max(samples.rss, default=0) > budget.total_bytes:
        result.fail(
            f"RSS {max(samples.rss) / MiB:.0f} MiB above the budget of {budget.total_bytes / MiB:.0f} MiB"
        )
    if requests == 0:
        result.fail("no request was answered")
    return result
