"""The hostile corpus (tests/hostile/corpus.py) served one file after the other.

For each file: its dataset page, every image group and array ``zarr.json`` the page
names, probes, and a sample of chunks (first and last of the finest level, first and last
of the coarsest level, where synthesized pyramids do the most work). Recorded per file:
statuses, the slowest request, the server's peak RSS while the file was handled (VmHWM,
reset before each file) and the slowest answer of a control file that is read all along.

A file fails when an answer is a plain (non-JSON or CORS-less) 5xx, when a request gets
no answer within the profile's request timeout, when the peak RSS passes the stated
budget, when the control file waits more than 1 s, when a body carries a secret from
outside the root, when a passed-through chunk's frame declares a size other than the
chunk's, or when a file the gateway should serve (a sparse giant) has no metadata.
After a request without an answer the server is restarted, so that one wedged file does
not hide the figures of the next ones.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np

from stress.client import RawConnection, Reply
from stress.process import MiB, proc_hwm_bytes, proc_rss_bytes, reset_hwm
from stress.profiles import Profile
from stress.report import SectionResult
from stress.serving import Served, base_config, serving
from tests.hostile.corpus import HostileFile, Secrets, plant_secrets, write_corpus
from tests.hostile.frames import zstd_declared_size
from tests.http.support import write_tiff

CONTROL_LIMIT_SECONDS = 1.0
#: The server is killed past this RSS (a hostile file took 11.6 GiB within 10 s): the
#: machine running the suite must survive the files it serves.
RSS_SAFETY_CAP_BYTES = 6 * 1024**3
ORIGIN = "https://viewer.example"
PASSWD = b"root:x:0:0"


class Control:
    """Reads a different chunk of a healthy file every 0.2 s and keeps the latencies."""

    def __init__(self, grid: int) -> None:
        self.grid = grid
        self.samples: list[tuple[float, float, int]] = []  # (start, seconds, status)
        self.stop = threading.Event()
        self.base = ""
        self.thread: threading.Thread | None = None

    def start(self, base: str) -> None:
        self.base = base
        self.stop.clear()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="stress-control")
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()
        if self.thread:
            self.thread.join()

    def _loop(self) -> None:
        n = 0
        with RawConnection(self.base, timeout=30) as connection:
            while not self.stop.is_set():
                key = f"/data/control.tif/0/c/{(n // self.grid) % self.grid}/{n % self.grid}"
                started = time.monotonic()
                reply = connection.request("GET", key)
                self.samples.append((started, reply.seconds, reply.status))
                n += 1
                self.stop.wait(0.2)

    def worst(self, start: float, end: float) -> tuple[float, int]:
        """(slowest answer, non-200 count) of the control requests started in [start, end]."""
        window = [s for s in self.samples if start <= s[0] <= end]
        return max((s[1] for s in window), default=0.0), sum(1 for s in window if s[2] != 200)


class Watchdog:
    """Kills the server (the process started here) when its RSS passes the safety cap."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.fired = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="stress-watchdog")
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(0.1):
            proc = self.served.server.proc
            if proc is None or proc.poll() is not None:
                continue
            try:
                rss = proc_rss_bytes(proc.pid)
            except OSError:
                continue
            if rss > RSS_SAFETY_CAP_BYTES:
                proc.kill()
                self.fired += 1

    def halt(self) -> None:
        self.stop.set()
        self.thread.join()


@dataclass
class FileRun:
    entry: HostileFile
    statuses: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0
    hung: bool = False


def array_nbytes(array: dict[str, Any]) -> int:
    shape = array["chunk_grid"]["configuration"]["chunk_shape"]
    return int(np.prod(shape)) * int(np.dtype(array["data_type"]).itemsize)


def frame_lie(body: bytes, array: dict[str, Any]) -> str | None:
    """A pass-through chunk whose frame would inflate to something else than the chunk."""
    names = [c["name"] for c in array.get("codecs", [])]
    expected = array_nbytes(array)
    if "zstd" in names:
        declared = zstd_declared_size(body)
        if declared is not None and declared != expected:
            return f"zstd frame declares {declared} bytes, the chunk is {expected}"
    if "blosc" in names and len(body) >= 16:
        declared = struct.unpack_from("<I", body, 4)[0]
        if declared != expected:
            return f"blosc header declares {declared} bytes, the chunk is {expected}"
    return None


