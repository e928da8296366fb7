"""Consolidated metadata (``gateway/ngff/consolidated.py``): every group's ``zarr.json`` is
what ``zarr.consolidate_metadata`` writes for the same hierarchy, clients open a dataset in
one request for its metadata, and clients that ignore the field read it as before."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import h5py
import numpy as np
import pytest
import tifffile
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.group import ConsolidatedMetadata
from zarr.storage import MemoryStore

from gateway.config.settings import Settings
from gateway.demo import BDV_HDF5_NAME
from gateway.ngff.consolidated import consolidate
from gateway.store.cache import ByteLRU
from gateway.store.inprocess import open_store
from tests.catalogs import make_catalog
from tests.server import serve
from tests.test_ome_validation import WRITERS, corpus_settings

ROOT = "lab"
SERIES: list[np.ndarray] = [
    np.random.default_rng(7).integers(0, 60000, (2, 300, 200), dtype=np.uint16),
    np.random.default_rng(8).integers(1, 250, (5, 40, 70), dtype=np.uint8),
    np.random.default_rng(9).random((90, 130), dtype=np.float32),
]
SERIES_AXES = ["CYX", "ZYX", "YX"]


def _series(path: Path) -> None:
    with tifffile.TiffWriter(path, ome=True) as tif:
        for data, axes in zip(SERIES, SERIES_AXES, strict=True):
            tif.write(data, metadata={"axes": axes}, photometric="minisblack", tile=(64, 64))


def _nan_fill(path: Path) -> None:
    """Float fill values (NaN) and nested plain groups."""
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "a/b/nan", data=np.full((40, 50), 2.5, np.float32), chunks=(16, 16), fillvalue=np.nan
        )
        f.create_dataset("a/Zeta", data=np.arange(600, dtype=np.int32).reshape(20, 30), chunks=(10, 10))


DATASETS = {**WRITERS, "series.ome.tif": _series, "nan.h5": _nan_fill}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return corpus_settings(tmp_path_factory.mktemp("consolidated") / ROOT, DATASETS, "consolidated")


@pytest.fixture(scope="module")
def base(settings: Settings) -> Iterator[str]:
    with serve(settings) as url:
        yield url


def _documents(settings: Settings, name: str) -> dict[str, bytes]:
    catalog = make_catalog(settings, ByteLRU(64 * 1024**2))
    try:
        located = catalog.locate(f"{ROOT}/{name}")
        assert located is not None
        return dict(located.dataset.tree.documents)
    finally:
        catalog.close()


def _groups(documents: dict[str, bytes]) -> list[str]:
    """Group document keys, the deepest first."""
    keys = [k for k in documents if k.rpartition("/")[2] == "zarr.json"]
    groups = [k for k in keys if json.loads(documents[k])["node_type"] == "group"]
    return sorted(groups, key=lambda k: -k.count("/"))


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _without_field(data: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(data)
    document.pop("consolidated_metadata", None)
    return document


def _read(group: zarr.Group, path: str) -> np.ndarray:
    array = group[path]
    assert isinstance(array, zarr.Array)
    data = array[...]
    assert isinstance(data, np.ndarray)
    return data


async def _zarr_python_consolidates(documents: dict[str, bytes]) -> dict[str, Any]:
    """Every group document after ``zarr.consolidate_metadata`` ran on each group, the deepest
    first, over a copy of the tree stripped of consolidated metadata."""
    store = MemoryStore()
    prototype = default_buffer_prototype()
    for key, data in documents.items():
        if key.rpartition("/")[2] == "zarr.json":
            data = json.dumps(_without_field(data)).encode()
        await store.set(key, prototype.buffer.from_bytes(data))
    groups = _groups(documents)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not part of the Zarr format 3 specification"
        for key in groups:
            await zarr.api.asynchronous.consolidate_metadata(store, path=key[: -len("zarr.json")].rstrip("/"))
    found = {}
    for key in groups:
        written = await store.get(key, prototype)
        assert written is not None
        found[key] = json.loads(written.to_bytes())
    return found


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_group_is_consolidated_as_zarr_python_consolidates_it(settings: Settings, name: str) -> None:
    """The same nodes in the same order, which zarr-python reads into exactly the metadata
    it writes itself; each entry is the node's own served document."""
    documents = _documents(settings, name)
    served = {key: json.loads(documents[key]) for key in _groups(documents)}
    reference = asyncio.run(_zarr_python_consolidates(documents))
    assert served.keys() == reference.keys()
    for key, document in served.items():
        ours, theirs = document.pop("consolidated_metadata"), reference[key].pop("consolidated_metadata")
        assert document == reference[key], key
        assert list(ours["metadata"]) == list(theirs["metadata"]), key
        assert _as_json(ConsolidatedMetadata.from_dict(ours).to_dict()) == theirs, key
        prefix = key[: -len("zarr.json")]
        for path, entry in ours["metadata"].items():
            if entry["node_type"] == "group":
                assert entry.pop("consolidated_metadata") == {
                    "kind": "inline",
                    "must_understand": False,
                    "metadata": {},
                }
            assert entry == _without_field(documents[f"{prefix}{path}/zarr.json"]), (key, path)
    nodes = {k[: -len("/zarr.json")] for k in documents if k.endswith("/zarr.json")}
    assert set(json.loads(documents["zarr.json"])["consolidated_metadata"]["metadata"]) == nodes


