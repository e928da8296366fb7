"""Consolidated metadata in the Zarr v2 view (``gateway/ngff/zarr_v2.py``): every group whose
``zarr.json`` is consolidated has a ``.zmetadata`` in zarr-python 2's format, which
zarr-python (``zarr_format=2, use_consolidated=True``) and ome-zarr-py read to open a dataset
in one round trip; the v3 tree has none."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore

from gateway.config.settings import Settings
from gateway.store.cache import ByteLRU
from tests.catalogs import make_catalog
from tests.ngff.test_consolidated import DATASETS, ROOT, Requests, _expected
from tests.server import serve
from tests.test_ome_validation import corpus_settings

ZMETADATA = ".zmetadata"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return corpus_settings(tmp_path_factory.mktemp("v2-consolidated") / ROOT, DATASETS, "v2-consolidated")


@pytest.fixture(scope="module")
def base(settings: Settings) -> Iterator[str]:
    with serve(settings) as url:
        yield url


def _trees(settings: Settings, name: str) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The documents of a dataset's v3 tree and of its v2 view."""
    catalog = make_catalog(settings, ByteLRU(64 * 1024**2))
    try:
        located = catalog.locate(f"{ROOT}/{name}")
        assert located is not None
        tree = located.dataset.tree
        assert tree.v2 is not None
        return dict(tree.documents), dict(tree.v2.documents)
    finally:
        catalog.close()


