"""Validation against the official OME-Zarr JSON schemas (vendored in tests/schemas/)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMAS = Path(__file__).resolve().parent / "schemas"


@cache
def registry() -> Registry:
    resources = []
    for path in sorted(SCHEMAS.glob("*/*.schema")):
        document = json.loads(path.read_text())
        resources.append(
            (document["$id"], Resource.from_contents(document, default_specification=DRAFT202012))
        )
    return Registry().with_resources(resources)


def validate(instance: dict[str, Any], version: str, name: str) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``instance`` (a group's attributes:
    ``zarr.json``'s ``attributes`` for 0.5, ``.zattrs`` for 0.4) follows ``name``."""
    schema = json.loads((SCHEMAS / version / f"{name}.schema").read_text())
    validator = jsonschema.Draft202012Validator(schema, registry=registry())
    validator.validate(instance)


def kind_of(attributes: dict[str, Any], version: str) -> list[str]:
    """The schemas a group's attributes must follow, by what they hold."""
    ome = attributes.get("ome", {}) if version == "0.5" else attributes
    names = []
    if "multiscales" in ome:
        names.append("image")
    if "image-label" in ome:
        names.append("label")
    if "bioformats2raw.layout" in ome:
        names.append("bf2raw")
    if "series" in ome:
        names.append("ome")
    if "plate" in ome:
        names.append("plate")
    if "well" in ome:
        names.append("well")
    return names
