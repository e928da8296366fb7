"""Thumbnails over HTTP: PNG/WebP files of at most 256 px, entity tags and 304s, query
parameters (``?channel=N``, ``?format=webp``) and their errors, links from the dataset
page, and a broken file failing alone. What a thumbnail shows is tested in-process
(tests/store/test_thumbnails.py, against an independent rendering); here it must be the
very bytes the store gives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import imagecodecs
import numpy as np
import pytest
import tifffile
from zarr.core.buffer import default_buffer_prototype

from gateway.config.settings import Settings
from gateway.store.inprocess import open_store
from tests.http.support import Gateway, assert_json_error, new_client, running_gateway, write_healthy
from tests.server import serve

CELLS = "data/cells.ome.tif"


def write_cells(path: Path) -> np.ndarray:
    """Three uint16 channels, 500 x 400 (a synthesized level 1 of 250 x 200 is read)."""
    y, x = np.mgrid[0:500, 0:400]
    data = np.stack([x * 100, y * 100, (x + y) * 50]).astype(np.uint16) + 1
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "CYX"}, tile=(256, 256))
    return data


def write_two_images(path: Path) -> None:
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(np.full((30, 40), 7, np.uint8), metadata={"axes": "YX"})
        tif.write(np.arange(2 * 20 * 30, dtype=np.uint16).reshape(2, 20, 30), metadata={"axes": "CYX"})


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("thumbnails")
    write_cells(root / "cells.ome.tif")
    write_two_images(root / "two.ome.tif")
    # cut.tif: its header intact, its tiles cut short (metadata served, pixels unreadable)
    write_healthy(root / "cut.tif")
    with tifffile.TiffFile(root / "cut.tif") as tif:
        first_tile = tif.pages[0].dataoffsets[0]
    with open(root / "cut.tif", "r+b") as fh:
        fh.truncate(first_tile + 10)
    with running_gateway(root) as gw:
        yield gw


def store_value(path: Path, key: str) -> bytes:
    """The value the in-process store of ``path`` has at ``key``."""
    store = open_store(path)
    try:
        found = asyncio.run(store.get(key, default_buffer_prototype()))
    finally:
        store.close()
    assert found is not None
    return found.to_bytes()


def test_png_is_the_store_value_and_fits_256_pixels(gateway):
    response = gateway.get(f"{CELLS}/thumbnail.png")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(response.content))
    picture = imagecodecs.imread(response.content)
    assert picture.shape == (250, 200, 3)  # level 1 is 250 x 200: read as it is
    assert response.content == store_value(gateway.root / "cells.ome.tif", "thumbnail.png")


def test_webp_by_query_parameter(gateway):
    response = gateway.get(f"{CELLS}/thumbnail.png?format=webp")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/webp"
    assert imagecodecs.imread(response.content).shape == (250, 200, 3)
    assert response.content == gateway.get(f"{CELLS}/thumbnail.webp").content  # the same value


def test_one_channel_by_query_parameter_even_after_the_composite_is_cached(gateway):
    composite = gateway.get(f"{CELLS}/thumbnail.png")
    channel = gateway.get(f"{CELLS}/thumbnail.png?channel=1")
    assert channel.status_code == 200, channel.text
    assert channel.content != composite.content
    assert channel.headers["etag"] != composite.headers["etag"]
    assert channel.content == gateway.get(f"{CELLS}/thumbnail.c1.png").content
    color = gateway.get(f"{CELLS}/zarr.json").json()["attributes"]["ome"]["omero"]["channels"][1]["color"]
    picture = imagecodecs.imread(channel.content)
    for component in range(3):  # in its own colour alone: dark where the colour has nothing
        assert (picture[..., component].max() > 0) == (color[2 * component : 2 * component + 2] != "00")


def test_unknown_query_parameters_are_ignored(gateway):
    plain = gateway.get(f"{CELLS}/thumbnail.png")
    busted = gateway.get(f"{CELLS}/thumbnail.png?v=12345")
    assert busted.status_code == 200 and busted.content == plain.content


def test_head_and_revalidation(gateway):
    response = gateway.get(f"{CELLS}/thumbnail.png")
    etag = response.headers["etag"]
    assert response.headers["cache-control"] == "public, max-age=60"
    head = gateway.client.head(gateway.url(f"{CELLS}/thumbnail.png"))
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(response.content)) and head.headers["etag"] == etag
    again = gateway.get(f"{CELLS}/thumbnail.png", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = gateway.get(f"{CELLS}/thumbnail.png?channel=0", headers={"If-None-Match": etag})
    assert other.status_code == 200  # another thumbnail, another tag


def test_a_cold_server_revalidates_without_rendering(gateway):
    etag = gateway.get(f"{CELLS}/thumbnail.png").headers["etag"]
    settings = Settings.from_mapping({"roots": {"data": str(gateway.root)}})
    with serve(settings) as base, new_client() as client:
        response = client.get(f"{base}/{CELLS}/thumbnail.png", headers={"If-None-Match": etag})
        assert response.status_code == 304
        assert "read;" not in response.headers["server-timing"]  # no pixel was read
        fresh = client.get(f"{base}/{CELLS}/thumbnail.png")
        assert "read;" in fresh.headers["server-timing"]  # rendered now, for the first time
        cached = client.get(f"{base}/{CELLS}/thumbnail.png")
        assert "read;" not in cached.headers["server-timing"]  # from the cache
        assert fresh.content == cached.content


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("channel=3", "unknown_channel"),
        ("channel=999999", "unknown_channel"),
        ("channel=x", "bad_thumbnail_parameter"),
        ("channel=-1", "bad_thumbnail_parameter"),
        ("channel=1.0", "bad_thumbnail_parameter"),
        ("channel=" + "9" * 4000, "bad_thumbnail_parameter"),
        ("channel=1&channel=2", "bad_thumbnail_parameter"),
        ("format=gif", "bad_thumbnail_parameter"),
        ("format=", "bad_thumbnail_parameter"),
    ],
)
def test_a_bad_parameter_is_a_json_400(gateway, query, code):
    document = assert_json_error(gateway.raw("GET", f"/{CELLS}/thumbnail.png?{query}"), 400)
    assert document["error"] == code


@pytest.mark.parametrize(
    "path",
    [
        f"{CELLS}/thumbnail.c3.png",  # no such channel, named by its key
        f"{CELLS}/0/thumbnail.png",  # a level array is no image group
        f"{CELLS}/thumbnail.gif",
        f"{CELLS}/thumbnail.c01.png",
        "data/missing.tif/thumbnail.png",
        "data/two.ome.tif/2/thumbnail.png",
        f"v2/{CELLS}/thumbnail.png",  # the Zarr v2 view has none
    ],
)
def test_absent_thumbnails_are_json_404(gateway, path):
    assert_json_error(gateway.raw("GET", f"/{path}"), 404)


def test_a_query_on_a_missing_dataset_is_a_404_not_a_400(gateway):
    assert_json_error(gateway.raw("GET", "/data/missing.tif/thumbnail.png?channel=3"), 404)


def test_a_broken_file_fails_its_thumbnail_alone(gateway):
    assert gateway.get("data/cut.tif/zarr.json").status_code == 200  # the header is intact
    document = assert_json_error(gateway.raw("GET", "/data/cut.tif/thumbnail.png"), 500)
    assert "cut.tif" in document["detail"] or document["error"] in {"source_error", "io_error"}
    assert gateway.get("data/healthy.tif/thumbnail.png").status_code == 200
    assert gateway.get(f"{CELLS}/thumbnail.png").status_code == 200


def test_the_dataset_json_links_every_thumbnail(gateway):
    description = gateway.get(f"{CELLS}/", headers={"Accept": "application/json"}).json()
    (image,) = description["images"]
    assert description["thumbnail"] == image["thumbnail"] == f"{gateway.base}/{CELLS}/thumbnail.png"
    assert image["channel_thumbnails"] == [
        f"{gateway.base}/{CELLS}/thumbnail.png?channel={i}" for i in range(3)
    ]
    for url in [image["thumbnail"], *image["channel_thumbnails"]]:
        response = gateway.client.get(url)
        assert response.status_code == 200 and response.headers["content-type"] == "image/png", url


def test_a_multi_image_dataset_links_each_image_and_its_first_at_the_root(gateway):
    description = gateway.get("data/two.ome.tif/?format=json").json()
    base = f"{gateway.base}/data/two.ome.tif/"
    assert description["thumbnail"] == f"{base}thumbnail.png"
    assert [image["thumbnail"] for image in description["images"]] == [
        f"{base}0/thumbnail.png",
        f"{base}1/thumbnail.png",
    ]
    assert [len(image["channel_thumbnails"]) for image in description["images"]] == [1, 2]
    root, first = (
        gateway.get("data/two.ome.tif/thumbnail.png"),
        gateway.get("data/two.ome.tif/0/thumbnail.png"),
    )
    assert root.content == first.content and root.headers["etag"] == first.headers["etag"]


def test_the_dataset_page_shows_the_thumbnail_and_a_strip_of_channels(gateway):
    page = gateway.get(f"{CELLS}/", headers={"Accept": "text/html"}).text
    assert f'<img class="thumbnail" src="{gateway.base}/{CELLS}/thumbnail.png"' in page
    assert page.count('class="channel-thumbnail"') == 3
    single = gateway.get("data/healthy.tif/", headers={"Accept": "text/html"}).text
    assert 'class="thumbnail"' in single and "channel-thumbnail" not in single  # one channel: no strip


def test_thumbnails_are_counted_as_their_own_kind(gateway):
    gateway.get(f"{CELLS}/thumbnail.png")
    metrics = httpx.get(gateway.url("metrics")).text
    assert 'kind="thumbnail"' in metrics
