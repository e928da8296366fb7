"""Signed, expiring URL prefixes and bearer tokens ([auth]): 401/403 as JSON with CORS,
grants limited to their prefix, answers to credentials never publicly cacheable."""

from __future__ import annotations

import time

import pytest

from gateway.web.auth import mint_token, signed_path
from tests.http.support import assert_json_error, running_gateway, write_healthy

KEY = b"k" * 32
ORIGIN = "https://viewer.example"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth")
    write_healthy(root / "other.tif", offset=7)
    public = tmp_path_factory.mktemp("public")
    write_healthy(public / "open.tif")
    auth = {"protect": ["data"], "signing_key": KEY.decode()}
    # named "site", not "gateway": tests/http/conftest.py would check it without a token
    with running_gateway(root, auth=auth, roots={"data": str(root), "pub": str(public)}) as gw:
        yield gw


def token(prefix: str, seconds: int = 3600) -> str:
    return mint_token(KEY, prefix, int(time.time()) + seconds)


def signed(prefix: str, path: str, seconds: int = 3600) -> str:
    return signed_path(token(prefix, seconds), path)


def test_protected_root_needs_a_token(site):
    response = site.raw("GET", "/data/healthy.tif/zarr.json", {"Origin": ORIGIN})
    assert assert_json_error(response, 401)["error"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["cache-control"] == "no-store"


def test_signed_url_grants_its_dataset(site):
    base = signed("data/healthy.tif", "data/healthy.tif")
    for key in ("zarr.json", "0/zarr.json", "0/c/0/0", ""):
        assert site.get(f"{base}/{key}").status_code == 200, key


def test_signed_url_keeps_chunk_bytes(site):
    plain = site.raw("GET", signed("data", "data/healthy.tif/0/c/1/1")).body
    with_bearer = site.get("data/healthy.tif/0/c/1/1", headers={"Authorization": f"Bearer {token('data')}"})
    assert with_bearer.status_code == 200 and with_bearer.content == plain


def test_grant_is_limited_to_its_prefix(site):
    response = site.raw("GET", signed("data/healthy.tif", "data/other.tif/zarr.json"), {"Origin": ORIGIN})
    assert assert_json_error(response, 403)["error"] == "forbidden"
    assert response.headers["access-control-allow-origin"] == "*"
    assert site.raw("GET", signed("data/health", "data/healthy.tif/zarr.json")).status == 403


def test_no_climbing_out_of_a_grant(site):
    target = signed("data/healthy.tif", "data/healthy.tif/../other.tif/zarr.json")
    assert site.raw("GET", target).status in (403, 404)


def test_expired_and_tampered_tokens_are_refused(site):
    expired = site.raw("GET", signed("data", "data/healthy.tif/zarr.json", seconds=-1))
    assert "expired" in assert_json_error(expired, 403)["detail"]
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]
    good = token("data/healthy.tif")
    forged = good.replace(good.split(".")[2], mint_token(KEY, "data", 1).split(".")[2])
    assert site.raw("GET", signed_path(forged, "data/other.tif/zarr.json")).status == 403
    other_key = mint_token(b"x" * 32, "data", int(time.time()) + 60)
    assert site.raw("GET", signed_path(other_key, "data/healthy.tif/zarr.json")).status == 403
    bearer = site.get("data/healthy.tif/zarr.json", headers={"Authorization": "Bearer nonsense"})
    assert bearer.status_code == 403


def test_answers_to_credentials_are_private_and_expire_with_the_grant(site):
    response = site.get(signed("data", "data/healthy.tif/0/c/0/0", seconds=120))
    directives = [d.strip() for d in response.headers["cache-control"].split(",")]
    assert "private" in directives and "public" not in directives
    max_age = int(next(d for d in directives if d.startswith("max-age=")).split("=")[1])
    assert 100 <= max_age <= 120


def test_unprotected_root_is_open(site):
    response = site.get("pub/open.tif/zarr.json")
    assert response.status_code == 200 and "public" in response.headers["cache-control"]


def test_root_list_shows_each_caller_what_it_may_read(site):
    # public roots to anyone (not a 401 for the whole page), protected ones when granted
    listed = {f["name"] for f in site.raw("GET", "/", {"Accept": "application/json"}).json()["folders"]}
    assert listed == {"pub"}
    for prefix in ("data", ""):
        granted = site.raw("GET", signed(prefix, ""), {"Accept": "application/json"}).json()["folders"]
        assert {f["name"] for f in granted} == {"data", "pub"}


def test_probes_and_preflights_need_no_token(site):
    for path in ("/health", "/ready", "/metrics"):
        assert site.get(path).status_code == 200, path
    preflight = site.raw(
        "OPTIONS", "/data/healthy.tif/zarr.json", {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status == 204


def test_pages_under_a_signed_url_link_with_the_token(site):
    grant = token("data/healthy.tif")
    page = site.get(f"/s/{grant}/data/healthy.tif/", params={"format": "json"}).json()
    assert page["url"] == f"{site.base}/s/{grant}/data/healthy.tif/"
