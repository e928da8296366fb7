"""The Zarr v2 / OME-Zarr 0.4 view (``/v2/<root>/<file>/``): zarr-python (``zarr_format=2``)
and ome-zarr-py's 0.4 reader read the same pixels as the v3 tree, over HTTP; the views
never mix; chunks passed through keep their byte order and compressor."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import hdf5plugin
import httpx
import numpy as np
import pytest
import tifffile
import zarr

from gateway.config.settings import Settings, SettingsError
from gateway.store.dataset import Workers
from gateway.store.mounts import Mounts
from gateway.web.auth import mint_token, signed_path
from tests.server import serve

ROOT = "lab"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("v2") / ROOT
    folder.mkdir()
    rng = np.random.default_rng(7)
    # strips: encoded by the gateway (zstd); 3 synthesized levels at 128-pixel chunks
    tifffile.imwrite(
        folder / "zstack.tif", rng.integers(0, 4000, (5, 700, 600), dtype=np.uint16), rowsperstrip=64
    )
    # uncompressed big-endian tiles: passed through as they are
    tifffile.imwrite(
        folder / "bigendian.tif",
        rng.integers(0, 60000, (256, 256), dtype=np.uint16),
        tile=(128, 128),
        byteorder=">",
    )
    tifffile.imwrite(
        folder / "labels.tif", rng.integers(0, 5, (5, 700, 600), dtype=np.uint8), rowsperstrip=64
    )
    with h5py.File(folder / "blosc.h5", "w") as f:  # blosc chunks: passed through
        f.create_dataset(
            "volume",
            data=rng.integers(0, 999, (4, 256, 256), dtype=np.int32),
            chunks=(1, 128, 128),
            **hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE),
        )
    # deflate chunks, shuffled or not, little- or big-endian: sent as stored in blosc frames
    for name, dtype, shuffle in (("deflate.h5", "<u2", True), ("deflate-be.h5", ">i4", False)):
        with h5py.File(folder / name, "w") as f:
            data = rng.integers(0, 999, (4, 256, 256)).astype(dtype)
            f.create_dataset("volume", data=data, chunks=(2, 128, 128), compression="gzip", shuffle=shuffle)
    return folder


@pytest.fixture(scope="module")
def base(root: Path) -> Iterator[str]:
    settings = Settings.from_mapping(
        {
            "roots": {ROOT: str(root)},
            "chunks": {"yx": 128},
            "labels": [{"image": f"{ROOT}/zstack.tif", "source": f"{ROOT}/labels.tif", "name": "cells"}],
        }
    )
    with serve(settings) as url:
        yield url


def _levels(group: zarr.Group) -> list[str]:
    attrs = group.attrs.asdict()
    multiscales = attrs["ome"]["multiscales"] if "ome" in attrs else attrs["multiscales"]
    return [d["path"] for d in multiscales[0]["datasets"]]


@pytest.mark.parametrize(
    "path",
    [
        "zstack.tif",
        "zstack.tif/labels/cells",
        "bigendian.tif",
        "blosc.h5/volume",
        "labels.tif",
        "deflate.h5/volume",
        "deflate-be.h5/volume",
    ],
)
def test_zarr_python_reads_the_v2_view_as_the_v3_tree(base: str, path: str) -> None:
    v3 = zarr.open_group(f"{base}/{ROOT}/{path}", mode="r", zarr_format=3)
    v2 = zarr.open_group(f"{base}/v2/{ROOT}/{path}", mode="r", zarr_format=2)
    assert _levels(v2) == _levels(v3)
    for level in _levels(v3):
        a3, a2 = v3[level], v2[level]
        assert a2.metadata.zarr_format == 2
        assert a2.chunks == a3.chunks
        served = a2[...]  # passed-through big-endian chunks read as a big-endian type
        assert served.dtype.newbyteorder("=") == a3.dtype
        np.testing.assert_array_equal(served.astype(a3.dtype), a3[...], strict=True)


def test_v2_metadata(base: str) -> None:
    zattrs = httpx.get(f"{base}/v2/{ROOT}/zstack.tif/.zattrs").json()
    assert "ome" not in zattrs
    assert zattrs["multiscales"][0]["version"] == "0.4"
    assert httpx.get(f"{base}/v2/{ROOT}/zstack.tif/labels/.zattrs").json() == {"labels": ["cells"]}
    label = httpx.get(f"{base}/v2/{ROOT}/zstack.tif/labels/cells/.zattrs").json()
    assert label["image-label"] == {"version": "0.4", "source": {"image": "../../"}}
    assert httpx.get(f"{base}/v2/{ROOT}/zstack.tif/.zgroup").json() == {"zarr_format": 2}
    zarray = httpx.get(f"{base}/v2/{ROOT}/zstack.tif/0/.zarray").json()
    assert zarray["dimension_separator"] == "/"
    assert zarray["dtype"] == "<u2"
    assert zarray["compressor"] == {"id": "zstd", "level": 1}
    assert zarray["chunks"] == [1, 128, 128]


def test_passed_through_chunks_keep_their_byte_order_and_codec(base: str) -> None:
    big = httpx.get(f"{base}/v2/{ROOT}/bigendian.tif/0/.zarray").json()
    assert big["dtype"] == ">u2" and big["compressor"] is None
    v3 = httpx.get(f"{base}/{ROOT}/bigendian.tif/0/zarr.json").json()
    assert v3["codecs"] == [{"name": "bytes", "configuration": {"endian": "big"}}]
    blosc = httpx.get(f"{base}/v2/{ROOT}/blosc.h5/volume/0/.zarray").json()
    assert blosc["compressor"]["id"] == "blosc" and blosc["compressor"]["cname"] == "lz4"
    assert blosc["compressor"]["shuffle"] == 1 and blosc["dtype"] == "<i4"
    # the very same bytes under both views
    for array in ("bigendian.tif/0", "blosc.h5/volume/0"):
        indices = "0/0/0" if "volume" in array else "0/0"
        v3_chunk = httpx.get(f"{base}/{ROOT}/{array}/c/{indices}").content
        assert httpx.get(f"{base}/v2/{ROOT}/{array}/{indices}").content == v3_chunk


@pytest.mark.parametrize(
    "path",
    [
        "lab/zstack.tif/.zattrs",
        "lab/zstack.tif/.zgroup",
        "lab/zstack.tif/0/.zarray",
        "lab/zstack.tif/0/0/0/0",
        "v2/lab/zstack.tif/zarr.json",
        "v2/lab/zstack.tif/0/zarr.json",
        "v2/lab/zstack.tif/0/c/0/0/0",
        "lab/zstack.tif/.zmetadata",
        "v2/lab/zstack.tif/0/.zmetadata",  # arrays have none
        "v2/lab/zstack.tif/9/0/0/0",
        "v2/lab/zstack.tif/0/0/0",  # a 3-d array's chunk needs three indices
        "v2/lab",
        "v2",
    ],
)
def test_the_views_never_mix(base: str, path: str) -> None:
    response = httpx.get(f"{base}/{path}")
    assert response.status_code == 404, response.text[:200]


def test_ome_zarr_py_reads_the_v2_view_as_ome_zarr_04(base: str) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    location = parse_url(f"{base}/v2/{ROOT}/zstack.tif/")
    assert location is not None
    assert location.version == "0.4"
    nodes = list(Reader(location)())
    image = next(node for node in nodes if node.load(Multiscales) is not None and node.load(Label) is None)
    v3 = zarr.open_group(f"{base}/{ROOT}/zstack.tif", mode="r")
    assert len(image.data) == len(_levels(v3))
    for served, level in zip(image.data, _levels(v3), strict=True):
        np.testing.assert_array_equal(np.asarray(served), v3[level][...], strict=True)
    labels = [node for node in nodes if node.load(Label) is not None]
    assert len(labels) == 1
    cells = zarr.open_group(f"{base}/{ROOT}/zstack.tif/labels/cells", mode="r")
    for served, level in zip(labels[0].data, _levels(cells), strict=True):
        np.testing.assert_array_equal(np.asarray(served), cells[level][...], strict=True)


def test_ome_zarr_py_still_sees_0_5_in_the_v3_tree(base: str) -> None:
    from ome_zarr.io import parse_url

    location = parse_url(f"{base}/{ROOT}/zstack.tif/")
    assert location is not None and location.version == "0.5"


def _get(settings: Settings, key: str) -> bytes | None:
    async def main() -> bytes | None:
        with ThreadPoolExecutor(2) as pool:
            store = Mounts(settings, Workers(pool, pool, settings.server.request_seconds))
            try:
                item = await store.get(key)
            finally:
                store.close()
            return None if item is None else item.data

    return asyncio.run(main())


def test_view_can_be_turned_off_or_moved(root: Path) -> None:
    off = Settings.from_mapping({"roots": {ROOT: str(root)}, "zarr_v2": {"enabled": False}})
    assert _get(off, f"v2/{ROOT}/zstack.tif/.zgroup") is None
    moved = Settings.from_mapping({"roots": {ROOT: str(root)}, "zarr_v2": {"prefix": "zarr2"}})
    assert json.loads(_get(moved, f"zarr2/{ROOT}/zstack.tif/.zgroup") or b"") == {"zarr_format": 2}
    assert _get(moved, f"v2/{ROOT}/zstack.tif/.zgroup") is None


def test_a_root_named_like_the_prefix_is_refused(root: Path) -> None:
    with pytest.raises(SettingsError, match=r"zarr_v2\.prefix"):
        Settings.from_mapping({"roots": {"v2": str(root)}})
    Settings.from_mapping({"roots": {"v2": str(root)}, "zarr_v2": {"enabled": False}})


def test_access_control_covers_the_view(root: Path, server) -> None:
    """A protected root is protected in the v2 view too, and a token for a dataset opens
    both of its views (access control judges ``v2/<root>/...`` as ``<root>/...``)."""
    key = "k" * 32
    settings = Settings.from_mapping(
        {"roots": {ROOT: str(root)}, "auth": {"protect": [ROOT], "signing_key": key}}
    )
    token = mint_token(settings.auth.key(), f"{ROOT}/zstack.tif", int(time.time()) + 600)
    with server(settings) as base:
        for path in (f"v2/{ROOT}/zstack.tif/.zgroup", f"{ROOT}/zstack.tif/zarr.json"):
            assert httpx.get(f"{base}/{path}").status_code == 401, path
            assert httpx.get(f"{base}{signed_path(token, path)}").status_code == 200, path
        other = mint_token(settings.auth.key(), f"{ROOT}/other.tif", int(time.time()) + 600)
        assert httpx.get(f"{base}{signed_path(other, f'v2/{ROOT}/zstack.tif/.zgroup')}").status_code == 403
