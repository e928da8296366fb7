"""Unit names as found in files (OME symbols, ImageJ strings) → OME-Zarr unit names.

OME-Zarr (and Neuroglancer) accept only full UDUNITS-2 names such as ``micrometer``;
files say ``µm``, ``um``, ``micron``, ``\\u00B5m`` and so on.
"""

from __future__ import annotations

SPACE_UNITS = frozenset(
    {
        "angstrom",
        "attometer",
        "centimeter",
        "decimeter",
        "exameter",
        "femtometer",
        "foot",
        "gigameter",
        "hectometer",
        "inch",
        "kilometer",
        "megameter",
        "meter",
        "micrometer",
        "mile",
        "millimeter",
        "nanometer",
        "parsec",
        "petameter",
        "picometer",
        "terameter",
        "yard",
        "yoctometer",
        "yottameter",
        "zeptometer",
        "zettameter",
    }
)
TIME_UNITS = frozenset(
    {
        "attosecond",
        "centisecond",
        "day",
        "decisecond",
        "exasecond",
        "femtosecond",
        "gigasecond",
        "hectosecond",
        "hour",
        "kilosecond",
        "megasecond",
        "microsecond",
        "millisecond",
        "minute",
        "nanosecond",
        "petasecond",
        "picosecond",
        "second",
        "terasecond",
        "yoctosecond",
        "yottasecond",
        "zeptosecond",
        "zettasecond",
    }
)

_SPACE_ALIASES = {
    "å": "angstrom",
    "Å": "angstrom",
    "a": "angstrom",
    "am": "attometer",
    "cm": "centimeter",
    "dm": "decimeter",
    "em": "exameter",
    "fm": "femtometer",
    "ft": "foot",
    "gm": "gigameter",
    "hm": "hectometer",
    "in": "inch",
    "km": "kilometer",
    "mm": "millimeter",
    "m": "meter",
    "µm": "micrometer",
    "μm": "micrometer",  # Greek mu, not micro sign
    "um": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "\\u00b5m": "micrometer",
    "mi": "mile",
    "nm": "nanometer",
    "pc": "parsec",
    "pm": "picometer",
    "yd": "yard",
}
_TIME_ALIASES = {
    "as": "attosecond",
    "cs": "centisecond",
    "d": "day",
    "ds": "decisecond",
    "fs": "femtosecond",
    "h": "hour",
    "hr": "hour",
    "min": "minute",
    "ms": "millisecond",
    "µs": "microsecond",
    "μs": "microsecond",
    "us": "microsecond",
    "\\u00b5s": "microsecond",
    "ns": "nanosecond",
    "ps": "picosecond",
    "s": "second",
    "sec": "second",
}
_MICROMETERS_PER = {
    "nanometer": 1e-3,
    "micrometer": 1.0,
    "millimeter": 1e3,
    "centimeter": 1e4,
    "meter": 1e6,
    "inch": 25400.0,
}


def _normalise(unit: str | None, names: frozenset[str], aliases: dict[str, str]) -> str | None:
    if unit is None:
        return None
    text = unit.strip()
    if not text:
        return None
    for candidate in (text, text.lower()):
        if candidate in names:
            return candidate
        if candidate in aliases:
            return aliases[candidate]
    plural = text.lower().rstrip("s")
    return plural if plural in names else None


def space_unit(unit: str | None) -> str | None:
    """OME-Zarr name of a length unit, or None when unknown (``pixel``, garbage)."""
    return _normalise(unit, SPACE_UNITS, _SPACE_ALIASES)


def time_unit(unit: str | None) -> str | None:
    """OME-Zarr name of a time unit, or None when unknown."""
    return _normalise(unit, TIME_UNITS, _TIME_ALIASES)


def to_micrometers(value: float, unit: str) -> float | None:
    """Convert a length in a known OME-Zarr unit to micrometers (None if not convertible)."""
    factor = _MICROMETERS_PER.get(unit)
    return None if factor is None else value * factor
