"""Multi-file sets opened as the gateway opens them: one source at the master, members
refused as parts of it, every plane read from its own file (``adapters/tiff/multifile/``)."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from adapters.base import PartOfSourceError, SourceReadError, full_region
from adapters.tiff import multifile
from gateway.store.inprocess import open_store
from tests.multifile.conftest import open_in
from tests.multifile.sets import (
    NS,
    Image,
    Ref,
    binary_only_xml,
    image_xml,
    mmstack_names,
    new_uuid,
    ome_xml,
    ramp,
    write_companion_set,
    write_mmstack,
    write_planes,
)


def read_all(source) -> np.ndarray:
    level = source.images[0].levels[0]
    return level.read(full_region(level.shape))


# -- Micro-Manager: a master, splits _1 and _2 -----------------------------------------------


@pytest.mark.parametrize("tile", [None, (16, 32)])
def test_a_micromanager_split_acquisition_is_one_image(root: Path, tile: tuple[int, int] | None) -> None:
    stack = write_mmstack(root, ramp((3, 4, 2, 48, 64)), [10, 9, 5], tile=tile)
    source = open_in(root, stack.files[0])
    try:
        assert len(source.images) == 1
        image = source.images[0]
        assert image.axis_names == ("t", "c", "z", "y", "x")
        assert image.levels[0].shape == (3, 2, 4, 48, 64)
        assert image.scale[2] == 1.75  # the master's OME-XML describes it
        served = read_all(source)
        np.testing.assert_array_equal(served, stack.data.transpose(0, 2, 1, 3, 4))
        with tifffile.TiffFile(stack.files[0]) as tif:  # tifffile reads the set alike
            np.testing.assert_array_equal(served, tif.series[0].asarray().transpose(0, 2, 1, 3, 4))
        assert [d.path.name for d in source.dependencies] == [f.name for f in stack.files[1:]]
        assert source.ome_xml == stack.xml
    finally:
        source.close()


@pytest.mark.parametrize("split", [1, 2])
def test_a_split_of_the_master_is_part_of_it(root: Path, split: int) -> None:
    stack = write_mmstack(root, ramp((2, 1, 3, 8, 8)), [2, 2, 2])
    with pytest.raises(multifile.PartOfSetError) as raised:
        open_in(root, stack.files[split])
    assert raised.value.source == stack.files[0]
    assert stack.files[0].name in str(raised.value)


def test_a_position_pointing_at_the_master_is_part_of_it(root: Path) -> None:
    """Micro-Manager's other positions: BinaryOnly pointers to the master TIFF, whose
    OME-XML holds an image per position."""
    pos0, pos1 = mmstack_names("exp", 1)[0], mmstack_names("exp", 1, "Pos1")[0]
    uuid0, uuid1 = new_uuid(), new_uuid()
    data = ramp((2, 2, 16, 16))
    images = [
        Image(
            {"X": 16, "Y": 16, "C": 2},
            "uint16",
            [Ref({"C": c}, c, 1, name, uid) for c in range(2)],
            name=name,
        )
        for name, uid in ((pos0, uuid0), (pos1, uuid1))
    ]
    write_planes(root / pos0, data[0], ome_xml(images))
    write_planes(root / pos1, data[1], binary_only_xml(pos0, uuid1))
    source = open_in(root, root / pos0)
    try:
        assert len(source.images) == 2
        for index, image in enumerate(source.images):
            np.testing.assert_array_equal(
                image.levels[0].read(full_region(image.levels[0].shape)), data[index]
            )
    finally:
        source.close()
    with pytest.raises(multifile.PartOfSetError):
        open_in(root, root / pos1)


# -- Bio-Formats companion sets ----------------------------------------------------------------


def test_a_companion_set_is_one_image_at_the_companion(root: Path) -> None:
    written = write_companion_set(root, ramp((6, 40, 30), "uint8"), tile=(16, 16), compression="zlib")
    source = open_in(root, written.companion)
    try:
        assert source.format == "OME-TIFF (multi-file)"
        assert source.images[0].axis_names == ("z", "y", "x")
        np.testing.assert_array_equal(read_all(source), written.data)
    finally:
        source.close()
    for member in written.members:
        with pytest.raises(PartOfSourceError) as raised:
            open_in(root, member)
        assert raised.value.source == written.companion


def test_a_member_whose_companion_is_gone_is_served_alone(root: Path) -> None:
    written = write_companion_set(root, ramp((2, 8, 8), "uint8"))
    written.companion.unlink()
    source = open_in(root, written.members[1])
    try:
        np.testing.assert_array_equal(read_all(source), written.data[1])
    finally:
        source.close()


def test_a_member_the_companion_does_not_name_is_served_alone(root: Path) -> None:
    written = write_companion_set(root, ramp((2, 8, 8), "uint8"))
    stray = write_planes(
        root / "stray.ome.tiff", ramp((1, 8, 8), "uint8"), binary_only_xml(written.companion.name, new_uuid())
    )
    source = open_in(root, stray)
    try:
        assert source.images[0].levels[0].shape == (8, 8)
    finally:
        source.close()


def test_every_file_holding_the_full_xml_points_at_the_first(root: Path) -> None:
    """Bio-Formats multi-file writes: each file holds the full OME-XML with its own root
    UUID; the file holding the first plane is the master."""
    names, uids = ["a.ome.tif", "b.ome.tif", "c.ome.tif"], [new_uuid() for _ in range(3)]
    data = ramp((3, 12, 10))
    refs = [Ref({"Z": z}, 0, 1, name, uid) for z, (name, uid) in enumerate(zip(names, uids, strict=True))]
    image = Image({"X": 10, "Y": 12, "Z": 3}, "uint16", refs)
    for z, (name, uid) in enumerate(zip(names, uids, strict=True)):
        write_planes(root / name, data[z : z + 1], ome_xml([image], uuid=uid))
    source = open_in(root, root / "a.ome.tif")
    try:
        np.testing.assert_array_equal(read_all(source), data)
    finally:
        source.close()
    for name in names[1:]:
        with pytest.raises(multifile.PartOfSetError):
            open_in(root, root / name)


# -- reads --------------------------------------------------------------------------------------


def test_reads_are_tile_granular_and_exact_across_files(root: Path) -> None:
    written = write_companion_set(root, ramp((3, 64, 64)), tile=(32, 32))
    source = open_in(root, written.companion)
    try:
        level = source.images[0].levels[0]
        assert level.tile_shape == (1, 32, 32)
        region = (slice(1, 3), slice(20, 50), slice(31, 33))
        np.testing.assert_array_equal(level.read(region), written.data[region])
    finally:
        source.close()


def test_descriptors_stay_bounded_and_reads_stay_exact_under_concurrency(root: Path) -> None:
    count = multifile.MAX_OPEN_MEMBERS * 3
    written = write_companion_set(root, ramp((count, 16, 16), "uint8"))
    source = open_in(root, written.companion)
    try:
        level = source.images[0].levels[0]

        def plane(z: int) -> bool:
            return bool(
                np.array_equal(level.read((slice(z, z + 1), slice(0, 16), slice(0, 16)))[0], written.data[z])
            )

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert all(pool.map(plane, list(range(count)) * 3))
        members = _members(source)
        assert len(members) == count
        assert members.open_count <= multifile.MAX_OPEN_MEMBERS
    finally:
        source.close()


def test_a_member_changed_behind_an_evicted_descriptor_is_refused(root: Path) -> None:
    count = multifile.MAX_OPEN_MEMBERS + 2
    written = write_companion_set(root, ramp((count, 8, 8), "uint8"))
    source = open_in(root, written.companion)
    try:
        level = source.images[0].levels[0]
        # rewritten in place, larger: the first member's descriptor was evicted meanwhile
        write_planes(
            written.members[0],
            ramp((2, 8, 8), "uint8", 7),
            binary_only_xml(written.companion.name, written.uuids[0]),
        )
        with pytest.raises(SourceReadError, match="changed on disk"):
            level.read((slice(0, 1), slice(0, 8), slice(0, 8)))
        np.testing.assert_array_equal(
            level.read((slice(count - 1, count), slice(0, 8), slice(0, 8)))[0], written.data[-1]
        )
    finally:
        source.close()


def _members(source) -> multifile.MemberFiles:
    """The set's member descriptors (what ``Source.close`` closes)."""
    for close in source._closers:
        owner = getattr(close, "__self__", None)
        if isinstance(owner, multifile.FileSet):
            return owner.members
    raise AssertionError("no file set among the source's closers")


