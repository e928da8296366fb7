"""The one loader of settings: defaults < config file < environment < command line.

- **File**: TOML shaped like ``config.example.toml``; relative roots are relative to its folder.
- **Environment**: ``OME_ZARR_GATEWAY__<SECTION>__<KEY>`` sets ``[section] key``,
  ``OME_ZARR_GATEWAY__ROOTS__<NAME>`` a root, ``OME_ZARR_GATEWAY__LABELS`` / ``__ROCRATE`` a
  whole array of tables in TOML. Names are case-insensitive (root names are lower-cased); a
  value is read as its setting's type: numbers, true/false (yes/no, on/off, 1/0), sizes with a
  unit (``1 GiB``), lists in TOML or comma-separated, tables as TOML inline tables.
- **Command line**: a mapping shaped like the file (``None``: an option not given); directories
  named on the command line replace the roots.

The layers are merged key by key and validated once: an unknown name or a bad value raises
``SettingsError`` naming it (and the variable that set it) before anything is served.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource

from gateway.config.errors import SettingsError
from gateway.config.settings import Settings

ENV_PREFIX = Settings.model_config.get("env_prefix", "").upper()


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] = os.environ,
    roots: Mapping[str, Path] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Settings from ``config_file`` (if any), then ``environ``, then the command line:
    ``roots`` (directories given as arguments) and ``overrides`` (its options)."""
    data = _read_toml(config_file) if config_file is not None else {}
    environment = EnvironmentSource(environ)
    data = _merge(data, environment())
    given = {
        name: {k: v for k, v in values.items() if v is not None} for name, values in (overrides or {}).items()
    }
    data = _merge(data, given)
    if roots:
        data["roots"] = dict(roots)
    try:
        return Settings.from_mapping(data, base=config_file.parent if config_file is not None else Path("."))
    except SettingsError as exc:  # name the variable that set a bad key the command line left alone
        replaced = {f"{name}.{key}" for name, values in given.items() for key in values}
        replaced |= {key for key in environment.variables if roots and key.startswith("roots.")}
        variables = {key: name for key, name in environment.variables.items() if key not in replaced}
        raise SettingsError.of([(_set_by(where, variables), what) for where, what in exc.problems]) from None


def _set_by(where: str, variables: Mapping[str, str]) -> str:
    """``server.port (OME_ZARR_GATEWAY__SERVER__PORT)`` when a variable set that key."""
    for key, variable in variables.items():
        if where == key or where.startswith((f"{key}.", f"{key}[")):
            return f"{where} ({variable})"
    return where


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: {exc}") from exc


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, key by key within each section or table."""
    merged = dict(base)
    for name, value in override.items():
        current = merged.get(name)
        both = isinstance(current, Mapping) and isinstance(value, Mapping)
        merged[name] = {**current, **value} if both else value  # type: ignore[dict-item]
    return merged


class EnvironmentSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping, refusing names that set
    nothing and typing each value as its setting expects."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.variables: dict[str, str] = {}  # dotted key → the variable that sets it
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self.environ.items()}

    def __call__(self) -> dict[str, Any]:
        for name in self.environ:
            if not name.upper().startswith(ENV_PREFIX):
                continue
            key = name[len(ENV_PREFIX) :].lower()
            if not _names_a_setting(key):
                raise SettingsError(f"{name}: no such setting (expected {ENV_PREFIX}<SECTION>__<KEY>)")
            self.variables[key.replace("__", ".")] = name
        return super().__call__()

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        return value  # not JSON: typed per setting in prepare_field_value

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        prepared = super().prepare_field_value(field_name, field, value, value_is_complex)
        section = _section(field)
        if section is not None and isinstance(prepared, dict):
            return {key: _typed(section.model_fields.get(key), raw) for key, raw in prepared.items()}
        return _typed(field, prepared)


def _names_a_setting(name: str) -> bool:
    """``SECTION__KEY`` of a section, ``ROOTS__NAME``, or ``LABELS`` / ``ROCRATE`` whole."""
    first, _, key = name.partition("__")
    field = Settings.model_fields.get(first)
    section = _section(field)
    if field is None or first == "roots":
        return field is not None and bool(key)
    return key in section.model_fields if section is not None else not key


def _section(field: FieldInfo | None) -> type[BaseModel] | None:
    annotation = field.annotation if field is not None else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _typed(field: FieldInfo | None, raw: Any) -> Any:
    """An environment string as its setting's type, so that the models' strict checks treat
    it as the same value written in a file. A string that does not convert stays a string:
    the model's error then names the key."""
    if field is None or not isinstance(raw, str):
        return raw
    origin = _container(field.annotation)
    if origin is tuple and not raw.lstrip().startswith("["):
        items = [item.strip() for item in raw.split(",") if item.strip()]
        try:
            return TypeAdapter(field.annotation).validate_python(items)  # lax: "8,1,1" → (8, 1, 1)
        except ValidationError:
            return items
    try:
        if origin in (tuple, dict):
            return tomllib.loads(f"value = {raw}")["value"]
        return TypeAdapter(field.annotation).validate_python(raw)  # lax: "8000" → 8000
    except (tomllib.TOMLDecodeError, ValidationError):
        return raw


def _container(annotation: Any) -> Any:
    """The container type of a setting's annotation (``tuple``...), through ``Annotated``
    and ``X | None``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _container(get_args(annotation)[0])
    if origin in (Union, UnionType):
        members = [member for member in get_args(annotation) if member is not type(None)]
        return _container(members[0]) if len(members) == 1 else origin
    return origin
