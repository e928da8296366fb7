"""Errors for people and for programs: a browser (``Accept`` preferring ``text/html``) gets
an HTML page, every other client the JSON error as before, with the same status and
message; the page links back to the gateway's ``/``. Every layer's errors: routes, the
store's, access control's and the last-resort 500."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest

from gateway.store import dataset as gateway_store
from gateway.web.errors import prefers_html
from tests.http.support import assert_json_error, running_gateway, write_healthy, write_tiff

#: What Chromium and Firefox send when a person follows a link.
CHROMIUM = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
BROWSERS = [CHROMIUM, FIREFOX, "text/html"]
#: What programs send: curl, zarr-python's aiohttp, fetch(), httpx, explicit JSON.
PROGRAMS = [
    None,
    "*/*",
    "application/json",
    "application/json, text/plain, */*",
    "text/html;q=0.5, application/json",
    "text/html, application/json",  # a tie keeps JSON
    "text/html;q=0",
    "text/*;q=0.3, application/*",
]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    root = tmp_path_factory.mktemp("error-pages")
    (root / "empty.tif").write_bytes(b"")
    (root / "notatiff.tif").write_text("a text file with a .tif suffix\n")
    write_healthy(root / "cut.tif")
    with open(root / "cut.tif", "r+b") as fh:  # tiles 2 and 3 (c/1/0, c/1/1) gone
        fh.truncate(fh.seek(0, 2) // 2)
    write_tiff(root / "small.tif", np.ones((8, 8), np.uint8))
    with running_gateway(root) as gw:
        yield gw


def page_error(response) -> dict[str, str]:
    """The status line, message and home link of an HTML error page."""
    assert response.headers["content-type"].startswith("text/html"), response.headers
    text = response.text
    title = re.search(r"<h1>(.*?)</h1>", text, re.S)
    detail = re.search(r'<p class="detail">(.*?)</p>', text, re.S)
    code = re.search(r"error <code>(.*?)</code>", text, re.S)
    home = re.search(r'<a class="home" href="([^"]*)"', text)
    assert title and detail and code and home, text[:500]
    return {
        "title": html.unescape(title.group(1)),
        "detail": html.unescape(detail.group(1)),
        "error": html.unescape(code.group(1)),
        "home": html.unescape(home.group(1)),
    }


# 404 from the router, 404 from a dataset page, 500 of an unreadable file (page and key),
# 500 of a chunk cut off the file, 416 of a range past the end
CASES = [
    ("/data/nope.tif/zarr.json", {}, 404),
    ("/data/healthy.tif/0/c/9/9", {}, 404),
    ("/data/nope.tif/", {}, 404),
    ("/data/empty.tif/", {}, 500),
    ("/data/notatiff.tif/", {}, 500),
    ("/data/empty.tif/zarr.json", {}, 500),
    ("/data/cut.tif/0/c/1/1", {}, 500),
    ("/data/healthy.tif/zarr.json", {"Range": "bytes=99999-"}, 416),
]


@pytest.mark.parametrize(("path", "headers", "status"), CASES)
@pytest.mark.parametrize("accept", BROWSERS)
def test_browser_gets_an_html_page_with_the_json_status_and_message(gateway, path, headers, status, accept):
    as_json = assert_json_error(gateway.get(path, headers=headers), status)
    response = gateway.get(path, headers={**headers, "Accept": accept})
    assert response.status_code == status
    shown = page_error(response)
    assert shown["title"].startswith(f"{status} ")
    assert shown["detail"] == as_json["detail"]
    assert shown["error"] == as_json["error"]
    assert shown["home"] == "/"


@pytest.mark.parametrize(("path", "headers", "status"), CASES)
@pytest.mark.parametrize("accept", PROGRAMS)
def test_programs_keep_getting_json(gateway, path, headers, status, accept):
    sent = dict(headers)
    if accept is not None:
        sent["Accept"] = accept
    # without Accept: a raw request (httpx always sends */*)
    response = gateway.raw("GET", path, sent) if accept is None else gateway.get(path, headers=sent)
    assert_json_error(response, status)


def test_format_json_keeps_json_for_a_browser(gateway):
    response = gateway.get("/data/empty.tif/?format=json", headers={"Accept": CHROMIUM})
    assert_json_error(response, 500)


def test_unreadable_file_page_says_why_to_a_browser(gateway):
    response = gateway.get("/data/empty.tif/", headers={"Accept": CHROMIUM})
    assert response.status_code == 500
    shown = page_error(response)
    assert shown["detail"].startswith("data/empty.tif: ")  # and the reason, as in the JSON
    assert shown["title"] == "500 Internal Server Error"


def test_html_error_keeps_cors_and_cache_headers_and_varies_on_accept(gateway):
    response = gateway.get(
        "/data/nope.tif/zarr.json", headers={"Accept": CHROMIUM, "Origin": "https://x.example"}
    )
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["cache-control"] == "no-store"
    assert "accept" in response.headers["vary"].lower()
    assert int(response.headers["content-length"]) == len(response.content)


def test_json_error_varies_on_accept(gateway):
    assert "accept" in gateway.get("/data/nope.tif/zarr.json").headers["vary"].lower()


def test_successful_answers_are_untouched_for_a_browser(gateway):
    chunk = gateway.get("/data/healthy.tif/0/c/0/0", headers={"Accept": CHROMIUM})
    assert chunk.status_code == 200
    assert chunk.headers["content-type"] == "application/octet-stream"
    document = gateway.get("/data/healthy.tif/zarr.json", headers={"Accept": CHROMIUM})
    assert document.status_code == 200
    assert document.json()["zarr_format"] == 3


def test_a_hostile_message_is_escaped_in_the_page(gateway):
    response = gateway.get(
        "/data/%3Cscript%3Ealert(1)%3C%2Fscript%3E.tif/zarr.json", headers={"Accept": CHROMIUM}
    )
    assert response.status_code == 404
    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text


def test_unexpected_error_page_quotes_the_request_id(gateway, monkeypatch):
    def explode(node, coords, omit_empty, timing=None):
        raise RuntimeError("boom at /internal/secret/path")

    monkeypatch.setattr(gateway_store, "render_chunk", explode)
    response = gateway.get("/data/small.tif/0/c/0/0", headers={"Accept": CHROMIUM})
    assert response.status_code == 500
    assert page_error(response)["error"] == "internal_error"
    assert response.headers["x-request-id"] in response.text
    assert "secret" not in response.text and "boom" not in response.text


def test_head_and_other_methods_keep_json(gateway):
    assert_json_error(
        gateway.client.post(gateway.url("/data/healthy.tif/zarr.json"), headers={"Accept": CHROMIUM}), 405
    )
    head = gateway.client.head(gateway.url("/data/nope.tif/zarr.json"), headers={"Accept": CHROMIUM})
    assert head.status_code == 404


# -- other layers: access control, the mount prefix -------------------------------------------


def test_access_control_errors_are_pages_for_browsers(tmp_path):
    auth = {"protect": ["data"], "signing_key": "k" * 32}
    with running_gateway(tmp_path, auth=auth) as gw:
        assert_json_error(gw.get("/data/healthy.tif/zarr.json"), 401)
        denied = gw.get("/data/healthy.tif/zarr.json", headers={"Accept": CHROMIUM})
        assert denied.status_code == 401
        assert page_error(denied)["error"] == "unauthorized"
        assert denied.headers["www-authenticate"].startswith("Bearer")
        forged = gw.get("/s/not-a-token/data/healthy.tif/", headers={"Accept": CHROMIUM})
        assert forged.status_code == 403
        assert page_error(forged)["error"] == "forbidden"


@pytest.mark.parametrize(
    ("server", "home"),
    [({"root_path": "/zarr"}, "/zarr/"), ({"public_url": "https://zarr.example.org/lab/zarr"}, "/lab/zarr/")],
)
def test_home_link_follows_the_mount_prefix(tmp_path, server, home):
    # the proxy strips the prefix: requests arrive without it
    with running_gateway(tmp_path, server=server) as gw:
        response = gw.get("/data/nope.tif/zarr.json", headers={"Accept": CHROMIUM})
        assert response.status_code == 404
        assert page_error(response)["home"] == home


# -- the negotiation ---------------------------------------------------------------------------


@pytest.mark.parametrize("accept", BROWSERS)
def test_browsers_prefer_html(accept):
    assert prefers_html(accept)


@pytest.mark.parametrize("accept", [a for a in PROGRAMS if a is not None] + ["", "text/html;q=abc", "text/*"])
def test_programs_do_not_prefer_html(accept):
    assert not prefers_html(accept)


def test_a_huge_accept_header_is_bounded():
    assert not prefers_html(",".join(["application/json"] * 100_000 + ["text/html"]))


def test_error_bodies_are_json_documents(gateway):
    body = gateway.get("/data/nope.tif/zarr.json").content
    assert set(json.loads(body)) == {"error", "detail"}
