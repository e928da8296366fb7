"""FileAccess: names resolved as HDF5/BigDataViewer read them, and nothing outside the roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.base import UnsupportedSourceError
from adapters.io.files import FileAccess, OutsideRootsError


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``root/`` (a.bin, sub/b.bin, out → ../outside, alias.bin → ../outside/s.bin),
    ``root2/`` (a name that shares root's prefix) and ``outside/s.bin``."""
    for directory in ("root/sub", "root2", "outside"):
        (tmp_path / directory).mkdir(parents=True)
    (tmp_path / "root" / "a.bin").write_bytes(b"inside")
    (tmp_path / "root" / "sub" / "b.bin").write_bytes(b"below")
    (tmp_path / "root2" / "c.bin").write_bytes(b"neighbour")
    (tmp_path / "outside" / "s.bin").write_bytes(b"secret")
    os.symlink(tmp_path / "outside", tmp_path / "root" / "out")
    os.symlink(tmp_path / "outside" / "s.bin", tmp_path / "root" / "alias.bin")
    return tmp_path


def test_relative_names_are_relative_to_the_referring_file(tree: Path) -> None:
    access = FileAccess.under(tree / "root")
    assert access.resolve("b.bin", referrer=tree / "root" / "sub" / "x.h5") == tree / "root" / "sub" / "b.bin"
    assert access.resolve("../a.bin", referrer=tree / "root" / "sub" / "x.h5") == tree / "root" / "a.bin"


def test_absolute_names_inside_are_resolved(tree: Path) -> None:
    access = FileAccess.under(tree / "root")
    assert access.resolve(str(tree / "root" / "sub" / "b.bin"), referrer=tree / "elsewhere.h5") == (
        tree / "root" / "sub" / "b.bin"
    )


@pytest.mark.parametrize(
    "name",
    [
        "../outside/s.bin",
        "../../etc/passwd",
        "/etc/passwd",
        "out/s.bin",
        "alias.bin",
        "../root2/c.bin",
        "a\x00.bin",
    ],
)
def test_names_leading_outside_are_refused(tree: Path, name: str) -> None:
    with pytest.raises(OutsideRootsError):
        FileAccess.under(tree / "root").resolve(name, referrer=tree / "root" / "x.h5")


def test_a_missing_file_outside_is_refused_like_an_existing_one(tree: Path) -> None:
    """Whether a file outside exists is not revealed: same error class and message shape."""
    access = FileAccess.under(tree / "root")
    with pytest.raises(OutsideRootsError, match="lies outside"):
        access.resolve("../outside/missing.bin", referrer=tree / "root" / "x.h5")


def test_a_missing_file_inside_is_not_an_outside_error(tree: Path) -> None:
    with pytest.raises(UnsupportedSourceError) as caught:
        FileAccess.under(tree / "root").resolve("missing.bin", referrer=tree / "root" / "x.h5")
    assert not isinstance(caught.value, OutsideRootsError)


def test_several_roots_are_each_allowed(tree: Path) -> None:
    access = FileAccess.under(tree / "root", tree / "root2")
    assert access.resolve(str(tree / "root2" / "c.bin")) == tree / "root2" / "c.bin"


def test_beside_allows_the_files_own_directory_tree_only(tree: Path) -> None:
    access = FileAccess.beside(tree / "root" / "sub" / "x.h5")
    assert access.resolve("b.bin", referrer=tree / "root" / "sub" / "x.h5").name == "b.bin"
    with pytest.raises(OutsideRootsError):
        access.resolve("../a.bin", referrer=tree / "root" / "sub" / "x.h5")


def test_open_reads_a_contained_file(tree: Path) -> None:
    file = FileAccess.under(tree / "root").open("sub/b.bin", referrer=tree / "root" / "x.h5")
    try:
        assert file.pread(0, 5) == b"below"
    finally:
        file.close()


def test_verify_opened_catches_a_descriptor_of_another_file(tree: Path) -> None:
    """What a symlink swapped in between the check and the open would look like."""
    access = FileAccess.under(tree / "root")
    fd = os.open(tree / "outside" / "s.bin", os.O_RDONLY)
    try:
        with pytest.raises(OutsideRootsError):
            access.verify_opened(fd, tree / "root" / "a.bin")
        with pytest.raises(OutsideRootsError):
            access.verify_opened(fd, tree / "root" / "alias.bin")  # the same file, reached from inside
    finally:
        os.close(fd)
