"""Request abuse: half-sent request heads, a flood of HEADs, huge headers and absurd
header values (Range, conditional dates, tokens in the path and in Authorization).

Asserted: no 5xx, a normal client is served while the half-sent heads are open, and the
server closes half-sent heads within its header-read timeout (the setting is read from the
config; without one the section says so and counts every head still open as a failure).
4xx answers without CORS or without a JSON body are counted, not failed.
"""

from __future__ import annotations

import select
import socket
import threading
import time
import tomllib
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from gateway.config.settings import Settings
from gateway.web.auth import mint_token
from stress.client import RawConnection, Reply
from stress.process import proc_fds
from stress.profiles import Profile
from stress.report import SectionResult, status_counts
from stress.serving import Served, base_config, serving
from tests.http.support import write_healthy

ORIGIN = "https://viewer.example"
CHUNK = "/data/healthy.tif/0/c/0/0"
DIGITS = "9" * 5000


def absurd_requests(key: bytes) -> list[tuple[str, str, dict[str, str]]]:
    """(label, target, headers) of malformed requests; tokens are real where only one
    field is absurd."""
    good = mint_token(key, "priv", int(time.time()) + 3600)
    version, expires, prefix, mac = good.split(".")
    cases: list[tuple[str, str, dict[str, str]]] = [
        ("range 5000 digits", CHUNK, {"Range": f"bytes={DIGITS}-"}),
        ("range end 5000 digits", CHUNK, {"Range": f"bytes=0-{DIGITS}"}),
        ("range suffix 5000 digits", CHUNK, {"Range": f"bytes=-{DIGITS}"}),
        ("range 2^64", CHUNK, {"Range": "bytes=18446744073709551616-"}),
        ("range 5000 ranges", CHUNK, {"Range": "bytes=" + ",".join(f"{i}-{i}" for i in range(5000))}),
        ("range arabic digits", CHUNK, {"Range": "bytes=٣-٤"}),
        ("range superscript", CHUNK, {"Range": "bytes=²-"}),
        ("range reversed", CHUNK, {"Range": "bytes=9-1"}),
        ("range unit", CHUNK, {"Range": "bits=0-1"}),
        ("range spaces", CHUNK, {"Range": "bytes = 0 - 1"}),
        ("ims year 99999999999", CHUNK, {"If-Modified-Since": "Sat, 01 Jan 99999999999 00:00:00 GMT"}),
        ("ims garbage", CHUNK, {"If-Modified-Since": "Mon, 32 Foo 2020 99:99:99 GMT"}),
        ("ims 5000 digits", CHUNK, {"If-Modified-Since": DIGITS}),
        ("ims negative", CHUNK, {"If-Modified-Since": "-1"}),
        (
            "if-range garbage",
            CHUNK,
            {"If-Range": "Sat, 01 Jan 99999999999 00:00:00 GMT", "Range": "bytes=0-1"},
        ),
        ("if-none-match quotes", CHUNK, {"If-None-Match": '"' * 10000}),
        ("if-none-match list", CHUNK, {"If-None-Match": 'W/"x", ' * 3000}),
        (
            "bearer expiry superscript",
            "/priv/healthy.tif/zarr.json",
            {"Authorization": f"Bearer {version}.².{prefix}.{mac}"},
        ),
        (
            "bearer expiry 5000 digits",
            "/priv/healthy.tif/zarr.json",
            {"Authorization": f"Bearer {version}.{DIGITS}.{prefix}.{mac}"},
        ),
        (
            "bearer expiry negative",
            "/priv/healthy.tif/zarr.json",
            {"Authorization": f"Bearer {version}.-1.{prefix}.{mac}"},
        ),
        (
            "bearer junk base64",
            "/priv/healthy.tif/zarr.json",
            {"Authorization": f"Bearer {version}.{expires}.%%%.$$$"},
        ),
        ("bearer empty", "/priv/healthy.tif/zarr.json", {"Authorization": "Bearer"}),
        ("basic scheme", "/priv/healthy.tif/zarr.json", {"Authorization": "Basic ####"}),
        ("path token superscript", f"/s/{version}.².{prefix}.{mac}/priv/healthy.tif/zarr.json", {}),
        ("path token 5000 digits", f"/s/{version}.{DIGITS}.{prefix}.{mac}/priv/healthy.tif/zarr.json", {}),
        ("path token arabic digits", f"/s/{version}.٣٣٣.{prefix}.{mac}/priv/healthy.tif/zarr.json", {}),
        ("path token empty", "/s//priv/healthy.tif/zarr.json", {}),
        ("path token dotdot", "/s/../priv/healthy.tif/zarr.json", {}),
        ("path token bad utf-8", f"/s/{version}.{expires}.%ff%fe.{mac}/priv/healthy.tif/zarr.json", {}),
        ("origin 10 KB", CHUNK, {"Origin": "https://" + "a" * 10000}),
        ("accept junk", "/data/healthy.tif/", {"Accept": "*/*;q=99999999999999999999, \x01"}),
        ("accept-encoding junk", CHUNK, {"Accept-Encoding": "gzip;q=" + DIGITS}),
        ("host 10 KB", CHUNK, {"Host": "h" * 10000}),
        ("latin-1 header", CHUNK, {"X-Name": "\xff\xfe\xfd"}),
        ("transfer-encoding on GET", CHUNK, {"Transfer-Encoding": "chunked, gzip"}),
        ("content-length huge on HEAD", CHUNK, {"Content-Length": DIGITS}),
        (
            "x-forwarded junk",
            "/data/healthy.tif/",
            {"X-Forwarded-Host": "evil.example", "Forwarded": "for=" + DIGITS},
        ),
    ]
    return cases


