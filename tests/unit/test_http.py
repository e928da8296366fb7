"""gateway.web.http: Range parsing, ETags, conditionals and the planned response, one rule per test."""

from __future__ import annotations

import pytest

from gateway.store.entity import content_digest, entity_tag, modified_seconds
from gateway.web import http
from gateway.web.http import (
    ByteRange,
    Entity,
    Unsatisfiable,
    etag_matches,
    http_date,
    not_modified,
    parse_http_date,
    parse_range,
    plan_response,
    range_applies,
)

DATA = bytes(range(100))
MTIME = 1_700_000_000.0
ETAG = '"abc"'


def entity(data: bytes = DATA) -> Entity:
    return Entity(data, "application/octet-stream", ETAG, MTIME, "public, max-age=60")


# -- parse_range ---------------------------------------------------------------------------------


def test_no_header_is_the_whole_entity():
    assert parse_range(None, 100) is None


def test_closed_range():
    assert parse_range("bytes=10-19", 100) == ByteRange(10, 20, 100)


def test_single_byte_range():
    assert parse_range("bytes=0-0", 100) == ByteRange(0, 1, 100)


def test_open_range():
    assert parse_range("bytes=90-", 100) == ByteRange(90, 100, 100)


def test_suffix_range():
    assert parse_range("bytes=-10", 100) == ByteRange(90, 100, 100)


def test_suffix_longer_than_entity_is_all_of_it():
    assert parse_range("bytes=-500", 100) == ByteRange(0, 100, 100)


def test_end_beyond_entity_is_clamped():
    assert parse_range("bytes=50-1000", 100) == ByteRange(50, 100, 100)


def test_start_at_end_is_unsatisfiable():
    assert parse_range("bytes=100-", 100) == Unsatisfiable(100)


def test_start_beyond_end_is_unsatisfiable():
    assert parse_range("bytes=200-300", 100) == Unsatisfiable(100)


def test_zero_suffix_is_unsatisfiable():
    assert parse_range("bytes=-0", 100) == Unsatisfiable(100)


def test_any_range_of_an_empty_entity_is_unsatisfiable():
    assert parse_range("bytes=-5", 0) == Unsatisfiable(0)


def test_whitespace_and_case_are_tolerated():
    assert parse_range(" Bytes = 1 - 2 ", 100) == ByteRange(1, 3, 100)


@pytest.mark.parametrize(
    "header", ["bytes=5-2", "items=0-1", "bytes=a-b", "bytes=-", "bytes=", "0-1", "bytes=1-2-3"]
)
def test_invalid_header_is_ignored(header):
    assert parse_range(header, 100) is None


def test_several_ranges_are_ignored():
    assert parse_range("bytes=0-1,5-6", 100) is None


def test_content_range_of_a_range():
    assert ByteRange(10, 20, 100).content_range == "bytes 10-19/100"


def test_content_range_of_unsatisfiable():
    assert Unsatisfiable(100).content_range == "bytes */100"


@pytest.mark.parametrize(("start", "stop"), [(5, 5), (-1, 3), (0, 101)])
def test_byte_range_is_validated(start, stop):
    with pytest.raises(ValueError):
        ByteRange(start, stop, 100)


# -- ETags ---------------------------------------------------------------------------------------

IDENTITY = (1, 2, 3, 4)


def test_etag_is_strong_and_quoted():
    tag = entity_tag(IDENTITY, "a/zarr.json", "x")
    assert tag.startswith('"') and tag.endswith('"') and len(tag) == 34


def test_etag_is_deterministic():
    assert entity_tag(IDENTITY, "k", "x", "1") == entity_tag(IDENTITY, "k", "x", "1")


@pytest.mark.parametrize(
    "other",
    [
        ((1, 2, 3, 5), "k", "x", "1"),
        (IDENTITY, "k2", "x", "1"),
        (IDENTITY, "k", "y", "1"),
        (IDENTITY, "k", "x", "2"),
    ],
)
def test_etag_changes_with_each_part(other):
    assert entity_tag(*other) != entity_tag(IDENTITY, "k", "x", "1")


def test_content_digest_differs_for_different_bytes():
    assert content_digest(b"a") != content_digest(b"b")


def test_etag_matches_exact():
    assert etag_matches(ETAG, ETAG)


