"""The gateway's own pages in Debian's headless Chromium: copy buttons that work over plain
http from another machine, and screenshots of ``/``, a folder page and a dataset page.

A page served from ``127.0.0.1`` is a secure context, where ``navigator.clipboard`` exists;
from any other host over http it is not, and the Clipboard API is undefined. The browser
maps ``gateway.test`` to the loopback server (``--host-resolver-rules``), so the page is
what a colleague on the network gets.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.config.settings import Settings
from gateway.demo import write_pyramid_ome_tiff, write_zstack_imagej
from tests.server import serve
from tests.viewers.browser import running_browser, save_artifact
from tests.viewers.conftest import require_module

HOST = "gateway.test"
VIEWPORT = {"width": 1000, "height": 800}
#: Records what a ``copy`` event copies: a selected text area's selection, else the page's.
RECORD_COPIES = """() => {
  window.copies = [];
  document.addEventListener("copy", () => {
    const active = document.activeElement;
    window.copies.push(active && active.tagName === "TEXTAREA"
      ? active.value.substring(active.selectionStart, active.selectionEnd)
      : String(window.getSelection()));
  });
}"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    root = tmp_path_factory.mktemp("pages") / "lab"
    (root / "2024").mkdir(parents=True)
    write_pyramid_ome_tiff(root / "2024" / "cells.ome.tif")
    write_zstack_imagej(root / "zstack.tif")
    (root / "2024" / "broken.tif").write_bytes(b"II*\x00" + b"\xff" * 12)
    cut = root / "2024" / "cut.ome.tif"  # an OME-TIFF copied half-way
    write_pyramid_ome_tiff(cut)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    settings = Settings.from_mapping({"roots": {"lab": str(root)}})
    with serve(settings) as base:
        yield base, int(base.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with running_browser([f"--host-resolver-rules=MAP {HOST} 127.0.0.1"]) as chromium:
        yield chromium


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield context
    finally:
        context.close()


def read_clipboard(context: Any, base: str) -> str:
    """The clipboard, read from a secure page (loopback) allowed to read it."""
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = context.new_page()
    page.goto(f"{base}/health")
    text: str = page.evaluate("navigator.clipboard.readText()")
    return text


def open_dataset_page(context: Any, origin: str) -> Any:
    page = context.new_page()
    response = page.goto(f"{origin}/lab/2024/cells.ome.tif/")
    assert response is not None and response.status == 200
    page.evaluate(RECORD_COPIES)
    return page


def snippet(page: Any) -> str:
    text: str = page.evaluate(
        "document.querySelector('button.copy').parentNode.nextElementSibling.textContent"
    )
    assert "zarr.open_group" in text
    return text


def test_copy_works_without_the_clipboard_api(gateway: tuple[str, int], context: Any) -> None:
    base, port = gateway
    page = open_dataset_page(context, f"http://{HOST}:{port}")
    assert page.evaluate("[window.isSecureContext, typeof navigator.clipboard]") == [False, "undefined"]
    expected = snippet(page)
    page.click("button.copy >> nth=0")
    assert page.evaluate("window.copies") == [expected]
    assert page.inner_text("button.copy >> nth=0") == "copied"
    assert read_clipboard(context, base) == expected
    assert page.evaluate("document.querySelectorAll('textarea').length") == 0  # cleaned up


def test_when_copying_is_refused_the_snippet_is_left_selected(gateway: tuple[str, int], context: Any) -> None:
    _base, port = gateway
    page = open_dataset_page(context, f"http://{HOST}:{port}")
    page.evaluate("document.execCommand = () => false")  # a browser that refuses
    expected = snippet(page)
    page.click("button.copy >> nth=0")
    # the whole snippet (a selection's text drops the block's final line break)
    assert page.evaluate("String(window.getSelection())") == expected.rstrip("\n")
    assert "Ctrl+C" in page.inner_text("button.copy >> nth=0")


def test_copy_uses_the_clipboard_api_where_there_is_one(gateway: tuple[str, int], context: Any) -> None:
    base, _port = gateway
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = open_dataset_page(context, base)
    assert page.evaluate("[window.isSecureContext, typeof navigator.clipboard]") == [True, "object"]
    expected = snippet(page)
    page.click("button.copy >> nth=1")  # the tensorstore snippet
    page.wait_for_function("document.querySelectorAll('button.copy')[1].textContent === 'copied'")
    tensorstore = page.evaluate(
        "document.querySelectorAll('button.copy')[1].parentNode.nextElementSibling.textContent"
    )
    assert tensorstore != expected and "tensorstore" in tensorstore
    assert page.evaluate("navigator.clipboard.readText()") == tensorstore
    assert page.evaluate("window.copies") == []  # no selection trick was needed


# -- screenshots -------------------------------------------------------------------------------

#: (name, path, status, text the page must show)
PAGES = [
    ("root", "/", 200, "lab"),
    ("folder", "/lab/2024/", 200, "cells.ome.tif"),
    ("dataset", "/lab/2024/cells.ome.tif/", 200, "Open in Neuroglancer"),
    ("warnings", "/lab/2024/cut.ome.tif/", 200, "this is a truncated OME-TIFF"),
    ("error", "/lab/2024/broken.tif/", 500, "500 Internal Server Error"),
]


@pytest.mark.parametrize(("name", "path", "status", "text"), PAGES, ids=[p[0] for p in PAGES])
def test_pages_render_something_to_look_at(
    gateway: tuple[str, int], context: Any, tmp_path: Path, name: str, path: str, status: int, text: str
) -> None:
    base, _port = gateway
    page = context.new_page()
    response = page.goto(f"{base}{path}")
    assert response is not None and response.status == status, path
    assert response.headers["content-type"].startswith("text/html")
    page.wait_for_load_state("networkidle")
    assert text in page.inner_text("body")
    png = page.screenshot(full_page=True)
    (tmp_path / f"{name}.png").write_bytes(png)
    save_artifact(f"page-{name}", png)
    image_module = require_module("PIL.Image")
    pixels = np.asarray(image_module.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    assert pixels.std() > 10, f"{path}: the screenshot is nearly blank"
    dark = (pixels < 128).mean()
    assert 0.002 < dark < 0.9, f"{path}: {dark:.3f} of the screenshot is dark (no text, or all black)"
