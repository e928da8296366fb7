"""Thumbnail keys (``gateway.store.thumbnails``) and their query-parameter spelling."""

from __future__ import annotations

import pytest

from gateway.ngff.keys import may_be_key
from gateway.store.thumbnails import ThumbnailKey, ThumbnailParameterError, parse_key, with_parameters


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("thumbnail.png", ThumbnailKey("", None, "png")),
        ("thumbnail.webp", ThumbnailKey("", None, "webp")),
        ("2/thumbnail.c0.png", ThumbnailKey("2", 0, "png")),
        ("a/b/thumbnail.c12.webp", ThumbnailKey("a/b", 12, "webp")),
    ],
)
def test_keys_parse_and_round_trip(key, parsed):
    assert parse_key(key) == parsed
    assert parsed.key == key
    assert may_be_key(f"root/file.tif/{key}")  # not taken for a client probe


@pytest.mark.parametrize(
    "key",
    [
        "thumbnail.gif",
        "thumbnail.c01.png",
        "thumbnail.c-1.png",
        "thumbnail.c1234567.png",
        "thumbnail",
        "x.png",
    ],
)
def test_other_names_are_no_thumbnails(key):
    assert parse_key(key) is None
    assert not may_be_key(f"root/file.tif/{key}")


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ({}, "f.tif/thumbnail.png"),
        ({"channel": ["3"]}, "f.tif/thumbnail.c3.png"),
        ({"format": ["webp"]}, "f.tif/thumbnail.webp"),
        ({"channel": ["0"], "format": ["png"]}, "f.tif/thumbnail.c0.png"),
        ({"v": ["cache-buster"]}, "f.tif/thumbnail.png"),
    ],
)
def test_query_parameters_name_a_key(query, key):
    assert with_parameters("f.tif/thumbnail.png", query) == key


def test_parameters_of_other_keys_change_nothing():
    assert with_parameters("f.tif/0/c/0/0", {"channel": ["x"]}) == "f.tif/0/c/0/0"
    assert with_parameters("f.tif/thumbnail.c1.png", {"channel": ["2"]}) == "f.tif/thumbnail.c1.png"


@pytest.mark.parametrize(
    "query",
    [
        {"channel": ["x"]},
        {"channel": [""]},
        {"channel": ["-1"]},
        {"channel": ["٣"]},  # a digit, but not an ASCII one
        {"channel": ["1" * 7]},
        {"channel": ["1", "2"]},
        {"format": ["gif"]},
        {"format": [""]},
        {"format": ["png", "webp"]},
    ],
)
def test_bad_parameters_are_refused(query):
    with pytest.raises(ThumbnailParameterError):
        with_parameters("f.tif/thumbnail.png", query)