def test_etag_matches_in_a_list():
    assert etag_matches(f'"x", {ETAG}', ETAG)


def test_etag_matches_weak_form():
    assert etag_matches(f"W/{ETAG}", ETAG)


def test_etag_matches_star():
    assert etag_matches("*", ETAG)


def test_etag_does_not_match_another():
    assert not etag_matches('"other"', ETAG)


def test_etag_does_not_match_absent_header():
    assert not etag_matches(None, ETAG)


# -- dates ---------------------------------------------------------------------------------------


def test_http_date_is_imf_fixdate():
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"


def test_http_date_round_trips():
    assert parse_http_date(http_date(MTIME)) == MTIME


@pytest.mark.parametrize("value", [None, "", "yesterday", "Thu, 01 Jan 1970 00:00:00"])
def test_invalid_or_zoneless_date_is_none(value):
    assert parse_http_date(value) is None


# -- conditionals --------------------------------------------------------------------------------


def test_not_modified_by_etag():
    assert not_modified(entity(), {"if-none-match": ETAG})


def test_if_none_match_wins_over_if_modified_since():
    headers = {"if-none-match": '"other"', "if-modified-since": http_date(MTIME + 10)}
    assert not not_modified(entity(), headers)


def test_not_modified_since_a_later_date():
    assert not_modified(entity(), {"if-modified-since": http_date(MTIME + 10)})


def test_modified_since_an_earlier_date():
    assert not not_modified(entity(), {"if-modified-since": http_date(MTIME - 10)})


def test_if_range_with_the_etag_applies():
    assert range_applies(entity(), {"if-range": ETAG})


def test_if_range_with_a_weak_etag_does_not_apply():
    assert not range_applies(entity(), {"if-range": f"W/{ETAG}"})


def test_if_range_with_the_date_applies():
    assert range_applies(entity(), {"if-range": http_date(MTIME)})


def test_if_range_with_another_date_does_not_apply():
    assert not range_applies(entity(), {"if-range": http_date(MTIME - 1)})


# -- plan_response -------------------------------------------------------------------------------


def test_plain_get_is_200_with_everything():
    reply = plan_response("GET", {}, entity())
    assert (reply.status, reply.body) == (200, DATA)
    assert reply.headers["Content-Length"] == "100"


def test_every_reply_carries_the_entity_headers():
    reply = plan_response("GET", {}, entity())
    assert reply.headers["ETag"] == ETAG
    assert reply.headers["Last-Modified"] == http_date(MTIME)
    assert reply.headers["Cache-Control"] == "public, max-age=60"
    assert reply.headers["Accept-Ranges"] == "bytes"


def test_no_content_encoding_is_ever_planned():
    assert "Content-Encoding" not in plan_response("GET", {"accept-encoding": "gzip"}, entity()).headers


def test_head_has_the_length_but_no_body():
    reply = plan_response("HEAD", {}, entity())
    assert (reply.status, reply.body, reply.headers["Content-Length"]) == (200, b"", "100")


def test_range_is_206_with_content_range():
    reply = plan_response("GET", {"range": "bytes=10-19"}, entity())
    assert (reply.status, reply.body) == (206, DATA[10:20])
    assert reply.headers["Content-Range"] == "bytes 10-19/100"
    assert reply.headers["Content-Length"] == "10"


def test_head_with_range_is_206_without_body():
    reply = plan_response("HEAD", {"range": "bytes=-4"}, entity())
    assert (reply.status, reply.body, reply.headers["Content-Length"]) == (206, b"", "4")


def test_unsatisfiable_range_is_416_with_the_size():
    reply = plan_response("GET", {"range": "bytes=100-"}, entity())
    assert reply.status == 416
    assert reply.headers["Content-Range"] == "bytes */100"


def test_matching_etag_is_304_without_body_or_length():
    reply = plan_response("GET", {"if-none-match": ETAG, "range": "bytes=0-1"}, entity())
    assert (reply.status, reply.body) == (304, b"")
    assert "Content-Length" not in reply.headers


def test_if_range_mismatch_sends_everything():
    reply = plan_response("GET", {"range": "bytes=0-1", "if-range": '"old"'}, entity())
    assert (reply.status, reply.body) == (200, DATA)


