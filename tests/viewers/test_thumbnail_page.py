"""A dataset page in Debian's headless Chromium shows the image's thumbnail and its channels.

The ``<img>`` must have loaded (``naturalWidth > 0``), and the pixels the browser decoded
(drawn on a canvas) must equal an independent numpy rendering
(``tests.thumbnail_reference``) of the same level, read with tifffile (or computed by the
test's own pyramid reference), in the windows and colours the dataset's ``zarr.json``
serves. Two images: a 3-channel pyramid whose 256 px level is shown as it is, and a
z-stack whose synthesized 300 px level is area-averaged to 256 px (middle plane).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.thumbnail_reference import level_index, omero_styles, reference_thumbnail
from tests.viewers.browser import open_page, pixel_stats, running_browser, save_artifact
from tests.viewers.conftest import require_module

#: The canvas holds what the browser decoded: 8-bit values, no colour management for an
#: untagged PNG; 1 for rounding in the reference's other order of float sums.
TOLERANCE = 1

#: (dataset, image level list -> the plane (C, H, W) a thumbnail reads)
PAGES = ("pyramid", "zstack")

#: The first <img> matching ``selector`` once loaded: its natural size and its pixels as
#: a PNG data URL (a canvas holds exactly what the browser decoded).
READ_IMAGE = """async (selector) => {
  const img = document.querySelector(selector);
  if (!img.complete) await new Promise((ok, fail) => { img.onload = ok; img.onerror = fail; });
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  canvas.getContext("2d").drawImage(img, 0, 0);
  return {width: img.naturalWidth, height: img.naturalHeight, png: canvas.toDataURL("image/png")};
}"""

ALL_LOADED = """() => [...document.images].map(img => [img.className, img.complete, img.naturalWidth])"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with running_browser() as chromium:
        yield chromium


def decode_data_url(url: str) -> np.ndarray:
    image_module = require_module("PIL.Image")
    data = base64.b64decode(url.partition(",")[2])
    return np.asarray(image_module.open(io.BytesIO(data)).convert("RGB"))


def expected_thumbnail(gateway: str, expected: Any) -> np.ndarray:
    """The independent rendering: the level the rules choose, from the test's own copy of
    every level, in the served colours and windows."""
    levels = expected.groups[""]
    group = httpx.get(expected.group_url(gateway) + "zarr.json").json()
    names = [axis["name"] for axis in group["attributes"]["ome"]["multiscales"][0]["axes"]]
    level = levels[
        level_index([max(level.shape[names.index("y")], level.shape[names.index("x")]) for level in levels])
    ]
    plane = level[level.shape[0] // 2] if names == ["z", "y", "x"] else level  # middle z
    if plane.ndim == 2:
        plane = plane[None]
    colors, windows = omero_styles(group)
    return reference_thumbnail(plane, colors, windows)


@pytest.mark.parametrize("name", PAGES)
def test_the_dataset_page_shows_the_thumbnail_the_rules_describe(browser, gateway, datasets, name):
    expected = datasets[1][name]
    with open_page(browser, gateway) as (page, log):
        page.goto(f"{gateway}/{expected.path}/")
        shown = page.evaluate(READ_IMAGE, "img.thumbnail")
        page.wait_for_load_state("load")
        loaded = page.evaluate(ALL_LOADED)
        png = page.screenshot(full_page=True)
    save_artifact(f"thumbnail-page-{name}", png)
    assert log.console_errors == [] and log.failed == []
    assert all(complete and width > 0 for _, complete, width in loaded), loaded  # every <img> loaded
    assert shown["width"] > 0 and max(shown["width"], shown["height"]) <= 256
    pixels = decode_data_url(shown["png"])
    reference = expected_thumbnail(gateway, expected)
    assert pixels.shape == reference.shape
    assert np.abs(pixels.astype(int) - reference).max() <= TOLERANCE
    assert pixel_stats(png, top=0, bottom=0).std > 3  # the page is not blank


def test_the_strip_shows_each_channel_in_its_colour(browser, gateway, datasets):
    expected = datasets[1]["pyramid"]
    group = httpx.get(expected.group_url(gateway) + "zarr.json").json()
    colors, windows = omero_styles(group)
    level = expected.groups[""][level_index([level.shape[-1] for level in expected.groups[""]])]
    with open_page(browser, gateway) as (page, log):
        page.goto(f"{gateway}/{expected.path}/")
        strip = [
            page.evaluate(READ_IMAGE, f"figure:nth-child({i + 1}) > img.channel-thumbnail") for i in range(3)
        ]
    assert log.console_errors == [] and log.failed == []
    for channel, shown in enumerate(strip):
        reference = reference_thumbnail(
            level[channel : channel + 1], colors[channel : channel + 1], windows[channel : channel + 1]
        )
        assert np.abs(decode_data_url(shown["png"]).astype(int) - reference).max() <= TOLERANCE, channel
