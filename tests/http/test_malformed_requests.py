"""Malformed requests are 4xx (or the header is ignored where HTTP says so), as JSON with
CORS, and leave no warning or traceback in the server's log: tokens, Range, conditional
dates, ETags, Accept, Authorization, Origin and percent-encoded path junk.

Header values are sent as latin-1 text, so ``\\xb2`` reaches the gateway as ``²`` (a
character ``str.isdigit`` admits) and ``\\xd9\\xa3`` as the UTF-8 bytes of ``٣``.
"""

from __future__ import annotations

import logging
import time

import pytest

from gateway.web.auth import mint_token
from tests.http.support import assert_json_error, running_gateway, write_healthy

KEY = "k" * 32
HUGE = "9" * 5000  # past int()'s 4,300-digit limit
ORIGIN = "https://viewer.example"
DOC = "/pub/open.tif/zarr.json"  # a public document: the header cases
PROTECTED = "/data/healthy.tif/zarr.json"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("protected")
    public = tmp_path_factory.mktemp("public")
    write_healthy(public / "open.tif")
    auth = {"protect": ["data"], "signing_key": KEY}
    # named "site", not "gateway": tests/http/conftest.py would check it without a token
    with running_gateway(root, auth=auth, roots={"data": str(root), "pub": str(public)}) as gw:
        yield gw


@pytest.fixture
def server_log(caplog):
    """Every record of the in-process server: the gateway's, and uvicorn's (which does not
    propagate to the root logger), where an exception escaping the app would show."""
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    try:
        yield caplog
    finally:
        uvicorn_logger.removeHandler(caplog.handler)


def case(target, headers=None, status=400, *, id, method="GET"):
    return pytest.param(method, target, headers or {}, status, id=id)


TOKENS = [
    case("/s/v1.%C2%B2.YQ.YQ" + PROTECTED, status=403, id="path-token-superscript-expiry"),
    case("/s/v1.%D9%A3.YQ.YQ" + PROTECTED, status=403, id="path-token-arabic-digit-expiry"),
    case(f"/s/v1.{HUGE}.YQ.YQ" + PROTECTED, status=403, id="path-token-5000-digit-expiry"),
    case("/s/" + "A" * 8000 + PROTECTED, status=403, id="path-token-8000-chars"),
    case("/s/" + PROTECTED, status=403, id="path-token-empty"),
    case("/s/", status=403, id="path-token-empty-and-nothing-else"),
    case("/s/v1.1.YQ==.YQ==" + PROTECTED, status=403, id="path-token-padding"),
    case("/s/v1.1.%00.%FF" + PROTECTED, status=403, id="path-token-binary"),
    case("/s/%FF%FE%FD" + PROTECTED, status=403, id="path-token-invalid-utf8"),
    case("/s/v1.1.!!.??" + PROTECTED, status=403, id="path-token-base64-junk"),
    case(PROTECTED, {"Authorization": "Bearer v1.\xb2.YQ.YQ"}, 403, id="bearer-superscript-expiry"),
    case(PROTECTED, {"Authorization": f"Bearer v1.{HUGE}.YQ.YQ"}, 403, id="bearer-5000-digit-expiry"),
    case(PROTECTED, {"Authorization": "Bearer v1.1.\xff\xfe.YQ"}, 403, id="bearer-binary"),
    case(PROTECTED, {"Authorization": "Bearer ...."}, 403, id="bearer-dots"),
    case(PROTECTED, {"Authorization": "Bearer"}, 401, id="bearer-without-token"),
    case(PROTECTED, {"Authorization": "Basic dXNlcjpwYXNz"}, 401, id="basic-scheme"),
    case(PROTECTED, {"Authorization": "\xff\xfe \xfd"}, 401, id="binary-scheme"),
    case(DOC, {"Authorization": f"Bearer v1.{HUGE}.YQ.YQ"}, 403, id="bearer-junk-on-public-root"),
]

RANGES = [
    case(DOC, {"Range": f"bytes={HUGE}-"}, 416, id="range-5000-digit-start"),
    case(DOC, {"Range": f"bytes=0-{HUGE}"}, 206, id="range-5000-digit-end"),
    case(DOC, {"Range": f"bytes=-{HUGE}"}, 206, id="range-5000-digit-suffix"),
    case(DOC, {"Range": "bytes=\xb2-3"}, 200, id="range-superscript-digit"),
    case(DOC, {"Range": "bytes=\xd9\xa3-5"}, 200, id="range-arabic-digit-utf8"),
    case(DOC, {"Range": "bytes=" + ",".join(f"{i}-{i}" for i in range(1500))}, 200, id="range-1500-ranges"),
    case(DOC, {"Range": " bytes = 0 - 1 "}, 206, id="range-whitespace"),
    case(DOC, {"Range": "bytes=" + " " * 8000 + "0-1"}, 206, id="range-8000-spaces"),
    case(DOC, {"Range": "bytes=1-0"}, 200, id="range-reversed"),
    case(DOC, {"Range": "bytes=--1"}, 200, id="range-double-dash"),
    case(DOC, {"Range": "bytes=-0"}, 416, id="range-empty-suffix"),
]

