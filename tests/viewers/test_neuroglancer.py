"""Neuroglancer (its Python package's client, in Debian's headless Chromium) shows served images.

For each image: the layer loads with no error in the page console, chunks of more than one
pyramid level are fetched from the gateway, and the screenshot is not blank. The
gateway's own dataset page is loaded the same way and its "Open in Neuroglancer" link
followed. A negative control (CORS disabled by config) must fail to load the layer, so the
positive checks are known to measure something.

Sharded arrays (``[chunks] shard``): a 3-D volume in 4-panel view and the 2-D pyramid are
shown from a gateway serving shards, and each screenshot is compared with the one of the
same view from plain chunks: the same voxels make the same picture.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from gateway.config.settings import Settings
from tests.server import serve
from tests.viewers.browser import open_page, pixel_stats, running_browser, save_artifact, wait_until
from tests.viewers.conftest import gateway_settings, require_module

#: A loaded image lights up more than this share of the viewer area; a blank one far less.
MIN_LIT_FRACTION = 0.1
MAX_BLANK_LIT_FRACTION = 0.02
LOAD_TIMEOUT = 60.0
#: Mean absolute difference (0-255 luminance) allowed between two renderings of the same
#: voxels: none expected; a little for SwiftShader's rasterisation.
MAX_MEAN_DIFFERENCE = 1.0


@pytest.fixture(scope="module")
def neuroglancer() -> Iterator[tuple[Any, Any]]:
    """(module, viewer): the package's server on loopback, stopped at the end."""
    module = require_module("neuroglancer")
    module.set_server_bind_address("127.0.0.1", 0)
    viewer = module.Viewer()
    try:
        yield module, viewer
    finally:
        module.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with running_browser() as chromium:
        yield chromium


def ng_settings(
    datasets, viewer_url: str, cors: list[str], sharded: bool = False, codec: str = "zstd", **sections: Any
) -> Settings:
    return gateway_settings(
        datasets[0],
        sharded=sharded,
        server={"cors_origins": cors},
        viewers={"neuroglancer": viewer_url},
        chunks={"codec": codec},
        **sections,
    )


@pytest.fixture(scope="module")
def ng_gateway(datasets, neuroglancer) -> Iterator[str]:
    _, viewer = neuroglancer
    with serve(ng_settings(datasets, viewer.get_viewer_url(), ["*"])) as base:
        yield base


@pytest.fixture(scope="module")
def sharded_ng_gateway(datasets, neuroglancer) -> Iterator[str]:
    _, viewer = neuroglancer
    with serve(ng_settings(datasets, viewer.get_viewer_url(), ["*"], sharded=True)) as base:
        yield base


@pytest.fixture(scope="module")
def blosc_ng_gateway(datasets, neuroglancer) -> Iterator[str]:
    _, viewer = neuroglancer
    with serve(ng_settings(datasets, viewer.get_viewer_url(), ["*"], codec="blosc-zstd")) as base:
        yield base


@pytest.fixture(scope="module")
def slab_ng_gateway(datasets, neuroglancer) -> Iterator[str]:
    """The dataset pages link viewers to the browsing view; with ``max_z = 4`` it serves the
    volume's 16-plane chunks in slabs of 4 planes (the default 16 leaves them whole)."""
    _, viewer = neuroglancer
    with serve(ng_settings(datasets, viewer.get_viewer_url(), ["*"], browse={"max_z": 4})) as base:
        yield base


@pytest.fixture(scope="module")
def no_cors_gateway(datasets, neuroglancer) -> Iterator[str]:
    _, viewer = neuroglancer
    with serve(ng_settings(datasets, viewer.get_viewer_url(), [])) as base:
        yield base


def image_link(client_base: str, dataset_path: str, image: int = 0, variant: bool = False) -> str:
    import httpx

    description = httpx.get(f"{client_base}/{dataset_path}/", headers={"Accept": "application/json"}).json()
    entry = description["images"][image]
    links = entry["variant"]["links"] if variant else entry["links"]
    link: str = links["neuroglancer"]
    return link


