"""gateway.ngff.keys.may_be_key (and may_be_v2_key): what can be a served key, and the client
probes that cannot."""

from __future__ import annotations

import pytest

from gateway.ngff.keys import may_be_key, may_be_v2_key


@pytest.mark.parametrize(
    "path",
    [
        "lab/a.tif/zarr.json",
        "lab/a.tif/0/zarr.json",
        "lab/a.tif/0/c/1/2",
        "lab/a.tif/OME/METADATA.ome.xml",
        "lab/a.tif/float32/0/c/0/0",
    ],
)
def test_served_keys_may_be_keys(path):
    assert may_be_key(path)


@pytest.mark.parametrize(
    "path",
    [
        "lab/a.tif/.zattrs",
        "lab/a.tif/.zgroup",
        "lab/a.tif/0/.zarray",
        "lab/a.tif/.zmetadata",
        "lab/a.tif/info",
        "lab/a.tif/attributes.json",
        "lab/a.tif/0/c/01",
        "lab/a.tif/",
    ],
)
def test_probes_cannot_be_keys(path):
    assert not may_be_key(path)


@pytest.mark.parametrize(
    "path",
    [
        "lab/a.tif/.zgroup",
        "lab/a.tif/.zattrs",
        "lab/a.tif/0/.zarray",
        "lab/a.tif/.zmetadata",
        "lab/a.tif/0/1/2",
    ],
)
def test_served_v2_keys_may_be_v2_keys(path):
    assert may_be_v2_key(path)


@pytest.mark.parametrize(
    "path", ["lab/a.tif/zarr.json", "lab/a.tif/0/zarr.json", "lab/a.tif/info", "lab/a.tif/0/01"]
)
def test_probes_cannot_be_v2_keys(path):
    assert not may_be_v2_key(path)
