"""Fuzzed request paths: every escape trick against a root with planted symlinks out of it.

Asserted: no response carries a byte from outside the roots (the secrets' marker, or
``/etc/passwd``'s first line) and none is a 5xx.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from pathlib import Path

from stress.client import RawConnection
from stress.profiles import Profile
from stress.report import SectionResult, status_counts
from stress.serving import base_config, serving
from tests.hostile.corpus import Secrets, plant_secrets
from tests.http.support import write_healthy

PASSWD = b"root:x:0:0"

PREFIXES = [
    "",
    "/data",
    "/data/sub",
    "/data/healthy.tif",
    "/data/healthy.tif/0",
    "/v2/data",
    "/data/sub/deeper",
    "/s/v1.99999999999.ZGF0YQ.AAAA",
    "/s/x",
    "/data/link-out.tif",
    "/data/outdir",
    "/%64ata",
    "/DATA",
    "/%ef%bd%84ata",
    "/data/.",
    "/data%2f",
    "/data/link-dot",
]
DOTDOT = [
    "..",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%2e.",
    "%252e%252e",
    "%25252e%25252e",
    "%c0%ae%c0%ae",
    "%e0%80%ae%e0%80%ae",
    "%f0%80%80%ae%f0%80%80%ae",
    "%ef%bc%8e%ef%bc%8e",
    "%e2%80%a5",
    "..%00",
    "...",
    ". .",
    "%u002e%u002e",
    "..;",
    ".%00.",
    "..%20",
    "%2e%2e%00",
    "..\\",
    "%c0%2e%c0%2e",
    "\uff0e\uff0e",
]
SEPARATORS = [
    "/",
    "/",
    "/",
    "%2f",
    "%2F",
    "%252f",
    "\\",
    "%5c",
    "%5C",
    "%c0%af",
    "%e0%80%af",
    "%c1%9c",
    "%e2%88%95",
    "%ef%bc%8f",
    "//",
    "/./",
    "/%2e/",
    "%00/",
    "\uff0f",
]
TARGETS = [
    "outside/secret.tif/0/c/0/0",
    "outside/secret.tif/zarr.json",
    "outside/secret.txt",
    "outside/secret.bin",
    "outside/secret.h5/data/0/c/0/0",
    "outside/secret.h5/zarr.json",
    "outside/bdv-secret.xml/0/c/0/0/0",
    "etc/passwd",
    "etc/passwd/zarr.json",
    "etc/passwd.tif/zarr.json",
    "proc/self/environ",
    "proc/self/fd/3",
    "data/link-out.tif/0/c/0/0",
    "data/outdir/secret.tif/0/c/0/0",
    "data/link-passwd",
    "data/link-passwd/zarr.json",
    "data/link-h5/data/0/c/0/0",
    "data/link-dot/outside/secret.tif/0/c/0/0",
    "data/link-root/etc/passwd/zarr.json",
    "data/healthy.tif/0/c/0/0",
    "data/.hidden.tif/0/c/0/0",
]
SUFFIXES = [
    "",
    "",
    "",
    "%00",
    "%00.tif",
    ";x",
    "?x=../../etc/passwd",
    "#frag",
    "/",
    "%20",
    ".",
    "%2f",
    "?format=json",
    "\\",
]
ODD_TARGETS = [
    "*",
    "http://127.0.0.1/../../etc/passwd",
    "http://evil.example/data/healthy.tif/zarr.json",
    "data/healthy.tif/zarr.json",
    "/" * 300 + "etc/passwd",
    "/data/" + "a" * 255,
    "/data/" + "a" * 4096,
    "/data/" + "a/" * 2000,
    "/data/" + "%" * 100,
    "/data/%zz/zarr.json",
    "/data/%",
    "/data/%%32%65%%32%65",
]


def plant_links(root: Path, secrets: Secrets) -> None:
    """Symlinks out of the root, placed in the root, plus hidden files and a healthy file."""
    (root / "sub" / "deeper").mkdir(parents=True, exist_ok=True)
    write_healthy(root / "healthy.tif")
    write_healthy(root / ".hidden.tif")
    links = {
        "link-out.tif": secrets.tif,
        "outdir": secrets.outside,
        "link-passwd": Path("/etc/passwd"),
        "link-h5": secrets.h5,
        "link-dot": Path(".."),
        "link-root": Path("/"),
    }
    for name, target in links.items():
        os.symlink(target, root / name)


def fuzz_paths(count: int, seed: int = 9) -> list[str]:
    """``count`` distinct request targets (the odd ones first), deterministic for a seed."""
    rng = random.Random(seed)
    paths = list(dict.fromkeys(ODD_TARGETS))
    seen = set(paths)
    while len(paths) < count:
        depth = rng.choice((1, 1, 2, 3, 4, 6, 8, 12))
        climb = "".join(rng.choice(DOTDOT) + rng.choice(SEPARATORS) for _ in range(depth))
        target = rng.choice(TARGETS)
        if rng.random() < 0.5:
            target = target.replace("/", rng.choice(SEPARATORS))
        if rng.random() < 0.1:
            target = target.replace("outside", "a" * rng.choice((255, 1024, 8000)) + "/../outside")
        path = rng.choice(PREFIXES) + rng.choice(SEPARATORS) + climb + target + rng.choice(SUFFIXES)
        if not path.startswith("/") and rng.random() < 0.8:
            path = "/" + path
        if path not in seen:
            seen.add(path)
            paths.append(path)
    return paths[:count]


def run(workdir: Path, profile: Profile) -> SectionResult:
    result = SectionResult("fuzzed paths")
    here = workdir / "fuzz"
    secrets = plant_secrets(here / "outside")
    root = here / "root"
    root.mkdir(parents=True)
    plant_links(root, secrets)
    paths = fuzz_paths(profile.fuzz_paths)
    config = base_config(root, profile, chunks={"codec": "none"})
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + profile.fuzz_seconds
    sent = [0]
    leaks = [0]
    with serving(here, "fuzz", config) as served:
        log_before = served.server.log_lines()

        def worker(share: list[str]) -> None:
            with RawConnection(served.base, timeout=30) as connection:
                for index, path in enumerate(share):
                    if time.monotonic() > deadline:
                        return
                    reply = connection.request("HEAD" if index % 10 == 9 else "GET", path)
                    with lock:
                        sent[0] += 1
                        statuses[reply.status] += 1
                        if reply.status >= 500:
                            result.fail(f"{reply.status} for {path[:200]!r}: {reply.body[:200]!r}")
                        if secrets.marker in reply.body or PASSWD in reply.body:
                            leaks[0] += 1
                            result.fail(f"LEAK: bytes from outside the roots for {path[:200]!r}")

        threads = [threading.Thread(target=worker, args=(paths[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log_lines = served.server.log_lines() - log_before
    result.figures = {
        "paths_generated": len(paths),
        "requests_sent": sent[0],
        "statuses": status_counts(statuses),
        "leaks": leaks[0],
        "server_log_lines": log_lines,
    }
    if sent[0] < len(paths):
        result.figures["stopped_by_time_limit"] = True
    return result
