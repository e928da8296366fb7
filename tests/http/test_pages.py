"""Dataset pages at ``/<root>/<file>/``: HTML for people, JSON for programs, viewer links."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pytest

from tests.http.support import assert_json_error, running_gateway, write_tiff

JSON = {"Accept": "application/json"}
VIEWERS = {
    "neuroglancer": "https://ng.example.org/",
    "vizarr": "https://vizarr.example.org/",
    "validator": "https://validator.example.org/",
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    root = tmp_path_factory.mktemp("pages")
    write_tiff(root / "float.tif", np.linspace(-1, 1, 64 * 64).reshape(64, 64))
    three = np.arange(3 * 40 * 50, dtype=np.uint16).reshape(3, 40, 50)
    write_tiff(root / "three.ome.tif", three, metadata={"axes": "CYX", "Channel": {"Name": ["a", "b", "c"]}})
    with running_gateway(root, viewers=VIEWERS) as gw:
        yield gw


@pytest.fixture(autouse=True)
def still_serving(gateway):
    yield
    gateway.assert_healthy()


def describe(gateway, name):
    response = gateway.get(f"/data/{name}/", headers=JSON)
    assert response.status_code == 200, response.text
    return response.json()


def test_dataset_page_is_html_by_default(gateway):
    response = gateway.get("/data/healthy.tif/")
    assert response.headers["content-type"].startswith("text/html")
    assert "data/healthy.tif" in response.text


def test_dataset_page_is_json_on_request(gateway):
    assert (
        gateway.get("/data/healthy.tif/", headers=JSON).headers["content-type"].startswith("application/json")
    )


def test_dataset_page_format_query_gives_json(gateway):
    assert gateway.get("/data/healthy.tif/?format=json").json()["path"] == "data/healthy.tif"


def test_dataset_page_varies_on_accept_and_is_not_cached_long(gateway):
    response = gateway.get("/data/healthy.tif/")
    assert "accept" in response.headers["vary"].lower()
    assert response.headers["cache-control"] == "no-cache"


def test_description_has_shape_dtype_levels_axes_scale(gateway):
    (image,) = describe(gateway, "healthy.tif")["images"]
    assert image["shape"] == [256, 256]
    assert image["dtype"] == "uint16"
    assert [a["name"] for a in image["axes"]] == ["y", "x"]
    # 256 px in 128 px chunks: a synthesized level 1 makes the plane fit in one chunk
    assert [level["path"] for level in image["levels"]] == ["0", "1"]
    assert image["levels"][0]["scale"] == [1.0, 1.0]
    assert image["levels"][1]["scale"] == [2.0, 2.0]
    assert image["levels"][0]["chunks"] == [128, 128]


def test_description_has_channels_and_codecs(gateway):
    (image,) = describe(gateway, "three.ome.tif")["images"]
    assert [c["label"] for c in image["channels"]] == ["a", "b", "c"]
    assert image["codecs"][0]["name"] == "bytes"


def test_description_matches_the_served_metadata(gateway):
    (image,) = describe(gateway, "three.ome.tif")["images"]
    array = gateway.get("/data/three.ome.tif/0/zarr.json").json()
    assert image["shape"] == array["shape"]
    assert image["codecs"] == array["codecs"]


def test_neuroglancer_link_has_a_zarr3_source_and_one_layer_per_channel(gateway):
    (image,) = describe(gateway, "three.ome.tif")["images"]
    link = image["links"]["neuroglancer"]
    assert link.startswith(VIEWERS["neuroglancer"] + "#!")
    state = json.loads(unquote(link.split("#!", 1)[1]))
    # viewers open the browsing view (volumes in thin slabs), the same image
    assert image["browse"] == image["url"].replace("/data/", "/browse/data/")
    assert [layer["source"] for layer in state["layers"]] == [f"zarr3://{image['browse']}"] * 3
    assert [layer["localPosition"] for layer in state["layers"]] == [[0], [1], [2]]
    assert [layer["name"] for layer in state["layers"]] == ["a", "b", "c"]
    assert all("range" in layer["shaderControls"]["normalized"] for layer in state["layers"])


@pytest.mark.parametrize(("viewer", "view"), [("vizarr", "browse"), ("validator", "url")])
def test_source_links_name_the_image_url(gateway, viewer, view):
    """Viewers open the browsing view; the validator checks the canonical tree."""
    (image,) = describe(gateway, "three.ome.tif")["images"]
    link = urlsplit(image["links"][viewer])
    assert f"{link.scheme}://{link.netloc}{link.path}" == VIEWERS[viewer]
    assert parse_qs(link.query)["source"] == [image[view]]
    assert gateway.client.get(image[view] + "zarr.json").status_code == 200


def test_image_url_is_the_served_group(gateway):
    (image,) = describe(gateway, "three.ome.tif")["images"]
    assert gateway.client.get(image["url"] + "zarr.json").status_code == 200


def test_snippets_name_the_image(gateway):
    (image,) = describe(gateway, "three.ome.tif")["images"]
    assert image["url"] in image["snippets"]["zarr_python"]
    assert f'"kvstore": "{image["url"]}0/"' in image["snippets"]["tensorstore"]


def test_float64_page_says_neuroglancer_cannot_show_it_and_offers_float32(gateway):
    (image,) = describe(gateway, "float.tif")["images"]
    assert image["dtype"] == "float64"
    assert image["links"]["neuroglancer"] is None
    assert any("Neuroglancer cannot show float64" in note for note in image["notes"])
    variant = image["variant"]
    assert variant["url"] == image["url"] + "float32/"
    assert variant["links"]["neuroglancer"].startswith(VIEWERS["neuroglancer"])


def test_float32_variant_is_served(gateway):
    (image,) = describe(gateway, "float.tif")["images"]
    array = gateway.client.get(image["variant"]["url"] + "0/zarr.json").json()
    assert array["data_type"] == "float32"
    group = gateway.client.get(image["variant"]["url"] + "zarr.json").json()
    assert group["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] == "0"


def test_html_page_has_the_viewer_links_and_snippets(gateway):
    page = gateway.get("/data/three.ome.tif/").text
    for text in (
        "Open in Neuroglancer",
        "Open in Viv/vizarr",
        "Open in the OME-NGFF validator",
        "import zarr",
        "tensorstore",
    ):
        assert text in page


def test_html_page_for_float64_names_the_limitation(gateway):
    page = gateway.get("/data/float.tif/").text
    assert "Neuroglancer cannot show float64" in page
    assert "float32/" in page


def test_folder_page_links_to_dataset_pages(gateway):
    listing = gateway.get("/data/", headers=JSON).json()
    pages = {d["page"] for d in listing["datasets"]}
    assert gateway.url("data/healthy.tif/") in pages
    assert 'href="' + gateway.url("data/healthy.tif/") in gateway.get("/data/").text


@pytest.mark.parametrize("target", ["/data/missing.tif/", "/data/healthy.tif/0/", "/data/healthy.tif//"])
def test_page_of_something_else_is_json_404(gateway, target):
    assert_json_error(gateway.raw("GET", target), 404)


def test_page_is_read_only(gateway):
    assert_json_error(gateway.raw("POST", "/data/healthy.tif/"), 405)
