"""Virtual shards (issue 11, ``[chunks] shard``): arrays served with zarr's
``sharding_indexed`` codec, whose inner chunks are the unsharded array's chunks.

Checked against the gateway's own unsharded store (a shard is exactly its inner chunks,
then the index) and against the sources themselves, read by zarr-python in-process and
over HTTP, and by tensorstore; HTTP ``Range`` reads of the index and of one inner chunk.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import h5py
import httpx
import numpy as np
import pytest
import tifffile
import zarr
from zarr.core.buffer import default_buffer_prototype

from gateway.config.settings import Settings
from gateway.levels.budget import WorkCancelled, WorkToken, bound
from gateway.ngff.layout import ArrayNode
from gateway.ngff.shards import ABSENT, assemble, index_nbytes, inner_chunks
from gateway.store import render
from gateway.store.base import ServedStore
from gateway.store.inprocess import open_store
from tests.http.support import decode_chunk
from tests.server import serve

ROOT = "data"


@dataclass(frozen=True)
class Case:
    """A source file, its level 0, the array path of level 0 and the shard setting."""

    name: str
    data: np.ndarray
    array: str
    shard: tuple[int, int, int]
    inner: tuple[int, ...]  # the inner chunk the gateway serves for it
    per_shard: tuple[int, ...]  # inner chunks per shard in each axis of the array


def _tiff_2d(directory: Path) -> Case:
    """1000 x 700 uint16 in 128² zlib tiles: partial inner chunks at both edges; the first
    shard (256 x 512) all zero (absent), the last one overhanging the chunk grid."""
    data = np.random.default_rng(11).integers(1, 60000, (1000, 700), dtype=np.uint16)
    data[:256, :512] = 0
    data[256:384, :128] = 0  # one absent inner chunk inside a present shard
    if not (directory / "plane.tif").exists():
        tifffile.imwrite(directory / "plane.tif", data, tile=(128, 128), compression="zlib")
    return Case("plane.tif", data, "0", (1, 2, 4), (128, 128), (2, 4))


def _hdf5_3d(directory: Path) -> Case:
    """37 x 100 x 70 uint16 in gzip 16 x 32 x 32 chunks: partial in every axis."""
    data = np.random.default_rng(12).integers(0, 60000, (37, 100, 70), dtype=np.uint16)
    if not (directory / "volume.h5").exists():
        with h5py.File(directory / "volume.h5", "w") as f:
            f.create_dataset("volume", data=data, chunks=(16, 32, 32), compression="gzip")
    return Case("volume.h5", data, "volume/0", (2, 2, 2), (16, 32, 32), (2, 2, 2))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shards")


@pytest.fixture(scope="module", params=["tiff-2d", "hdf5-3d"])
def case(request: pytest.FixtureRequest, root: Path) -> Case:
    return _tiff_2d(root) if request.param == "tiff-2d" else _hdf5_3d(root)


def _settings(case: Case | None = None, **chunks: Any) -> Settings:
    if case is not None:
        chunks["shard"] = list(case.shard)
    return Settings(chunks=chunks)


def _get(store: ServedStore, key: str) -> bytes | None:
    found = asyncio.run(store.get(key, default_buffer_prototype()))
    return None if found is None else found.to_bytes()


def _key(array: str, coords: tuple[int, ...]) -> str:
    return f"{array}/c/" + "/".join(map(str, coords))


def _shard_grid(case: Case) -> tuple[int, ...]:
    return tuple(
        -(-n // (c * k)) for n, c, k in zip(case.data.shape, case.inner, case.per_shard, strict=True)
    )


# -- the store ------------------------------------------------------------------------------------


def test_the_array_declares_sharding_indexed_around_the_unsharded_codecs(case: Case, root: Path) -> None:
    with closing(open_store(root / case.name, _settings(), threads=2)) as plain:
        unsharded = zarr.open_array(store=plain, path=case.array, mode="r").metadata.to_dict()
    with closing(open_store(root / case.name, _settings(case), threads=2)) as store:
        sharded = zarr.open_array(store=store, path=case.array, mode="r").metadata.to_dict()
    assert unsharded["chunk_grid"]["configuration"]["chunk_shape"] == case.inner
    shard = tuple(c * k for c, k in zip(case.inner, case.per_shard, strict=True))
    assert sharded["chunk_grid"]["configuration"]["chunk_shape"] == shard
    assert sharded["codecs"] == (
        {
            "name": "sharding_indexed",
            "configuration": {
                "chunk_shape": case.inner,
                "codecs": unsharded["codecs"],
                "index_codecs": (
                    {"name": "bytes", "configuration": {"endian": "little"}},
                    {"name": "crc32c"},
                ),
                "index_location": "end",
            },
        },
    )
    assert {k: v for k, v in sharded.items() if k not in ("chunk_grid", "codecs")} == {
        k: v for k, v in unsharded.items() if k not in ("chunk_grid", "codecs")
    }


def test_a_shard_is_the_unsharded_chunks_then_their_index(case: Case, root: Path) -> None:
    """Every shard, edge shards included, byte for byte: the unsharded array's chunks in
    C order (absent ones and the overhang beyond the grid left out), then the index of
    little-endian (offset, nbytes) pairs with 2**64-1 for absent ones, then its crc32c."""
    plain = open_store(root / case.name, _settings(), threads=2)
    store = open_store(root / case.name, _settings(case), threads=2)
    grid = tuple(-(-n // c) for n, c in zip(case.data.shape, case.inner, strict=True))
    absent_shards = 0
    try:
        for shard in itertools.product(*map(range, _shard_grid(case))):
            inner = [
                None if coords is None else _get(plain, _key(case.array, coords))
                for coords in inner_chunks(shard, case.per_shard, grid)
            ]
            served = _get(store, _key(case.array, shard))
            if all(chunk is None for chunk in inner):
                assert served is None, shard
                assert not asyncio.run(store.exists(_key(case.array, shard)))
                absent_shards += 1
                continue
            assert served is not None, shard
            size = index_nbytes(case.per_shard)
            index = np.frombuffer(served[-size:-4], dtype="<u8").reshape(-1, 2)
            assert served[-4:] == np.uint32(google_crc32c.value(served[-size:-4])).astype("<u4").tobytes()
            offset = 0
            for chunk, (start, nbytes) in zip(inner, index.tolist(), strict=True):
                if chunk is None:
                    assert (start, nbytes) == (ABSENT, ABSENT)
                else:
                    assert (start, nbytes) == (offset, len(chunk))
                    assert served[start : start + nbytes] == chunk
                    offset += nbytes
            assert len(served) == offset + size
    finally:
        plain.close()
        store.close()
    assert absent_shards == (1 if case.name == "plane.tif" else 0)


def test_sharded_levels_read_bit_exactly_in_process(case: Case, root: Path) -> None:
    """Level 0 equals the source; every level (synthesized ones too) equals the unsharded
    array's."""
    with (
        closing(open_store(root / case.name, _settings(), threads=2)) as plain,
        closing(open_store(root / case.name, _settings(case), threads=2)) as store,
    ):
        group_path = case.array.rpartition("/")[0]
        sharded = zarr.open_group(store=store, path=group_path, mode="r")
        unsharded = zarr.open_group(store=plain, path=group_path, mode="r")
        np.testing.assert_array_equal(sharded["0"][...], case.data, strict=True)
        paths = [d["path"] for d in sharded.attrs["ome"]["multiscales"][0]["datasets"]]
        assert len(paths) > 1
        for path in paths:
            assert sharded[path].shards is not None
            np.testing.assert_array_equal(sharded[path][...], unsharded[path][...], strict=True)


