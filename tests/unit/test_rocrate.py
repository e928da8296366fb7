"""gateway.ngff.rocrate: the crate document and which entry a dataset gets."""

from __future__ import annotations

from gateway.config.settings import RoCrateSettings
from gateway.ngff import rocrate


def test_first_matching_entry_wins():
    entries = (RoCrateSettings(dataset="lab/a/*", name="A"), RoCrateSettings(dataset="lab/*", name="lab"))
    assert rocrate.entry_for("lab/a/x.tif", entries).name == "A"  # type: ignore[union-attr]
    assert rocrate.entry_for("lab/b.tif", entries).name == "lab"  # type: ignore[union-attr]
    assert rocrate.entry_for("other/b.tif", entries) is None


def test_minimal_crate():
    crate = rocrate.crate(RoCrateSettings(dataset="*"), "cells.tif")
    assert crate["@context"][0] == "https://w3id.org/ro/crate/1.1/context"
    metadata, root = crate["@graph"]
    assert metadata == {
        "@id": "ro-crate-metadata.json",
        "@type": "CreativeWork",
        "conformsTo": {"@id": "https://w3id.org/ro/crate/1.1"},
        "about": {"@id": "./"},
    }
    assert root == {"@id": "./", "@type": "Dataset", "name": "cells.tif"}


def test_organism_without_imaging_method():
    crate = rocrate.crate(RoCrateSettings(dataset="*", organism="NCBI:txid7227"), "fly")
    types = {entity["@type"] for entity in crate["@graph"]}
    assert types == {"CreativeWork", "Dataset", "biosample", "specimen"}
    assert "resultOf" not in crate["@graph"][1]
