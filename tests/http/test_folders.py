"""Folder pages: every directory under a root at its URL with a trailing slash, ``/`` lists
the roots; HTML or JSON, paged and filtered; nothing hidden or outside is listed; what each
dataset holds fills in once the background probe has opened it; unreadable files are
marked, not linked."""

from __future__ import annotations

import os
import time
from urllib.parse import urljoin

import pytest

from tests.http.support import assert_json_error, running_gateway, write_browsable_tree, write_healthy

JSON = {"Accept": "application/json"}
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    base = tmp_path_factory.mktemp("folders")
    root = base / "root"
    write_browsable_tree(root, base / "outside")
    (root / "empty.tif").write_bytes(b"")
    (root / "junk.tif").write_bytes(b"this is no image, whatever its name says")
    cut = root / "cut.tif"
    write_healthy(cut)
    cut.write_bytes(cut.read_bytes()[:6])  # a header cut short
    (root / "other.xml").write_text("<not-bigdataviewer/>")
    os.mkfifo(root / "pipe.tif")
    (root / "many").mkdir()
    for index in range(7):
        write_healthy(root / "many" / f"f{index}.tif", offset=index + 1)
    (root / "many" / "zfolder").mkdir()
    write_healthy(root / "a<i>&b.tif")
    write_healthy(root / "café scan #1.tif")
    with running_gateway(root) as gw:
        yield gw


def page(gateway, path: str, **params) -> dict:
    response = gateway.get(path, headers=JSON, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def settled(gateway, path: str, **params) -> dict:
    """The page once the background probes have looked at every dataset on it."""
    deadline = time.monotonic() + 60
    while True:
        document = page(gateway, path, **params)
        if all(d["status"] != "unknown" for d in document["datasets"]) or time.monotonic() > deadline:
            return document
        time.sleep(0.05)


def by_name(document: dict) -> dict[str, dict]:
    return {d["name"]: d for d in document["datasets"]}


# -- content -------------------------------------------------------------------------------------


def test_root_lists_the_roots(gateway):
    document = page(gateway, "/")
    assert [f["name"] for f in document["folders"]] == ["data"]
    assert document["folders"][0]["url"] == gateway.url("data/")
    assert document["roots"] == ["data"] and document["datasets"] == []


def test_folder_lists_sub_folders_and_datasets(gateway):
    document = page(gateway, "/data/")
    assert [f["name"] for f in document["folders"]] == ["many", "sub"]
    # other.xml: listed by its name until a probe finds it is no dataset
    assert set(by_name(document)) - {"other.xml"} == {
        "a<i>&b.tif",
        "café scan #1.tif",
        "cut.tif",
        "empty.tif",
        "healthy.tif",
        "junk.tif",
        "link-in.tif",
        "top.ome.tif",
    }


@pytest.mark.parametrize(
    "absent", [".hidden", "inside-hidden", "link-out", "outside", "outdir", "pipe.tif", "notes.txt"]
)
def test_folder_never_lists_hidden_outside_or_odd_files(gateway, absent):
    assert absent not in gateway.get("/data/", headers=JSON).text
    assert absent not in gateway.get("/data/").text


def test_nested_folder_and_breadcrumb(gateway):
    document = page(gateway, "/data/sub/deeper/")
    assert [d["name"] for d in document["datasets"]] == ["inner.tif"]
    assert [c["path"] for c in document["breadcrumb"]] == ["", "data", "data/sub", "data/sub/deeper"]
    assert document["breadcrumb"][2]["url"] == gateway.url("data/sub/")
    assert document["datasets"][0]["url"] == gateway.url("data/sub/deeper/inner.tif")


def test_listed_urls_of_odd_names_are_served(gateway):
    for dataset in settled(gateway, "/data/")["datasets"]:
        if dataset["status"] == "ok":
            assert gateway.client.get(dataset["zarr_json"]).status_code == 200, dataset["name"]
            assert gateway.client.get(dataset["page"], headers=JSON).status_code == 200, dataset["name"]


def test_what_is_known_fills_in(gateway):
    datasets = by_name(settled(gateway, "/data/"))
    healthy = datasets["healthy.tif"]
    assert healthy["status"] == "ok"
    assert (healthy["shape"], healthy["dtype"], healthy["axes"]) == ([256, 256], "uint16", "yx")
    assert healthy["levels"] >= 1 and healthy["format"]
    assert healthy["thumbnail"] == gateway.url("data/healthy.tif/thumbnail.png")


@pytest.mark.parametrize(
    ("name", "reason"),
    [("empty.tif", "empty file"), ("junk.tif", "no adapter recognises"), ("cut.tif", "")],
)
def test_unreadable_files_are_marked_with_the_reason(gateway, name, reason):
    dataset = by_name(settled(gateway, "/data/"))[name]
    assert dataset["status"] == "unreadable"
    assert reason in dataset["reason"] and dataset["reason"]
    assert dataset["page"] is None and dataset["zarr_json"] is None and "thumbnail" not in dataset


def test_unreadable_files_are_not_linked_in_html(gateway):
    settled(gateway, "/data/")
    html = gateway.get("/data/").text
    assert "empty.tif" in html and "unreadable: empty file" in html
    assert 'href="' + gateway.url("data/empty.tif/") not in html
    assert 'href="' + gateway.url("data/healthy.tif/") in html


def test_a_sniffed_file_that_is_no_dataset_disappears_once_probed(gateway):
    settled(gateway, "/data/")
    assert "other.xml" not in by_name(page(gateway, "/data/"))


def test_html_escapes_names(gateway):
    html = gateway.get("/data/").text
    assert "<i>" not in html and "a&lt;i&gt;&amp;b.tif" in html


def test_python_example_uses_a_readable_dataset(gateway):
    settled(gateway, "/data/")
    html = gateway.get("/data/").text
    example = html.split("Open from Python", 1)[1]
    assert "empty.tif" not in example and "cut.tif" not in example and "zarr.open_group" in example


# -- JSON or HTML --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "params", "kind"),
    [
        ({}, {}, "text/html"),
        ({"Accept": BROWSER}, {}, "text/html"),
        (JSON, {}, "application/json"),
        ({"Accept": BROWSER}, {"format": "json"}, "application/json"),
        (JSON, {"format": "html"}, "text/html"),
    ],
)
@pytest.mark.parametrize("path", ["/", "/data/", "/data/sub/"])
def test_json_or_html(gateway, path, headers, params, kind):
    response = gateway.get(path, headers=headers, params=params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(kind)
    assert "Accept" in response.headers["vary"]


def test_head_of_a_folder(gateway):
    response = gateway.client.head(gateway.url("/data/"))
    assert response.status_code == 200 and response.content == b""


def test_folders_are_read_only(gateway):
    assert_json_error(gateway.raw("POST", "/data/sub/"), 405)


# -- paging and filtering -------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3, 8, 100])
def test_pages_cover_the_folder_once(gateway, limit):
    seen, document = [], page(gateway, "/data/many/", limit=limit)
    while True:
        shown = [f["name"] + "/" for f in document["folders"]] + [d["name"] for d in document["datasets"]]
        assert 0 < len(shown) <= limit and document["total"] == 8
        seen += shown
        if document["next"] is None:
            break
        document = gateway.client.get(document["next"], headers=JSON).json()
    assert seen == ["zfolder/"] + [f"f{i}.tif" for i in range(7)]


def test_html_links_the_next_page(gateway):
    html = gateway.get("/data/many/", params={"limit": 2}).text
    assert 'rel="next"' in html and "after=f0.tif" in html


@pytest.mark.parametrize(
    ("q", "folders", "datasets"),
    [
        ("upper", [], ["UPPER.TIFF"]),
        ("DEEP", ["deeper"], []),
        ("e", ["deeper"], ["UPPER.TIFF"]),
        ("zz", [], []),
    ],
)
def test_filter_by_name(gateway, q, folders, datasets):
    document = page(gateway, "/data/sub/", q=q)
    assert [f["name"] for f in document["folders"]] == folders
    assert [d["name"] for d in document["datasets"]] == datasets
    assert document["total"] == len(folders) + len(datasets)


def test_filter_is_kept_by_the_next_link(gateway):
    document = page(gateway, "/data/many/", q="f", limit=2)
    assert "q=f" in document["next"] and "limit=2" in document["next"]


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=-1", "limit=abc", "limit=1e3", "limit=99999999999", "limit=%C2%B2", "q=" + "x" * 300],
)
def test_malformed_paging_is_a_400(gateway, query):
    assert_json_error(gateway.raw("GET", f"/data/?{query}", JSON), 400)