def show(neuroglancer, browser, gateway: str, link: str, dataset_path: str, name: str, min_levels: int = 2):
    """Load the link's state into the hosted viewer and wait for chunks; (log, stats)."""
    log, png = screenshot(neuroglancer, browser, gateway, link, dataset_path, name, min_levels)
    return log, pixel_stats(png)


def screenshot(neuroglancer, browser, gateway: str, link: str, dataset_path: str, name: str, min_levels: int):
    """(log, png) of the link's state in the hosted viewer once chunks of ``min_levels``
    levels came, the gateway went quiet and Neuroglancer says every visible chunk is drawn
    (``viewer.isReady()``: without it, a slow frame was sometimes caught half drawn), and
    the picture holds still (``steady_screenshot``)."""
    module, viewer = neuroglancer
    viewer.set_state(module.parse_url(link))
    with open_page(browser, gateway) as (page, log):
        page.goto(viewer.get_viewer_url())

        def loaded() -> bool:
            return len(log.chunk_levels(dataset_path)) >= min_levels and bool(page.evaluate(NG_READY))

        assert wait_until(page, log, loaded, LOAD_TIMEOUT), f"{name}: not drawn within {LOAD_TIMEOUT} s"
        png = steady_screenshot(page, name)
    save_artifact(name, png)
    return log, png


#: A picture is steady when two screenshots this far apart differ by at most
#: ``MAX_MEAN_DIFFERENCE`` / 4 (CI once compared a 4-panel view caught while still changing,
#: ready by ``isReady()``, against a finished one: 3.3 apart).
STEADY_INTERVAL_MS = 400
STEADY_TIMEOUT = 20.0


def steady_screenshot(page: Any, name: str) -> bytes:
    """A screenshot once the view stops changing."""
    deadline = time.monotonic() + STEADY_TIMEOUT
    png = page.screenshot()
    while True:
        page.wait_for_timeout(STEADY_INTERVAL_MS)
        again = page.screenshot()
        if np.abs(luminance(png) - luminance(again)).mean() <= MAX_MEAN_DIFFERENCE / 4:
            return again
        assert time.monotonic() < deadline, f"{name}: the picture still changes after {STEADY_TIMEOUT} s"
        png = again


#: Neuroglancer's own readiness: every visible chunk loaded and drawn.
NG_READY = "Boolean(window.viewer && typeof window.viewer.isReady === 'function' && window.viewer.isReady())"

CASES = {
    "pyramid": ("pyramid", 0, False, 2),  # 3 channels, 4 levels
    "zstack": ("zstack", 0, False, 1),  # 3-D, one native level and one synthesized
    "float64-as-float32": ("float64", 0, True, 1),  # the served variant
    "two-images-second": ("two", 1, False, 1),  # bioformats2raw layout, image 1
    "volume": ("volume", 0, False, 1),  # 3-D chunks, 4-panel view with 3-D
    "plate-field": ("plate", 2, False, 1),  # B/3/0: a field of a well of a plate
}


@pytest.mark.parametrize("case", [case for case in CASES if case != "volume"])  # volume: below
def test_neuroglancer_shows_the_image(neuroglancer, browser, ng_gateway, datasets, case):
    name, image, variant, min_levels = CASES[case]
    dataset_path = datasets[1][name].path
    link = image_link(ng_gateway, dataset_path, image, variant)
    assert link.startswith(neuroglancer[1].get_viewer_url() + "#!")
    log, stats = show(
        neuroglancer, browser, ng_gateway, link, dataset_path, f"neuroglancer-{case}", min_levels
    )
    assert log.console_errors == []
    assert log.failed == []
    assert len(log.chunk_levels(dataset_path)) >= min_levels, log.responses
    assert all(status in (200, 404) for status, _ in log.responses), log.responses
    assert stats.lit_fraction > MIN_LIT_FRACTION, stats
    assert stats.std > 3, stats


