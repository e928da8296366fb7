"""Chunk keys are parsed strictly; anything that is not exactly a chunk of the grid is a JSON 404.

``data/healthy.tif`` has one array ``0`` of shape 256x256 in 128x128 chunks: grid 2x2.
"""

from __future__ import annotations

import pytest

from tests.http.support import assert_json_error, running_gateway

PREFIX = "/data/healthy.tif/"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("keys")) as gw:
        yield gw


def test_valid_chunk_key_is_served(gateway):
    assert gateway.raw("GET", PREFIX + "0/c/1/0").status == 200


MALFORMED = [
    "0/c/01/0",  # leading zero
    "0/c/00/0",
    "0/c/-1/0",
    "0/c/+1/0",
    "0/c/1.0/0",
    "0/c/1e0/0",
    "0/c/0x1/0",
    "0/c/%201/0",  # " 1"
    "0/c/1%20/0",  # "1 "
    "0/c/%091/0",  # tab
    "0/c/a/0",
    "0/c/%D9%A1/0",  # ARABIC-INDIC DIGIT ONE: a digit to str.isdigit, not to the grid
    "0/c/%EF%BC%91/0",  # FULLWIDTH DIGIT ONE
    "0/c/0",  # too few indices
    "0/c/0/0/0",  # too many
    "0/c",
    "0/c/",
    "0/c//0",
    "0/0/0",  # missing c/
    "0/0.0",  # zarr v2 key
    "0/c.0.0",  # v3 "." separator
    "0/c/0.0",
    "0/d/0/0",
    "c/0/0",  # no array at the group
    "7/c/0/0",  # no level 7 (level 1 is synthesized: 256 px in 128 px tiles)
    "00/c/0/0",
    "0/c/99999999999999999999999999/0",
    "0/c/0/18446744073709551616",
    "0/c/%00/0",
    "0/c/0/0%00",
]


@pytest.mark.parametrize("key", MALFORMED)
def test_malformed_chunk_key_is_json_404(gateway, key):
    assert_json_error(gateway.raw("GET", PREFIX + key), 404)


OUT_OF_GRID = ["0/c/2/0", "0/c/0/2", "0/c/2/2", "0/c/1000000/0"]


@pytest.mark.parametrize("key", OUT_OF_GRID)
def test_out_of_grid_chunk_is_json_404(gateway, key):
    assert_json_error(gateway.raw("GET", PREFIX + key), 404)


V2_PROBES = [".zattrs", ".zgroup", ".zarray", ".zmetadata", "0/.zarray", "0/.zattrs", "0/.zgroup"]


@pytest.mark.parametrize("key", V2_PROBES)
def test_zarr_v2_probe_is_json_404(gateway, key):
    assert_json_error(gateway.raw("GET", PREFIX + key), 404)


def test_zarr_v2_probe_at_root_is_json_404(gateway):
    assert_json_error(gateway.raw("GET", "/data/.zgroup"), 404)


def test_dataset_url_without_key_is_json_404(gateway):
    assert_json_error(gateway.raw("GET", "/data/healthy.tif"), 404)


def test_unknown_metadata_key_is_json_404(gateway):
    assert_json_error(gateway.raw("GET", PREFIX + "0/zarr.json.bak"), 404)


def test_chunk_key_with_trailing_slash_is_json_404(gateway):
    assert_json_error(gateway.raw("GET", PREFIX + "0/c/0/0/"), 404)


def test_metadata_key_with_trailing_slash_is_json_404(gateway):
    assert_json_error(gateway.raw("GET", PREFIX + "zarr.json/"), 404)
