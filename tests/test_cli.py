"""The command line, run as real subprocesses: serve (directory, config, workers, what it says
at start, what it refuses), demo, inspect (details, summary, files that are not)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import hdf5plugin
import httpx
import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr_models.v05.image import Image as OmeImage

from gateway.demo import ensure_demo_files

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
    with running(args, "Application startup complete") as (process, _):
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(base)
        for _ in range(4):  # new connections: requests spread over the worker processes
            assert httpx.get(f"{base}/lab/sub/plane.tif/zarr.json").status_code == 200
            np.testing.assert_array_equal(zarr.open_array(f"{base}/lab/sub/plane.tif/0", mode="r")[:], data)
        if sys.platform == "linux" and not any(k.startswith("MALLOC_") for k in os.environ):
            # the workers start with the allocator settings of gateway.ops.allocator
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
            environments = [Path(f"/proc/{child}/environ").read_bytes().split(b"\0") for child in children]
            workers = [env for env in environments if b"MALLOC_ARENA_MAX=4" in env]
            assert len(workers) >= 2, children  # the two workers (and any helper process)


def test_serve_rejects_missing_directory(tmp_path: Path) -> None:
    result = subprocess.run([*CLI, "serve", str(tmp_path / "nope")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "neither a directory" in result.stderr


def test_demo_writes_and_serves_valid_images(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    with running(["demo", "--dir", str(demo_dir), "--port", "0"], "Listing:") as (_, lines):
        output = "".join(lines)
        assert output.startswith(f"Writing 5 demo file(s) to {demo_dir} (once)...\n")
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


# -- issue 12: the newcomer's frictions ------------------------------------------------------------


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_a_port_in_use_is_one_clear_line_and_exit_69(tiff_dir, host: str) -> None:
    folder, _ = tiff_dir
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", str(folder), "--host", host, "--port", str(port))
    assert result.returncode == 69  # EX_UNAVAILABLE
    assert result.stderr.splitlines() == [
        f"error: cannot listen on {host}:{port}: the port is in use (another server?); "
        "choose another --port, or --port 0 for a free one"
    ]
    assert result.stdout == ""


def test_serve_names_its_roots_and_counts_their_datasets(tmp_path: Path) -> None:
    lab, empty = tmp_path / "lab", tmp_path / "empty"
    for relative in ("a.tif", "2024/b.tif", "2024/run/c.ome.tif"):
        (lab / relative).parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(lab / relative, np.zeros((8, 8), np.uint8))
    (lab / "notes.txt").write_text("not an image")
    (lab / ".hidden.tif").write_bytes(b"")
    empty.mkdir()
    with running(["serve", str(lab), str(empty), "--port", "0"], "Found") as (_, lines):
        output = "".join(lines)
    base = URL.search(output).group(1)
    assert f"Serving 2 roots at {base}/\n  lab → {lab}\n  empty → {empty}\n" in output
    assert re.search(r"^Found 3 datasets in 2 roots \(empty 0, lab 3\) in \d+\.\d s$", output, re.M), output


def _routed_address() -> str | None:
    """This machine's address towards the outside (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_serve_on_every_interface_prints_a_url_others_can_use(tiff_dir) -> None:
    """--host 0.0.0.0: the first URL names this machine (its name or address, never
    127.0.0.1 or 0.0.0.0), and it answers."""
    if _routed_address() is None:
        pytest.skip("this machine has no network address besides loopback")
    folder, data = tiff_dir
    args = ["serve", str(folder), "--host", "0.0.0.0", "--port", "0", "--name", "lab"]
    with running(args, "Serving") as (_, lines):
        first = next(line for line in lines if line.startswith("Serving"))
        base = re.search(r" at (http://\S+?)/$", first.rstrip("\n")).group(1)
        host = base.removeprefix("http://").rsplit(":", 1)[0]
        assert host not in ("127.0.0.1", "0.0.0.0", "localhost"), first
        wait_until_serving(base)
        np.testing.assert_array_equal(zarr.open_array(f"{base}/lab/sub/plane.tif/0", mode="r")[:], data)


