"""Settings from environment variables, layered over a config file: CLI > env > file > defaults.

``OME_ZARR_GATEWAY__<SECTION>__<KEY>=value`` sets ``[section] key`` (names are
case-insensitive and lower-cased, root names included: ``OME_ZARR_GATEWAY__ROOTS__LAB=/data/lab``).
A value is read as the type of the setting it sets: integers, numbers, ``true``/``false``,
lists as TOML (``["a", "b"]``) or comma-separated, tables as TOML inline tables; sizes keep
their units (``"1 GiB"``). Containers and systemd units set these instead of editing files.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from gateway.config.settings import Settings, SettingsError, parse_size

ENV_PREFIX = "OME_ZARR_GATEWAY__"


def _section_defaults() -> dict[str, Any]:
    """Each section's default value (an instance), from the Settings dataclass itself, so a
    section added there can be set from the environment without a change here."""
    defaults: dict[str, Any] = {}
    for section in fields(Settings):
        if section.default_factory is not MISSING:
            defaults[section.name] = section.default_factory()
    return defaults


def _toml_value(raw: str, where: str) -> Any:
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{where}: not a TOML value: {raw!r}") from exc


def convert_value(raw: str, default: Any, where: str) -> Any:
    """``raw`` as the type of ``default`` (Settings validates ranges afterwards)."""
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{where} must be true or false, not {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            pass
        try:
            parse_size(raw)
        except SettingsError:
            raise SettingsError(f"{where} must be an integer, not {raw!r}") from None
        return raw.strip()  # a size with its unit ("512 MiB"), for the sizes that take one
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError as exc:
            raise SettingsError(f"{where} must be a number, not {raw!r}") from exc
    if isinstance(default, tuple):
        if raw.strip().startswith("["):
            return _toml_value(raw, where)
        return [item.strip() for item in raw.split(",") if item.strip()]
    if isinstance(default, dict):
        return _toml_value(raw, where)
    return raw


def mapping_from_env(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The config-file shaped mapping that ``OME_ZARR_GATEWAY__*`` variables describe."""
    defaults = _section_defaults()
    mapping: dict[str, dict[str, Any]] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or not all(parts):
            raise SettingsError(f"{name}: expected {ENV_PREFIX}<SECTION>__<KEY>")
        section, key = parts
        if section == "roots":
            mapping.setdefault(section, {})[key] = raw
            continue
        if section not in defaults:
            raise SettingsError(f"{name}: unknown config section {section!r}")
        default = getattr(defaults[section], key, MISSING)
        if default is MISSING:
            raise SettingsError(f"{name}: unknown key {key!r} in [{section}]")
        mapping.setdefault(section, {})[key] = convert_value(raw, default, name)
    return mapping


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, section by section (a key set in both: override's)."""
    merged: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for section, values in override.items():
        current = merged.get(section)
        if isinstance(current, dict) and isinstance(values, Mapping):
            current.update(values)
        else:
            merged[section] = dict(values) if isinstance(values, Mapping) else values
    return merged


def load_settings(
    config: Path | None, environ: Mapping[str, str], roots: Mapping[str, Path] | None = None
) -> Settings:
    """Defaults, then the config file (if any), then the environment; ``roots`` (directories
    given on the command line) replace the file's roots. Command-line options come last
    (``Settings.with_overrides``)."""
    data: dict[str, Any] = {}
    base = Path(".")
    if config is not None:
        try:
            with open(config, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise SettingsError(f"cannot read {config}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{config}: {exc}") from exc
        base = config.parent
    data = merge(data, mapping_from_env(environ))
    if roots:
        data["roots"] = {name: str(path) for name, path in roots.items()}
    return Settings.from_mapping(data, base=base)