# -- what is not a set ----------------------------------------------------------------------


def test_a_single_micromanager_file_naming_itself_is_no_set(root: Path) -> None:
    """Its TiffData name the file itself (no root UUID): an ordinary OME-TIFF."""
    stack = write_mmstack(root, ramp((1, 3, 2, 8, 8)), [6])
    source = open_in(root, stack.files[0])
    try:
        assert source.format == "OME-TIFF"
        np.testing.assert_array_equal(read_all(source), stack.data[0].transpose(1, 0, 2, 3))
    finally:
        source.close()


def test_a_renamed_single_file_is_no_set_with_a_missing_member(root: Path) -> None:
    """Its only FileName is the name it had (as Bio-Formats reads it: this file)."""
    stack = write_mmstack(root, ramp((1, 3, 1, 8, 8)), [3])
    renamed = stack.files[0].rename(root / "renamed.ome.tif")
    source = open_in(root, renamed)
    try:
        assert source.format != "OME-TIFF (multi-file)"
        assert source.images[0].levels[0].shape[-2:] == (8, 8)
        assert read_all(source).any()
    finally:
        source.close()


def test_a_master_whose_splits_are_all_gone_serves_its_own_planes(root: Path) -> None:
    stack = write_mmstack(root, ramp((2, 2, 1, 8, 8)), [2, 2])
    stack.files[1].unlink()
    source = open_in(root, stack.files[0])
    try:
        level = source.images[0].levels[0]  # t, z, y, x
        np.testing.assert_array_equal(
            level.read((slice(0, 1), slice(0, 2), slice(0, 8), slice(0, 8))), stack.data[0, :, 0][None]
        )
        with pytest.raises(multifile.MissingPlaneError, match="No such file"):
            level.read((slice(1, 2), slice(0, 1), slice(0, 8), slice(0, 8)))
    finally:
        source.close()