def test_log_level_and_config_work_after_the_command(tiff_dir) -> None:
    folder, _ = tiff_dir
    config = folder / "gateway.toml"
    config.write_text('[server]\naccess_log = "off"\n')
    args = ["serve", str(folder), "--port", "0", "--config", str(config), "--log-level", "warning"]
    with running(args, "Found") as (_, lines):
        base = URL.search("".join(lines)).group(1)
        wait_until_serving(base)
        assert httpx.get(f"{base}/sub/plane.tif/zarr.json").status_code in (200, 404)
        time.sleep(1.5)  # an access line would be flushed within a second
    output = "".join(lines)
    assert "INFO" not in output, output  # uvicorn's "Started server process" is INFO


@pytest.mark.parametrize("order", ["before", "after"])
def test_inspect_takes_config_before_or_after_the_command(tmp_path: Path, order: str) -> None:
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((200, 200), np.uint16))
    config = tmp_path / "gateway.toml"
    config.write_text("[chunks]\nyx = 128\n")
    options = ["--config", str(config)]
    argv = [*options, "inspect", str(tmp_path / "a.tif")]
    if order == "after":
        argv = ["inspect", str(tmp_path / "a.tif"), *options]
    result = run_cli(*argv)
    assert result.returncode == 0, result.stderr
    assert "chunks (128, 128)" in result.stdout  # default: one 256-px chunk


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("absent.tif", "no such file"),
        ("absent", "no such file"),
        ("folder", "is a directory (inspect one file; serve a folder with `ome-zarr-gateway serve`)"),
    ],
)
def test_inspect_of_no_file_says_what_it_is(tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / "folder").mkdir()
    result = run_cli("inspect", str(tmp_path / name))
    assert result.returncode == 1
    assert result.stderr == f"error: {tmp_path / name}: {message}\n"
    assert "adapter" not in result.stderr


def test_inspect_prints_the_served_channel_colours(tmp_path: Path) -> None:
    tifffile.imwrite(
        tmp_path / "three.tif", np.zeros((3, 32, 32), np.uint16), imagej=True, metadata={"axes": "CYX"}
    )
    result = run_cli("inspect", str(tmp_path / "three.tif"))
    assert result.returncode == 0, result.stderr
    root = result.stdout.split("--- zarr.json\n", 1)[1].split("\n---", 1)[0]
    served = json.loads(root)["attributes"]["ome"]["omero"]["channels"]
    channels = re.search(r"^    channels: (.*)$", result.stdout, re.M).group(1)
    assert [c.split(" window")[0] for c in channels.split("; ")] == [
        f"{c['label']} #{c['color']}" for c in served
    ]
    assert "#------" not in result.stdout


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        ({"photometric": "minisblack"}, "pixel size: uncalibrated (no physical unit)"),
        (
            {"imagej": True, "resolution": (2.0, 2.0), "metadata": {"unit": "um"}},
            "pixel size: y 0.5 micrometer, x 0.5 micrometer",
        ),
    ],
)
def test_inspect_says_uncalibrated_where_the_file_has_no_unit(tmp_path: Path, write, expected: str) -> None:
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((16, 16), np.uint8), **write)
    result = run_cli("inspect", "--summary", str(tmp_path / "a.tif"))
    assert result.returncode == 0, result.stderr
    assert f"    {expected}\n" in result.stdout
    assert "=1," not in result.stdout and "x=1" not in result.stdout


def test_inspect_summary_is_a_few_lines_per_image(shared_data: Path) -> None:
    xml = shared_data / "pybdv_derived" / "cells3d_stardist.xml"
    result = run_cli("inspect", "--summary", str(xml))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{xml}: BigDataViewer, 2 image(s)",
        "  image 'cells3d_nuclei' at 0/: 60x256x256 uint16 (zyx)",
        "    pixel size: z 0.29 micrometer, y 0.26 micrometer, x 0.26 micrometer",
        "    levels: 4 (1 synthesized): 60x256x256, 60x128x128, 30x64x64, 15x32x32",
        result.stdout.splitlines()[4],  # the window is estimated from the data: checked below
        "  image 'stardist_img3d' at 1/: 31x61x57 uint16 (zyx)",
        "    pixel size: z 2 micrometer, y 1 micrometer, x 1 micrometer",
        "    levels: 3 (1 synthesized): 31x61x57, 31x30x28, 16x15x14",
        result.stdout.splitlines()[8],
    ]
    assert re.fullmatch(
        r"    channels: cells3d_nuclei #[0-9A-F]{6} window \[\d+, \d+\]", result.stdout.splitlines()[4]
    )
    full = run_cli("inspect", str(xml))
    assert len(full.stdout.splitlines()) > 10 * len(result.stdout.splitlines())  # documents and all