def test_the_datasets_cover_labels_variants_nested_groups_and_series(settings: Settings) -> None:
    listed = {
        name: set(json.loads(_documents(settings, name)["zarr.json"])["consolidated_metadata"]["metadata"])
        for name in ("zstack.tif", "float64.tif", "volumes.h5", "series.ome.tif", "nan.h5")
    }
    assert {"labels", "labels/cells", "labels/cells/0"} <= listed["zstack.tif"]
    assert "float32/0" in listed["float64.tif"]
    assert {"raw", "raw/volume/labels/seg/0"} <= listed["volumes.h5"]
    assert {"0/0", "1/0", "2/0", "OME"} <= listed["series.ome.tif"]
    entry = json.loads(_documents(settings, "nan.h5")["zarr.json"])["consolidated_metadata"]["metadata"]
    assert entry["a/b/nan/0"]["fill_value"] == "NaN"


def test_only_group_documents_change(settings: Settings) -> None:
    """Arrays, the OME-XML, the RO-Crate and the v2 view are byte for byte as without it."""
    plain = settings.model_copy(
        update={"metadata": settings.metadata.model_copy(update={"consolidated": False})}
    )
    for name in ("series.ome.tif", "zstack.tif"):
        on, off = _documents(settings, name), _documents(plain, name)
        assert on.keys() == off.keys()
        groups = set(_groups(on))
        assert groups
        for key in on:
            if key in groups:
                assert "consolidated_metadata" not in json.loads(off[key])
                assert _without_field(on[key]) == json.loads(off[key])
            else:
                assert on[key] == off[key], key


def test_consolidate_leaves_other_documents_out() -> None:
    group = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}).encode()
    documents = {
        "zarr.json": group,
        "OME/zarr.json": group,
        "OME/METADATA.ome.xml": b"<OME/>",
        "x.json": b"{}",
    }
    out = consolidate(documents, max_bytes=1024**2)
    assert out["OME/METADATA.ome.xml"] == b"<OME/>" and out["x.json"] == b"{}"
    assert json.loads(out["zarr.json"])["consolidated_metadata"] == {
        "kind": "inline",
        "must_understand": False,
        "metadata": {
            "OME": {
                "zarr_format": 3,
                "node_type": "group",
                "attributes": {},
                "consolidated_metadata": {"kind": "inline", "must_understand": False, "metadata": {}},
            }
        },
    }


def test_a_group_too_large_to_consolidate_is_served_without_it(settings: Settings) -> None:
    """The root of a multi-image file outgrows the cap first; its series stay consolidated."""
    documents = {
        key: data
        if key.rpartition("/")[2] != "zarr.json"
        else json.dumps(_without_field(data), indent=2).encode()
        for key, data in _documents(settings, "series.ome.tif").items()
    }
    series = len(consolidate(documents, max_bytes=1024**2)["0/zarr.json"])
    out = consolidate(documents, max_bytes=series)
    assert "consolidated_metadata" not in json.loads(out["zarr.json"])
    assert out["zarr.json"] == documents["zarr.json"]
    assert len(out["0/zarr.json"]) == series
    assert "consolidated_metadata" in json.loads(out["0/zarr.json"])
    assert consolidate(documents, max_bytes=0) == documents


