"""adapters.units: unit spellings found in files → OME-Zarr (UDUNITS-2) names."""

from __future__ import annotations

import pytest

from adapters.units import SPACE_UNITS, TIME_UNITS, in_si, space_unit, time_unit, to_micrometers


@pytest.mark.parametrize(
    "spelling",
    [
        "µm",
        "\u00b5m",
        "\u03bcm",
        "um",
        "UM",
        "micron",
        "microns",
        "micrometer",
        "micrometers",
        "Micrometer",
        "\\u00B5m",
        "\\u00b5m",
        " um ",
    ],
)
def test_micrometer_spellings(spelling):
    assert space_unit(spelling) == "micrometer"


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("nm", "nanometer"),
        ("mm", "millimeter"),
        ("cm", "centimeter"),
        ("m", "meter"),
        ("Å", "angstrom"),
        ("inch", "inch"),
        ("in", "inch"),
        ("nanometers", "nanometer"),
    ],
)
def test_other_length_spellings(spelling, name):
    assert space_unit(spelling) == name


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("s", "second"),
        ("sec", "second"),
        ("seconds", "second"),
        ("ms", "millisecond"),
        ("µs", "microsecond"),
        ("us", "microsecond"),
        ("ns", "nanosecond"),
        ("min", "minute"),
        ("h", "hour"),
        ("hr", "hour"),
        ("millisecond", "millisecond"),
    ],
)
def test_time_spellings(spelling, name):
    assert time_unit(spelling) == name


@pytest.mark.parametrize("spelling", ["pixel", "px", "", "   ", None, "furlong", "µm²", "s"])
def test_unknown_length_is_none(spelling):
    assert space_unit(spelling) is None


@pytest.mark.parametrize("spelling", ["frame", "", None, "µm", "fortnight"])
def test_unknown_time_is_none(spelling):
    assert time_unit(spelling) is None


@pytest.mark.parametrize("spelling", ["µm", "um", "nm", "mm", "inch", "micron", "Å"])
def test_every_length_result_is_a_valid_ome_zarr_unit(spelling):
    assert space_unit(spelling) in SPACE_UNITS


@pytest.mark.parametrize("spelling", ["s", "ms", "µs", "min", "h"])
def test_every_time_result_is_a_valid_ome_zarr_unit(spelling):
    assert time_unit(spelling) in TIME_UNITS


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (2.0, "nanometer", 0.002),
        (1.5, "micrometer", 1.5),
        (1.0, "millimeter", 1000.0),
        (1.0, "inch", 25400.0),
        (1.0, "centimeter", 10000.0),
        (3.0, "angstrom", 3e-4),
        (1.0, "parsec", 3.0856775814913673e22),
    ],
)
def test_to_micrometers(value, unit, expected):
    assert to_micrometers(value, unit) == pytest.approx(expected)


def test_to_micrometers_of_a_time_or_unknown_unit_is_none():
    assert to_micrometers(1.0, "second") is None
    assert to_micrometers(1.0, "pixel") is None


@pytest.mark.parametrize("unit", sorted(SPACE_UNITS | TIME_UNITS))
def test_every_ome_zarr_unit_has_its_si_factor(unit):
    factor, symbol = in_si(unit)
    assert symbol == ("m" if unit in SPACE_UNITS else "s")
    assert factor > 0


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("micrometer", (1e-6, "m")),
        ("nanometer", (1e-9, "m")),
        ("meter", (1.0, "m")),
        ("kilometer", (1e3, "m")),
        ("millisecond", (1e-3, "s")),
        ("second", (1.0, "s")),
        ("minute", (60.0, "s")),
        ("inch", (0.0254, "m")),
    ],
)
def test_in_si(unit, expected):
    factor, symbol = in_si(unit)
    assert (factor, symbol) == (pytest.approx(expected[0]), expected[1])


@pytest.mark.parametrize("unit", ["pixel", "", "meters", "micro", "ecometer", "second2"])
def test_in_si_of_other_names_is_none(unit):
    assert in_si(unit) is None
