"""A Zarr v2 / OME-Zarr 0.4 view of every dataset, for tools that read only those.

The view lives under its own URL prefix (``/v2/<root>/<file>/...``, ``[zarr_v2] prefix``),
never inside the v3 tree: clients disagree on which to prefer when both are present, so
v3 paths keep answering 404 for ``.zattrs`` and friends, and v2 paths never serve a
``zarr.json``. It is derived from the v3 tree, node by node:

- a group's ``zarr.json`` becomes ``.zgroup`` and ``.zattrs``; the ``ome`` namespace of
  0.5 is unwrapped to 0.4's top-level keys (``multiscales`` with ``"version": "0.4"``,
  ``omero``, ``labels``, ``image-label``, ``plate`` and ``well`` with their version,
  ``bioformats2raw.layout``, ``series``);
- an array's ``zarr.json`` becomes ``.zarray`` (``dimension_separator`` ``/``, the same
  chunks, the byte order in the ``dtype`` string, the compressor as a numcodecs
  configuration) and ``.zattrs`` (``_ARRAY_DIMENSIONS``, xarray's convention);
- chunks are the *same bytes* as the v3 chunks (one cache serves both): a v3 chunk of
  codecs ``bytes`` + zstd/gzip/blosc is exactly a v2 chunk with that compressor. Chunks
  passed through from the source keep their byte order, which the ``.zarray`` states
  (``>u2`` for a big-endian TIFF or HDF5 file), and their compressor (zstd, blosc).
- a group whose ``zarr.json`` carries consolidated metadata (``gateway/ngff/consolidated.py``:
  the same groups, within the same bounds) gets a ``.zmetadata`` as zarr-python 2's
  ``consolidate_metadata`` writes it, which zarr-python (``use_consolidated``) and
  ome-zarr-py read to open the group in one round trip;
- other documents (``OME/METADATA.ome.xml``, ``ro-crate-metadata.json``) are the same.

Roots protected by ``[auth]`` are not served here (404): the access control decides by
the first path segment, which in this view is the prefix.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from gateway.config.settings import Settings
from gateway.ngff.codecs import Blosc, Gzip, Zstd

if TYPE_CHECKING:
    from gateway.ngff.layout import ArrayNode

OME_VERSION_V04 = "0.4"
_BLOSC_SHUFFLE_IDS = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
#: Names of a v2 node's own metadata documents (those ``.zmetadata`` consolidates).
NODE_METADATA_NAMES = (".zgroup", ".zattrs", ".zarray")
#: zarr-python 2's name for a group's consolidated metadata.
CONSOLIDATED_NAME = ".zmetadata"
#: Names of the metadata documents of a v2 hierarchy.
METADATA_NAMES = (*NODE_METADATA_NAMES, CONSOLIDATED_NAME)


def split_key(key: str, settings: Settings) -> str | None:
    """The key inside the v2 view (``<root>/<file>/...``) when ``key`` is in it, else None."""
    view = settings.zarr_v2
    if not view.enabled:
        return None
    head, sep, rest = key.partition("/")
    if head != view.prefix or not sep:
        return None
    return rest


def lookup_key(key: str) -> str:
    """The key to locate the dataset by: the catalog refuses hidden segments (``.zattrs``),
    so a metadata name stands in as ``zarr.json`` (``inner_key`` puts it back)."""
    head, sep, last = key.rpartition("/")
    return f"{head}{sep}zarr.json" if last in METADATA_NAMES else key


def inner_key(located: str, key: str) -> str:
    """The key inside the dataset's v2 view, from the located key and the requested one."""
    last = key.rpartition("/")[2]
    if last in METADATA_NAMES and located.endswith("zarr.json"):
        return located[: -len("zarr.json")] + last
    return located


