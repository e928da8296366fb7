"""Byte sizes as a config file or the environment writes them: ``123``, ``"64 MiB"``, ``"2GB"``."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

from gateway.config.errors import SettingsError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)


def parse_size(value: object) -> int:
    """Bytes from ``123``, ``"64 MiB"``, ``"2GB"`` (binary prefixes with ``i``)."""
    if isinstance(value, bool):
        raise SettingsError(f"not a size: {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise SettingsError(f"not a size: {value!r}")
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    prefix = unit[:1] if unit[:1] in "kmgt" and unit else ""
    base = 1024 if "i" in unit else 1000
    multiplier = base ** ("kmgt".index(prefix) + 1) if prefix else 1
    return int(number * multiplier)


#: An integer setting in bytes that also takes a size with its unit (our own type, not
#: pydantic's ``ByteSize``: its values stay plain ints and its error says "not a size").
ByteSize = Annotated[int, BeforeValidator(parse_size)]
