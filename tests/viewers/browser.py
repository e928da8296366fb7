"""Headless Debian Chromium driven by Playwright, and Neuroglancer hosted by its Python package.

Playwright's own browser download is not used (not reachable): Chromium is Debian's
``/usr/bin/chromium``, started with the flags a closed network needs. WebGL runs on
SwiftShader (no GPU). Neuroglancer's client page comes from the ``neuroglancer`` package
(its bundled static client, served on loopback by its own server); the data comes
cross-origin from the gateway, so CORS is exercised as with any hosted Neuroglancer.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.viewers.conftest import CHROMIUM, require, require_module

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-angle=swiftshader",  # WebGL without a GPU
    "--enable-unsafe-swiftshader",
]
VIEWPORT = {"width": 800, "height": 600}
#: The browsing view's URL prefix (``[browse] prefix``), where the dataset pages link viewers.
BROWSE_PREFIX = "browse"


@dataclass
class PageLog:
    """What a page did: console errors, gateway responses, failed requests."""

    gateway: str
    console_errors: list[str] = field(default_factory=list)
    responses: list[tuple[int, str]] = field(default_factory=list)  # from the gateway
    failed: list[str] = field(default_factory=list)
    #: chunk requests the page itself cancelled (Neuroglancer drops chunks it no longer
    #: needs when the view's priorities change): not failures of the gateway
    cancelled: list[str] = field(default_factory=list)
    last_gateway_event: float = field(default_factory=time.monotonic)

    def dataset_url(self, url: str) -> str:
        """``url`` with the browsing view's prefix taken out: the dataset's pages link
        viewers to ``<gateway>/browse/<dataset>/``, the same dataset as ``<gateway>/<dataset>/``."""
        browse = f"{self.gateway}/{BROWSE_PREFIX}/"
        return f"{self.gateway}/{url[len(browse) :]}" if url.startswith(browse) else url

    def chunk_urls(self, dataset_path: str, status: int = 200) -> list[str]:
        """Chunk keys (``0/c/1/2``...) of ``dataset_path`` served with ``status``, in either view."""
        prefix = f"{self.gateway}/{dataset_path}/"
        keys = [self.dataset_url(url) for code, url in self.responses if code == status]
        return [url[len(prefix) :] for url in keys if url.startswith(prefix) and "/c/" in url]

    def chunk_levels(self, dataset_path: str, status: int = 200) -> set[str]:
        """Image levels (``0``, ``float32/1``...) of ``dataset_path`` whose chunks were served."""
        return {key.partition("/c/")[0] for key in self.chunk_urls(dataset_path, status)}

    def requested(self, dataset_path: str) -> bool:
        prefix = f"{self.gateway}/{dataset_path}/"
        urls = [url for _, url in self.responses] + self.failed + self.cancelled
        return any(self.dataset_url(url).startswith(prefix) for url in urls)


@contextmanager
def running_browser(extra_args: Sequence[str] = ()) -> Iterator[Any]:
    """Debian's Chromium, with ``extra_args`` (say, a ``--host-resolver-rules`` mapping),
    stopped on leaving; fails (or skips locally) when missing."""
    require(Path(CHROMIUM).exists(), f"Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = require_module("playwright.sync_api")
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@contextmanager
def open_page(
    browser: Any, gateway: str, ignore_errors_from: tuple[str, ...] = ()
) -> Iterator[tuple[Any, PageLog]]:
    """A fresh page (own context: empty cache) that records what it does."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    log = PageLog(gateway)

    def on_console(message: Any) -> None:
        if message.type != "error":
            return
        where = (message.location or {}).get("url", "")
        if where.endswith("/favicon.ico") or any(where.startswith(p) for p in ignore_errors_from):
            return  # a missing favicon is no error of the data
        log.console_errors.append(f"{message.text} ({where})")

    answered_heads: set[int] = set()

    def on_response(response: Any) -> None:
        if response.url.startswith(gateway):
            log.responses.append((response.status, response.url))
            log.last_gateway_event = time.monotonic()
            if response.request.method == "HEAD":
                answered_heads.add(id(response.request))

    def on_failed(request: Any) -> None:
        # Chromium reports every answered HEAD (a response without a body by design) as
        # failed with net::ERR_ABORTED, whatever the server (microsoft/playwright#32752:
        # the same for 204s); Neuroglancer sends one before reading a shard's index
        if id(request) in answered_heads:
            return
        if request.url.startswith(gateway):
            aborted = request.failure == "net::ERR_ABORTED" and "/c/" in request.url
            (log.cancelled if aborted else log.failed).append(request.url)
            log.last_gateway_event = time.monotonic()

    page.on("console", on_console)
    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    try:
        yield page, log
    finally:
        context.close()


def wait_until(
    page: Any, log: PageLog, condition: Callable[[], bool], timeout: float, quiet: float = 1.5
) -> bool:
    """Poll until ``condition`` holds and the gateway saw no request for ``quiet`` seconds.

    Waits with ``page.wait_for_timeout``: Playwright's sync API delivers events (and so
    fills ``log``) only while it is called."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition() and time.monotonic() - log.last_gateway_event >= quiet:
            return True
        page.wait_for_timeout(250)
    return False


@dataclass(frozen=True)
class PixelStats:
    mean: float
    std: float
    lit_fraction: float  # pixels brighter than 8/255


def pixel_stats(png: bytes, top: int = 50, bottom: int = 30) -> PixelStats:
    """Luminance statistics of a screenshot's viewer area (Neuroglancer's top bar and
    status line cut off)."""
    image_module = require_module("PIL.Image")
    image = image_module.open(io.BytesIO(png)).convert("L")
    pixels = np.asarray(image, dtype=np.float64)[top : image.height - bottom]
    return PixelStats(float(pixels.mean()), float(pixels.std()), float((pixels > 8).mean()))


def save_artifact(name: str, png: bytes) -> None:
    """Keep screenshots for a person to look at when ``OME_ZARR_GATEWAY_SCREENSHOTS`` names a folder."""
    folder = os.environ.get("OME_ZARR_GATEWAY_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.png").write_bytes(png)
