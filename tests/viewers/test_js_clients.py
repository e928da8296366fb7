"""zarrita.js and Viv's loaders (@vivjs/loaders), run in Node, read the served datasets,
from plain chunks and from virtual shards (``client_gateway``); what they read is
compared, by checksum, with the pixels tifffile (h5py) reads from the files."""

from __future__ import annotations

import numpy as np
import pytest

from tests.viewers.conftest import run_node, sha256

ARRAYS = [
    ("pyramid", "", 0),
    ("pyramid", "", 3),
    ("zstack", "", 0),
    ("zstack", "", 1),  # synthesized
    ("float64", "", 0),
    ("two", "0", 0),
    ("volume", "volume", 0),  # 3-D chunks
    ("volume", "volume", 1),
    ("plate", "B/3/0", 0),  # a field of a well
]
IMAGES = [
    ("pyramid", ""),
    ("zstack", ""),
    ("float64", "float32"),
    ("two", "1"),
    ("volume", "volume"),
    ("plate", "A/1/1"),
]


@pytest.fixture(scope="module")
def zarrita(client_gateway, datasets):
    found = datasets[1]
    arrays = [found[name].group_url(client_gateway, group) + f"{level}/" for name, group, level in ARRAYS]
    return run_node(
        "zarrita_read.mjs", {"group": found["pyramid"].group_url(client_gateway), "arrays": arrays}
    )


@pytest.fixture(scope="module")
def viv(client_gateway, datasets):
    found = datasets[1]
    return run_node("viv_read.mjs", {"images": [found[n].group_url(client_gateway, g) for n, g in IMAGES]})


def test_zarrita_reads_group_metadata(zarrita):
    ome = zarrita["group"]["attrs"]["ome"]
    assert ome["version"] == "0.5"
    assert [a["name"] for a in ome["multiscales"][0]["axes"]] == ["c", "y", "x"]
    assert [c["label"] for c in ome["omero"]["channels"]] == ["DAPI", "GFP", "mCherry"]


@pytest.mark.parametrize("index", range(len(ARRAYS)))
def test_zarrita_reads_whole_array_bit_exactly(zarrita, datasets, index):
    name, group, level = ARRAYS[index]
    want = datasets[1][name].groups[group][level]
    read = zarrita["arrays"][index]
    assert read["shape"] == list(want.shape)
    assert read["dtype"] == want.dtype.name
    assert read["sha256"] == sha256(want)


@pytest.mark.parametrize("index", range(len(ARRAYS)))
def test_zarrita_reads_first_chunk_bit_exactly(zarrita, datasets, index):
    name, group, level = ARRAYS[index]
    want = datasets[1][name].groups[group][level]
    read = zarrita["arrays"][index]
    chunk_shape = read["first_chunk"]["shape"]
    assert chunk_shape == read["chunks"]
    padded = np.zeros(chunk_shape, dtype=want.dtype)  # fill value 0; edge chunks are padded
    region = tuple(slice(0, min(c, n)) for c, n in zip(chunk_shape, want.shape, strict=True))
    padded[tuple(slice(0, r.stop) for r in region)] = want[region]
    assert read["first_chunk"]["sha256"] == sha256(padded)


@pytest.mark.parametrize("index", range(len(IMAGES)))
def test_viv_opens_image_with_every_level(viv, datasets, index):
    name, group = IMAGES[index]
    image = viv["images"][index]
    levels = datasets[1][name].groups[group]
    assert image["levels"] == len(levels)
    finest = image["read"][0]
    assert finest["shape"] == list(levels[0].shape)
    assert finest["labels"][-2:] == ["y", "x"]


@pytest.mark.parametrize("index", range(len(IMAGES)))
@pytest.mark.parametrize("which", [0, -1], ids=["finest", "coarsest"])
def test_viv_reads_a_tile_bit_exactly(viv, datasets, index, which):
    name, group = IMAGES[index]
    want = datasets[1][name].groups[group][which]
    read = viv["images"][index]["read"][which]
    size = read["tileSize"]
    plane = want[(0,) * (want.ndim - 2)]
    tile = plane[:size, :size]
    assert (read["tile"]["height"], read["tile"]["width"]) == tile.shape
    assert read["tile"]["sha256"] == sha256(tile)
