"""gateway.store.catalog: unsafe URL paths are refused before any I/O; files stay inside roots."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from gateway.config.settings import Settings
from gateway.store.cache import ByteLRU
from gateway.store.catalog import SourceUnavailableError, split_url_path
from tests.catalogs import make_catalog


@pytest.mark.parametrize(
    "path",
    [
        "",
        "data/../x.tif",
        "data/..",
        "..",
        "data/./x.tif",
        "./data",
        "data//x.tif",
        "data/.hidden.tif",
        "data/.git/x.tif",
        ".data/x.tif",
        "data/x.tif/.zarray",
        "data/x.tif/...",
        "data/x\x00.tif",
        "data/x.tif\x00",
        "data\\..\\x.tif",
        "data/sub\\x.tif",
    ],
)
def test_unsafe_path_is_refused(path):
    assert split_url_path(path) is None


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("data/x.tif/zarr.json", ["data", "x.tif", "zarr.json"]),
        ("data/x.tif/0/c/0/0", ["data", "x.tif", "0", "c", "0", "0"]),
        ("data/a..b.tif", ["data", "a..b.tif"]),
        ("data/%2e%2e/x.tif", ["data", "%2e%2e", "x.tif"]),  # already decoded: a literal name
    ],
)
def test_safe_path_gives_segments(path, segments):
    assert split_url_path(path) == segments


@pytest.mark.parametrize("path", ["data/x.tif/", "//data/x.tif", "data/x.tif/0/c/0/0/"])
def test_empty_leading_or_trailing_segment_is_refused(path):
    assert split_url_path(path) is None


# -- Catalog.locate: containment on disk --------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    image = np.ones((16, 16), np.uint8)
    for path in (root / "a.tif", outside / "secret.tif", root / ".hidden.tif"):
        tifffile.imwrite(path, image, photometric="minisblack")
    (root / "bad.tif").write_bytes(b"nope")
    os.symlink(outside / "secret.tif", root / "out.tif")
    os.symlink(root / "a.tif", root / "in.tif")
    os.symlink(outside, root / "outdir")
    os.mkfifo(root / "pipe.tif")  # anyone writing into a served folder can plant these: never
    os.mkfifo(root / "pipe.xml")  # listed, never opened (opening a FIFO blocks for a writer)
    catalog = make_catalog(Settings(roots={"data": root}), ByteLRU(10**6))
    yield catalog
    catalog.close()


def test_locate_finds_a_file_and_inner_key(tree):
    located = tree.locate("data/a.tif/0/zarr.json")
    assert (located.dataset.url_path, located.key) == ("data/a.tif", "0/zarr.json")


def test_a_fifo_named_like_a_dataset_is_no_dataset(tree):
    assert tree.locate("data/pipe.tif/zarr.json") is None
    assert tree.locate("data/pipe.xml/zarr.json") is None


def test_locate_follows_a_symlink_inside_the_root(tree):
    assert tree.locate("data/in.tif/zarr.json") is not None


@pytest.mark.parametrize(
    "path",
    [
        "data/out.tif/zarr.json",
        "data/outdir/secret.tif/zarr.json",
        "data/.hidden.tif/zarr.json",
        "data/missing.tif/zarr.json",
        "other/a.tif/zarr.json",
        "data/a.txt/zarr.json",
        "data",
        "",
    ],
)
def test_locate_refuses_what_is_not_a_contained_dataset(tree, path):
    assert tree.locate(path) is None


def test_locate_of_an_unreadable_file_raises(tree):
    with pytest.raises(SourceUnavailableError):
        tree.locate("data/bad.tif/zarr.json")


def test_iter_datasets_lists_only_contained_visible_files(tree):
    assert [url for url, _path in tree.iter_datasets()] == ["data/a.tif", "data/bad.tif", "data/in.tif"]


def test_directory_entries_skip_hidden_and_outside(tree):
    assert tree.directory_entries("data") == ["a.tif", "bad.tif", "in.tif"]


def test_directory_entries_of_a_symlink_leading_out_is_empty(tree):
    assert tree.directory_entries("data/outdir") == []
