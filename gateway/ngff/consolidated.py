"""Consolidated metadata: a group's ``zarr.json`` also holds the ``zarr.json`` of every node below it.

zarr-python 3 reads a group's ``consolidated_metadata`` field and then opens every child
without another request, so a client opens a whole dataset in one round trip. The field is
zarr-python's (Zarr v3 has no consolidated metadata of its own) and says
``"must_understand": false``, so readers that do not know it ignore it.

The field has the shape ``zarr.consolidate_metadata`` writes, run on every group from the
deepest up: ``metadata`` maps each node's path relative to the group to its document,
ordered by depth and then by case-folded name, and a group there carries an empty
``consolidated_metadata`` of its own (its members are listed by path in the same mapping).
A node's entry is its served ``zarr.json`` as it is, where zarr-python writes its own
canonical form of it (``"storage_transformers": []`` added, the ``bytes`` codec's
``endian`` left out for one-byte types): the two descriptions of a node never differ, and
zarr-python reads ours into exactly the metadata it would write (``tests/ngff``). Every
group gets the field, not only the root, because clients are often pointed at a group
inside a dataset: a series of a multi-image file, a label image.

A group whose document would grow beyond ``max_bytes`` (``[metadata]
consolidated_max_bytes``) is served without the field: the root of a file with a thousand
series would otherwise be megabytes that every client opening it downloads, mostly to
read one series (whose own group stays consolidated). Readers then fetch nodes one by one.

The work is bounded too: every group repeats its whole subtree, so a hierarchy N groups
deep (a file anyone can drop into a served folder) would cost N² entries. Groups are
consolidated from the root down while at most ``ENTRY_BUDGET`` entries are written in all;
deeper groups beyond it are served without the field.

Documents that are not nodes (``OME/METADATA.ome.xml``, ``ro-crate-metadata.json``) are
left out, as zarr-python leaves them out.
"""

from __future__ import annotations

import bisect
import json
import unicodedata
from collections.abc import Mapping
from typing import Any

from gateway.ngff import metadata

_NODE = "zarr.json"
#: Consolidated entries written for one dataset at most, over all its groups (see above).
ENTRY_BUDGET = 5_000


def _node_path(key: str) -> str | None:
    """The node a metadata key describes (``""`` for the root), None for other documents."""
    if key == _NODE:
        return ""
    if key.endswith("/" + _NODE):
        return key[: -len(_NODE) - 1]
    return None


def _order(path: str) -> tuple[int, str]:
    """zarr-python's order of consolidated entries: by depth, then by case-folded name."""
    return path.count("/"), unicodedata.normalize("NFKC", path).casefold()


def _inline(entries: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "inline", "must_understand": False, "metadata": entries}


def _entry(document: dict[str, Any]) -> dict[str, Any]:
    """A node's document as it is listed in a parent group's consolidated metadata."""
    if document["node_type"] == "group":
        return {**document, "consolidated_metadata": _inline({})}
    return document


def consolidate(documents: Mapping[str, bytes], max_bytes: int) -> dict[str, bytes]:
    """``documents`` with every group's ``zarr.json`` carrying the metadata of its subtree,
    where that document stays within ``max_bytes``."""
    nodes = {
        path: json.loads(data) for key, data in documents.items() if (path := _node_path(key)) is not None
    }
    entries = {path: _entry(document) for path, document in nodes.items()}
    paths = sorted(path for path in nodes if path)  # a subtree is one run of this order
    consolidated = dict(documents)
    budget = ENTRY_BUDGET
    groups = sorted(
        (path for path, document in nodes.items() if document["node_type"] == "group"), key=_order
    )
    for group in groups:  # from the root down: the most useful first, while the budget lasts
        document = nodes[group]
        prefix = f"{group}/" if group else ""
        start = bisect.bisect_left(paths, prefix)
        # the run of paths below ends before "<group>0" ("0" follows "/"): counted, not walked
        end = bisect.bisect_left(paths, f"{group}0") if group else len(paths)
        if end - start > budget:
            continue  # a smaller subtree further down may still fit
        below = [path[len(prefix) :] for path in paths[start:end]]
        key = f"{prefix}{_NODE}"
        if sum(len(documents[f"{prefix}{path}/{_NODE}"]) for path in below) > max_bytes:
            continue  # too large already before the deeper indentation: skip serialising
        budget -= len(below)
        members = {relative: entries[prefix + relative] for relative in sorted(below, key=_order)}
        data = metadata.dumps({**document, "consolidated_metadata": _inline(members)})
        if len(data) <= max_bytes:
            consolidated[key] = data
    return consolidated
