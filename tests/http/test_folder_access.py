"""Folder pages under access control: ``/`` shows the public roots to anyone and a protected
root only to a request whose token grants it; signed folder URLs (``sign ... lab``) and
bearer tokens open folder pages; links on a signed page keep the token."""

from __future__ import annotations

import re
import time
from html import unescape
from urllib.parse import urljoin

import pytest

from gateway.cli import main as cli_main
from gateway.web.auth import mint_token, signed_path
from tests.http.support import assert_json_error, running_gateway, write_healthy

KEY = b"k" * 32
JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("protected")
    (root / "2024").mkdir()
    write_healthy(root / "2024" / "cells.tif")
    public = tmp_path_factory.mktemp("public")
    write_healthy(public / "open.tif")
    auth = {"protect": ["data"], "signing_key": KEY.decode()}
    # named "site", not "gateway": tests/http/conftest.py would check it without a token
    with running_gateway(root, auth=auth, roots={"data": str(root), "pub": str(public)}) as gw:
        yield gw


def token(prefix: str, seconds: int = 3600) -> str:
    return mint_token(KEY, prefix, int(time.time()) + seconds)


def roots(site, path: str = "/", **headers: str) -> list[str]:
    response = site.get(path, headers={**JSON, **headers})
    assert response.status_code == 200, response.text
    return [f["name"] for f in response.json()["folders"]]


def test_root_lists_public_roots_to_anyone(site):
    assert roots(site) == ["pub"]
    assert "data" not in site.get("/").text.replace("data:,", "")  # the favicon's data URL aside


@pytest.mark.parametrize("prefix", ["data", ""])
def test_root_lists_a_protected_root_to_whom_it_is_granted(site, prefix):
    assert roots(site, Authorization=f"Bearer {token(prefix)}") == ["data", "pub"]
    assert roots(site, signed_path(token(prefix), "")) == ["data", "pub"]


def test_a_narrower_grant_shows_the_public_roots_and_its_own_path(site):
    grant = token("data/2024")
    document = site.get(signed_path(grant, ""), headers=JSON).json()
    assert [f["name"] for f in document["folders"]] == ["pub"]
    assert document["granted"] == {"path": "data/2024", "url": f"{site.base}/s/{grant}/data/2024/"}
    assert site.client.get(document["granted"]["url"], headers=JSON).status_code == 200


def test_protected_folder_needs_a_token(site):
    assert_json_error(site.raw("GET", "/data/", JSON), 401)
    assert_json_error(site.raw("GET", "/data/2024/", JSON), 401)
    assert_json_error(site.raw("GET", "/data", JSON), 401)  # no redirect that says it exists


def test_signed_and_bearer_folder_pages(site):
    grant = token("data")
    signed = site.get(signed_path(grant, "data/2024/"), headers=JSON)
    assert signed.status_code == 200
    assert [d["name"] for d in signed.json()["datasets"]] == ["cells.tif"]
    assert signed.json()["datasets"][0]["url"] == f"{site.base}/s/{grant}/data/2024/cells.tif"
    bearer = site.get("/data/2024/", headers={**JSON, "Authorization": f"Bearer {grant}"})
    assert bearer.status_code == 200 and "private" in bearer.headers["cache-control"]


def test_a_grant_stops_at_its_prefix(site):
    grant = token("data/2024")
    assert site.get(signed_path(grant, "data/2024/"), headers=JSON).status_code == 200
    assert_json_error(site.raw("GET", signed_path(grant, "data/"), JSON), 403)
    crumbs = site.get(signed_path(grant, "data/2024/"), headers=JSON).json()["breadcrumb"]
    assert [c["url"] is not None for c in crumbs] == [True, False, True]  # "data/" is not granted


def test_a_token_does_not_hide_public_roots(site):
    grant = token("data/2024")
    assert site.get(signed_path(grant, "pub/"), headers=JSON).status_code == 200
    assert site.get(signed_path(grant, "pub/open.tif/zarr.json")).status_code == 200


def test_a_bad_token_is_refused_even_for_the_root_list(site):
    assert_json_error(site.raw("GET", signed_path("v1.1.AA.AA", ""), JSON), 403)


def test_signed_redirect_keeps_the_token(site):
    grant = token("data")
    response = site.raw("GET", signed_path(grant, "data/2024"))
    assert response.status == 301 and response.headers["location"] == "./2024/"
    target = urljoin(f"{site.base}{signed_path(grant, 'data/2024')}", response.headers["location"])
    assert site.client.get(target, headers=JSON).status_code == 200


def test_signed_dataset_page_links_back_to_something_the_token_allows(site):
    grant = token("data/2024/cells.tif")
    url = f"{site.base}{signed_path(grant, 'data/2024/cells.tif/')}"
    html = site.client.get(url).text
    back = unescape(re.search(r'<a href="([^"]*)">all datasets</a>', html).group(1))
    assert site.client.get(urljoin(url, back)).status_code == 200


def test_sign_prints_a_folder_url_that_answers(site, tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text(
        f'[roots]\ndata = "{site.root}"\n\n[auth]\nprotect = ["data"]\nsigning_key = "{KEY.decode()}"\n'
    )
    assert cli_main(["sign", str(config), "data", "--base-url", site.base]) == 0
    url = capsys.readouterr().out.strip()
    assert re.fullmatch(re.escape(site.base) + r"/s/[^/]+/data/", url), url
    response = site.client.get(url, headers=JSON)
    assert response.status_code == 200
    assert [f["name"] for f in response.json()["folders"]] == ["2024"]