def test_passed_through_inner_chunks_are_the_stored_bytes(tmp_path: Path) -> None:
    """zstd tiles are zarr chunks as stored: inside a shard too, untouched."""
    data = np.random.default_rng(13).integers(0, 60000, (2, 700, 500), dtype=np.uint16)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, data, tile=(256, 256), photometric="minisblack", compression="zstd")
    with tifffile.TiffFile(path) as tif, open(path, "rb") as fh:
        page = tif.pages[1]  # page 1, tile row 2, column 1: an edge tile
        fh.seek(page.dataoffsets[2 * 2 + 1])
        stored = fh.read(page.databytecounts[2 * 2 + 1])
    settings = Settings(chunks={"shard": [2, 2, 2]})
    with closing(open_store(path, settings, threads=2)) as store:
        array = zarr.open_array(store=store, path="0", mode="r")
        assert (array.chunks, array.shards) == ((1, 256, 256), (2, 512, 512))
        np.testing.assert_array_equal(array[...], data, strict=True)
        shard = _get(store, "0/c/0/1/0")  # planes 0-1, tile rows 2-3, tile columns 0-1
    assert shard is not None
    index = np.frombuffer(shard[-(8 * 16 + 4) : -4], dtype="<u8").reshape(2, 2, 2, 2)
    start, nbytes = index[1, 0, 1]
    assert shard[start : start + nbytes] == stored
    assert (index[:, 1] == ABSENT).all()  # tile row 3 lies beyond the 700 rows


