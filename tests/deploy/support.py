"""Real processes for the deployment tests: gateways (``python -m gateway serve``) and nginx
with the shipped config, rendered for loopback ports. Every process is started by the test
and stopped by it, through its own ``Popen`` (never by name)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

PROJECT = Path(__file__).resolve().parents[2]
DEPLOY = PROJECT / "deploy"
ALLOW_MISSING_ENV = "OME_ZARR_GATEWAY_ALLOW_MISSING_CLIENTS"


def require_tool(name: str) -> str:
    """The path of a command-line tool; fails (skips with the escape hatch) when missing."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )
    if found:
        return found
    if os.environ.get(ALLOW_MISSING_ENV) == "1":
        pytest.skip(f"{name} is missing ({ALLOW_MISSING_ENV}=1)")
    pytest.fail(f"{name} is missing: .ci/run installs it (set {ALLOW_MISSING_ENV}=1 to skip locally)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (httpx.TransportError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in {timeout} s")
        time.sleep(0.05)


@dataclass
class Process:
    """A subprocess whose combined output is collected in the background."""

    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @classmethod
    def start(cls, args: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Process:
        popen = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        process = cls(popen)
        process.reader = threading.Thread(target=process._pump, daemon=True)
        process.reader.start()
        return process

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait (SIGKILL after ``timeout``); the exit code."""
        if self.popen.poll() is None:
            self.popen.terminate()
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait()
        if self.reader is not None:
            self.reader.join(timeout=5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        return code


@dataclass
class GatewayProcess:
    name: str
    port: int
    process: Process

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics(self) -> str:
        return httpx.get(f"{self.base}/metrics", timeout=10).text


def start_gateway(
    config: Path, name: str, *, workers: int = 1, env: Mapping[str, str] | None = None
) -> GatewayProcess:
    """``python -m gateway serve <config> --port <free>`` named ``name`` (X-Gateway-Instance)."""
    port = free_port()
    args = [sys.executable, "-m", "gateway", "serve", str(config), "--port", str(port)]
    if workers > 1:
        args += ["--workers", str(workers)]
    environment = {"OME_ZARR_GATEWAY__SERVER__INSTANCE": name, **(env or {})}
    process = Process.start(args, environment, cwd=PROJECT)
    gateway = GatewayProcess(name, port, process)
    try:
        wait_for(lambda: httpx.get(f"{gateway.base}/health", timeout=2).status_code == 200, f"{name} up")
    except AssertionError:
        process.stop()
        raise AssertionError(f"gateway {name} did not start:\n{process.output}") from None
    return gateway


def metric_total(text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include ``labels`` (Prometheus text format)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


@dataclass
class Nginx:
    process: Process
    http_port: int
    https_port: int
    directory: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def access_log(self) -> str:
        path = self.directory / "access.log"
        return path.read_text() if path.exists() else ""


def render_nginx_config(
    directory: Path, gateways: list[GatewayProcess], *, template: Path | None = None, **values: str
) -> str:
    """deploy/nginx/render.sh, run as an admin would, with loopback values; ``template``
    renders another template instead of the shipped one (the benchmark compares them)."""
    script = DEPLOY / "nginx" / "render.sh"
    if template is not None:  # render.sh reads the template next to itself
        (directory / "render").mkdir(parents=True, exist_ok=True)
        script = Path(shutil.copy(script, directory / "render" / "render.sh"))
        shutil.copy(template, directory / "render" / "ome-zarr-gateway.conf.template")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "OZG_GATEWAYS": " ".join(f"127.0.0.1:{g.port}" for g in gateways),
        **values,
    }
    done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    openssl = require_tool("openssl")
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = [
        openssl,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
    ]
    subprocess.run(
        [*command, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


#: Debian's own main config (package nginx-common, installed with nginx-light): the deploy
#: tests and bench/bench_nginx.py run the shipped site inside it, as an admin would, so what
#: its ``http`` block sets (``sendfile on; tcp_nopush on; gzip on; ...``) applies to them too.
DEBIAN_NGINX_CONF = Path("/etc/nginx/nginx.conf")


def debian_main_config(directory: Path, includes: list[Path]) -> str:
    """Debian's ``nginx.conf`` with only what must change to run on loopback as this user,
    everything else (sendfile, tcp_nopush, gzip, worker_processes, modules...) as shipped.

    Each substitution must match exactly once: if Debian reworded its file, this fails
    instead of silently testing another config."""
    text = DEBIAN_NGINX_CONF.read_text()
    temp = "".join(
        f"\t{kind}_temp_path {directory / ('tmp-' + kind)};\n"  # /var/lib/nginx is root's
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    sites = "".join(f"\tinclude {path};\n" for path in includes)
    substitutions = [
        # workers as www-data could not enter pytest's 0700 tmp dirs; unprivileged, the
        # directive is ignored with a warning, so it goes
        (r"^user\s+[^;]*;\n", "user root root;\n" if os.geteuid() == 0 else ""),
        # /run and /var/log/nginx are root's, and the system's own nginx may use them
        (r"^pid\s+[^;]*;", f"pid {directory / 'nginx.pid'};"),
        (r"^error_log\s+[^;]*;", f"error_log {directory / 'error.log'};"),
        (
            r"^(\s*)access_log\s+/var/log/nginx/access\.log;",
            rf"\g<1>access_log {directory / 'default-access.log'};",
        ),
        # the site(s) under test instead of the system's (sites-enabled/default listens on :80)
        (
            r"^\s*include\s+/etc/nginx/conf\.d/\*\.conf;\n\s*include\s+/etc/nginx/sites-enabled/\*;\n",
            temp + sites,
        ),
    ]
    for pattern, replacement in substitutions:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, f"{DEBIAN_NGINX_CONF} changed: {pattern!r} matched {count} times"
    return text


@contextmanager
def running_nginx(
    directory: Path,
    gateways: list[GatewayProcess],
    *,
    extra_site: str = "",
    template: Path | None = None,
    **values: str,
) -> Iterator[Nginx]:
    """nginx in the foreground (``daemon off``) with the rendered site config inside Debian's
    default main config (:func:`debian_main_config`); ``extra_site`` is an optional second
    http-context file (the benchmark's static server). Everything it writes stays in
    ``directory``."""
    nginx = require_tool("nginx")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)  # workers may run as another user when we are root
    cert, key = self_signed_certificate(directory)
    http_port, https_port = free_port(), free_port()
    site = render_nginx_config(
        directory,
        gateways,
        template=template,
        OZG_HTTP_LISTEN=f"127.0.0.1:{http_port}",
        OZG_HTTPS_LISTEN=f"127.0.0.1:{https_port}",
        OZG_SERVER_NAME="localhost",
        OZG_TLS_CERT=str(cert),
        OZG_TLS_KEY=str(key),
        OZG_CACHE_DIR=str(directory / "cache"),
        OZG_CACHE_SIZE="100m",
        OZG_ACCESS_LOG=str(directory / "access.log"),
        **values,
    )
    includes = [directory / "ome-zarr-gateway.conf"]
    includes[0].write_text(site)
    if extra_site:
        includes.append(directory / "extra-site.conf")
        includes[1].write_text(extra_site)
    (directory / "nginx.conf").write_text(debian_main_config(directory, includes))
    # no -p: Debian's prefix stays, so modules-enabled/*.conf finds its modules (every path
    # this config writes to is absolute, in ``directory``)
    args = [
        nginx,
        "-c",
        str(directory / "nginx.conf"),
        "-e",
        str(directory / "error.log"),
        "-g",
        "daemon off;",
    ]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    process = Process.start(args)
    server = Nginx(process, http_port, https_port, directory)
    try:
        wait_for(
            lambda: socket.create_connection(("127.0.0.1", http_port), timeout=1).close() is None, "nginx up"
        )
        yield server
    finally:
        process.stop()
