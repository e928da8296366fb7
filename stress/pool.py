"""Pool pressure: more files than the open-file pool holds (``open_files = 2``), read by
16 threads at once, so sources are evicted while requests still use them. Every answer
must be a 200 with the file's exact pixels (chunks are served uncompressed)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from stress.client import RawConnection
from stress.process import MiB, sampling
from stress.profiles import Profile
from stress.report import SectionResult, status_counts
from stress.serving import base_config, serving
from tests.http.support import HEALTHY_TILE, write_healthy

KEYS = ["c/0/0", "c/0/1", "c/1/0", "c/1/1"]


def expected_chunks(files: int, root: Path) -> dict[str, bytes]:
    """``/data/<file>/0/<key>`` → the exact uncompressed chunk bytes."""
    expected = {}
    ty, tx = HEALTHY_TILE
    for index in range(files):
        name = f"pool-{index:02d}.tif"
        pixels = write_healthy(root / name, offset=1 + 1000 * index)
        for key in KEYS:
            j, i = (int(v) for v in key.split("/")[1:])
            chunk = np.ascontiguousarray(pixels[j * ty : (j + 1) * ty, i * tx : (i + 1) * tx]).astype("<u2")
            expected[f"/data/{name}/0/{key}"] = chunk.tobytes()
    return expected


def run(workdir: Path, profile: Profile) -> SectionResult:
    result = SectionResult("pool pressure")
    root = workdir / "root"
    root.mkdir(parents=True)
    expected = expected_chunks(profile.pool_files, root)
    # no chunk cache: every request goes to a file, through the pool
    config = base_config(root, profile, chunks={"codec": "none"}, cache={"open_files": 2, "chunk_bytes": 0})
    statuses: Counter[int] = Counter()
    wrong = [0]
    lock = threading.Lock()
    paths = list(expected)
    with serving(workdir, "pool", config) as served:
        deadline = time.monotonic() + profile.pool_seconds
        budget_per_thread = profile.pool_requests // profile.pool_threads

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            with RawConnection(served.base, timeout=30) as connection:
                for _ in range(budget_per_thread):
                    if time.monotonic() > deadline:
                        return
                    path = rng.choice(paths)
                    reply = connection.request("GET", path)
                    with lock:
                        statuses[reply.status] += 1
                        if reply.status != 200:
                            result.fail(f"{reply.status or reply.error} for {path}: {reply.body[:160]!r}")
                        elif reply.body != expected[path]:
                            wrong[0] += 1
                            result.fail(f"wrong bytes for {path}")

        log_before = served.server.log_lines()
        with sampling(served.server.pid, 1.0) as samples:
            threads = [threading.Thread(target=worker, args=(n,)) for n in range(profile.pool_threads)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        log_lines = served.server.log_lines() - log_before
    requests = sum(statuses.values())
    result.figures = {
        "files": profile.pool_files,
        "open_files": 2,
        "threads": profile.pool_threads,
        "requests": requests,
        "statuses": status_counts(statuses),
        "server_errors": sum(n for status, n in statuses.items() if status >= 500),
        "wrong_bytes": wrong[0],
        "rss_max_mib": round(max(samples.rss, default=0) / MiB, 1),
        "fds_max": max(samples.fds, default=0),
        "server_log_lines": log_lines,
    }
    if requests == 0:
        result.fail("no request was answered")
    return result
