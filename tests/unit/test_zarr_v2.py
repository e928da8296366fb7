"""gateway.ngff.zarr_v2: 0.5 attributes as 0.4, ``.zarray`` documents, keys of the view."""

from __future__ import annotations

import json

import numpy as np

from gateway.config.settings import Settings
from gateway.levels.pyramid import LevelProbe
from gateway.ngff import zarr_v2
from gateway.ngff.codecs import Blosc, ChunkEncoding, Gzip, Zstd
from gateway.ngff.layout import ArrayNode


def node(encoding: ChunkEncoding, dtype: str = "uint16") -> ArrayNode:
    level = LevelProbe(shape=(3, 100, 80), dtype=np.dtype(dtype), tile_shape=(1, 64, 64))
    return ArrayNode("0", level, (1, 64, 64), (3, 2, 2), encoding)


def test_image_attributes_lose_the_ome_namespace():
    attributes = {
        "ome": {
            "version": "0.5",
            "multiscales": [{"name": "a", "axes": [], "datasets": []}],
            "omero": {"channels": []},
        }
    }
    assert zarr_v2.attributes_v04(attributes) == {
        "multiscales": [{"version": "0.4", "name": "a", "axes": [], "datasets": []}],
        "omero": {"channels": []},
    }


def test_label_and_layout_attributes():
    label = {"ome": {"version": "0.5", "multiscales": [], "image-label": {"source": {"image": "../../"}}}}
    assert zarr_v2.attributes_v04(label)["image-label"] == {"version": "0.4", "source": {"image": "../../"}}
    assert zarr_v2.attributes_v04({"ome": {"version": "0.5", "labels": ["a"]}}) == {"labels": ["a"]}
    assert zarr_v2.attributes_v04({"ome": {"version": "0.5", "bioformats2raw.layout": 3}}) == {
        "bioformats2raw.layout": 3
    }
    assert zarr_v2.attributes_v04({}) == {}


def test_zarray_states_byte_order_chunks_and_compressor():
    document = zarr_v2.array_metadata(node(ChunkEncoding(Zstd(level=3))), 0)
    assert document == {
        "zarr_format": 2,
        "shape": [3, 100, 80],
        "chunks": [1, 64, 64],
        "dtype": "<u2",
        "compressor": {"id": "zstd", "level": 3},
        "fill_value": 0,
        "order": "C",
        "filters": None,
        "dimension_separator": "/",
    }
    big = zarr_v2.array_metadata(node(ChunkEncoding(None, "big")), 0)
    assert big["dtype"] == ">u2" and big["compressor"] is None
    assert zarr_v2.array_metadata(node(ChunkEncoding(None), "uint8"), 0)["dtype"] == "|u1"


def test_compressors_as_numcodecs_configurations():
    assert zarr_v2.compressor_config(node(ChunkEncoding(Gzip(level=6)))) == {"id": "gzip", "level": 6}
    blosc = zarr_v2.compressor_config(node(ChunkEncoding(Blosc(level=5, cname="zstd", shuffle="bitshuffle"))))
    assert blosc == {"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": 2, "blocksize": 0}


def test_keys_of_the_view():
    settings = Settings()
    assert zarr_v2.split_key("v2/lab/a.tif/.zattrs", settings) == "lab/a.tif/.zattrs"
    assert zarr_v2.split_key("lab/a.tif/zarr.json", settings) is None
    assert zarr_v2.split_key("v2", settings) is None
    assert zarr_v2.lookup_key("lab/a.tif/0/.zarray") == "lab/a.tif/0/zarr.json"
    assert zarr_v2.inner_key("0/zarr.json", "lab/a.tif/0/.zarray") == "0/.zarray"
    assert zarr_v2.inner_key("0/1/2", "lab/a.tif/0/1/2") == "0/1/2"


def test_zmetadata_lists_the_node_documents_of_a_subtree():
    documents = {
        ".zgroup": b'{"zarr_format": 2}',
        ".zattrs": b"{}",
        "a/.zgroup": b'{"zarr_format": 2}',
        "a/.zattrs": b'{"x": 1}',
        "a/.zmetadata": b"{}",  # a nested group's own consolidation is not a node document
        "a/0/.zarray": b'{"shape": [1]}',
        "a/0/.zattrs": b"{}",
        "a/0/0": b"chunk",
        "ab/.zgroup": b'{"zarr_format": 2}',  # shares the prefix "a" but not "a/"
        "OME/METADATA.ome.xml": b"<OME/>",
    }
    found = zarr_v2.consolidated_documents(documents, ["a/", ""])
    assert set(found) == {"a/.zmetadata", ".zmetadata"}
    nested = json.loads(found["a/.zmetadata"])
    assert nested == {
        "zarr_consolidated_format": 1,
        "metadata": {
            ".zattrs": {"x": 1},
            ".zgroup": {"zarr_format": 2},
            "0/.zarray": {"shape": [1]},
            "0/.zattrs": {},
        },
    }
    assert list(json.loads(found[".zmetadata"])["metadata"]) == [
        ".zattrs",
        ".zgroup",
        "a/.zattrs",
        "a/.zgroup",
        "a/0/.zarray",
        "a/0/.zattrs",
        "ab/.zgroup",
    ]