def attributes_v04(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """OME-Zarr 0.5 group attributes as OME-Zarr 0.4 ``.zattrs``."""
    out = {k: v for k, v in attributes.items() if k != "ome"}
    ome = attributes.get("ome")
    if not isinstance(ome, Mapping):
        return out
    for key, value in ome.items():
        if key == "version":
            continue
        if key == "multiscales":
            out[key] = [{"version": OME_VERSION_V04, **multiscale} for multiscale in value]
        elif key == "image-label":
            out[key] = {"version": OME_VERSION_V04, **value}
        elif key in ("plate", "well"):
            out[key] = {**value, "version": OME_VERSION_V04}
        else:
            out[key] = value
    return out


def compressor_config(node: ArrayNode) -> dict[str, Any] | None:
    """The numcodecs configuration of the array's compressor (None: uncompressed)."""
    compressor = node.encoding.compressor
    if compressor is None:
        return None
    if isinstance(compressor, Zstd):
        return {"id": "zstd", "level": compressor.level}
    if isinstance(compressor, Gzip):
        return {"id": "gzip", "level": compressor.level}
    if isinstance(compressor, Blosc):
        configuration = compressor.to_json(node.dtype)["configuration"]
        return {
            "id": "blosc",
            "cname": configuration["cname"],
            "clevel": configuration["clevel"],
            "shuffle": _BLOSC_SHUFFLE_IDS[configuration["shuffle"]],
            "blocksize": configuration["blocksize"],
        }
    raise ValueError(f"no numcodecs configuration for {compressor!r}")


def array_metadata(node: ArrayNode, fill_value: Any) -> dict[str, Any]:
    """``.zarray`` of an array (``fill_value`` as the v3 document has it: JSON-safe)."""
    order: Literal["<", ">"] = "<" if node.encoding.endian == "little" else ">"
    return {
        "zarr_format": 2,
        "shape": [int(n) for n in node.shape],
        "chunks": [int(c) for c in node.chunk_shape],
        "dtype": np.dtype(node.dtype).newbyteorder(order).str,
        "compressor": compressor_config(node),
        "fill_value": fill_value,
        "order": "C",
        "filters": None,
        "dimension_separator": "/",
    }


def _dumps(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, indent=2, allow_nan=False).encode()


def v2_documents(documents: Mapping[str, bytes], arrays: Mapping[str, ArrayNode]) -> dict[str, bytes]:
    """The v2 view's documents, from the v3 tree's."""
    found: dict[str, bytes] = {}
    consolidated: list[str] = []  # prefixes of the groups whose zarr.json is consolidated
    for key, data in documents.items():
        if key != "zarr.json" and not key.endswith("/zarr.json"):
            found[key] = data
            continue
        prefix = key[: -len("zarr.json")]
        document = json.loads(data)
        if document["node_type"] == "group":
            found[f"{prefix}.zgroup"] = _dumps({"zarr_format": 2})
            found[f"{prefix}.zattrs"] = _dumps(attributes_v04(document.get("attributes") or {}))
            if "consolidated_metadata" in document:
                consolidated.append(prefix)
        else:
            node = arrays[prefix.rstrip("/")]
            found[f"{prefix}.zarray"] = _dumps(array_metadata(node, document["fill_value"]))
            found[f"{prefix}.zattrs"] = _dumps({"_ARRAY_DIMENSIONS": document["dimension_names"]})
    found.update(consolidated_documents(found, consolidated))
    return found


def consolidated_documents(documents: Mapping[str, bytes], prefixes: Iterable[str]) -> dict[str, bytes]:
    """``<prefix>.zmetadata`` for each group prefix (``""``: the root), in zarr-python 2's
    format: every node metadata document at or below the group, by its key relative to the
    group, in key order (zarr-python 2 sorts them), parsed."""
    keys = sorted(key for key in documents if key.rpartition("/")[2] in NODE_METADATA_NAMES)
    parsed: dict[str, Any] = {}
    found: dict[str, bytes] = {}
    for prefix in prefixes:
        members: dict[str, Any] = {}
        index = bisect.bisect_left(keys, prefix)  # a subtree is one run of the sorted keys
        while index < len(keys) and keys[index].startswith(prefix):
            key = keys[index]
            if key not in parsed:
                parsed[key] = json.loads(documents[key])
            members[key[len(prefix) :]] = parsed[key]
            index += 1
        found[f"{prefix}{CONSOLIDATED_NAME}"] = _dumps({"zarr_consolidated_format": 1, "metadata": members})
    return found
