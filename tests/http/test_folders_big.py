"""A folder of 5,000 files on a cold server: its first page is answered from the directory
listing alone (no file sniffed or opened), and what the files hold fills in afterwards."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from adapters.registry import Registry
from adapters.tiff.adapter import TiffAdapter
from gateway.config.settings import Settings
from gateway.web.app import create_app
from tests.http.support import new_client
from tests.server import serve_app

JSON = {"Accept": "application/json"}


class GatedTiff(TiffAdapter):
    """The TIFF family, recording every look at a file (sniff or open) and holding each
    until ``gate`` opens: a listing that needed one would never answer."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate
        self.looked: list[Path] = []

    def can_open(self, path: Path) -> bool:
        self.looked.append(path)
        self.gate.wait()
        return super().can_open(path)

    def open(self, path, tiles, options=None):
        self.looked.append(path)
        self.gate.wait()
        return super().open(path, tiles, options)


def test_big_folder_first_page_opens_no_file(tmp_path):
    root = tmp_path / "big"
    root.mkdir()
    for index in range(5000):
        (root / f"img{index:04d}.tif").touch()
    gate = threading.Event()
    adapter = GatedTiff(gate)
    settings = Settings.from_mapping({"roots": {"big": str(root)}, "server": {"threads": 4}})
    app = create_app(settings, registry=Registry([adapter]))
    with serve_app(app, settings.server) as base, new_client() as client:
        try:
            document = client.get(f"{base}/big/", headers=JSON, params={"limit": 250}).json()
            # answered while every look at a file blocks: the listing needed none; only the
            # background probes (two threads at most) have started since
            assert len(adapter.looked) <= 2
            assert {d["status"] for d in document["datasets"]} == {"unknown"}
            assert len(document["datasets"]) == 250 and document["total"] == 5000
            assert document["next"].endswith("after=img0249.tif")
            gate.set()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                first = client.get(f"{base}/big/", headers=JSON, params={"limit": 5}).json()["datasets"]
                if all(d["status"] != "unknown" for d in first):
                    break
                time.sleep(0.05)
            assert [d["reason"] for d in first] == ["empty file (0 bytes)"] * 5
            second = client.get(document["next"], headers=JSON).json()
            assert second["datasets"][0]["name"] == "img0250.tif"
        finally:  # a listing that waited for a file must not hang the server's shutdown
            gate.set()
