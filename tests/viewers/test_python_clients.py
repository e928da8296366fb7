"""zarr-python 3, tensorstore (zarr3 driver over the http kvstore) and ome-zarr-py read the
served datasets over HTTP, every level of every image group, bit-exactly, from plain chunks
and from virtual shards (``client_gateway``)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from tests.viewers.conftest import SHARD, Expected, require_module

CASES = [
    (name, group, level)
    for name, groups in {
        "pyramid": {"": 4},
        "zstack": {"": 2},  # level 1 synthesized
        "float64": {"": 1, "float32": 1},
        "two": {"0": 1, "1": 1},
        "volume": {"volume": 3},  # 3-D chunks, levels 1 and 2 synthesized
        "plate": {"A/1/0": 1, "A/1/1": 1, "B/3/0": 1},  # the fields of its wells
    }.items()
    for group, levels in groups.items()
    for level in range(levels)
]


def _expected(datasets, name: str) -> Expected:
    return datasets[1][name]


def test_cases_cover_every_written_level(datasets):
    for name, expected in datasets[1].items():
        for group, levels in expected.groups.items():
            assert {lv for n, g, lv in CASES if (n, g) == (name, group)} == set(range(len(levels)))


@pytest.mark.parametrize(("name", "group", "level"), CASES)
def test_zarr_python_reads_level_bit_exactly(client_gateway, datasets, name, group, level):
    expected = _expected(datasets, name)
    image = zarr.open_group(expected.group_url(client_gateway, group), mode="r")
    assert image.attrs["ome"]["version"] == "0.5"
    served = image[str(level)][...]
    want = expected.groups[group][level]
    assert served.dtype == want.dtype
    np.testing.assert_array_equal(served, want.reshape(served.shape), strict=True)


@pytest.mark.parametrize(("name", "group", "level"), CASES)
def test_tensorstore_reads_level_bit_exactly(client_gateway, datasets, name, group, level):
    ts = require_module("tensorstore")
    expected = _expected(datasets, name)
    url = expected.group_url(client_gateway, group) + f"{level}/"
    store = ts.open({"driver": "zarr3", "kvstore": url, "open": True}).result()
    served = store.read().result()
    want = expected.groups[group][level]
    assert served.dtype == want.dtype
    np.testing.assert_array_equal(served, want.reshape(served.shape), strict=True)


def test_tensorstore_reads_a_region_of_the_finest_level(client_gateway, datasets):
    ts = require_module("tensorstore")
    expected = _expected(datasets, "pyramid")
    store = ts.open({"driver": "zarr3", "kvstore": expected.group_url(client_gateway) + "0/"}).result()
    assert list(store.domain.labels) == ["c", "y", "x"]
    region = store[1, 300:813, 1000:1700].read().result()
    np.testing.assert_array_equal(region, expected.groups[""][0][1, 300:813, 1000:1700])


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("pyramid", ""),
        ("zstack", ""),
        ("float64", ""),
        ("two", "1"),
        ("volume", "volume"),
        ("plate", "B/3/0"),
    ],
)
def test_ome_zarr_py_opens_the_image(client_gateway, datasets, name, group):
    require_module("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    expected = _expected(datasets, name)
    location = parse_url(expected.group_url(client_gateway, group))
    assert location is not None, "ome-zarr-py did not recognise the URL as OME-Zarr"
    assert location.version == "0.5"
    image = next(node for node in Reader(location)() if node.load(Multiscales) is not None)
    assert len(image.data) == len(expected.groups[group])
    for served, want in zip(image.data, expected.groups[group], strict=True):
        np.testing.assert_array_equal(np.asarray(served), want.reshape(served.shape), strict=True)
    axes = [a["name"] for a in image.metadata["axes"]]
    assert axes[-2:] == ["y", "x"]


def test_the_sharded_gateway_serves_edge_shards_and_partial_inner_chunks(sharded_gateway, datasets):
    """What the sharded runs above exercise: every array sharded, shards of several inner
    chunks along z too, last shards overhanging the inner grid, partial inner chunks."""
    several_in_z = overhanging = partial = 0
    for name, group, level in CASES:
        url = _expected(datasets, name).group_url(sharded_gateway, group) + f"{level}/"
        array = zarr.open_array(url, mode="r")
        assert array.metadata.to_dict()["codecs"][0]["name"] == "sharding_indexed", url
        assert array.shards is not None
        per_shard = [s // c for s, c in zip(array.shards, array.chunks, strict=True)]
        assert all(1 <= k <= max(SHARD) for k in per_shard), (url, per_shard)
        inner_grid = [-(-n // c) for n, c in zip(array.shape, array.chunks, strict=True)]
        several_in_z += "z" in array.metadata.dimension_names and per_shard[-3] > 1
        overhanging += any(g % k for g, k in zip(inner_grid, per_shard, strict=True))
        partial += any(n % c for n, c in zip(array.shape, array.chunks, strict=True))
    assert several_in_z >= 3 and overhanging >= 3 and partial >= 3, (several_in_z, overhanging, partial)


def test_the_volume_is_served_as_its_stored_chunks_by_default(gateway, blosc_zstd_gateway, datasets):
    """What the clients above read: level 0 of the shuffle + gzip volume as its stored
    zlib streams in blosc frames from the default gateway, as blosc-zstd made from the
    chunks still shuffled from the blosc-zstd one; the computed levels as zstd, and as
    blosc-zstd."""
    path = f"{_expected(datasets, 'volume').path}/volume"
    for base, level0, coarser in ((gateway, "zlib", "zstd"), (blosc_zstd_gateway, "zstd", "blosc")):
        group = zarr.open_group(f"{base}/{path}", mode="r")
        codecs = [group[str(level)].metadata.codecs[-1].to_dict() for level in range(3)]
        assert [c["name"] for c in codecs] == ["blosc", coarser, coarser]
        assert (codecs[0]["configuration"]["cname"], codecs[0]["configuration"]["shuffle"]) == (
            level0,
            "shuffle",
        )
