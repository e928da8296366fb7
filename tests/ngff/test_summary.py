"""gateway.ngff.summary: a few facts per image, read back from the served documents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

import adapters
from gateway.config.settings import Settings
from gateway.ngff import summary
from gateway.ngff.layout import DatasetTree, TreeOptions, build_tree


def served_tree(path: Path, **sections: object) -> Iterator[DatasetTree]:
    settings = Settings.from_mapping(dict(sections))
    source = adapters.open_source(path)
    try:
        yield build_tree(source, settings.chunks, TreeOptions.from_settings(settings))
    finally:
        source.close()


@pytest.fixture
def hyperstack(tmp_path: Path) -> Iterator[DatasetTree]:
    """A calibrated 3-channel ImageJ z-stack without colours of its own, 1024 px wide
    (so the gateway adds levels), and the channel display ranges ImageJ keeps."""
    data = np.random.default_rng(1).integers(0, 4000, (4, 3, 64, 1024), dtype=np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.25),
        metadata={"axes": "ZCYX", "unit": "um", "spacing": 2.0},
    )
    yield from served_tree(path)


def test_an_image_is_summarized_as_served(hyperstack: DatasetTree) -> None:
    (image,) = summary.summarize(hyperstack.documents)
    assert (image.path, image.name, image.dtype, image.shape) == ("", "stack.tif", "uint16", (3, 4, 64, 1024))
    assert [axis.name for axis in image.axes] == ["c", "z", "y", "x"]
    assert [(a.name, a.unit, a.scale) for a in image.axes if a.type == "space"] == [
        ("z", "micrometer", 2.0),
        ("y", "micrometer", 0.25),
        ("x", "micrometer", 0.25),
    ]
    assert image.calibrated and not image.is_label
    assert image.synthesized == len(image.levels) - 1 >= 1  # only level 0 is the file's


def test_channel_colours_and_windows_are_those_of_the_served_omero(hyperstack: DatasetTree) -> None:
    (image,) = summary.summarize(hyperstack.documents)
    omero = json.loads(hyperstack.documents["zarr.json"])["attributes"]["ome"]["omero"]
    assert [(c.label, c.color, c.start, c.end) for c in image.channels] == [
        (c["label"], c["color"], c["window"]["start"], c["window"]["end"]) for c in omero["channels"]
    ]
    assert all(len(c.color) == 6 and c.color != "------" for c in image.channels)
    line = summary.describe(image)[-1]
    assert line.startswith("  channels: ") and f"#{omero['channels'][1]['color']}" in line


def test_describe_gives_shape_pixel_size_levels_and_channels(hyperstack: DatasetTree) -> None:
    (image,) = summary.summarize(hyperstack.documents)
    lines = summary.describe(image)
    assert lines[0] == "image 'stack.tif': 3x4x64x1024 uint16 (czyx)"
    assert lines[1] == "  pixel size: z 2 micrometer, y 0.25 micrometer, x 0.25 micrometer"
    shapes = ", ".join("x".join(map(str, level.shape)) for level in image.levels)
    assert lines[2] == f"  levels: {len(image.levels)} ({image.synthesized} synthesized): {shapes}"
    assert len(lines) == 4


def test_a_file_without_units_is_uncalibrated_not_one_micrometer(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((3, 16, 16), np.uint8), photometric="minisblack")
    (image,) = summary.summarize(next(served_tree(tmp_path / "plain.tif")).documents)
    assert not image.calibrated
    assert [axis.scale for axis in image.axes] == [1.0, 1.0, 1.0]
    assert summary.describe(image)[1] == "  pixel size: uncalibrated (no physical unit)"


def test_an_axis_without_unit_beside_calibrated_ones_is_named_uncalibrated() -> None:
    image = summary.ImageSummary(
        path="",
        name="t",
        dtype="uint8",
        axes=(
            summary.AxisSummary("t", "time", None, 1.0),
            summary.AxisSummary("y", "space", "micrometer", 0.5),
            summary.AxisSummary("x", "space", "micrometer", 0.5),
        ),
        levels=(summary.LevelSummary("0", (2, 8, 8), (1, 8, 8), False),),
        channels=(),
        is_label=False,
    )
    assert summary.pixel_size_text(image) == "t uncalibrated, y 0.5 micrometer, x 0.5 micrometer"


def test_many_channels_are_counted_not_listed(tmp_path: Path) -> None:
    data = np.zeros((12, 16, 16), np.uint8)
    tifffile.imwrite(tmp_path / "many.tif", data, imagej=True, metadata={"axes": "CYX"})
    (image,) = summary.summarize(next(served_tree(tmp_path / "many.tif")).documents)
    assert len(image.channels) == 12
    line = summary.describe(image)[-1]
    assert line.count(" #") == summary.CHANNELS_SHOWN and line.endswith("; and 4 more")


def test_every_image_of_an_hdf5_file_with_its_path_and_sharded_inner_chunks(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("raw/volume", data=np.zeros((64, 128, 128), np.uint16), chunks=(16, 64, 64))
        f.create_dataset("seg", data=np.zeros((32, 32), np.uint32))
    tree = next(served_tree(tmp_path / "a.h5", chunks={"shard": [1, 2, 2]}))
    images = {image.path: image for image in summary.summarize(tree.documents)}
    assert set(images) == {"raw/volume", "seg"}
    volume = images["raw/volume"]
    assert volume.levels[0].chunks == (16, 64, 64)  # what a reader decodes, not the shard
    assert summary.describe(volume)[0] == "image 'raw/volume' at raw/volume/: 64x128x128 uint16 (zyx)"