def test_modified_is_the_newest_mtime_of_the_files():
    assert modified_seconds((1, 2, 3_000_000_000, 4, 5, 6, 7_000_000_000, 8)) == 7.0


# -- hostile headers: parsed defensively, never raised --------------------------------------------

HUGE = "9" * 5000  # past int()'s 4,300-digit limit


def test_huge_first_position_is_unsatisfiable():
    assert parse_range(f"bytes={HUGE}-", 100) == Unsatisfiable(100)


def test_huge_last_position_is_clamped():
    assert parse_range(f"bytes=10-{HUGE}", 100) == ByteRange(10, 100, 100)


def test_huge_suffix_is_the_whole_entity():
    assert parse_range(f"bytes=-{HUGE}", 100) == ByteRange(0, 100, 100)


def test_huge_first_and_last_are_still_ordered():
    assert parse_range(f"bytes={HUGE}-{HUGE}", 100) == Unsatisfiable(100)


def test_leading_zeros_do_not_make_a_number_huge():
    assert parse_range("bytes=" + "0" * 5000 + "5-9", 100) == ByteRange(5, 10, 100)


@pytest.mark.parametrize(
    "header",
    ["bytes=\u00b2-3", "bytes=\u0663-5", "bytes=0-\u0663", "bytes=\uff11-2", "bytes=-\u00b2", "bytés=0-1"],
)
def test_non_ascii_digits_are_ignored(header):
    assert parse_range(header, 100) is None


def test_many_ranges_are_ignored():
    assert parse_range("bytes=" + ",".join(f"{i}-{i}" for i in range(5000)), 100) is None


def test_long_whitespace_is_tolerated():
    assert parse_range("bytes=" + " " * 10000 + "1-2" + " " * 10000, 100) == ByteRange(1, 3, 100)


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 99999999999 08:49:37 GMT",  # year past C's int
        "Sun, 06 Nov 10000 08:49:37 GMT",  # year past 9999
        f"Sun, 06 Nov {HUGE} 08:49:37 GMT",
        "Sun, 06 Nov 1994 99:99:99 GMT",
        "Sun, 06 Nov 1994 08:49:37 +9999",
        "Sun, 06 Nov \u0661\u0669\u0669\u0664 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT" + " " * 100,
        "\x00\xff",
    ],
)
def test_absurd_dates_are_none(value):
    assert parse_http_date(value) is None


def test_absurd_if_modified_since_is_ignored():
    assert not not_modified(entity(), {"if-modified-since": "Sun, 06 Nov 99999999999 08:49:37 GMT"})


def test_absurd_if_range_date_does_not_apply():
    assert not range_applies(entity(), {"if-range": "Sun, 06 Nov 99999999999 08:49:37 GMT"})


def test_absurd_headers_plan_a_whole_reply():
    headers = {
        "range": f"bytes=\u00b2-{HUGE}",
        "if-modified-since": f"Sun, 06 Nov {HUGE} 08:49:37 GMT",
        "if-none-match": ", ".join(['"x"'] * 1000),
    }
    assert plan_response("GET", headers, entity()).status == 200


def test_conditional_headers_are_the_four_that_change_the_answer():
    raw = [
        (b"host", b"x"),
        (b"range", b"bytes=0-1"),
        (b"if-none-match", b'"a"'),
        (b"if-modified-since", b"Sun, 06 Nov 1994 08:49:37 GMT"),
        (b"if-range", b'"a"'),
        (b"accept", b"*/*"),
    ]
    assert http.conditional_headers(raw) == {
        "range": "bytes=0-1",
        "if-none-match": '"a"',
        "if-modified-since": "Sun, 06 Nov 1994 08:49:37 GMT",
        "if-range": '"a"',
    }
    assert http.conditional_headers([(b"host", b"x"), (b"user-agent", b"wrk")]) == {}


def test_whole_entity_headers_are_those_of_a_planned_200():
    entity = Entity(b"0123456789", "application/octet-stream", '"t"', 784111777.0, "public, max-age=60")
    planned = http.plan_response("GET", {}, entity)
    cached = dict(http.whole_response_headers(entity))
    expected = {k.lower().encode(): v.encode() for k, v in planned.headers.items()}
    assert cached == expected
