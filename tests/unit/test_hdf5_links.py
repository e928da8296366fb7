"""H5File.get: links followed one at a time, external ones only through the FileAccess."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from adapters.base import UnsupportedSourceError
from adapters.hdf5.file import H5File, RefusedStorageError
from adapters.io.files import FileAccess, OutsideRootsError


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "root" / "parts").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    with h5py.File(tmp_path / "outside" / "o.h5", "w") as f:
        f["d"] = np.ones((4, 4), np.uint16)
    with h5py.File(tmp_path / "root" / "parts" / "p.h5", "w") as f:
        f["g/d"] = np.full((4, 4), 7, np.uint16)
        f["g/back"] = h5py.SoftLink("/g/d")
    with h5py.File(tmp_path / "root" / "main.h5", "w") as f:
        f["real/d"] = np.zeros((4, 4), np.uint16)
        f["soft_abs"] = h5py.SoftLink("/real/d")
        f["real/soft_rel"] = h5py.SoftLink("d")
        f["loop_a"] = h5py.SoftLink("/loop_b")
        f["loop_b"] = h5py.SoftLink("/loop_a")
        f["part"] = h5py.ExternalLink("parts/p.h5", "/g")
        f["out"] = h5py.ExternalLink("../outside/o.h5", "/d")
        f["dangling"] = h5py.ExternalLink("parts/missing.h5", "/d")
        f.create_dataset("ext", shape=(4, 4), dtype=np.uint16, external=[("raw.bin", 0, 32)])
    return tmp_path


@pytest.fixture
def main(files: Path):
    file = H5File(files / "root" / "main.h5", FileAccess.under(files / "root"))
    yield file
    file.close()


def test_soft_links_resolve_inside_the_file(main: H5File) -> None:
    assert main.get("soft_abs").name == "/real/d"
    assert main.get("real/soft_rel").name == "/real/d"
    assert main.get("real/missing") is None


def test_soft_link_loops_end(main: H5File) -> None:
    with pytest.raises(UnsupportedSourceError, match="loop"):
        main.get("loop_a")


def test_external_link_inside_opens_the_file_as_a_dependency(files: Path, main: H5File) -> None:
    dataset = main.get("part/back")  # an external link, then a soft link in the other file
    assert isinstance(dataset, h5py.Dataset)
    assert int(dataset[0, 0]) == 7
    main.contained(dataset)  # a file opened through the FileAccess
    names = [d.path.name for d in main.dependencies(exclude=files / "root" / "main.h5")]
    assert names == ["p.h5"]


def test_external_link_outside_is_refused_without_opening_it(main: H5File) -> None:
    with pytest.raises(OutsideRootsError):
        main.get("out")
    assert [Path(p).name for p in main.versions] == ["main.h5"]


def test_dangling_external_link_is_an_error_not_a_crash(main: H5File) -> None:
    with pytest.raises(UnsupportedSourceError):
        main.get("dangling")


def test_external_raw_storage_is_refused(main: H5File) -> None:
    dataset = main.get("ext")
    assert isinstance(dataset, h5py.Dataset)
    with pytest.raises(RefusedStorageError, match="external raw files"):
        main.contained(dataset)


def test_a_dataset_libhdf5_reached_by_itself_is_refused(files: Path, main: H5File) -> None:
    with h5py.File(files / "root" / "parts" / "p.h5", "r") as other, pytest.raises(OutsideRootsError):
        main.contained(other["g/d"])
