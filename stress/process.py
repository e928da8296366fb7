"""The gateway under stress runs as its own process, so that its RSS and descriptors
(``/proc/<pid>``) are its own and not the load generator's; this module starts it, samples
it and stops exactly the process it started."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config import load_settings
from gateway.config.settings import RSS_MARGIN_BYTES

REPO = Path(__file__).resolve().parent.parent
MiB = 1024**2


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_config(path: Path, config: dict[str, dict[str, Any]]) -> Path:
    """A TOML config of plain tables (``{"roots": {...}, "cache": {...}}``)."""
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@dataclass(frozen=True)
class Budget:
    """The RSS the gateway may use: its caches + the open-file byte budget + a margin."""

    total_bytes: int
    parts: dict[str, int]
    notes: tuple[str, ...]


def stated_budget(config_path: Path) -> Budget:
    """The budget the README states (``CacheSettings.rss_budget_bytes``), read from the
    settings the server runs with, with its parts."""
    settings = load_settings(config_path)  # as `serve` reads it
    cache = settings.cache
    parts = {
        "cache.chunk_bytes": cache.chunk_bytes,
        "cache.tile_bytes": cache.tile_bytes,
        "cache.open_file_bytes": cache.open_file_bytes,
        "margin": RSS_MARGIN_BYTES,
    }
    assert sum(parts.values()) == cache.rss_budget_bytes
    return Budget(cache.rss_budget_bytes, parts, ())


def proc_rss_bytes(pid: int) -> int:
    return _status_kib(pid, "VmRSS") * 1024


def proc_hwm_bytes(pid: int) -> int:
    return _status_kib(pid, "VmHWM") * 1024


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0])
    return 0


def reset_hwm(pid: int) -> bool:
    """Reset the peak-RSS mark (``VmHWM``) of ``pid``; False where the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def proc_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def proc_deleted_fds(pid: int) -> list[str]:
    """Targets of descriptors the process holds on deleted files."""
    found: list[str] = []
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.endswith(" (deleted)"):
            found.append(target)
    return found


@dataclass
class Samples:
    """RSS and descriptor counts sampled every ``interval`` seconds."""

    rss: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "samples": len(self.rss),
            "rss_max_mib": round(max(self.rss, default=0) / MiB, 1),
            "rss_first_mib": round(self.rss[0] / MiB, 1) if self.rss else 0,
            "rss_last_mib": round(self.rss[-1] / MiB, 1) if self.rss else 0,
            "fds_max": max(self.fds, default=0),
            "fds_first": self.fds[0] if self.fds else 0,
            "fds_last": self.fds[-1] if self.fds else 0,
        }


@contextmanager
def sampling(pid: int, interval: float = 1.0) -> Iterator[Samples]:
    """Sample ``pid`` in a thread while the block runs (once at start and at the end too)."""
    samples = Samples()
    stop = threading.Event()

    def take() -> None:
        try:
            samples.rss.append(proc_rss_bytes(pid))
            samples.fds.append(proc_fds(pid))
        except OSError:
            pass

    def loop() -> None:
        while not stop.wait(interval):
            take()

    take()
    thread = threading.Thread(target=loop, daemon=True, name="stress-sampler")
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()
        take()


class GatewayProcess:
    """``python -m gateway serve <config.toml> --port 0`` with its output in a log file."""

    def __init__(self, config: Path, log: Path, threads: int | None = None) -> None:
        self.config = config
        self.log_path = log
        self.threads = threads
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self, timeout: float = 60) -> GatewayProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop)
        command = [sys.executable, "-m", "gateway", "--log-level", "warning", "serve", str(self.config)]
        command += ["--host", "127.0.0.1", "--port", "0"]
        if self.threads:
            command += ["--threads", str(self.threads)]
        start = self._log.tell()
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + timeout
        pattern = re.compile(rb" at (http://127\.0\.0\.1:\d+)/")
        while not self.base:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gateway did not start:\n{self.log_tail()}")
            with open(self.log_path, "rb") as fh:
                fh.seek(start)
                match = pattern.search(fh.read())
            if match:
                self.base = match.group(1).decode()
            else:
                time.sleep(0.02)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, size: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-size:]

    def log_lines(self) -> int:
        with open(self.log_path, "rb") as fh:
            return sum(1 for _ in fh)

    def stop(self) -> int | None:
        """SIGTERM to the process started here; SIGKILL after 10 s."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        code = self.proc.returncode
        self.proc = None
        self.base = ""
        return code

    def restart(self) -> GatewayProcess:
        self.stop()
        return self.start()

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
