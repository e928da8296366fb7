"""gateway.ngff.keys: strict chunk-key parsing and chunk regions."""

from __future__ import annotations

import pytest

from gateway.ngff.keys import chunk_grid, chunk_region, parse_chunk_key

GRID = (3, 4)


def test_valid_key_gives_coordinates():
    assert parse_chunk_key("c/2/3", GRID) == (2, 3)


def test_zero_indices_are_valid():
    assert parse_chunk_key("c/0/0", GRID) == (0, 0)


def test_one_dimensional_key():
    assert parse_chunk_key("c/7", (8,)) == (7,)


@pytest.mark.parametrize(
    "key",
    [
        "c/01/0",
        "c/00/0",
        "c/-1/0",
        "c/+1/0",
        "c/1.0/0",
        "c/1e0/0",
        "c/0x1/0",
        "c/ 1/0",
        "c/1 /0",
        "c/\t1/0",
        "c/1\n/0",
        "c/a/0",
        "c/\u0661/0",  # ARABIC-INDIC DIGIT ONE
        "c/\uff11/0",  # FULLWIDTH DIGIT ONE
        "c//0",
        "c/0/",
        "c/0/0/",
        "/c/0/0",
        "c/",
        "c",
        "",
    ],
)
def test_malformed_index_is_rejected(key):
    assert parse_chunk_key(key, GRID) is None


@pytest.mark.parametrize("key", ["c/0", "c/0/0/0", "c/0/0/0/0"])
def test_wrong_number_of_indices_is_rejected(key):
    assert parse_chunk_key(key, GRID) is None


@pytest.mark.parametrize("key", ["0/0", "d/0/0", "C/0/0", "c.0.0", "0.0", "chunks/0/0"])
def test_key_without_c_prefix_is_rejected(key):
    assert parse_chunk_key(key, GRID) is None


@pytest.mark.parametrize("key", ["c/3/0", "c/0/4", "c/3/4", "c/100/0"])
def test_index_outside_the_grid_is_rejected(key):
    assert parse_chunk_key(key, GRID) is None


def test_huge_integer_is_rejected_without_error():
    assert parse_chunk_key("c/" + "9" * 400 + "/0", GRID) is None


def test_huge_integer_is_rejected_even_in_a_huge_grid():
    assert parse_chunk_key("c/" + "1" * 30, (10**40,)) is None


def test_grid_rounds_up():
    assert chunk_grid((256, 257, 1), (128, 128, 1)) == (2, 3, 1)


def test_region_of_an_inner_chunk():
    assert chunk_region((1, 0), (128, 64), (300, 200)) == (slice(128, 256), slice(0, 64))


def test_region_of_an_edge_chunk_is_clipped():
    assert chunk_region((2, 3), (128, 64), (300, 200)) == (slice(256, 300), slice(192, 200))


def test_region_rank_must_match():
    with pytest.raises(ValueError):
        chunk_region((0,), (128, 64), (300, 200))