def test_neuroglancer_xy_panel_shows_x_across_and_y_down(neuroglancer, browser, ng_gateway, datasets):
    """The link's ``displayDimensions`` hold in the viewer: the volume's "xy" panel is a
    plane of one z, so every chunk of the finest level comes from one z row of chunks and
    several x columns. (Named before their layers load, dimensions Neuroglancer does not
    know yet fell back to the array's order, and the "xy" panel showed z across.)"""
    module, viewer = neuroglancer
    dataset_path = datasets[1]["volume"].path
    state = module.parse_url(image_link(ng_gateway, dataset_path))
    state.layout = "xy"
    viewer.set_state(state)
    with open_page(browser, ng_gateway) as (page, log):
        page.goto(viewer.get_viewer_url())
        loaded = wait_until(
            page,
            log,
            lambda: "volume/0" in log.chunk_levels(dataset_path) and bool(page.evaluate(NG_READY)),
            LOAD_TIMEOUT,
        )
        assert loaded, log.responses
        shown = page.evaluate("viewer.state.toJSON().displayDimensions")
        png = page.screenshot()
    save_artifact("neuroglancer-volume-xy", png)
    assert shown == ["x", "y", "z"]
    finest = [key.split("/")[3:] for key in log.chunk_urls(dataset_path) if key.startswith("volume/0/c/")]
    assert {z for z, _, _ in finest} == {"1"}, finest  # z = 22 of 45, chunks of 16 planes
    assert len({x for _, _, x in finest}) > 1, finest
    assert pixel_stats(png).lit_fraction > MIN_LIT_FRACTION


def same_picture(neuroglancer, browser, datasets, case: str, gateways: dict[str, str]) -> dict[str, Any]:
    """The view of ``case`` from each of ``gateways`` (kind → base URL): each without a
    console error or a failed request, with chunks of enough levels, and all showing the
    same picture as the first. Each kind's log, for the caller's own checks."""
    name, image, variant, min_levels = CASES[case]
    dataset_path = datasets[1][name].path
    pictures, logs = [], {}
    for kind, gateway in gateways.items():
        link = image_link(gateway, dataset_path, image, variant)
        log, png = screenshot(
            neuroglancer, browser, gateway, link, dataset_path, f"neuroglancer-{case}-{kind}", min_levels
        )
        assert log.console_errors == [], kind
        assert log.failed == [], kind
        ranged = log.chunk_levels(dataset_path, 206)  # a shard's index, an inner chunk
        assert len(log.chunk_levels(dataset_path) | ranged) >= min_levels, (kind, log.responses)
        pictures.append(png)
        logs[kind] = log
    first = pixel_stats(pictures[0])
    assert first.lit_fraction > MIN_LIT_FRACTION and first.std > 3, first
    for kind, png in zip(gateways, pictures, strict=True):
        difference = np.abs(luminance(pictures[0]) - luminance(png)).mean()
        assert difference <= MAX_MEAN_DIFFERENCE, (kind, difference, first, pixel_stats(png))
    return logs


@pytest.mark.parametrize("case", ["volume", "pyramid"])
def test_neuroglancer_shows_sharded_arrays_as_plain_ones(
    neuroglancer, browser, ng_gateway, sharded_ng_gateway, datasets, case
):
    """The same view from shards and from plain chunks: no console error, shards of the
    array's levels fetched (whole or by range: 206), the same picture."""
    gateways = {"plain": ng_gateway, "sharded": sharded_ng_gateway}
    logs = same_picture(neuroglancer, browser, datasets, case, gateways)
    dataset_path = datasets[1][CASES[case][0]].path
    for kind, log in logs.items():
        assert all(status in (200, 206, 404) for status, _ in log.responses), log.responses
        assert bool(log.chunk_levels(dataset_path, 206)) == (kind == "sharded"), (kind, log.responses)


@pytest.mark.parametrize("case", ["volume", "pyramid"])
def test_neuroglancer_shows_one_block_blosc_chunks_as_zstd_ones(
    neuroglancer, browser, ng_gateway, blosc_ng_gateway, datasets, case
):
    """``codec = "blosc-zstd"`` (each chunk one blosc block of zstd over the shuffled
    bytes): Neuroglancer's blosc decoder shows the same picture as from zstd chunks."""
    logs = same_picture(
        neuroglancer, browser, datasets, case, {"zstd": ng_gateway, "blosc-zstd": blosc_ng_gateway}
    )
    for log in logs.values():
        assert all(status in (200, 404) for status, _ in log.responses), log.responses


