"""HDF5 chunks stored byte-shuffled, served as blosc-zstd without unshuffling.

With ``[chunks] codec = "blosc-zstd"``, a served chunk that is a stored chunk of a
dataset whose first filter is HDF5's byte shuffle is made from the stored bytes still
shuffled (``Level.read_shuffled_chunk``): inflate, then zstd over the byte planes behind
c-blosc's header. These files are written by h5py (shuffle with gzip, LZF, zstd and
fletcher32; every dtype that has bytes to shuffle; big-endian; sparse with a fill value;
a chunk whose filters were skipped) and read over HTTP by zarr-python, which must see
exactly h5py's values; each interior chunk must be byte for byte what c-blosc makes of
the decoded chunk, and the shuffled path must really be the one taken. Served chunks
that are slabs of whole planes of the stored ones (``[chunks] z`` below the stored
depth) are cut from them still shuffled, each stored chunk inflated once.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import httpx
import numcodecs
import numpy as np
import pytest
import zarr

from adapters.io.chunked import StoredArray
from gateway.config.settings import Settings
from gateway.store.inprocess import open_store
from tests.hdf5.served import assert_zarr_reads_exactly, read_data
from tests.hdf5.writers import ImarisSpec, pixels, smooth, write_imaris
from tests.server import serve

ROOT = "shuffled"
SHAPE = (20, 150, 140)  # edge chunks in every axis
CHUNKS = (8, 64, 64)
SETTINGS = {"chunks": {"codec": "blosc-zstd", "min_yx": 64}}
GZIP = {"shuffle": True, "compression": "gzip", "compression_opts": 1}

FILES: dict[str, tuple[str, dict[str, Any]]] = {
    "u16-gzip": ("uint16", GZIP),
    "i16-gzip": ("int16", GZIP),
    "u32-gzip": ("uint32", GZIP),
    "i64-gzip": ("int64", GZIP),
    "f32-gzip": ("float32", GZIP),
    "f64-gzip": ("float64", GZIP),
    "u16-lzf": ("uint16", {"shuffle": True, "compression": "lzf"}),
    "u16-zstd": ("uint16", {"shuffle": True, **hdf5plugin.Zstd(clevel=3)}),
    "u16-gzip-fletcher32": ("uint16", {**GZIP, "fletcher32": True}),
    "u16-shuffle-only": ("uint16", {"shuffle": True}),
    "be-u16-gzip": (">u2", GZIP),
    "be-f32-gzip": (">f4", GZIP),
}
#: served as blosc-zstd too, but from whole decoded chunks (nothing to take as it is)
UNSHUFFLED = {
    "u8-gzip": ("uint8", GZIP),  # one byte per element: blosc bit-shuffles bytes
    "u16-gzip-noshuffle": ("uint16", {"compression": "gzip"}),
}


def data_for(dtype: str) -> np.ndarray:
    kind = np.dtype(dtype).kind
    if kind == "f":  # NaN, ±inf, -0.0, a subnormal among smooth values
        data = smooth(SHAPE, dtype)
        specials = pixels(SHAPE, dtype, 2)
        mask = ~np.isfinite(specials) | (specials == 0)
        data[mask] = specials[mask]
        return data
    scale = 100.0 if np.dtype(dtype).itemsize == 1 else 3000.0
    data = smooth(SHAPE, dtype, scale=scale)
    return data - 1500 if kind == "i" else data


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("shuffled")
    for name, (dtype, options) in {**FILES, **UNSHUFFLED}.items():
        with h5py.File(directory / f"{name}.h5", "w") as f:
            f.create_dataset("data", data=data_for(dtype), chunks=CHUNKS, **options)
    with h5py.File(directory / "sparse.h5", "w") as f:
        dataset = f.create_dataset("data", shape=SHAPE, dtype="int16", chunks=CHUNKS, fillvalue=-7, **GZIP)
        dataset[0:8, 0:64, 0:64] = data_for("int16")[0:8, 0:64, 0:64]  # stored
        dataset[8:16, 0:64, 0:64] = -7  # stored, but all fill
        # z 16..19 never written: unallocated
    with h5py.File(directory / "masked.h5", "w") as f:
        dataset = f.create_dataset("data", data=data_for("uint16"), chunks=CHUNKS, **GZIP)
        block = np.ascontiguousarray(data_for("uint16")[8:16, 64:128, 0:64])
        dataset.id.write_direct_chunk((8, 64, 0), block.tobytes(), filter_mask=0b11)  # stored raw
    return directory


@pytest.fixture(scope="module")
def base_url(root: Path) -> Iterator[str]:
    with serve(Settings.from_mapping({"roots": {ROOT: str(root)}, **SETTINGS})) as url:
        yield url


def one_block_blosc_zstd(chunk: np.ndarray) -> bytes:
    """What c-blosc makes of a chunk: zstd 1 over the byte-shuffled chunk as one block."""
    little = np.ascontiguousarray(chunk.astype(chunk.dtype.newbyteorder("<")))
    codec = numcodecs.Blosc("zstd", 1, numcodecs.Blosc.SHUFFLE, blocksize=little.nbytes)
    return bytes(codec.encode(little))


ALL = sorted({*FILES, *UNSHUFFLED, "sparse", "masked"})


@pytest.mark.parametrize("name", ALL)
def test_zarr_python_reads_h5pys_values_exactly(name: str, root: Path, base_url: str) -> None:
    assert_zarr_reads_exactly(f"{base_url}/{ROOT}/{name}.h5/data/0", root / f"{name}.h5", "blosc", CHUNKS)


@pytest.mark.parametrize("name", sorted(FILES))
def test_interior_chunks_are_what_c_blosc_makes_of_them(name: str, root: Path, base_url: str) -> None:
    want = read_data(root / f"{name}.h5")
    url = f"{base_url}/{ROOT}/{name}.h5/data/0"
    with httpx.Client() as client:
        for coords in [(0, 0, 0), (0, 1, 1), (1, 0, 1)]:  # chunks wholly inside the array
            region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, CHUNKS, strict=True))
            response = client.get(f"{url}/c/" + "/".join(map(str, coords)))
            assert response.status_code == 200
            assert response.content == one_block_blosc_zstd(want[region]), coords


def test_chunks_all_fill_or_never_written_are_absent(base_url: str) -> None:
    url = f"{base_url}/{ROOT}/sparse.h5/data/0/c"
    with httpx.Client() as client:
        assert client.get(f"{url}/0/0/0").status_code == 200
        assert client.get(f"{url}/1/0/0").status_code == 404  # stored, every element -7
        assert client.get(f"{url}/2/0/0").status_code == 404  # unallocated
        assert client.get(f"{url}/0/1/1").status_code == 404  # unallocated


class CountingReads:
    """Records the chunk-sized whole decodes (``StoredArray.read``) while zarr-python
    reads in-process (the display window's read of a middle plane is not one)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.regions: list[Any] = []
        original = StoredArray.read

        def read(array: StoredArray, region: Any) -> np.ndarray:
            if all(s.stop - s.start <= c for s, c in zip(region[-3:], CHUNKS, strict=True)):
                self.regions.append(region)
            return original(array, region)

        monkeypatch.setattr(StoredArray, "read", read)


def read_level0(path: Path, codec: str = "blosc-zstd") -> np.ndarray:
    settings = Settings.from_mapping({"chunks": {**SETTINGS["chunks"], "codec": codec}})
    store = open_store(path, settings)
    try:
        return np.asarray(zarr.open_array(store=store, path="data/0", mode="r")[...])
    finally:
        store.close()


@pytest.mark.parametrize("name", ["u16-gzip", "be-f32-gzip", "u16-lzf", "u16-gzip-fletcher32"])
def test_shuffled_chunks_are_never_unshuffled(name: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = CountingReads(monkeypatch)
    served = read_level0(root / f"{name}.h5")
    assert served.tobytes() == read_data(root / f"{name}.h5").tobytes()
    assert reads.regions == []


def test_a_chunk_whose_shuffle_was_skipped_is_decoded_whole(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = CountingReads(monkeypatch)
    served = read_level0(root / "masked.h5")
    assert served.tobytes() == read_data(root / "masked.h5").tobytes()
    assert reads.regions == [(slice(8, 16), slice(64, 128), slice(0, 64))]


@pytest.mark.parametrize(
    ("name", "codec"), [("u16-gzip", "zstd"), ("u8-gzip", "blosc-zstd"), ("u16-gzip-noshuffle", "blosc-zstd")]
)
def test_other_codecs_and_unshuffled_files_decode_whole_chunks(
    name: str, codec: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = CountingReads(monkeypatch)
    served = read_level0(root / f"{name}.h5", codec)
    assert served.tobytes() == read_data(root / f"{name}.h5").tobytes()
    assert len(reads.regions) == 3 * 3 * 3  # every chunk of the 3 x 3 x 3 grid


SLAB = (4, 64, 64)  # [chunks] z = 4: two slabs of whole planes per stored chunk


@pytest.fixture(scope="module")
def slabs_url(root: Path) -> Iterator[str]:
    settings = {"roots": {ROOT: str(root)}, "chunks": {**SETTINGS["chunks"], "codec": "auto", "z": SLAB[0]}}
    with serve(Settings.from_mapping(settings)) as url:
        yield url


@pytest.mark.parametrize("name", sorted({*FILES, "sparse", "masked"}))
def test_slabs_of_shuffled_chunks_read_as_h5py_does(name: str, root: Path, slabs_url: str) -> None:
    """``z`` below the stored depth: served chunks are cut from the stored chunks still
    shuffled, as blosc-zstd (``codec = "auto"``), and zarr-python reads h5py's values."""
    assert_zarr_reads_exactly(f"{slabs_url}/{ROOT}/{name}.h5/data/0", root / f"{name}.h5", "blosc", SLAB)


@pytest.mark.parametrize("name", ["u16-gzip", "be-f32-gzip", "u16-zstd", "i64-gzip"])
def test_interior_slabs_are_what_c_blosc_makes_of_them(name: str, root: Path, slabs_url: str) -> None:
    want = read_data(root / f"{name}.h5")
    url = f"{slabs_url}/{ROOT}/{name}.h5/data/0"
    with httpx.Client() as client:
        for coords in [(0, 0, 0), (1, 0, 0), (3, 1, 1), (4, 0, 1)]:  # (4, ...): z 16..19 of 20
            region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, SLAB, strict=True))
            response = client.get(f"{url}/c/" + "/".join(map(str, coords)))
            assert response.status_code == 200
            assert response.content == one_block_blosc_zstd(want[region]), coords


@pytest.mark.parametrize("name", ["u16-gzip", "be-f32-gzip", "sparse"])
def test_slabs_as_inner_chunks_of_shards_read_as_h5py_does(name: str, root: Path) -> None:
    """Shards of two slabs (one stored chunk's depth): each inner chunk is cut as above."""
    chunks = {**SETTINGS["chunks"], "codec": "auto", "z": SLAB[0], "shard": [2, 1, 1]}
    store = open_store(root / f"{name}.h5", Settings.from_mapping({"chunks": chunks}))
    try:
        array = zarr.open_array(store=store, path="data/0", mode="r")
        assert (array.shards, array.chunks) == ((8, 64, 64), SLAB)
        served = np.asarray(array[...])
    finally:
        store.close()
    want = read_data(root / f"{name}.h5")
    assert served.dtype == want.dtype and served.tobytes() == want.tobytes()


def test_slabs_decode_each_stored_chunk_once_and_never_unshuffle(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes: list[tuple[int, ...]] = []
    original = StoredArray.read_decoded_with

    def read_decoded_with(array: StoredArray, coords: tuple[int, ...], decode: Any) -> Any:
        decodes.append(coords)
        return original(array, coords, decode)

    monkeypatch.setattr(StoredArray, "read_decoded_with", read_decoded_with)
    reads = CountingReads(monkeypatch)
    settings = Settings.from_mapping({"chunks": {**SETTINGS["chunks"], "codec": "auto", "z": SLAB[0]}})
    store = open_store(root / "u16-gzip.h5", settings)
    try:
        served = np.asarray(zarr.open_array(store=store, path="data/0", mode="r")[...])
    finally:
        store.close()
    assert served.tobytes() == read_data(root / "u16-gzip.h5").tobytes()
    assert reads.regions == []
    assert sorted(decodes) == sorted(set(decodes)) and len(decodes) == 3 * 3 * 3  # each stored chunk once


def test_a_short_shuffled_stream_is_a_500_for_that_chunk(tmp_path: Path) -> None:
    """The shuffled path checks the inflated size as the whole decode does."""
    with h5py.File(tmp_path / "short.h5", "w") as f:
        dataset = f.create_dataset("data", data=data_for("uint16"), chunks=CHUNKS, **GZIP)
        nbytes = int(np.prod(CHUNKS)) * 2
        dataset.id.write_direct_chunk((0, 0, 0), zlib.compress(bytes(nbytes // 2)))
    with (
        serve(Settings.from_mapping({"roots": {ROOT: str(tmp_path)}, **SETTINGS})) as url,
        httpx.Client() as client,
    ):
        broken = client.get(f"{url}/{ROOT}/short.h5/data/0/c/0/0/0")
        assert broken.status_code == 500 and "instead of" in broken.json()["detail"]
        assert client.get(f"{url}/{ROOT}/short.h5/data/0/c/0/0/1").status_code == 200


def test_a_short_shuffled_stream_is_a_500_for_its_slabs(tmp_path: Path) -> None:
    """Cut into slabs, the stored chunk is checked as whole: both its slabs fail, alone."""
    with h5py.File(tmp_path / "short.h5", "w") as f:
        dataset = f.create_dataset("data", data=data_for("uint16"), chunks=CHUNKS, **GZIP)
        nbytes = int(np.prod(CHUNKS)) * 2
        dataset.id.write_direct_chunk((0, 0, 0), zlib.compress(bytes(nbytes // 2)))
    chunks = {**SETTINGS["chunks"], "codec": "auto", "z": SLAB[0]}
    with (
        serve(Settings.from_mapping({"roots": {ROOT: str(tmp_path)}, "chunks": chunks})) as url,
        httpx.Client() as client,
    ):
        for coords in ("0/0/0", "1/0/0"):
            broken = client.get(f"{url}/{ROOT}/short.h5/data/0/c/{coords}")
            assert broken.status_code == 500 and "instead of" in broken.json()["detail"]
        assert client.get(f"{url}/{ROOT}/short.h5/data/0/c/2/0/0").status_code == 200
        assert client.get(f"{url}/{ROOT}/short.h5/data/0/c/0/0/1").status_code == 200


def test_an_imaris_file_with_shuffled_blocks_is_served_from_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A level stacked from one dataset per channel, cropped from arrays padded to whole
    blocks (Imaris): served chunks are the stored blocks, padding included."""
    data = np.stack([smooth((20, 70, 90), "uint16", seed=c) for c in range(2)])[None]  # t c z y x
    spec = ImarisSpec(data=data, levels=1, block=(8, 64, 64), compression={**GZIP, "compression_opts": 2})
    write_imaris(tmp_path / "cells.ims", spec)
    reads = CountingReads(monkeypatch)
    store = open_store(tmp_path / "cells.ims", Settings.from_mapping(SETTINGS))
    try:
        group = zarr.open_group(store=store, mode="r")
        path = group.attrs["ome"]["multiscales"][0]["datasets"][0]["path"]
        array = group[path]
        assert array.chunks[-3:] == (8, 64, 64)
        served = np.asarray(array[...])
    finally:
        store.close()
    assert served.tobytes() == data.reshape(served.shape).tobytes()
    assert reads.regions == []


@pytest.mark.parametrize(
    ("name", "level0", "level1"),
    [
        # level 0: stored shuffled zlib streams in blosc frames (tests/hdf5/test_deflate_passthrough.py)
        ("u16-gzip", ("blosc", "zlib"), ("zstd", None)),  # the computed level: compressed afresh
        ("be-f32-gzip", ("blosc", "zlib"), ("zstd", None)),
        ("u16-lzf", ("blosc", "zstd"), ("zstd", None)),  # shuffled, not framed: blosc-zstd
        ("u16-gzip-fletcher32", ("blosc", "zstd"), ("zstd", None)),
        ("u8-gzip", ("zstd", None), ("zstd", None)),  # one byte per element: nothing to shuffle
    ],
)
def test_the_default_codec_is_blosc_zstd_where_stored_shuffled_chunks_are_not_framed(
    name: str, level0: tuple[str, str | None], level1: tuple[str, str | None], root: Path
) -> None:
    settings = {"roots": {ROOT: str(root)}, "chunks": {"min_yx": 64}}  # codec: the default
    with serve(Settings.from_mapping(settings)) as url:
        group = zarr.open_group(f"{url}/{ROOT}/{name}.h5/data", mode="r")
        for path, (compressor, cname) in (("0", level0), ("1", level1)):
            codec = group[path].metadata.codecs[-1].to_dict()
            assert (codec["name"], codec.get("configuration", {}).get("cname")) == (compressor, cname)
            if cname == "zstd":
                assert (codec["configuration"]["clevel"], codec["configuration"]["shuffle"]) == (1, "shuffle")
        served = group["0"][...]
    assert served.tobytes() == read_data(root / f"{name}.h5").tobytes()


def test_a_shuffled_chunk_over_the_budget_is_refused_not_read(tmp_path: Path) -> None:
    """The shortcut reads nothing the budget forbids: the chunk goes the decoding way,
    which refuses it with the reason (a 500 for that chunk only)."""
    with h5py.File(tmp_path / "big.h5", "w") as f:
        f.create_dataset("data", data=np.zeros((4, 256, 256), "uint16"), chunks=(4, 256, 256), **GZIP)
    settings = {"roots": {ROOT: str(tmp_path)}, **SETTINGS, "cache": {"max_chunk_bytes": "256 KiB"}}
    with serve(Settings.from_mapping(settings)) as url, httpx.Client() as client:
        refused = client.get(f"{url}/{ROOT}/big.h5/data/0/c/0/0/0")
        assert refused.status_code == 500 and "allowed per chunk" in refused.json()["detail"]
        assert client.get(f"{url}/{ROOT}/big.h5/data/0/zarr.json").status_code == 200
