"""A served file truncated under load fills no log: one line per (dataset, error kind) per
interval and no traceback, while a healthy file beside it keeps answering.

The caches are off and the stat interval is 0, so every request reads (and re-checks) the
file: the worst case for the log."""

from __future__ import annotations

import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tifffile

from gateway.store.logs import INTERVAL_SECONDS
from tests.http.support import assert_json_error, fetch_chunk, raw_request, running_gateway, write_healthy

REQUESTS = 300
CLIENTS = 6
VICTIM = "data/victim.tif"


def first_tile_offset(path):
    with tifffile.TiffFile(path) as tif:
        return int(tif.pages[0].dataoffsets[0])


@pytest.fixture
def served(tmp_path):
    write_healthy(tmp_path / "victim.tif", offset=5)
    caches = {"stat_interval_seconds": 0, "chunk_bytes": 0, "tile_bytes": 0}
    with running_gateway(tmp_path, cache=caches) as gw:
        fetch_chunk(gw.client, gw.url(f"{VICTIM}/0"), "c/0/0")  # opened and served
        yield gw


def hammer(gateway):
    """REQUESTS requests from CLIENTS threads, every third one to the healthy file;
    (victim responses, healthy statuses, seconds taken)."""
    keys = [
        f"{VICTIM}/0/c/{i % 2}/{i // 2 % 2}" if i % 3 else "data/healthy.tif/0/c/1/1" for i in range(REQUESTS)
    ]

    def get(key):
        return key, raw_request(gateway.base, "GET", f"/{key}", {"Origin": "https://viewer.example"})

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(get, keys))
    seconds = time.monotonic() - started
    victim = [response for key, response in results if key.startswith(VICTIM)]
    healthy = [response.status for key, response in results if not key.startswith(VICTIM)]
    return victim, healthy, seconds


SERVER_LOGGERS = ("gateway", "adapters", "uvicorn", "tifffile", "h5py")


def victim_lines(caplog):
    """The server's lines about the victim, but for the access log (a line per request)."""
    return [
        r
        for r in caplog.records
        if r.name.split(".")[0] in SERVER_LOGGERS
        and r.name != "gateway.access"
        and "victim" in r.getMessage()
    ]


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda path: first_tile_offset(path) + 10, id="tiles-cut"),
        pytest.param(lambda path: 12, id="header-cut"),
    ],
)
def test_truncated_file_under_load_logs_a_line_per_interval(served, caplog, cut):
    path = served.root / "victim.tif"
    with open(path, "r+b") as fh:
        fh.truncate(cut(path))
    caplog.set_level(logging.INFO)
    caplog.clear()
    victim, healthy, seconds = hammer(served)

    assert healthy == [200] * len(healthy)
    for response in victim:
        assert_json_error(response, 500)
        assert response.headers["access-control-allow-origin"] == "*"
    lines = victim_lines(caplog)
    intervals = 1 + int(seconds // INTERVAL_SECONDS)
    # per interval at most: the catalog's reopening and "cannot open" lines, the error's line
    assert 1 <= len(lines) <= 4 * intervals, [r.getMessage()[:160] for r in lines]
    assert not any(r.exc_info for r in lines)
    served.assert_healthy()


def test_repaired_file_is_served_again_after_the_flood(served):
    path = served.root / "victim.tif"
    data = tifffile.imread(path)
    with open(path, "r+b") as fh:
        fh.truncate(12)
    hammer(served)
    write_healthy(path, offset=5)
    chunk = fetch_chunk(served.client, served.url(f"{VICTIM}/0"), "c/0/0")
    np.testing.assert_array_equal(chunk, data[:128, :128])


def test_malformed_http_warns_once_per_interval(served, caplog):
    """uvicorn answers a request it cannot parse itself, warning each time; the gateway's
    filter lets one warning per interval through."""
    server_logger = logging.getLogger("uvicorn")  # does not propagate to the root logger
    server_logger.addHandler(caplog.handler)
    try:
        host, port = served.base.removeprefix("http://").split(":")
        for _ in range(50):
            with socket.create_connection((host, int(port)), timeout=10) as connection:
                connection.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                assert connection.recv(1024).startswith(b"HTTP/1.1 400")
    finally:
        server_logger.removeHandler(caplog.handler)
    warnings = [r for r in caplog.records if "Invalid HTTP request" in r.getMessage()]
    assert len(warnings) == 1
    served.assert_healthy()
