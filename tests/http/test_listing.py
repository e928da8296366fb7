"""Browsing from ``GET /`` (the roots) through folder pages reaches every dataset: JSON for
programs, HTML for people; nothing hidden or outside."""

from __future__ import annotations

import pytest

from tests.http.support import new_client, running_gateway, write_browsable_tree, write_healthy

JSON = {"Accept": "application/json"}
LISTED = {
    "data/healthy.tif",
    "data/top.ome.tif",
    "data/sub/deeper/inner.tif",
    "data/sub/UPPER.TIFF",
    "data/link-in.tif",
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    base = tmp_path_factory.mktemp("listing")
    root = base / "root"
    write_browsable_tree(root, base / "outside")
    with running_gateway(root) as gw:
        yield gw


def walk(gateway, url: str | None = None) -> list[dict]:
    """Every dataset entry reached from ``url`` (default ``/``) by folder links and next pages."""
    document = gateway.client.get(url or gateway.url("/"), headers=JSON).json()
    found = list(document["datasets"])
    for folder in document["folders"]:
        found += walk(gateway, folder["url"])
    if document["next"]:
        found += walk(gateway, document["next"])
    return found


def listed_paths(gateway) -> set[str]:
    return {d["path"] for d in walk(gateway)}


def test_json_listing_is_json(gateway):
    assert gateway.get("/", headers=JSON).headers["content-type"].startswith("application/json")


def test_browsing_reaches_every_dataset_with_subdirectories(gateway):
    assert listed_paths(gateway) == LISTED


def test_json_listing_names_the_roots(gateway):
    assert gateway.get("/", headers=JSON).json()["roots"] == ["data"]


def test_json_listing_urls_point_at_the_dataset(gateway):
    for dataset in walk(gateway):
        assert dataset["url"] == gateway.url(dataset["path"])
        assert dataset["zarr_json"] == gateway.url(dataset["path"]) + "/zarr.json"


def test_every_listed_dataset_is_served(gateway):
    for dataset in walk(gateway):
        assert gateway.client.get(dataset["zarr_json"]).status_code == 200, dataset


@pytest.mark.parametrize(
    "hidden", [".hidden.tif", "inside-hidden.tif", "link-out.tif", "outside.tif", "notes"]
)
def test_listing_omits_hidden_outside_and_non_dataset_files(gateway, hidden):
    assert all(hidden not in d["path"] for d in walk(gateway))
    for path in ("/", "/data/", "/data/sub/"):
        assert hidden not in gateway.get(path, headers=JSON).text


def test_listing_is_html_by_default(gateway):
    assert gateway.get("/").headers["content-type"].startswith("text/html")


def test_listing_is_html_for_a_browser(gateway):
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,application/json;q=0.8,*/*;q=0.7"
    assert gateway.get("/", headers={"Accept": accept}).headers["content-type"].startswith("text/html")


def test_html_pages_show_every_dataset(gateway):
    pages = (
        gateway.get("/data/").text + gateway.get("/data/sub/").text + gateway.get("/data/sub/deeper/").text
    )
    assert all(path.rpartition("/")[2] in pages for path in LISTED)


@pytest.mark.parametrize("hidden", [".hidden.tif", "inside-hidden.tif", "link-out.tif", "outside.tif"])
def test_html_listing_omits_hidden_and_outside_files(gateway, hidden):
    for path in ("/", "/data/", "/data/sub/"):
        assert hidden not in gateway.get(path).text


# -- separate servers for special trees ---------------------------------------------------------


def test_listing_limit_bounds_a_page(serve_dir):
    root, start = serve_dir
    for name in ("a.tif", "b.tif", "c.tif"):
        write_healthy(root / name)
    with start(server={"listing_limit": 2}) as base, new_client() as client:
        listing = client.get(f"{base}/data/", headers=JSON).json()
        assert (len(listing["datasets"]), listing["total"]) == (2, 3) and listing["next"]
        assert client.get(f"{base}/data/?limit=3", headers=JSON).status_code == 400


def test_html_listing_escapes_file_names(serve_dir):
    root, start = serve_dir
    write_healthy(root / "a<i>&b.tif")
    with start() as base, new_client() as client:
        page = client.get(f"{base}/data/").text
    assert "<i>" not in page and "a&lt;i&gt;&amp;b.tif" in page


def test_file_with_spaces_and_unicode_is_served_percent_encoded(serve_dir):
    root, start = serve_dir
    write_healthy(root / "café scan 1.tif")
    with start() as base, new_client() as client:
        response = client.get(f"{base}/data/caf%C3%A9%20scan%201.tif/zarr.json")
    assert response.status_code == 200


def test_listed_url_of_a_name_with_hash_is_fetchable(serve_dir):
    root, start = serve_dir
    write_healthy(root / "scan #1.tif")
    with start() as base, new_client() as client:
        (dataset,) = client.get(f"{base}/data/", headers=JSON).json()["datasets"]
        assert client.get(dataset["zarr_json"]).status_code == 200


def test_file_in_directory_with_dataset_suffix_is_served(serve_dir):
    root, start = serve_dir
    (root / "run.tif").mkdir()
    write_healthy(root / "run.tif" / "image.tif")
    with start() as base, new_client() as client:
        (folder,) = client.get(f"{base}/data/", headers=JSON).json()["folders"]
        assert folder["url"] == f"{base}/data/run.tif/"
        (dataset,) = client.get(folder["url"], headers=JSON).json()["datasets"]
        assert client.get(dataset["zarr_json"]).status_code == 200