def test_without_the_setting_nothing_is_sharded(root: Path) -> None:
    case = _hdf5_3d(root)
    with closing(open_store(root / case.name, Settings(), threads=2)) as store:
        group = zarr.open_group(store=store, path="volume", mode="r")
        for name, array in group.arrays():
            assert array.shards is None, name
            assert "sharding_indexed" not in [c["name"] for c in array.metadata.to_dict()["codecs"]]


def test_a_shard_stops_between_inner_chunks_when_its_work_is_cancelled(root: Path) -> None:
    """A shard may hold thousands of inner chunks: its work checks the request's token
    between them, as a synthesized level does between blocks."""
    case = _hdf5_3d(root)
    with closing(open_store(root / case.name, _settings(case), threads=2)) as store:
        node = store.store.store.tree.arrays[case.array]  # Timed(ChunkCache(DatasetStore))
        token = WorkToken(30)
        rendered: list[tuple[int, ...]] = []

        def render_once(node: ArrayNode, coords: tuple[int, ...], *args: Any) -> bytes:
            rendered.append(coords)
            token.cancel()
            return b"chunk"

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(render, "render_chunk", render_once)
            with pytest.raises(WorkCancelled):
                bound(token, lambda: render.render_shard(node, (0, 0, 0), True))()
    assert rendered == [(0, 0, 0)]


def test_assemble_leaves_an_all_absent_shard_absent() -> None:
    assert assemble([None, None, None]) is None
    shard = assemble([None, b"abc", None, b"de"])
    assert shard is not None
    index = np.frombuffer(shard[5:-4], dtype="<u8").reshape(-1, 2).tolist()
    assert shard[:5] == b"abcde"
    assert index == [[ABSENT, ABSENT], [0, 3], [ABSENT, ABSENT], [3, 2]]


# -- over HTTP ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_url(root: Path) -> Iterator[str]:
    _tiff_2d(root)
    _hdf5_3d(root)
    settings = Settings.from_mapping({"roots": {ROOT: str(root)}, "chunks": {"shard": [2, 2, 2]}})
    with serve(settings) as url:
        yield url