def judge(reply: Reply, label: str, result: SectionResult, counts: Counter[str]) -> None:
    if reply.status >= 500:
        result.fail(f"{label}: {reply.status} {reply.body[:160]!r}")
    elif reply.status == 0:
        counts["closed without an answer"] += 1
    elif reply.status >= 400:
        counts[str(reply.status)] += 1
        if not reply.has_cors:
            counts["4xx without CORS"] += 1
        if reply.body and not reply.is_json:
            counts["4xx not JSON"] += 1
    else:
        counts[str(reply.status)] += 1


def slow_headers(
    served: Served, profile: Profile, timeout: float | None, result: SectionResult
) -> dict[str, object]:
    """Open half-sent request heads; check a normal client is served; watch them close."""
    parts = urlsplit(served.base)
    sockets = []
    fds_before = proc_fds(served.server.pid)
    for _ in range(profile.slow_headers):
        try:
            sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
            sock.sendall(b"GET /data/healthy.tif/zarr.json HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            sockets.append(sock)
        except OSError:
            break
    time.sleep(0.5)
    fds_open = proc_fds(served.server.pid)
    with RawConnection(served.base, timeout=10) as connection:
        normal = connection.request("GET", CHUNK)
    if normal.status != 200:
        result.fail(
            f"a normal request got {normal.status or normal.error} while {len(sockets)} heads were half-sent"
        )
    wait = min(profile.slow_header_wait, (timeout * 2 + 2) if timeout else profile.slow_header_wait)
    deadline = time.monotonic() + wait
    closed: set[int] = set()
    while time.monotonic() < deadline and len(closed) < len(sockets):
        pending = [s for s in sockets if s.fileno() not in closed]
        readable, _, _ = select.select(pending, [], [], 0.5)
        for sock in readable:
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data or data.startswith(b"HTTP/"):
                closed.add(sock.fileno())
    still_open = len(sockets) - len(closed)
    for sock in sockets:
        sock.close()
    if still_open:
        setting = (
            f"server.header_timeout_seconds = {timeout}" if timeout else "no header-read timeout setting"
        )
        result.fail(
            f"{still_open} of {len(sockets)} half-sent heads still open after {wait:.0f} s ({setting})"
        )
    return {
        "half_sent_heads": len(sockets),
        "server_fds_before_during": [fds_before, fds_open],
        "normal_request_during": f"{normal.status} in {normal.seconds:.2f} s",
        "closed_by_server": len(closed),
        "watched_s": round(wait, 1),
        "header_timeout_setting_s": timeout,
    }


def heads(served: Served, count: int, result: SectionResult) -> dict[str, object]:
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def worker(n: int) -> None:
        with RawConnection(served.base, timeout=30) as connection:
            for _ in range(n):
                reply = connection.request("HEAD", CHUNK)
                with lock:
                    statuses[reply.status] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(count // 4,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    bad = sum(v for k, v in statuses.items() if k != 200)
    if bad:
        result.fail(f"{bad} of {sum(statuses.values())} HEADs not 200: {status_counts(statuses)}")
    return {
        "heads": sum(statuses.values()),
        "head_statuses": status_counts(statuses),
        "heads_per_s": round(sum(statuses.values()) / elapsed),
    }


def huge_headers(served: Served, result: SectionResult, counts: Counter[str]) -> None:
    cases = {
        "one 64 KB header": {"X-Big": "a" * 65536},
        "1000 headers": {f"X-H{i}": "v" for i in range(1000)},
        "one 1 MB header": {"X-Big": "a" * 1048576},
    }
    for label, headers in cases.items():
        with RawConnection(served.base, timeout=15) as connection:
            judge(connection.request("GET", CHUNK, headers), label, result, counts)


def run(workdir: Path, profile: Profile) -> SectionResult:
    result = SectionResult("request abuse")
    root, private = workdir / "root", workdir / "private"
    root.mkdir(parents=True)
    private.mkdir()
    write_healthy(root / "healthy.tif")
    write_healthy(private / "healthy.tif")
    key_file = workdir / "signing.key"
    key_file.write_text("k" * 32)
    config = base_config(root, profile, auth={"protect": ["priv"], "signing_key_file": str(key_file)})
    config["roots"]["priv"] = str(private)
    counts: Counter[str] = Counter()
    with serving(workdir, "abuse", config) as served:
        log_before = served.server.log_lines()
        timeout = _header_timeout(served)
        figures: dict[str, object] = {}
        figures.update(slow_headers(served, profile, timeout, result))
        figures.update(heads(served, profile.heads, result))
        huge_headers(served, result, counts)
        for label, target, headers in absurd_requests(key_file.read_bytes().strip()):
            with RawConnection(served.base, timeout=15) as connection:
                judge(connection.request("GET", target, {"Origin": ORIGIN, **headers}), label, result, counts)
        with RawConnection(served.base, timeout=10) as connection:
            still = connection.request("GET", CHUNK)
        if still.status != 200:
            result.fail(f"the healthy chunk answers {still.status or still.error} after the abuse")
        figures["malformed_answers"] = dict(sorted(counts.items()))
        figures["server_log_lines"] = served.server.log_lines() - log_before
    result.figures = figures
    return result


def _header_timeout(served: Served) -> float | None:
    """``server.header_timeout_seconds`` of the running config, when the gateway has it."""
    with open(served.config, "rb") as fh:
        data = tomllib.load(fh)
    value = getattr(Settings.from_mapping(data).server, "header_timeout_seconds", None)
    return float(value) if isinstance(value, (int, float)) else None