DATES = [
    case(DOC, {"If-Modified-Since": "Sun, 06 Nov 99999999999 08:49:37 GMT"}, 200, id="ims-year-99999999999"),
    case(DOC, {"If-Modified-Since": "Sun, 06 Nov 10000 08:49:37 GMT"}, 200, id="ims-year-10000"),
    case(DOC, {"If-Modified-Since": f"Sun, 06 Nov {HUGE} 08:49:37 GMT"}, 200, id="ims-5000-digit-year"),
    case(DOC, {"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 +9999"}, 200, id="ims-offset-overflow"),
    case(DOC, {"If-Modified-Since": "\xff\xfe"}, 200, id="ims-binary"),
    case(DOC, {"If-Modified-Since": "yesterday"}, 200, id="ims-garbage"),
    case(
        DOC,
        {"Range": "bytes=0-1", "If-Range": "Sun, 06 Nov 99999999999 08:49:37 GMT"},
        200,
        id="if-range-year-99999999999",
    ),
    case(DOC, {"Range": "bytes=0-1", "If-Range": f'"{HUGE}'}, 200, id="if-range-unterminated-etag"),
]

OTHER_HEADERS = [
    case(DOC, {"If-None-Match": ", ".join(['"x"'] * 1500)}, 200, id="if-none-match-1500-tags"),
    case(DOC, {"If-None-Match": "\xff\xfe, W/, ,,"}, 200, id="if-none-match-junk"),
    case("/pub/open.tif/", {"Accept": "\xff/\xfe;q=\xb2, */*;q=NaN"}, 200, id="accept-junk"),
    case(DOC, {"Origin": "\xff\xfe"}, 200, id="origin-binary"),
    case(DOC, {"Origin": "null"}, 200, id="origin-null"),
    case(DOC, {"Origin": "https://" + "a" * 8000}, 200, id="origin-8000-chars"),
]

PATHS = [
    case("/pub/%FF%FE/zarr.json", status=404, id="path-invalid-utf8"),
    case("/pub/open.tif/%00", status=404, id="path-nul"),
    case("/pub/open.tif/0/c/%C2%B2/0", status=404, id="chunk-index-superscript"),
    case("/pub/open.tif/0/c/%D9%A3/0", status=404, id="chunk-index-arabic-digit"),
    case(f"/pub/open.tif/0/c/{HUGE}/0", status=404, id="chunk-index-5000-digits"),
    case("/pub/open.tif/0/c/0/0%2F..%2F..", status=404, id="chunk-index-encoded-slash"),
    case("/%2e%2e/%2e%2e/etc/passwd", status=404, id="path-encoded-dots"),
    case("/pub/%", status=404, id="path-lone-percent"),
    case("/pub/open.tif/zarr.json?format=%FF&token=%00", status=200, id="query-junk"),
]

MATRIX = TOKENS + RANGES + DATES + OTHER_HEADERS + PATHS


@pytest.mark.parametrize(("method", "target", "headers", "status"), MATRIX)
def test_malformed_request_is_answered_with_cors_and_no_traceback(
    site, server_log, method, target, headers, status
):
    sent = {"Origin": ORIGIN, **headers}
    response = site.raw(method, target, sent)
    assert response.status == status, response.body[:300]
    if status >= 400:
        assert_json_error(response, status)
    assert response.headers["access-control-allow-origin"] == "*"
    noisy = [r for r in server_log.records if r.levelno >= logging.WARNING or r.exc_info]
    assert noisy == [], [r.getMessage()[:200] for r in noisy]


def test_a_valid_token_still_works_next_to_junk(site):
    token = mint_token(KEY.encode(), "data", int(time.time()) + 600)
    response = site.raw("GET", PROTECTED, {"Authorization": f"Bearer {token}", "Range": f"bytes=0-{HUGE}"})
    assert response.status == 206


def test_healthy_file_is_served_after_the_matrix(site):
    token = mint_token(KEY.encode(), "data", int(time.time()) + 600)
    assert site.raw("GET", f"/s/{token}/data/healthy.tif/0/c/1/1").status == 200
