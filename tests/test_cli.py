"""The command line, run as real subprocesses: serve (directory, config, workers), demo, inspect."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr_models.v05.image import Image as OmeImage

CLI = [sys.executable, "-m", "gateway"]
URL = re.compile(r"(http://127\.0\.0\.1:\d+)/")


@contextmanager
def running(args: list[str], wait_for: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """Start the CLI, collect stdout until a line contains ``wait_for``; stop it on exit."""
    process = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if wait_for in line:
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        if not ready.wait(timeout=120):
            raise AssertionError(f"CLI did not print {wait_for!r}; output:\n{''.join(lines)}")
        yield process, lines
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def wait_until_serving(base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/", headers={"accept": "application/json"}).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{base} never answered")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tiff_dir(tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = (np.arange(40 * 50, dtype=np.uint16) * 7).reshape(40, 50)
    (tmp_path / "sub").mkdir()
    tifffile.imwrite(tmp_path / "sub" / "plane.tif", data, photometric="minisblack")
    return tmp_path, data


def test_serve_directory_prints_url_and_serves(tiff_dir) -> None:
    folder, data = tiff_dir
    with running(["serve", str(folder), "--port", "0", "--name", "lab"], "Serving") as (_, lines):
        base = URL.search("".join(lines)).group(1)
        wait_until_serving(base)
        group = zarr.open_group(f"{base}/lab/sub/plane.tif", mode="r")
        np.testing.assert_array_equal(group["0"][:], data)


def test_serve_config_file(tiff_dir) -> None:
    folder, data = tiff_dir
    config = folder / "gateway.toml"
    config.write_text(f'[roots]\nimages = "{folder}"\n[chunks]\ncodec = "gzip"\nyx = 128\n')
    with running(["serve", str(config), "--port", "0"], "Serving") as (_, lines):
        base = URL.search("".join(lines)).group(1)
        wait_until_serving(base)
        array = zarr.open_array(f"{base}/images/sub/plane.tif/0", mode="r")
        assert array.metadata.codecs[-1].to_dict()["name"] == "gzip"
        assert array.chunks == (64, 64)  # the 40x50 image fits a 64-px chunk (next power of two)
        np.testing.assert_array_equal(array[:], data)


def test_serve_with_several_workers(tiff_dir) -> None:
    folder, data = tiff_dir
    port = free_port()
    args = ["serve", str(folder), "--port", str(port), "--workers", "2", "--name", "lab"]
    with running(args, "Application startup complete"):
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(base)
        for _ in range(4):  # new connections: requests spread over the worker processes
            assert httpx.get(f"{base}/lab/sub/plane.tif/zarr.json").status_code == 200
            np.testing.assert_array_equal(zarr.open_array(f"{base}/lab/sub/plane.tif/0", mode="r")[:], data)


def test_serve_rejects_missing_directory(tmp_path: Path) -> None:
    result = subprocess.run([*CLI, "serve", str(tmp_path / "nope")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "neither a directory" in result.stderr


def test_demo_writes_and_serves_valid_images(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    with running(["demo", "--dir", str(demo_dir), "--port", "0"], "Listing:") as (_, lines):
        output = "".join(lines)
        urls = re.findall(r"(http://127\.0\.0\.1:\d+/demo/\S+?)/\s", output)
        assert len(urls) == 5, output
        wait_until_serving(URL.search(output).group(1))
        for url in urls:
            group = zarr.open_group(url, mode="r")
            OmeImage.from_zarr(group)
            level0 = group["0"]
            if not url.endswith(".tif"):
                assert level0.size > 0
                continue
            with tifffile.TiffFile(demo_dir / url.rsplit("/", 1)[-1]) as tif:
                reference = tif.series[0].levels[0].asarray()
            assert level0.size == reference.size
        bdv = zarr.open_group(next(u for u in urls if u.endswith(".xml")), mode="r")
        assert [c["label"] for c in bdv.attrs["ome"]["omero"]["channels"]] == ["DAPI", "GFP"]
        assert bdv["0"].shape == (2, 2, 32, 128, 128)
        imaris = zarr.open_group(next(u for u in urls if u.endswith(".ims")), mode="r")
        assert [c["label"] for c in imaris.attrs["ome"]["omero"]["channels"]] == ["Hoechst", "Actin"]
        assert imaris["0"].shape == (2, 24, 180, 150)  # cropped: the arrays are padded
        pyramid = zarr.open_group(next(u for u in urls if "pyramid" in u), mode="r")
        multiscale = pyramid.attrs["ome"]["multiscales"][0]
        assert len(multiscale["datasets"]) == 4
        assert [c["label"] for c in pyramid.attrs["ome"]["omero"]["channels"]] == ["DAPI", "GFP", "mCherry"]


def test_inspect_prints_images_and_documents(tiff_dir) -> None:
    folder, _ = tiff_dir
    result = subprocess.run(
        [*CLI, "inspect", str(folder / "sub" / "plane.tif")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "1 image(s)" in result.stdout
    assert "shape (40, 50) uint16" in result.stdout
    assert "--- zarr.json" in result.stdout and "--- 0/zarr.json" in result.stdout
    assert '"data_type": "uint16"' in result.stdout


def test_inspect_reports_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00garbage")
    result = subprocess.run([*CLI, "inspect", str(bad)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "error:" in result.stderr


def test_serve_announces_public_url_and_workers_keep_the_request_deadline(tiff_dir) -> None:
    """The [server] options reach uvicorn's workers too: their pages link to public_url,
    and a half-sent request is cut off after header_timeout_seconds."""
    folder, _ = tiff_dir
    port = free_port()
    config = folder / "gateway.toml"
    config.write_text(
        f'[roots]\nlab = "{folder}"\n[server]\nport = {port}\nworkers = 2\n'
        'public_url = "https://zarr.example.org/zarr"\nheader_timeout_seconds = 1.0\n'
    )
    with running(["serve", str(config)], "Serving") as (_, lines):
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(base)
        assert f"at {base}/\nPublic URL (page links): https://zarr.example.org/zarr/\n" in "".join(lines)
        page = httpx.get(f"{base}/lab/sub/plane.tif/", params={"format": "json"}).json()
        assert page["url"] == "https://zarr.example.org/zarr/lab/sub/plane.tif/"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
            assert sock.recv(1024) == b""  # closed by the server, well within the timeout of 10 s
