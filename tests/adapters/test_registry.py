"""adapters.registry: dispatch order, and sniffing that never blocks on what is not a file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from adapters.base import UnsupportedSourceError
from adapters.registry import Registry, default_registry
from adapters.tiff.adapter import TiffAdapter


def test_first_family_that_accepts_a_file_opens_it(tmp_path: Path) -> None:
    path = tmp_path / "plane.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8))
    assert isinstance(default_registry().find(path), TiffAdapter)
    assert Registry(()).find(path) is None
    assert not Registry(()).is_candidate(path)


def test_candidate_suffixes_are_case_insensitive() -> None:
    registry = default_registry()
    assert registry.is_candidate_name("SCAN.OME.TIF")
    assert registry.is_candidate_name("volume.h5")
    assert not registry.is_candidate_name("notes.txt")


def test_a_directory_is_no_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "run.tif"
    folder.mkdir()
    registry = default_registry()
    assert registry.find(folder) is None
    with pytest.raises(UnsupportedSourceError, match="not a regular file"):
        registry.open(folder)


_PROBE = """
import sys
from pathlib import Path
from adapters.registry import default_registry
registry = default_registry()
path = Path(sys.argv[1])
print(registry.find(path), registry.is_dataset_file(path))
try:
    registry.open(path)
except Exception as exc:
    print(type(exc).__name__)
"""


@pytest.mark.parametrize("name", ["planted.xml", "planted.tif", "planted.h5"])
def test_a_fifo_named_like_a_dataset_never_blocks(tmp_path: Path, name: str) -> None:
    """Anyone who writes into a served folder can make a FIFO; opening one blocks until
    a writer comes. The probe runs in a child process so that a regression fails this
    test by its timeout instead of hanging the suite."""
    fifo = tmp_path / name
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(fifo)],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    found, listed, error = done.stdout.split()[0], done.stdout.split()[1], done.stdout.split()[2]
    assert found == "None"
    assert listed == "False" or name.endswith((".tif", ".h5"))  # unambiguous suffixes are not sniffed
    assert error == "UnsupportedSourceError"
