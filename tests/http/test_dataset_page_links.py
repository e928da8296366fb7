"""A dataset page links the dataset's other views: the Zarr v2 / OME-Zarr 0.4 tree (``/v2/``)
and, where the file has one, its original OME-XML (``OME/METADATA.ome.xml``); each link
answers, signed pages included."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from gateway.web.auth import mint_token, signed_path
from tests.http.support import running_gateway, write_tiff

CHROMIUM = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
KEY = "k" * 32


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    root = tmp_path_factory.mktemp("links")
    write_tiff(
        root / "cells.ome.tif",
        np.arange(2 * 32 * 48, dtype=np.uint16).reshape(2, 32, 48),
        metadata={"axes": "CYX"},
    )
    write_tiff(root / "plain.tif", np.ones((16, 16), np.uint8))
    with running_gateway(root) as gw:
        yield gw


def html_links(page: str) -> dict[str, str]:
    return dict(re.findall(r'<a class="(zarr-v2|ome-xml)" href="([^"]+)"', page))


def test_the_v2_view_is_linked_and_is_ome_zarr_0_4(gateway):
    url = gateway.describe("cells.ome.tif")["zarr_v2"]
    assert url == f"{gateway.base}/v2/data/cells.ome.tif/"
    attrs = gateway.client.get(url + ".zattrs")
    assert attrs.status_code == 200
    assert attrs.json()["multiscales"][0]["version"] == "0.4"
    assert gateway.client.get(url + ".zgroup").json() == {"zarr_format": 2}


def test_the_ome_xml_is_linked_where_the_file_has_one(gateway):
    url = gateway.describe("cells.ome.tif")["ome_xml"]
    assert url == f"{gateway.base}/data/cells.ome.tif/OME/METADATA.ome.xml"
    response = gateway.client.get(url)
    assert response.status_code == 200
    assert ET.fromstring(response.content).tag.endswith("OME")


def test_a_file_without_ome_xml_links_none(gateway):
    description = gateway.describe("plain.tif")
    assert description["ome_xml"] is None
    assert description["zarr_v2"] == f"{gateway.base}/v2/data/plain.tif/"
    links = html_links(gateway.get("/data/plain.tif/", headers={"Accept": CHROMIUM}).text)
    assert set(links) == {"zarr-v2"}


def test_the_html_page_links_both(gateway):
    page = gateway.get("/data/cells.ome.tif/", headers={"Accept": CHROMIUM}).text
    links = html_links(page)
    description = gateway.describe("cells.ome.tif")
    assert links == {"zarr-v2": description["zarr_v2"], "ome-xml": description["ome_xml"]}


def test_no_v2_link_when_the_view_is_off(tmp_path):
    with running_gateway(tmp_path, zarr_v2={"enabled": False}) as gw:
        assert gw.get("/data/healthy.tif/?format=json").json()["zarr_v2"] is None
        assert "zarr-v2" not in html_links(gw.get("/data/healthy.tif/", headers={"Accept": CHROMIUM}).text)


def test_the_v2_link_follows_a_configured_prefix(tmp_path):
    with running_gateway(tmp_path, zarr_v2={"prefix": "zarr2"}) as gw:
        url = gw.get("/data/healthy.tif/?format=json").json()["zarr_v2"]
        assert url == f"{gw.base}/zarr2/data/healthy.tif/"
        assert gw.client.get(url + ".zattrs").status_code == 200


def test_a_signed_page_links_views_the_token_opens(tmp_path):
    write_tiff(tmp_path / "cells.ome.tif", np.ones((2, 16, 16), np.uint16), metadata={"axes": "CYX"})
    with running_gateway(tmp_path, auth={"protect": ["data"], "signing_key": KEY}) as gw:
        token = mint_token(KEY.encode(), "data/cells.ome.tif", int(time.time()) + 600)
        page = gw.get(signed_path(token, "/data/cells.ome.tif/") + "?format=json")
        assert page.status_code == 200, page.text
        description = page.json()
        for url in (description["zarr_v2"] + ".zattrs", description["ome_xml"]):
            assert f"/s/{token}/" in url
            assert gw.client.get(url).status_code == 200, url
