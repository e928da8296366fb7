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
#: SI prefixes of UDUNITS-2 names (``micrometer`` = ``micro`` + ``meter``).
_SI_PREFIXES = {
    "yocto": 1e-24,
    "zepto": 1e-21,
    "atto": 1e-18,
    "femto": 1e-15,
    "pico": 1e-12,
    "nano": 1e-9,
    "micro": 1e-6,
    "milli": 1e-3,
    "centi": 1e-2,
    "deci": 1e-1,
    "": 1.0,
    "hecto": 1e2,
    "kilo": 1e3,
    "mega": 1e6,
    "giga": 1e9,
    "tera": 1e12,
    "peta": 1e15,
    "exa": 1e18,
    "zetta": 1e21,
    "yotta": 1e24,
}
#: The unit names of SPACE_UNITS and TIME_UNITS that are not a prefix and a base unit.
_NOT_PREFIXED = {
    "angstrom": (1e-10, "m"),
    "foot": (0.3048, "m"),
    "inch": (0.0254, "m"),
    "yard": (0.9144, "m"),
    "mile": (1609.344, "m"),
    "parsec": (3.0856775814913673e16, "m"),
    "minute": (60.0, "s"),
    "hour": (3600.0, "s"),
    "day": (86400.0, "s"),
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


def in_si(unit: str) -> tuple[float, str] | None:
    """``(factor, symbol)``: one ``unit`` (an OME-Zarr name) is ``factor`` meters (``"m"``)
    or seconds (``"s"``); None for a name of neither kind. Neuroglancer's coordinate spaces
    take units this way."""
    if unit in _NOT_PREFIXED:
        return _NOT_PREFIXED[unit]
    for base, symbol in (("meter", "m"), ("second", "s")):
        prefix = unit[: -len(base)]
        if unit.endswith(base) and prefix in _SI_PREFIXES:
            return _SI_PREFIXES[prefix], symbol
    return None


def to_micrometers(value: float, unit: str) -> float | None:
    """Convert a length in a known OME-Zarr unit to micrometers (None if not a length)."""
    si = in_si(unit)
    return None if si is None or si[1] != "m" else value * si[0] * 1e6