class FileProbe:
    """The requests made for one hostile file, judged as they come."""

    def __init__(self, served: Served, secrets: Secrets, run: FileRun, timeout: float) -> None:
        self.served, self.secrets, self.run, self.timeout = served, secrets, run, timeout
        self.connection = RawConnection(served.base, timeout=timeout)

    def get(self, path: str, method: str = "GET") -> Reply | None:
        if self.run.hung:
            return None
        reply = self.connection.request(method, path, {"Origin": ORIGIN}, timeout=self.timeout)
        self.run.statuses.append(reply.status)
        self.run.slowest = max(self.run.slowest, reply.seconds)
        if reply.status == 0:
            self.run.hung = True
            self.run.failures.append(f"no answer in {self.timeout:.0f} s ({reply.error}) for {path}")
        elif reply.status >= 500 and not (self._json_error(reply, method) and reply.has_cors):
            self.run.failures.append(f"{reply.status} that is not a JSON error with CORS for {path}")
        if self.secrets.marker in reply.body or PASSWD in reply.body:
            self.run.failures.append(f"LEAK: bytes from outside the root in {path}")
        return reply

    @staticmethod
    def _json_error(reply: Reply, method: str) -> bool:
        if method == "HEAD":  # no body to parse: the declared type must still be JSON
            return reply.headers.get("content-type", "").startswith("application/json")
        return reply.is_json

    def json(self, path: str) -> dict[str, Any] | None:
        reply = self.get(path)
        if reply is None or reply.status != 200:
            return None
        try:
            document = json.loads(reply.body)
        except ValueError:
            self.run.failures.append(f"200 that is not JSON for {path}")
            return None
        return document if isinstance(document, dict) else None

    def probe(self) -> None:
        name = quote(self.run.entry.name)
        page = self.json(f"/data/{name}/?format=json")
        self.get(f"/data/{name}/zarr.json")
        for extra in (".zattrs", "OME/zarr.json", "OME/METADATA.ome.xml"):
            self.get(f"/data/{name}/{extra}")
        if page is None:
            if self.run.entry.expect == "serve" and not self.run.hung:
                self.run.failures.append("no dataset page for a file the gateway should serve")
            return
        for image in page.get("images", [])[:4]:
            group = urlsplit(image["url"]).path
            self.get(f"{group}zarr.json")
            levels = image.get("levels", [])
            for index, level in enumerate(levels):
                array = self.json(f"{group}{level['path']}/zarr.json")
                if array is not None and index in (0, len(levels) - 1):
                    self.chunks(f"{group}{level['path']}", array)

    def chunks(self, prefix: str, array: dict[str, Any]) -> None:
        shape = array["shape"]
        chunk = array["chunk_grid"]["configuration"]["chunk_shape"]
        grid = [-(-s // c) for s, c in zip(shape, chunk, strict=True)]
        for index in ([0] * len(grid), [g - 1 for g in grid]):
            path = f"{prefix}/c/" + "/".join(str(i) for i in index)
            reply = self.get(path)
            if reply is not None and reply.status == 200:
                lie = frame_lie(reply.body, array)
                if lie:
                    self.run.failures.append(f"pass-through of a lying frame at {path}: {lie}")
            self.get(path, "HEAD")


def write_control(root: Path) -> int:
    """control.tif: 2048x2048 uint8 in 128x128 tiles (a 16x16 chunk grid)."""
    data = (np.arange(2048 * 2048, dtype=np.uint32) % 251 + 1).astype(np.uint8).reshape(2048, 2048)
    write_tiff(root / "control.tif", data, tile=(128, 128), compression="zlib")
    return 16


def run(workdir: Path, profile: Profile) -> SectionResult:
    result = SectionResult("hostile corpus")
    secrets = plant_secrets(workdir / "outside")
    root = workdir / "root"
    started = time.monotonic()
    entries = write_corpus(root, secrets, profile.corpus_scale)
    generated = time.monotonic() - started
    grid = write_control(root)
    control = Control(grid)
    restarts = 0
    deadline = time.monotonic() + profile.corpus_seconds
    with serving(workdir, "corpus", base_config(root, profile)) as served:
        budget = served.budget
        control.start(served.base)
        watchdog = Watchdog(served)
        log_before = served.server.log_lines()
        for entry in entries:
            if time.monotonic() > deadline:
                result.fail(f"{entry.name}: not run (section time limit)")
                continue
            pid = served.server.pid
            reset_ok = reset_hwm(pid)
            begin = time.monotonic()
            file_run = FileRun(entry)
            probe = FileProbe(served, secrets, file_run, profile.corpus_request_timeout)
            probe.probe()
            probe.connection.close()
            end = time.monotonic()
            alive = served.server.alive()
            peak = proc_hwm_bytes(pid) if alive and reset_ok else 0
            rss_after = proc_rss_bytes(pid) if alive else 0
            worst, control_errors = control.worst(begin, end)
            if not alive:
                file_run.failures.append(f"the server died (safety kills so far: {watchdog.fired})")
            if peak > budget.total_bytes:
                file_run.failures.append(
                    f"peak RSS {peak / MiB:.0f} MiB > budget {budget.total_bytes / MiB:.0f} MiB"
                )
            if worst > CONTROL_LIMIT_SECONDS:
                file_run.failures.append(f"control file waited {worst:.1f} s")
            if control_errors:
                file_run.failures.append(f"control file failed {control_errors} times")
            statuses: dict[int, int] = {}
            for status in file_run.statuses:
                statuses[status] = statuses.get(status, 0) + 1
            result.rows.append(
                {
                    "file": entry.name,
                    "requests": len(file_run.statuses),
                    "statuses": " ".join(f"{k or 'none'}x{v}" for k, v in sorted(statuses.items())),
                    "slowest_s": round(file_run.slowest, 2),
                    "peak_rss_mib": round(peak / MiB) if peak else "?",
                    "rss_after_mib": round(rss_after / MiB),
                    "control_worst_s": round(worst, 2),
                    "verdict": "ok" if not file_run.failures else "FAIL",
                }
            )
            for failure in file_run.failures:
                result.fail(f"{entry.name} ({entry.kind}): {failure}")
            if file_run.hung or not alive:
                control.halt()
                served.server.restart()
                restarts += 1
                control.start(served.base)
        control.halt()
        watchdog.halt()
        log_lines = served.server.log_lines() - log_before
    result.figures = {
        "files": len(entries),
        "generated_in_s": round(generated, 1),
        "bomb_bytes_mib": profile.corpus_scale.bomb_bytes // MiB,
        "request_timeout_s": profile.corpus_request_timeout,
        "budget_mib": round(budget.total_bytes / MiB),
        "budget_notes": list(budget.notes),
        "files_failed": sum(1 for row in result.rows if row["verdict"] != "ok"),
        "server_restarts_after_hangs": restarts,
        "server_killed_past_rss_cap": watchdog.fired,
        "control_requests": len(control.samples),
        "control_worst_s": round(max((s[1] for s in control.samples), default=0.0), 2),
        "server_log_lines": log_lines,
    }
    return result