# -- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/data", "./data/"),
        ("/data/sub", "./sub/"),
        ("/data/sub/deeper?format=json", "./deeper/?format=json"),
    ],
)
def test_folder_url_without_slash_redirects(gateway, target, location):
    response = gateway.raw("GET", target)
    assert response.status == 301 and response.headers["location"] == location
    followed = gateway.client.get(urljoin(gateway.url(target), location), headers=JSON)
    assert followed.status_code == 200


@pytest.mark.parametrize(
    "target",
    [
        "/data/nope",
        "/data/healthy.tif/0/c/9/9",
        "/data/.hiddendir",
        "/data/outdir",
        "/data/notes.txt",
        "/elsewhere",
    ],
)
def test_no_redirect_for_what_is_no_folder(gateway, target):
    assert_json_error(gateway.raw("GET", target), 404)


@pytest.mark.parametrize(
    "target",
    [
        "/data/../",
        "/data/%2e%2e/",
        "/data/sub/..%2f..%2f/",
        "/data/%2e%2e%2foutside/",
        "/data/outdir/",
        "/data/.hiddendir/",
        "/data/sub%00/",
        "/data/sub%5c..%5c/",
        "/data//sub/",
        "/data/sub//",
        "/data/nope/",
        "/nope/",
        "/data/healthy.tif/0/",
        "/data/" + "a" * 300,  # a name longer than the file system allows (ENAMETOOLONG)
        "/data/" + "a" * 300 + "/",
        "/data/sub/" + "b" * 5000 + "/",
    ],
)
def test_tricks_and_absent_folders_are_404(gateway, target):
    response = gateway.raw("GET", target, JSON)
    assert_json_error(response, 404)
    assert b"outside.tif" not in response.body