def _consolidated_groups(v3: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    """Group prefix (``""``, ``"0/"``...) → the nodes its ``zarr.json`` consolidates."""
    found = {}
    for key, data in v3.items():
        if key.rpartition("/")[2] == "zarr.json":
            document = json.loads(data)
            if "consolidated_metadata" in document:
                found[key[: -len("zarr.json")]] = document["consolidated_metadata"]["metadata"]
    return found


def _zmetadata_prefixes(v2: dict[str, bytes]) -> set[str]:
    return {key[: -len(ZMETADATA)] for key in v2 if key.rpartition("/")[2] == ZMETADATA}


@pytest.mark.parametrize("name", list(DATASETS))
def test_a_zmetadata_lists_the_v2_documents_of_each_consolidated_group(settings: Settings, name: str) -> None:
    """Derived from the v3 consolidated metadata: the group's own ``.zgroup``/``.zattrs``,
    then ``.zgroup`` or ``.zarray`` and ``.zattrs`` of every node below, each the served
    document, in key order (zarr-python 2's ``json.dumps(sort_keys=True)``)."""
    v3, v2 = _trees(settings, name)
    groups = _consolidated_groups(v3)
    assert groups and _zmetadata_prefixes(v2) == set(groups)
    for prefix, nodes in groups.items():
        document = json.loads(v2[f"{prefix}{ZMETADATA}"])
        assert document.keys() == {"zarr_consolidated_format", "metadata"}
        assert document["zarr_consolidated_format"] == 1
        expected = {".zgroup", ".zattrs"}
        for path, node in nodes.items():
            own = ".zgroup" if node["node_type"] == "group" else ".zarray"
            expected |= {f"{path}/{own}", f"{path}/.zattrs"}
        metadata = document["metadata"]
        assert set(metadata) == expected, prefix
        assert list(metadata) == sorted(metadata)
        for key, value in metadata.items():
            assert value == json.loads(v2[f"{prefix}{key}"]), (prefix, key)


async def _v2_store(documents: dict[str, bytes]) -> MemoryStore:
    """The v2 view's zarr documents (node-by-node listing would warn of the RO-Crate, XML)."""
    store = MemoryStore()
    prototype = default_buffer_prototype()
    for key, data in documents.items():
        if key.rpartition("/")[2].startswith(".z"):
            await store.set(key, prototype.buffer.from_bytes(data))
    return store


def _member_metadata(group: zarr.Group) -> dict[str, dict[str, Any]]:
    found = {}
    for path, node in group.members(max_depth=None):
        document = node.metadata.to_dict()
        document.pop("consolidated_metadata", None)
        found[path] = document
    return found


@pytest.mark.parametrize("name", list(DATASETS))
def test_zarr_python_reads_the_same_nodes_consolidated_or_not(settings: Settings, name: str) -> None:
    _, v2 = _trees(settings, name)
    store = asyncio.run(_v2_store(v2))
    for prefix in _zmetadata_prefixes(v2):
        path = prefix.rstrip("/")
        consolidated = zarr.open_group(store=store, path=path, mode="r", zarr_format=2, use_consolidated=True)
        plain = zarr.open_group(store=store, path=path, mode="r", zarr_format=2, use_consolidated=False)
        assert consolidated.metadata.consolidated_metadata is not None
        assert plain.metadata.consolidated_metadata is None
        assert _member_metadata(consolidated) == _member_metadata(plain), prefix


def test_none_when_consolidation_is_off_or_the_group_too_large(settings: Settings) -> None:
    """The v3 tree's bounds hold: a root over ``consolidated_max_bytes`` has no ``.zmetadata``
    either, while its series keep theirs."""
    v3, _ = _trees(settings, "series.ome.tif")
    largest_series = max(len(v3[f"{i}/zarr.json"]) for i in range(3))
    for update, expected in (
        ({"consolidated": False}, set()),
        ({"consolidated_max_bytes": largest_series}, {"0/", "1/", "2/", "OME/"}),
    ):
        changed = settings.model_copy(update={"metadata": settings.metadata.model_copy(update=update)})
        _, v2 = _trees(changed, "series.ome.tif")
        assert _zmetadata_prefixes(v2) == expected, update


# -- over HTTP ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["series.ome.tif", "bdv.xml"])
def test_zarr_python_opens_the_v2_view_in_one_round_trip(settings: Settings, base: str, name: str) -> None:
    """``.zgroup``, ``.zattrs`` and ``.zmetadata`` are asked for at once, and nothing else
    but chunks after them."""
    requests = Requests()
    url = f"{base}/v2/{ROOT}/{name}"
    group = zarr.open_group(
        url, mode="r", zarr_format=2, use_consolidated=True, storage_options=requests.storage_options()
    )
    for path, want in _expected(settings, name).items():
        array = group[path]
        assert isinstance(array, zarr.Array) and array.metadata.zarr_format == 2
        served = np.asarray(array[...])
        np.testing.assert_array_equal(served, want.reshape(served.shape), strict=True)
    metadata = [u for u in requests.urls if u.rpartition("/")[2].startswith(".")]
    assert sorted(metadata) == [f"{url}/{name}" for name in (".zattrs", ".zgroup", ZMETADATA)]
    assert len(requests.urls) > len(metadata)  # the chunks


@pytest.mark.parametrize(("name", "group"), [("series.ome.tif", "1"), ("bdv.xml", "")])
def test_ome_zarr_py_reads_the_consolidated_v2_view(
    settings: Settings, base: str, name: str, group: str
) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    location = parse_url(f"{base}/v2/{ROOT}/{name}/{group}".rstrip("/"))
    assert location is not None and location.version == "0.4"
    image = next(node for node in Reader(location)() if node.load(Multiscales) is not None)
    want = _expected(settings, name)[f"{group}/0".lstrip("/")]
    served = np.asarray(image.data[0])
    np.testing.assert_array_equal(served, want.reshape(served.shape), strict=True)


def test_only_the_v2_view_has_zmetadata(base: str) -> None:
    assert httpx.get(f"{base}/v2/{ROOT}/series.ome.tif/{ZMETADATA}").status_code == 200
    assert httpx.get(f"{base}/v2/{ROOT}/series.ome.tif/1/{ZMETADATA}").status_code == 200
    for path in (f"{ROOT}/series.ome.tif/{ZMETADATA}", f"v2/{ROOT}/series.ome.tif/1/0/{ZMETADATA}"):
        assert httpx.get(f"{base}/{path}").status_code == 404, path
