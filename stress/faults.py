"""Faults mid-stream: files are replaced, rewritten in place, truncated, deleted and
chmod-ed while readers fetch their chunks (``stat_interval_seconds = 0``).

Asserted: every 200 is the exact chunk of a version of the file that was on disk at some
moment while the request ran (never stale, never a mix; an in-place rewrite can tear a
read at page granularity, so answers overlapping one are counted apart); no 5xx except
JSON errors with CORS while a file was truncated or being rewritten; no descriptor kept
on a deleted file.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stress.client import RawConnection, Reply
from stress.process import proc_deleted_fds
from stress.profiles import Profile
from stress.report import SectionResult, status_counts
from stress.serving import base_config, serving
from tests.http.support import HEALTHY_TILE, healthy_pixels, write_tiff

KEYS = ["c/0/0", "c/0/1", "c/1/0", "c/1/1"]
FILES = 3
ORIGIN = "https://viewer.example"


def pixel_offset(version: int) -> int:
    """Distinct per version for 60,000 versions, and within uint16 (a long run makes
    hundreds of versions)."""
    return 1 + (977 * version) % 60_000


def tiff_bytes(version: int, scratch: Path) -> bytes:
    """Version ``version`` of a file: same layout (uncompressed tiles), other pixels."""
    write_tiff(scratch, healthy_pixels(pixel_offset(version)), tile=HEALTHY_TILE)
    return scratch.read_bytes()


def chunks_of(version: int) -> dict[str, bytes]:
    pixels = healthy_pixels(pixel_offset(version)).astype("<u2")
    ty, tx = HEALTHY_TILE
    out = {}
    for key in KEYS:
        j, i = (int(v) for v in key.split("/")[1:])
        out[key] = np.ascontiguousarray(pixels[j * ty : (j + 1) * ty, i * tx : (i + 1) * tx]).tobytes()
    return out


@dataclass
class History:
    """Per file: (time, version on disk or None, state) after each change; in-place
    rewrite windows."""

    events: list[tuple[float, int | None, str]] = field(default_factory=list)
    rewrites: list[tuple[float, float]] = field(default_factory=list)

    def versions_during(self, start: float, end: float) -> set[int | None]:
        return self._during(start, end, 1, None)

    def states_during(self, start: float, end: float) -> set[str]:
        return self._during(start, end, 2, "intact")

    def _during(self, start: float, end: float, field_index: int, initial: Any) -> set[Any]:
        """Values of one field of the events that held at some time in [start, end]: the
        last one before ``start`` (or ``initial``) and every one set within."""
        current = initial
        seen: set[Any] = set()
        for event in self.events:
            if event[0] <= start:
                current = event[field_index]
            elif event[0] <= end:
                seen.add(event[field_index])
        seen.add(current)
        return seen

    def rewriting(self, start: float, end: float) -> bool:
        return any(a <= end and b >= start for a, b in self.rewrites)


class Mutator:
    """Applies one random fault after another to the files until stopped."""

    def __init__(self, root: Path, scratch: Path, rng: random.Random) -> None:
        self.root, self.scratch, self.rng = root, scratch, rng
        self.histories = {f"f{n}.tif": History() for n in range(FILES)}
        self.version = {name: 0 for name in self.histories}
        self.next_version = 1
        self.ops: Counter[str] = Counter()
        self.lock = threading.Lock()

    def write_initial(self) -> None:
        for name in self.histories:
            (self.root / name).write_bytes(tiff_bytes(0, self.scratch))
            self.histories[name].events.append((time.monotonic(), 0, "intact"))

    def step(self) -> None:
        name = self.rng.choice(sorted(self.histories))
        path, history = self.root / name, self.histories[name]
        op = self.rng.choice(["replace", "replace", "rewrite", "truncate", "delete", "chmod"])
        version = self.next_version
        self.next_version += 1
        data = tiff_bytes(version, self.scratch)
        if op == "replace":
            temporary = path.with_suffix(".tmp")
            temporary.write_bytes(data)
            os.replace(temporary, path)
            self._record(history, version, "intact")
        elif op == "rewrite" and path.exists():
            started = time.monotonic()
            with open(path, "r+b") as fh:
                fh.write(data)
                fh.truncate()
            history.rewrites.append((started, time.monotonic()))
            self._record(history, version, "intact")
        elif op == "truncate" and path.exists():
            os.truncate(path, path.stat().st_size // 2)
            self._record(history, self.version[name], "truncated")
            time.sleep(0.2)
            path.write_bytes(data)  # back to a whole file (in place: the same inode)
            history.rewrites.append((time.monotonic() - 0.01, time.monotonic()))
            self._record(history, version, "intact")
        elif op == "delete" and path.exists():
            path.unlink()
            self._record(history, None, "deleted")
            time.sleep(0.2)
            path.write_bytes(data)
            self._record(history, version, "intact")
        elif op == "chmod" and path.exists():
            path.chmod(0)
            self._record(history, self.version[name], "unreadable")
            time.sleep(0.2)
            path.chmod(0o644)
            self._record(history, self.version[name], "intact")
        else:
            return
        self.ops[op] += 1

    def _record(self, history: History, version: int | None, state: str) -> None:
        with self.lock:
            history.events.append((time.monotonic(), version, state))
            name = next(n for n, h in self.histories.items() if h is history)
            if version is not None:
                self.version[name] = version


def judge(
    reply: Reply, history: History, key: str, start: float, end: float, tally: Counter[str]
) -> str | None:
    """A failure message, or None when the answer is one a correct gateway may give."""
    states = history.states_during(start - 0.05, end)
    if reply.status == 200:
        for version in history.versions_during(start - 0.05, end):
            if version is not None and chunks_of(version)[key] == reply.body:
                tally["exact"] += 1
                return None
        if history.rewriting(start - 0.05, end + 0.05):
            tally["torn during an in-place rewrite"] += 1
            return None
        tally["stale or mixed"] += 1
        return "200 with bytes of no version on disk while the request ran (stale or mixed)"
    if reply.status == 0:
        return f"no answer ({reply.error})"
    if not reply.has_cors:
        return f"{reply.status} without CORS"
    if reply.status >= 500:
        if not reply.is_json:
            return f"{reply.status} that is not a JSON error"
        if not states & {"truncated", "deleted", "unreadable"} and not history.rewriting(
            start - 0.05, end + 0.05
        ):
            tally["5xx on an intact file"] += 1
            prior = [event for event in history.events if event[0] <= start] or [(start, None, "?")]
            since, last = start - prior[-1][0], prior[-1][2]
            return (
                f"{reply.status} while the file was intact (last change: {last!r}, {since:.2f} s before the"
                f" request): {reply.body[:120]!r}"
            )
    return None


def run(workdir: Path, profile: Profile) -> SectionResult:
    result = SectionResult("faults mid-stream")
    root = workdir / "root"
    root.mkdir(parents=True)
    mutator = Mutator(root, workdir / "scratch.tif", random.Random(11))
    mutator.write_initial()
    config = base_config(root, profile, chunks={"codec": "none"}, cache={"stat_interval_seconds": 0})
    statuses: Counter[int] = Counter()
    tally: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    with serving(workdir, "faults", config) as served:
        log_before = served.server.log_lines()

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            with RawConnection(served.base, timeout=30) as connection:
                while not stop.is_set():
                    name, key = rng.choice(sorted(mutator.histories)), rng.choice(KEYS)
                    start = time.monotonic()
                    reply = connection.request("GET", f"/data/{name}/0/{key}", {"Origin": ORIGIN})
                    end = time.monotonic()
                    with lock:
                        statuses[reply.status] += 1
                        failure = judge(reply, mutator.histories[name], key, start, end, tally)
                        if failure:
                            result.fail(f"{name}/0/{key}: {failure}")

        readers = [threading.Thread(target=reader, args=(n,)) for n in range(profile.fault_readers)]
        for thread in readers:
            thread.start()
        deadline = time.monotonic() + profile.fault_seconds
        while time.monotonic() < deadline:
            mutator.step()
            time.sleep(0.05)
        stop.set()
        for thread in readers:
            thread.join()
        # a deleted file must not keep a descriptor: delete one, ask for it, look
        (root / "f0.tif").unlink()
        with RawConnection(served.base) as connection:
            after_delete = connection.request("GET", "/data/f0.tif/0/c/0/0").status
        time.sleep(2.0)
        deleted = [t for t in proc_deleted_fds(served.server.pid) if str(root) in t]
        log_lines = served.server.log_lines() - log_before
    result.figures = {
        "faults": dict(sorted(mutator.ops.items())),
        "requests": sum(statuses.values()),
        "statuses": status_counts(statuses),
        "answers": dict(tally),
        "status_after_delete": after_delete,
        "fds_on_deleted_files_2s_after": len(deleted),
        "server_log_lines": log_lines,
    }
    if after_delete != 404:
        result.fail(f"a deleted file answers {after_delete}, not 404")
    if deleted:
        result.fail(f"{len(deleted)} descriptors still open on deleted files 2 s after: {deleted[:3]}")
    return result