def test_turned_off_zarr_python_refuses_use_consolidated(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "series.ome.tif"
    _series(path)
    store = open_store(path, Settings.from_mapping({"metadata": {"consolidated": False}}))
    try:
        with pytest.raises(ValueError, match="Consolidated metadata requested"):
            zarr.open_group(store=store, mode="r", use_consolidated=True)
        np.testing.assert_array_equal(_read(zarr.open_group(store=store, mode="r"), "1/0"), SERIES[1])
    finally:
        store.close()


# -- over HTTP: real clients, requests counted on the client's connection -----------------------


class Requests:
    """The URLs an aiohttp session (fsspec's HTTP file system, hence zarr-python) requests.

    Each ``storage_options()`` is a new trace configuration, hence a new file system in
    fsspec's instance cache (which closes its session at exit)."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def storage_options(self) -> dict[str, Any]:
        trace = aiohttp.TraceConfig()

        async def started(session: Any, context: Any, params: aiohttp.TraceRequestStartParams) -> None:
            self.urls.append(str(params.url))

        trace.on_request_start.append(started)
        return {"client_kwargs": {"trace_configs": [trace]}}

    def metadata(self) -> list[str]:
        return [url for url in self.urls if "/c/" not in url]


def _bdv_expected(settings: Settings) -> list[np.ndarray]:
    """Level 0 and 1 of the BigDataViewer demo as (t, c, z, y, x), read with h5py."""
    with h5py.File(settings.roots[ROOT] / BDV_HDF5_NAME, "r") as f:
        return [
            np.stack(
                [
                    np.stack([f[f"t{t:05d}/s{s:02d}/{level}/cells"][...].view(np.uint16) for s in range(2)])
                    for t in range(2)
                ]
            )
            for level in range(2)
        ]


def _expected(settings: Settings, name: str) -> dict[str, np.ndarray]:
    """Arrays to read bit-exactly, by path."""
    if name == "series.ome.tif":
        return {f"{i}/0": data for i, data in enumerate(SERIES)}
    levels = _bdv_expected(settings)
    return {str(level): data for level, data in enumerate(levels)}


@pytest.mark.parametrize("name", ["series.ome.tif", "bdv.xml"])
def test_zarr_python_opens_a_dataset_in_one_request(settings: Settings, base: str, name: str) -> None:
    requests = Requests()
    group = zarr.open_group(
        f"{base}/{ROOT}/{name}",
        mode="r",
        zarr_format=3,
        use_consolidated=True,
        storage_options=requests.storage_options(),
    )
    arrays = {path for path, node in group.members(max_depth=None) if isinstance(node, zarr.Array)}
    expected = _expected(settings, name)
    assert set(expected) <= arrays
    for path, want in expected.items():
        served = _read(group, path)
        np.testing.assert_array_equal(served, want.reshape(served.shape), strict=True)
    assert requests.metadata() == [f"{base}/{ROOT}/{name}/zarr.json"]
    assert len(requests.urls) > 1  # the chunks


@pytest.mark.parametrize("name", ["series.ome.tif", "bdv.xml"])
def test_zarr_python_without_consolidated_metadata_reads_node_by_node(
    settings: Settings, base: str, name: str
) -> None:
    requests = Requests()
    group = zarr.open_group(
        f"{base}/{ROOT}/{name}",
        mode="r",
        zarr_format=3,
        use_consolidated=False,
        storage_options=requests.storage_options(),
    )
    assert group.metadata.consolidated_metadata is None
    for path, want in _expected(settings, name).items():
        served = _read(group, path)
        np.testing.assert_array_equal(served, want.reshape(served.shape), strict=True)
        assert f"{base}/{ROOT}/{name}/{path}/zarr.json" in requests.metadata()


def test_a_series_group_opens_in_one_request(base: str) -> None:
    """Clients are pointed at an image group inside a multi-image file: it is consolidated too."""
    requests = Requests()
    url = f"{base}/{ROOT}/series.ome.tif/1"
    image = zarr.open_group(
        url, mode="r", zarr_format=3, use_consolidated=True, storage_options=requests.storage_options()
    )
    np.testing.assert_array_equal(_read(image, "0"), SERIES[1], strict=True)
    assert requests.metadata() == [f"{url}/zarr.json"]


@pytest.mark.parametrize(
    ("name", "group"), [("series.ome.tif", "0"), ("series.ome.tif", "2"), ("bdv.xml", "")]
)
def test_ome_zarr_py_reads_it(settings: Settings, base: str, name: str, group: str) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    location = parse_url(f"{base}/{ROOT}/{name}/{group}".rstrip("/"))
    assert location is not None and location.version == "0.5"
    image = next(node for node in Reader(location)() if node.load(Multiscales) is not None)
    want = _expected(settings, name)[f"{group}/0".lstrip("/")]
    served = np.asarray(image.data[0])
    np.testing.assert_array_equal(served, want.reshape(served.shape), strict=True)


def test_tensorstore_opens_an_array_of_a_consolidated_dataset(base: str) -> None:
    ts = pytest.importorskip("tensorstore")
    store = ts.open({"driver": "zarr3", "kvstore": f"{base}/{ROOT}/series.ome.tif/0/0/"}).result()
    np.testing.assert_array_equal(store.read().result(), SERIES[0], strict=True)


def test_consolidation_work_is_bounded_on_a_deep_hierarchy() -> None:
    """N nested groups would repeat N² entries: groups from the root down are consolidated
    while the budget lasts, the deeper ones are served plain, and the total stays bounded."""
    from gateway.ngff import consolidated

    depth = 400
    documents = {"zarr.json": _group_document()}
    path = ""
    for index in range(depth):
        path = f"{path}g{index}/"
        documents[f"{path}zarr.json"] = _group_document()
    served = consolidate(documents, max_bytes=1 << 30)
    written = sum(
        len(json.loads(data).get("consolidated_metadata", {}).get("metadata", {})) for data in served.values()
    )
    assert written <= consolidated.ENTRY_BUDGET
    assert "consolidated_metadata" in json.loads(served["zarr.json"])  # the root first
    middle = "".join(f"g{index}/" for index in range(depth // 2))
    assert "consolidated_metadata" not in json.loads(served[f"{middle}zarr.json"])  # beyond the budget


def _group_document() -> bytes:
    return json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}).encode()
