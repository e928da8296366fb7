"""Descriptive metadata as an RO-Crate, in the layout of the OME 2024 NGFF challenge.

A ``ro-crate-metadata.json`` at the root of the zarr hierarchy (beside the root group's
``zarr.json``) describes the dataset ``./``: name, description, licence, and — as the
challenge's ``zarr_crate`` extension models them — the organism (an NCBI taxon, on a
``biosample``) and the imaging method (an FBbi term, on the ``image_acquisition`` the
dataset is the result of). The values come from the configuration (``[[rocrate]]``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from gateway.config.settings import RoCrateSettings

FILENAME = "ro-crate-metadata.json"
RO_CRATE_SPEC = "https://w3id.org/ro/crate/1.1"
#: The terms the challenge's crates define beyond RO-Crate's own context (as they are;
#: ``image_acquisition`` and ``fbbi_id`` are used there without a definition too).
CONTEXT: list[Any] = [
    f"{RO_CRATE_SPEC}/context",
    {
        "organism_classification": "https://schema.org/taxonomicRange",
        "BioChemEntity": "https://schema.org/BioChemEntity",
        "obo": "http://purl.obolibrary.org/obo/",
        "acquisiton_method": {"@reverse": "https://schema.org/result", "@type": "@id"},
        "biological_entity": "https://schema.org/about",
        "biosample": "http://purl.obolibrary.org/obo/OBI_0002648",
        "specimen": "http://purl.obolibrary.org/obo/HSO_0000308",
    },
]


def entry_for(url_path: str, entries: Sequence[RoCrateSettings]) -> RoCrateSettings | None:
    """The first entry whose ``dataset`` pattern matches the dataset's URL path."""
    return next((e for e in entries if fnmatch.fnmatchcase(url_path, e.dataset)), None)


def crate(entry: RoCrateSettings, default_name: str) -> dict[str, Any]:
    """The crate document for one dataset."""
    root: dict[str, Any] = {"@id": "./", "@type": "Dataset", "name": entry.name or default_name}
    if entry.description:
        root["description"] = entry.description
    if entry.license:
        root["license"] = entry.license
    graph: list[dict[str, Any]] = [
        {
            "@id": FILENAME,
            "@type": "CreativeWork",
            "conformsTo": {"@id": RO_CRATE_SPEC},
            "about": {"@id": "./"},
        },
        root,
    ]
    specimen_id = None
    if entry.organism:
        graph.append(
            {"@id": "#biosample", "@type": "biosample", "organism_classification": {"@id": entry.organism}}
        )
        graph.append({"@id": "#specimen", "@type": "specimen", "biosample": {"@id": "#biosample"}})
        specimen_id = "#specimen"
    if entry.imaging_method:
        acquisition: dict[str, Any] = {
            "@id": "#image-acquisition",
            "@type": "image_acquisition",
            "fbbi_id": {"@id": entry.imaging_method},
        }
        if specimen_id:
            acquisition["specimen"] = {"@id": specimen_id}
        graph.append(acquisition)
        root["resultOf"] = {"@id": "#image-acquisition"}
    return {"@context": CONTEXT, "@graph": graph}
