from __future__ import annotations

import pytest

from gateway.web.auth import Grant, TokenError, mint_token, private_cache_control, read_token, signed_path

KEY = b"s" * 32


def test_round_trip():
    token = mint_token(KEY, "/lab/2024/", 2_000_000_000)
    assert read_token(KEY, token, now=1_000_000_000) == Grant("lab/2024", 2_000_000_000)


def test_token_is_one_path_segment():
    token = mint_token(KEY, "lab/a b/ü.tif", 2_000_000_000)
    assert "/" not in token and "?" not in token and "#" not in token and not token.startswith(".")


@pytest.mark.parametrize("bad", ["", "v1", "v2.1.a.b", "v1.x.bGFi.AAAA", "v1.1.!!!.AAAA", "v1.1.bGFi.AAAA.x"])
def test_malformed(bad):
    with pytest.raises(TokenError):
        read_token(KEY, bad, now=0)


def test_expired_and_wrong_key():
    token = mint_token(KEY, "lab", 100)
    with pytest.raises(TokenError, match="expired"):
        read_token(KEY, token, now=100)
    with pytest.raises(TokenError, match="signature"):
        read_token(b"t" * 32, token, now=0)


def test_prefix_cannot_be_swapped():
    token = mint_token(KEY, "lab/a.tif", 2_000_000_000)
    version, expires, _prefix, mac = token.split(".")
    other = mint_token(KEY, "lab", 2_000_000_000).split(".")[2]
    with pytest.raises(TokenError):
        read_token(KEY, ".".join([version, expires, other, mac]), now=0)
    with pytest.raises(TokenError):
        read_token(KEY, ".".join([version, str(int(expires) + 1), _prefix, mac]), now=0)


@pytest.mark.parametrize(
    ("prefix", "path", "covered"),
    [
        ("lab", "lab/a.tif/zarr.json", True),
        ("lab", "lab", True),
        ("lab", "lab2/a.tif", False),
        ("lab/a.tif", "lab/a.tif/", True),
        ("lab/a.tif", "lab/a.tif/../b.tif/zarr.json", False),
        ("lab/a.tif", "lab/a.tif//x", False),
        ("", "", True),
        ("", "other/x.tif/zarr.json", True),
        ("lab", "", False),
    ],
)
def test_covers(prefix, path, covered):
    assert Grant(prefix, 1).covers(path) is covered


def test_signed_path():
    assert signed_path("T", "/lab/a.tif/") == "/s/T/lab/a.tif/"


@pytest.mark.parametrize(
    ("value", "remaining", "expected"),
    [
        ("public, max-age=86400", 600, "private, max-age=600"),
        ("public, max-age=60", 600, "private, max-age=60"),
        ("no-cache", 600, "private, no-cache, max-age=600"),
        ("no-store", 600, "no-store"),
        (None, 600, "private, no-cache"),
    ],
)
def test_private_cache_control(value, remaining, expected):
    assert private_cache_control(value, remaining) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "v1.\u00b2.bGFi.AAAA",  # str.isdigit() admits it; int() does not
        "v1.\u0663.bGFi.AAAA",  # int() admits it: still not an ASCII expiry
        "v1." + "9" * 5000 + ".bGFi.AAAA",  # int() refuses past 4,300 digits
        "v1." + "9" * 17 + ".bGFi.AAAA",
        "v1..bGFi.AAAA",
        "v1.1.bGFi==.AAAA",  # padding: never minted
        "v1.1.bGFi.AAAA=",
        "v1.1.b\u00e9Fi.AAAA",
        "v1.1.bG Fi.AAAA",
        "v1.1." + "A" * 5000 + ".AAAA",
        "....",
    ],
)
def test_hostile_tokens_are_token_errors(bad):
    with pytest.raises(TokenError):
        read_token(KEY, bad, now=0)


def test_expiry_a_token_cannot_carry_is_refused_when_minting():
    with pytest.raises(ValueError):
        mint_token(KEY, "lab", 10**16)


def test_longest_expiry_round_trips():
    token = mint_token(KEY, "lab", 10**16 - 1)
    assert read_token(KEY, token, now=0).expires == 10**16 - 1
