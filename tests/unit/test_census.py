"""gateway.store.census: the dataset count ``serve`` prints, taken in the background."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from adapters.base import TileCache, UnsupportedSourceError
from adapters.registry import Registry, default_registry
from gateway.config.settings import Settings
from gateway.demo import write_bdv
from gateway.store.cache import ByteLRU
from gateway.store.catalog import Catalog
from gateway.store.census import BackgroundCount, Census, count_datasets


def _tif(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A root of 5 datasets (a BigDataViewer XML and its HDF5 file among them) and what
    must not count."""
    root = tmp_path / "root"
    _tif(root / "a.tif")
    _tif(root / "deep" / "er" / "b.ome.tif")
    write_bdv(root / "run.xml")  # an XML that is a dataset (sniffed), and its .h5 (served too)...
    (root / "notes.xml").write_text("<notes/>")  # ...and one that is not
    (root / "readme.txt").write_text("not an image")
    _tif(root / ".hidden.tif")
    _tif(root / ".cache" / "c.tif")  # inside a hidden folder
    _tif(tmp_path / "outside" / "o.tif")
    (root / "escape.tif").symlink_to(tmp_path / "outside" / "o.tif")  # leaves the root
    (root / "again.tif").symlink_to(root / "a.tif")  # stays inside: listed, so counted
    (root / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)  # not entered
    os.mkfifo(root / "pipe.tif")  # not a regular file
    return root


def test_counts_what_the_listing_lists(tree: Path) -> None:
    census = count_datasets({"lab": tree}, default_registry())
    assert census.by_root == {"lab": 5}  # a.tif, again.tif, deep/er/b.ome.tif, run.xml, its .h5
    catalog = Catalog(Settings(roots={"lab": tree}), ByteLRU(0), default_registry(), lambda *_: None)  # type: ignore[arg-type,return-value]
    assert census.total == len(list(catalog.iter_datasets()))


def test_counts_every_root_and_says_so(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    census = count_datasets({"lab": tree, "empty": tmp_path / "empty"}, default_registry())
    assert census.by_root == {"empty": 0, "lab": 5}
    assert census.summary(0.25) == "Found 5 datasets in 2 roots (empty 0, lab 5) in 0.2 s"
    assert Census({"lab": 1}).summary(1.0) == "Found 1 dataset in lab in 1.0 s"


def test_a_set_stop_ends_the_walk(tree: Path) -> None:
    stop = threading.Event()
    stop.set()
    census = count_datasets({"lab": tree}, default_registry(), stop)
    assert census.by_root == {"lab": 4}  # the root folder only: deep/er/b.ome.tif not reached


class SlowXml:
    """An adapter whose sniff waits for ``release``: a slow file system, as seen by the count."""

    name = "slow"
    suffixes = (".xml",)

    def __init__(self) -> None:
        self.release = threading.Event()

    def can_open(self, path: Path) -> bool:
        self.release.wait(30)
        return True

    def open(self, path: Path, tiles: TileCache, options: object = None) -> None:
        raise UnsupportedSourceError("never opened by a count")


def test_the_count_runs_beside_the_caller_and_reports_progress_then_the_total(tmp_path: Path) -> None:
    for name in ("a.xml", "b.xml"):
        (tmp_path / name).write_text("<x/>")
    adapter = SlowXml()
    lines: list[str] = []
    count = BackgroundCount({"lab": tmp_path}, Registry([adapter]), lines.append, report_seconds=0.05)
    started = time.monotonic()
    count.start()
    assert time.monotonic() - started < 1  # start() does not wait for the walk
    assert lines == []  # blocked in the first sniff: nothing counted, nothing said yet
    adapter.release.set()
    deadline = time.monotonic() + 30
    while not any(line.startswith("Found") for line in lines) and time.monotonic() < deadline:
        time.sleep(0.01)
    count.stop()
    assert lines[-1].startswith("Found 2 datasets in lab in ")
    assert all(line.startswith("Counting datasets:") for line in lines[:-1])


def test_progress_is_reported_every_few_seconds_while_counting(tmp_path: Path) -> None:
    for index in range(3):
        (tmp_path / f"d{index}").mkdir()
        (tmp_path / f"d{index}" / "x.xml").write_text("<x/>")
    adapter = SlowXml()
    adapter.release.set()
    slow = Registry([adapter])
    lines: list[str] = []
    original = adapter.can_open

    def can_open(path: Path) -> bool:
        time.sleep(0.2)  # three folders, 0.2 s each: progress every 0.1 s is due twice at least
        return original(path)

    adapter.can_open = can_open  # type: ignore[method-assign]
    count = BackgroundCount({"lab": tmp_path}, slow, lines.append, report_seconds=0.1)
    count.start()
    deadline = time.monotonic() + 30
    while not any(line.startswith("Found") for line in lines) and time.monotonic() < deadline:
        time.sleep(0.01)
    count.stop()
    progress = [line for line in lines if line.startswith("Counting datasets:")]
    assert len(progress) >= 2, lines
    assert progress[-1] in {f"Counting datasets: {n:,} so far..." for n in (1, 2, 3)}
    assert lines[-1].startswith("Found 3 datasets in lab")
