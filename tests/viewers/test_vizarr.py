"""vizarr (npm ``@galaxyproject/vizarr``'s prebuilt bundle) in Debian's headless Chromium
shows a multi-channel image, the same image from virtual shards, and a plate.

The bundle is hosted on loopback by ``tests.viewers.vizarr_site``, which tells it the
gateway URL to show. The gateway is wrapped in a recorder, so the chunk requests counted
are the ones that reached it. Each page must load with no console error but the 404s of
vizarr's Zarr v2 probes (``.zattrs``, ``.zarray``, ``.zgroup``, which a v3 tree has not).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config.settings import ServerSettings, Settings
from gateway.web.app import create_app
from tests.plates.writers import write_plate_tiff
from tests.server import serve_app
from tests.viewers.browser import PageLog, open_page, running_browser, save_artifact, wait_until
from tests.viewers.conftest import ROOT, gateway_settings, require_module
from tests.viewers.vizarr_site import vizarr_app

PLATE_ROOT = "screens"
PLATE = "one-screen-one-plate-four-wells"  # wells B/2, B/3, C/2, C/3 of rows A-C, columns 1-3
LOAD_TIMEOUT = 60.0
V2_PROBES = (".zattrs", ".zarray", ".zgroup")
#: Mean absolute difference (0-255 luminance) allowed between two renderings of the same pixels.
MAX_MEAN_DIFFERENCE = 1.0
#: Hide vizarr's controls so a screenshot holds what its WebGL canvas drew, on white.
CANVAS_ONLY = "#app * { visibility: hidden !important; } #app canvas { visibility: visible !important; }"


class RecordedApp:
    """An ASGI app that notes (method, path, status) of every HTTP request it answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[tuple[str, str, int]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.requests.append((scope["method"], scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, noting)

    def chunks(self, prefix: str) -> list[str]:
        """Paths below ``/<prefix>/`` of chunk (or shard) keys answered with data (200, 206)."""
        return [
            path
            for method, path, status in self.requests
            if method == "GET" and status in (200, 206) and path.startswith(f"/{prefix}/") and "/c/" in path
        ]


@dataclass
class Gateway:
    url: str
    recorder: RecordedApp


@dataclass
class Site:
    """The vizarr site, the sources it hands out by id, and the recorded gateways."""

    url: str
    sources: dict[str, str]
    plain: Gateway
    sharded: Gateway  # the same datasets, every array in shards of SHARD

    def show(self, dataset_id: str, source: str) -> str:
        self.sources[dataset_id] = source
        return f"{self.url}/view/{dataset_id}"


@contextmanager
def recorded(settings: Settings) -> Iterator[Gateway]:
    recorder = RecordedApp(create_app(settings))
    with serve_app(recorder, settings.server) as url:
        yield Gateway(url, recorder)


@pytest.fixture(scope="module")
def site(datasets, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    plates = tmp_path_factory.mktemp("vizarr") / PLATE_ROOT
    plates.mkdir()
    write_plate_tiff(PLATE, plates / f"{PLATE}.ome.tif")
    root = datasets[0]
    sources: dict[str, str] = {}
    with (
        recorded(gateway_settings(root, roots={ROOT: str(root), PLATE_ROOT: str(plates)})) as plain,
        recorded(gateway_settings(root, sharded=True)) as sharded,
        serve_app(vizarr_app(sources), ServerSettings()) as url,
    ):
        yield Site(url, sources, plain, sharded)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with running_browser() as chromium:
        yield chromium


@dataclass(frozen=True)
class Shown:
    log: PageLog
    text: str  # vizarr's controls: layer name, channel names
    canvas: np.ndarray  # RGB screenshot of the canvas alone


def show(browser: Any, site: Site, gateway: Gateway, dataset_id: str, path: str, min_chunks: int) -> Shown:
    """Open ``path`` of ``gateway`` in vizarr; wait until ``min_chunks`` chunk requests
    under it reached the gateway and it went quiet; what was shown."""
    with open_page(browser, gateway.url) as (page, log):
        page.goto(site.show(dataset_id, f"{gateway.url}/{path}"))
        wait_until(page, log, lambda: len(gateway.recorder.chunks(path)) >= min_chunks, LOAD_TIMEOUT)
        text = page.inner_text("#app")
        page.add_style_tag(content=CANVAS_ONLY)
        png = page.screenshot()
    save_artifact(f"vizarr-{dataset_id}", png)
    image_module = require_module("PIL.Image")
    return Shown(log, text, np.asarray(image_module.open(io.BytesIO(png)).convert("RGB")).astype(np.int16))


def unexpected_errors(log: PageLog) -> list[str]:
    """Console errors other than the 404s of vizarr's Zarr v2 probes."""
    return [
        error
        for error in log.console_errors
        if not ("404" in error and error.rstrip(")").endswith(V2_PROBES))
    ]


def channel_share(rgb: np.ndarray, channel: str) -> float:
    """Share of pixels whose colour is clearly the channel's: blue, green or magenta."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    dominant = {
        "blue": (b > r + 60) & (b > g + 60),
        "green": (g > r + 60) & (g > b + 60),
        "magenta": (r > g + 60) & (b > g + 60),
    }[channel]
    return float(dominant.mean())


def drawn(rgb: np.ndarray) -> np.ndarray:
    """Where the canvas drew anything: not the white page behind it."""
    return np.asarray(rgb.min(axis=-1) < 240)


def runs(profile: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], profile.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


@pytest.fixture(scope="module")
def pyramid_shown(browser, site, datasets) -> Shown:
    return show(browser, site, site.plain, "pyramid", datasets[1]["pyramid"].path, min_chunks=3)


def test_vizarr_shows_a_multichannel_image(pyramid_shown, site, datasets):
    """3 channels of a 4-level uint16 pyramid: each drawn in its omero colour, chunks of
    the coarse levels fetched from the gateway, the channel names in the controls."""
    assert unexpected_errors(pyramid_shown.log) == []
    assert pyramid_shown.log.failed == []
    for label in ("DAPI", "GFP", "mCherry"):
        assert label in pyramid_shown.text
    path = datasets[1]["pyramid"].path
    chunks = site.plain.recorder.chunks(path)
    levels = {chunk[len(path) + 2 :].partition("/c/")[0] for chunk in chunks}
    assert {"3", "2"} <= levels, sorted(chunks)
    assert drawn(pyramid_shown.canvas).mean() > 0.3
    for colour in ("blue", "green", "magenta"):  # DAPI, GFP, mCherry
        assert channel_share(pyramid_shown.canvas, colour) > 0.005, colour


def test_vizarr_shows_the_image_from_shards_as_from_chunks(browser, pyramid_shown, site, datasets):
    path = datasets[1]["pyramid"].path
    shown = show(browser, site, site.sharded, "pyramid-sharded", path, min_chunks=2)
    assert unexpected_errors(shown.log) == []
    assert shown.log.failed == []
    assert site.sharded.recorder.chunks(path), "no shard reached the gateway"
    difference = np.abs(shown.canvas - pyramid_shown.canvas).mean()
    assert difference <= MAX_MEAN_DIFFERENCE, difference


def test_vizarr_shows_a_plate_as_its_grid_of_wells(browser, site):
    """The plate's four wells (B/2, B/3, C/2, C/3) drawn as a 2 x 2 grid of fields, each
    well's first field fetched from the gateway."""
    source = f"{PLATE_ROOT}/{PLATE}.ome.tif"
    shown = show(browser, site, site.plain, "plate", source, min_chunks=4)
    assert unexpected_errors(shown.log) == []
    assert shown.log.failed == []
    fields = {chunk[len(source) + 2 :].partition("/c/")[0] for chunk in site.plain.recorder.chunks(source)}
    assert {f.rsplit("/", 1)[0] for f in fields} == {"B/2/0", "B/3/0", "C/2/0", "C/3/0"}, fields
    mask = drawn(shown.canvas)
    columns, rows = runs(mask.any(axis=0)), runs(mask.any(axis=1))
    assert len(columns) == 2 and len(rows) == 2, (columns, rows)
    for top, bottom in rows:
        for left, right in columns:
            well = shown.canvas[top:bottom, left:right]
            assert drawn(well).mean() > 0.9 and well.std() > 3, (top, left)