def test_neuroglancer_shows_slabs_of_the_browsing_view_as_the_blocks(
    neuroglancer, browser, ng_gateway, slab_ng_gateway, datasets
):
    """The dataset page's link opens the browsing view: from slabs of 4 planes, the 4-panel
    view of the volume is the picture of its 16-plane blocks, and the finest level's chunks
    came from the view's slabs."""
    logs = same_picture(
        neuroglancer, browser, datasets, "volume", {"blocks": ng_gateway, "slabs": slab_ng_gateway}
    )
    dataset_path = datasets[1]["volume"].path
    for kind, gateway in (("blocks", ng_gateway), ("slabs", slab_ng_gateway)):
        document = httpx.get(f"{gateway}/browse/{dataset_path}/volume/0/zarr.json").json()
        depth = document["chunk_grid"]["configuration"]["chunk_shape"][0]
        assert depth == (16 if kind == "blocks" else 4), kind
        finest = [key for key in logs[kind].chunk_urls(dataset_path) if key.startswith("volume/0/c/")]
        assert finest, (kind, logs[kind].responses)
        assert all(f"/browse/{dataset_path}/" in url for _, url in logs[kind].responses if "/c/" in url)


def luminance(png: bytes) -> np.ndarray:
    image_module = require_module("PIL.Image")
    return np.asarray(image_module.open(io.BytesIO(png)).convert("L"), dtype=np.float64)


def test_neuroglancer_fetches_chunks_of_several_levels(neuroglancer, browser, ng_gateway, datasets):
    dataset_path = datasets[1]["pyramid"].path
    link = image_link(ng_gateway, dataset_path)
    log, _ = show(neuroglancer, browser, ng_gateway, link, dataset_path, "neuroglancer-levels")
    assert len(log.chunk_levels(dataset_path)) >= 2, sorted(log.chunk_levels(dataset_path))


def test_dataset_page_opens_in_neuroglancer(neuroglancer, browser, ng_gateway, datasets):
    """The page loads cleanly; its link, clicked, opens the image in Neuroglancer.

    The hosted viewer's own state channel (``/events/``, Python-side sync) rejects a
    client whose state came from the URL; those errors are the host's, not the
    data's, and are the only ones ignored."""
    _, viewer = neuroglancer
    dataset_path = datasets[1]["pyramid"].path
    host = viewer.get_viewer_url().split("/v/")[0]
    with open_page(browser, ng_gateway, ignore_errors_from=(f"{host}/events/",)) as (page, log):
        page.goto(f"{ng_gateway}/{dataset_path}/")
        assert page.title().startswith(dataset_path)
        assert "uint16" in page.inner_text("body")
        page_errors = list(log.console_errors)
        with page.expect_navigation():
            page.click("a.neuroglancer >> nth=0")
        wait_until(page, log, lambda: len(log.chunk_levels(dataset_path)) >= 2, LOAD_TIMEOUT)
        png = page.screenshot()
    save_artifact("dataset-page-neuroglancer", png)
    stats = pixel_stats(png)
    assert page_errors == []
    assert [e for e in log.console_errors if "/events/" not in e] == []
    assert len(log.chunk_levels(dataset_path)) >= 2
    assert stats.lit_fraction > MIN_LIT_FRACTION, stats


def test_negative_control_without_cors_the_layer_fails(neuroglancer, browser, no_cors_gateway, datasets):
    """``cors_origins = []``: the browser refuses the gateway's answers, nothing is shown."""
    dataset_path = datasets[1]["pyramid"].path
    link = image_link(no_cors_gateway, dataset_path)
    module, viewer = neuroglancer
    viewer.set_state(module.parse_url(link))
    with open_page(browser, no_cors_gateway) as (page, log):
        page.goto(viewer.get_viewer_url())
        wait_until(page, log, lambda: bool(log.console_errors) and log.requested(dataset_path), 30.0)
        png = page.screenshot()
    save_artifact("negative-control-no-cors", png)
    stats = pixel_stats(png)
    assert log.requested(dataset_path), "Neuroglancer never asked the gateway"
    assert any("CORS" in e or "Access-Control-Allow-Origin" in e for e in log.console_errors), (
        log.console_errors
    )
    assert log.chunk_levels(dataset_path) == set()
    assert stats.lit_fraction < MAX_BLANK_LIT_FRACTION, stats