def _http_case(case: Case) -> Case:
    """The case as ``base_url`` shards it ([2, 2, 2]: two inner chunks per axis)."""
    per_shard = tuple(min(2, -(-n // c)) for n, c in zip(case.data.shape, case.inner, strict=True))
    return Case(case.name, case.data, case.array, (2, 2, 2), case.inner, per_shard)


def test_zarr_python_reads_sharded_arrays_over_http(case: Case, base_url: str) -> None:
    array = zarr.open_array(f"{base_url}/{ROOT}/{case.name}/{case.array}", mode="r")
    assert array.shards is not None and array.chunks == case.inner
    np.testing.assert_array_equal(array[...], case.data, strict=True)
    corner = tuple(slice(n - 3, n) for n in case.data.shape)  # inside the last, partial inner chunk
    np.testing.assert_array_equal(array[corner], case.data[corner], strict=True)


def test_tensorstore_reads_sharded_arrays_over_http(case: Case, base_url: str) -> None:
    ts = pytest.importorskip("tensorstore", reason="tensorstore is not installed")
    url = f"{base_url}/{ROOT}/{case.name}/{case.array}/"
    array = ts.open({"driver": "zarr3", "kvstore": url, "open": True}).result()
    np.testing.assert_array_equal(array.read().result(), case.data, strict=True)
    corner = tuple(slice(n - 5, n) for n in case.data.shape)
    np.testing.assert_array_equal(array[corner].read().result(), case.data[corner], strict=True)


def test_range_reads_of_the_index_and_of_one_inner_chunk(case: Case, base_url: str) -> None:
    case = _http_case(case)
    last = tuple(g - 1 for g in _shard_grid(case))  # an edge shard
    url = f"{base_url}/{ROOT}/{case.name}/{_key(case.array, last)}"
    with httpx.Client() as client:
        whole = client.get(url)
        assert whole.status_code == 200
        size = index_nbytes(case.per_shard)
        suffix = client.get(url, headers={"Range": f"bytes=-{size}"})
        assert suffix.status_code == 206
        assert (
            suffix.headers["content-range"]
            == f"bytes {len(whole.content) - size}-{len(whole.content) - 1}/{len(whole.content)}"
        )
        assert suffix.content == whole.content[-size:]
        index = np.frombuffer(suffix.content[:-4], dtype="<u8").reshape(-1, 2)
        start, nbytes = next((int(s), int(n)) for s, n in index if s != ABSENT)
        chunk = client.get(url, headers={"Range": f"bytes={start}-{start + nbytes - 1}"})
        assert chunk.status_code == 206
        assert chunk.content == whole.content[start : start + nbytes]
    # the first present inner chunk of the last shard, decoded, is that block of the data
    grid = tuple(-(-n // c) for n, c in zip(case.data.shape, case.inner, strict=True))
    first = next(
        c for c, (s, _) in zip(inner_chunks(last, case.per_shard, grid), index, strict=True) if s != ABSENT
    )
    assert first is not None
    with httpx.Client() as client:
        metadata = client.get(f"{base_url}/{ROOT}/{case.name}/{case.array}/zarr.json").json()
    inner = metadata["codecs"][0]["configuration"]  # sharding_indexed: the inner chunks' codecs
    as_inner_array = {**metadata, "codecs": inner["codecs"], "chunk_grid": {"configuration": inner}}
    block = decode_chunk(chunk.content, as_inner_array)
    region = tuple(
        slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(first, case.inner, case.data.shape, strict=True)
    )
    expected = case.data[region]
    np.testing.assert_array_equal(block[tuple(slice(0, n) for n in expected.shape)], expected, strict=True)


def test_an_all_fill_shard_answers_404(base_url: str, root: Path) -> None:
    with httpx.Client() as client:
        # 256 x 256 shards; rows < 256 of columns < 512 are zero, and 700 columns make 3 shards
        statuses = [client.get(f"{base_url}/{ROOT}/plane.tif/0/c/0/{j}").status_code for j in range(4)]
        assert statuses == [404, 404, 200, 404]
        assert client.get(f"{base_url}/{ROOT}/plane.tif/0/c/1/0").status_code == 200


def test_the_v2_view_of_a_sharded_dataset_serves_the_inner_chunks(case: Case, base_url: str) -> None:
    """Zarr v2 has no shards: the v2 view serves the same arrays unsharded."""
    array = zarr.open_array(f"{base_url}/v2/{ROOT}/{case.name}/{case.array}", mode="r", zarr_format=2)
    assert array.chunks == case.inner
    np.testing.assert_array_equal(array[...], case.data, strict=True)
