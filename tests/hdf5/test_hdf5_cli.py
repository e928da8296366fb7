"""``ome-zarr-gateway inspect`` on HDF5 sources, run as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

from tests.hdf5.writers import BdvSetup, ImarisSpec, smooth, write_bdv, write_imaris

CLI = [sys.executable, "-m", "gateway"]


def inspect(path: Path) -> str:
    result = subprocess.run([*CLI, "inspect", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_inspect_bdv(tmp_path: Path) -> None:
    write_bdv(tmp_path / "set.xml", "set.h5", [BdvSetup(smooth((1, 6, 40, 30)), "nuclei")])
    out = inspect(tmp_path / "set.xml")
    assert "BigDataViewer, 1 image(s)" in out
    assert "image 'nuclei': 6x40x30 uint16 (zyx)" in out
    assert "channels: nuclei #FFFFFF" in out
    assert "pixel size: z 1 micrometer, y 0.5 micrometer, x 0.5 micrometer" in out


def test_inspect_imaris(tmp_path: Path) -> None:
    write_imaris(tmp_path / "a.ims", ImarisSpec(smooth((1, 2, 5, 50, 40)), channel_names=("A", "B")))
    out = inspect(tmp_path / "a.ims")
    assert "Imaris, 1 image(s)" in out and "2x5x50x40 uint16 (czyx)" in out
    assert "channels: A #00FF00" in out and "; B #FF00FF" in out


def test_inspect_generic_lists_paths_and_fallbacks(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("group/fast", data=np.ones((10, 20), np.uint8), chunks=(5, 5), compression="gzip")
        f.create_dataset("slow", data=np.ones((10, 20), np.uint8), chunks=(5, 5), compression="szip")
    out = inspect(tmp_path / "a.h5")
    assert "HDF5, 2 image(s)" in out
    assert "'group/fast'" in out and "--- group/fast/zarr.json" in out
    assert "warning: slow: read through h5py under a lock (filter 4 (szip))" in out


def test_inspect_reports_a_broken_file(tmp_path: Path) -> None:
    (tmp_path / "bad.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    result = subprocess.run([*CLI, "inspect", str(tmp_path / "bad.h5")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "not a readable HDF5 file" in result.stderr
