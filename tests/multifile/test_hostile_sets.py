"""The OME-XML of a set is untrusted input: whoever can save a file in a served folder
writes it. A reference that cannot be followed fails the planes it maps — an error for
them, never fill values — and the rest of the set is served; nothing outside the served
folders is opened; a set cannot make the gateway open thousands of files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from adapters.base import UnsupportedSourceError
from adapters.tiff import multifile
from tests.multifile.conftest import open_in
from tests.multifile.sets import Image, Ref, binary_only_xml, new_uuid, ome_xml, ramp, write_planes

DATA = ramp((3, 16, 12), "uint8")
PLANE = (slice(0, 16), slice(0, 12))


def good_member(root: Path, z: int, name: str | None = None) -> Ref:
    """Plane ``z`` of DATA in a member of its own, as Bio-Formats writes it."""
    name = name or f"m{z}.ome.tiff"
    uid = new_uuid()
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    write_planes(root / name, DATA[z : z + 1], binary_only_xml("set.companion.ome", uid))
    return Ref({"Z": z}, 0, 1, name, uid)


def companion(root: Path, refs: list[Ref], sizes: dict[str, int] | None = None) -> Path:
    path = root / "set.companion.ome"
    path.write_text(ome_xml([Image(sizes or {"X": 12, "Y": 16, "Z": 3}, "uint8", refs)]))
    return path


# each case: (root, outside) -> the reference for plane 1 and the reason it must give
Case = Callable[[Path, Path], Ref]


def outside_by_dots(root: Path, outside: Path) -> Ref:
    write_planes(outside / "x.ome.tiff", DATA[1:2], binary_only_xml("set.companion.ome", new_uuid()))
    return Ref({"Z": 1}, 0, 1, "../outside/x.ome.tiff", None)


def outside_by_absolute_name(root: Path, outside: Path) -> Ref:
    write_planes(outside / "x.ome.tiff", DATA[1:2], binary_only_xml("set.companion.ome", new_uuid()))
    return Ref({"Z": 1}, 0, 1, str(outside / "x.ome.tiff"), None)


def absolute_name_inside(root: Path, outside: Path) -> Ref:
    ref = good_member(root, 1)
    return Ref({"Z": 1}, 0, 1, str(root / (ref.file or "")), ref.uuid)


def symlink_leading_out(root: Path, outside: Path) -> Ref:
    write_planes(outside / "x.ome.tiff", DATA[1:2], binary_only_xml("set.companion.ome", new_uuid()))
    os.symlink(outside / "x.ome.tiff", root / "link.ome.tiff")
    return Ref({"Z": 1}, 0, 1, "link.ome.tiff", None)


def the_companion_itself(root: Path, outside: Path) -> Ref:
    return Ref({"Z": 1}, 0, 1, "set.companion.ome", None)


def a_directory(root: Path, outside: Path) -> Ref:
    (root / "adir.ome.tiff").mkdir()
    return Ref({"Z": 1}, 0, 1, "adir.ome.tiff", None)


def a_fifo(root: Path, outside: Path) -> Ref:
    os.mkfifo(root / "pipe.ome.tiff")  # opened, it would block the thread until a writer came
    return Ref({"Z": 1}, 0, 1, "pipe.ome.tiff", None)


def a_missing_file(root: Path, outside: Path) -> Ref:
    return Ref({"Z": 1}, 0, 1, "gone.ome.tiff", new_uuid())


def another_acquisition(root: Path, outside: Path) -> Ref:
    ref = good_member(root, 1)
    return Ref({"Z": 1}, 0, 1, ref.file, new_uuid())  # the file's own UUID is another


def not_a_tiff(root: Path, outside: Path) -> Ref:
    (root / "text.ome.tiff").write_text("not a TIFF at all")
    return Ref({"Z": 1}, 0, 1, "text.ome.tiff", None)


def stored_unlike_the_rest(root: Path, outside: Path) -> Ref:
    write_planes(
        root / "float.ome.tiff", DATA[1:2].astype("float32"), binary_only_xml("set.companion.ome", new_uuid())
    )
    return Ref({"Z": 1}, 0, 1, "float.ome.tiff", None)


def fewer_ifds_than_mapped(root: Path, outside: Path) -> Ref:
    ref = good_member(root, 1)
    return Ref({"Z": 1}, 5, 1, ref.file, ref.uuid)


def a_backslash_name(root: Path, outside: Path) -> Ref:
    return Ref({"Z": 1}, 0, 1, "..\\outside\\x.ome.tiff", None)


def no_file_name(root: Path, outside: Path) -> Ref:
    return Ref({"Z": 1}, 0, 1, None, new_uuid())


CASES: dict[str, tuple[Case, str]] = {
    "outside by ..": (outside_by_dots, "leaves the set's folder"),
    "outside by an absolute name": (outside_by_absolute_name, "absolute path"),
    "an absolute name inside": (absolute_name_inside, "absolute path"),
    "a symlink leading out": (symlink_leading_out, "outside the served folders"),
    "the companion itself": (the_companion_itself, "companion file itself"),
    "a directory": (a_directory, "not a regular file"),
    "a FIFO": (a_fifo, "not a regular file"),
    "a missing file": (a_missing_file, "No such file"),
    "another acquisition (UUID)": (another_acquisition, "another acquisition"),
    "not a TIFF": (not_a_tiff, "not a readable TIFF"),
    "stored unlike the rest": (stored_unlike_the_rest, "stored unlike"),
    "fewer IFDs than mapped": (fewer_ifds_than_mapped, "fewer than the set maps"),
    "a backslash": (a_backslash_name, "not a file name"),
    "no FileName": (no_file_name, "without a FileName"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_reference_fails_its_planes_only(root: Path, outside: Path, case: str) -> None:
    make, reason = CASES[case]
    path = companion(root, [good_member(root, 0), make(root, outside), good_member(root, 2)])
    source = open_in(root, path)
    try:
        level = source.images[0].levels[0]
        assert level.shape == (3, 16, 12)
        for z in (0, 2):
            np.testing.assert_array_equal(level.read((slice(z, z + 1), *PLANE))[0], DATA[z])
        bad = (slice(1, 2), *PLANE)
        assert level.any_stored(bad), "an unreadable plane must not pass for fill"
        with pytest.raises(multifile.MissingPlaneError, match=reason):
            level.read(bad)
        with pytest.raises(multifile.MissingPlaneError):  # a region touching it fails too
            level.read((slice(0, 3), slice(0, 2), slice(0, 2)))
        assert any(reason in warning for warning in source.warnings), source.warnings
        assert all(root in d.path.parents or d.path.parent == root for d in source.dependencies)
    finally:
        source.close()


def test_a_missing_member_appearing_later_is_a_change_of_the_set(root: Path, outside: Path) -> None:
    path = companion(root, [good_member(root, 0), a_missing_file(root, outside), good_member(root, 2)])
    source = open_in(root, path)
    try:
        missing = [d for d in source.dependencies if d.path.name == "gone.ome.tiff"]
        assert len(missing) == 1 and missing[0].stat.st_ino == 0 and missing[0].stat.st_mtime_ns == 0
    finally:
        source.close()


def test_a_sub_folder_is_followed(root: Path) -> None:
    path = companion(root, [good_member(root, z, f"planes/m{z}.ome.tiff") for z in range(3)])
    source = open_in(root, path)
    try:
        level = source.images[0].levels[0]
        np.testing.assert_array_equal(level.read((slice(0, 3), *PLANE)), DATA)
    finally:
        source.close()


def test_a_set_whose_every_plane_is_refused_is_not_served(root: Path, outside: Path) -> None:
    path = companion(root, [outside_by_dots(root, outside)], {"X": 12, "Y": 16})
    with pytest.raises(UnsupportedSourceError, match="no servable image"):
        open_in(root, path)


def test_a_set_naming_too_many_files_is_refused_before_any_is_touched(root: Path) -> None:
    count = multifile.MAX_MEMBER_FILES + 1
    refs = [Ref({"Z": z}, 0, 1, f"m{z}.ome.tiff", None) for z in range(count)]
    path = companion(root, refs, {"X": 12, "Y": 16, "Z": count})
    with pytest.raises(UnsupportedSourceError, match=f"at most {multifile.MAX_MEMBER_FILES}"):
        open_in(root, path)


@pytest.mark.parametrize("count", [1, 10**12])
def test_an_image_claiming_far_more_planes_than_it_maps_is_not_served(root: Path, count: int) -> None:
    """Nothing is allocated per plane before the claim is checked against the IFDs the
    files hold (a PlaneCount of 10^12 into a missing file included)."""
    refs = [good_member(root, 0), Ref({"Z": 1}, 0, count, "gone.ome.tiff", None)]
    path = companion(root, refs, {"X": 12, "Y": 16, "Z": 10**6, "T": 10**6})
    with pytest.raises(UnsupportedSourceError, match="claims"):
        open_in(root, path)


def test_planes_no_reference_maps_are_fill_as_in_a_single_file(root: Path) -> None:
    """An acquisition cut short: the OME-XML claims five planes, the files hold three."""
    path = companion(root, [good_member(root, z) for z in range(3)], {"X": 12, "Y": 16, "Z": 5})
    source = open_in(root, path)
    try:
        level = source.images[0].levels[0]
        assert level.shape == (5, 16, 12)
        assert not level.any_stored((slice(3, 5), *PLANE))
        assert not level.read((slice(3, 5), *PLANE)).any()
    finally:
        source.close()


def test_a_companion_that_is_not_xml_is_refused(root: Path) -> None:
    path = root / "set.companion.ome"
    path.write_text("<OME> truncated")
    with pytest.raises(UnsupportedSourceError, match="does not parse"):
        open_in(root, path)


@pytest.mark.parametrize(
    "name",
    ["../x.ome.tif", "/etc/passwd", "a/../../x", "C:/x.tif", "a\\b.tif", "a\x00b", "", "./x", "a//b"],
)
def test_name_problems(name: str) -> None:
    assert multifile.name_problem(name) is not None


@pytest.mark.parametrize("name", ["x.ome.tif", "sub/x.ome.tif", "a b.ome.tif", "ü.ome.tif"])
def test_plain_relative_names_are_followed(name: str) -> None:
    assert multifile.name_problem(name) is None