def test_a_plate_spread_over_files_is_a_plate_at_its_companion(root: Path) -> None:
    """Bio-Formats writes screens as companion sets, one file per field: the companion's
    Plate/Well/WellSample make the plate, each field read from its own file."""
    data = ramp((2, 16, 16), "uint8")
    images = []
    for index in range(2):
        name, uid = f"well{index}.ome.tiff", new_uuid()
        write_planes(root / name, data[index : index + 1], binary_only_xml("plate.companion.ome", uid))
        images.append(Image({"X": 16, "Y": 16}, "uint8", [Ref({}, 0, 1, name, uid)], name=f"field{index}"))
    wells = "".join(
        f'<Well ID="Well:0:{i}" Row="0" Column="{i}"><WellSample ID="WellSample:0:{i}:0" Index="{i}">'
        f'<ImageRef ID="Image:{i}"/></WellSample></Well>'
        for i in range(2)
    )
    plate = f'<Plate ID="Plate:0" Name="P" Rows="1" Columns="2" RowNamingConvention="letter">{wells}</Plate>'
    body = "".join(image_xml(image, index) for index, image in enumerate(images))
    (root / "plate.companion.ome").write_text(f'<?xml version="1.0"?><OME xmlns="{NS}">{plate}{body}</OME>')
    group = zarr.open_group(store=open_store(root / "plate.companion.ome"), mode="r")
    assert [well["path"] for well in group.attrs["ome"]["plate"]["wells"]] == ["A/1", "A/2"]
    for index, well in enumerate(("A/1", "A/2")):
        np.testing.assert_array_equal(group[f"{well}/0/0"][:], data[index])