def test_demo_does_not_say_it_writes_files_it_already_has(tmp_path: Path) -> None:
    ensure_demo_files(tmp_path / "demo")
    with running(["demo", "--dir", str(tmp_path / "demo"), "--port", "0"], "Listing:") as (_, lines):
        output = "".join(lines)
    assert "Writing" not in output
    assert "/demo/pyramid-3channel.ome.tif/" in output


def test_a_bad_labels_entry_refuses_the_start_naming_it(tiff_dir) -> None:
    folder, _ = tiff_dir
    tifffile.imwrite(folder / "sub" / "float.tif", np.zeros((40, 50), np.float32))
    config = folder / "gateway.toml"
    config.write_text(
        f'[roots]\nlab = "{folder}"\n[[labels]]\nimage = "lab/sub/plane.tif"\nsource = "lab/sub/float.tif"\n'
    )
    result = run_cli("serve", str(config), "--port", "0")
    assert result.returncode == 2
    assert result.stderr == (
        "error: labels[0].source: 'lab/sub/float.tif' cannot label 'lab/sub/plane.tif': "
        "its data type float32 is not an integer type\n"
    )
    assert "Serving" not in result.stdout


@pytest.mark.parametrize(
    ("options", "config", "making"),
    [
        (
            {"shuffle": True, "compression": "gzip"},
            "",
            "sent as stored, each stream in a blosc frame (blosc zlib level 4, shuffle, one block)",
        ),
        (
            {"compression": "gzip", "compression_opts": 4},
            "",
            "sent as stored, each stream in a blosc frame (blosc zlib level 4, noshuffle, one block)",
        ),
        (
            {"shuffle": True, "compression": "lzf"},
            "",
            "made from the stored chunks still shuffled (blosc zstd level 1, shuffle, one block)",
        ),
        (
            {"shuffle": True, "compression": "gzip"},
            "z = 8",
            "cut in slabs of whole planes from the stored chunks still shuffled (blosc zstd level 1, "
            "shuffle, one block)",
        ),
        (
            {"compression": "gzip", "compression_opts": 4},
            'codec = "zstd"',
            "compressed afresh (zstd level 1)",
        ),
        (
            {"compression": "gzip", "compression_opts": 4},
            'codec = "gzip"',
            "sent as gzip members of the stored deflate data (gzip level 4)",
        ),
        (dict(hdf5plugin.Zstd(clevel=3)), "", "sent as stored (zstd level 3)"),
    ],
)
def test_inspect_says_how_each_levels_chunks_are_made(tmp_path: Path, options, config, making) -> None:
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f.create_dataset("v", data=np.ones((64, 256, 256), "uint16"), chunks=(32, 128, 128), **options)
    (tmp_path / "c.toml").write_text(f"[chunks]\n{config}\n[browse]\nmax_z = 16\n")
    result = subprocess.run(
        [*CLI, "--config", str(tmp_path / "c.toml"), "inspect", str(tmp_path / "v.h5")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    level0 = next(line for line in result.stdout.splitlines() if line.strip().startswith("level 0:"))
    assert making in level0
    level1 = next(line for line in result.stdout.splitlines() if line.strip().startswith("level 1:"))
    assert "synthesized" in level1 and "compressed afresh" in level1
    browsing = [line.strip() for line in result.stdout.splitlines() if "in the browsing view" in line]
    # 32-plane chunks are cut in slabs of 16 there (z = 8 leaves them within max_z); uncompressed
    slab = "in the browsing view (/browse/): chunks (16, 128, 128): copied from the decoded source (uncompressed)"
    assert browsing[:1] == ([] if config == "z = 8" else [slab])


def test_inspect_shows_no_browsing_view_where_it_cuts_nothing(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "stack.tif", np.ones((40, 256, 256), "uint16"))
    result = subprocess.run(
        [*CLI, "inspect", "--summary", str(tmp_path / "stack.tif")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    full = subprocess.run([*CLI, "inspect", str(tmp_path / "stack.tif")], capture_output=True, text=True)
    assert "level 0:" in full.stdout and "browsing view" not in full.stdout
