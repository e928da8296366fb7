"""HDF5 chunks served as they are stored: deflate and shuffled zstd streams in blosc
frames, deflate streams in gzip members.

A dataset whose filters are deflate, alone or after HDF5's byte shuffle, stores each
chunk as one zlib stream; one whose filters are the shuffle then zstd (hdf5plugin), one
zstd frame of the byte planes. By default (``[chunks] codec = "auto"``) a chunk is served
as a blosc frame whose one block is that stream (cname zlib or zstd; shuffle or
noshuffle): a 24-byte header, then the stored bytes, with no codec work on the server.
With ``codec = "gzip"``, unshuffled zlib streams are served as gzip members instead (a
header, the stored deflate data, the CRC-32 and size of the decoded chunk). Other codecs
transcode.

The files are written by h5py (levels 1, 4 and 9; several dtypes; big-endian; sparse
with a fill value; a chunk stored unfiltered; filters that are not framed) and read over
HTTP by zarr-python and tensorstore, which must see exactly h5py's values; each served
chunk must hold exactly the stored bytes.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import httpx
import numpy as np
import pytest
import zarr

from gateway.config.settings import Settings
from gateway.store.inprocess import open_store
from tests.hdf5.served import assert_zarr_reads_exactly, read_data
from tests.hdf5.writers import ImarisSpec, smooth, write_imaris
from tests.server import serve

ROOT = "deflate"
SHAPE = (20, 150, 140)  # edge chunks in every axis
CHUNKS = (8, 64, 64)
GRID = tuple(-(-n // c) for n, c in zip(SHAPE, CHUNKS, strict=True))

#: deflate alone: framed by ``auto`` (blosc, noshuffle) and by ``gzip`` (gzip members)
UNSHUFFLED: dict[str, tuple[str, dict[str, Any]]] = {
    "u16-gzip1": ("uint16", {"compression": "gzip", "compression_opts": 1}),
    "u16-gzip9": ("uint16", {"compression": "gzip", "compression_opts": 9}),
    "u8-gzip4": ("uint8", {"compression": "gzip", "compression_opts": 4}),
    "f32-gzip4": ("float32", {"compression": "gzip", "compression_opts": 4}),
    "be-u16-gzip4": (">u2", {"compression": "gzip", "compression_opts": 4}),
}
#: shuffle + deflate: framed by ``auto`` (blosc, shuffle)
SHUFFLED: dict[str, tuple[str, dict[str, Any]]] = {
    "u16-shuffle-gzip1": ("uint16", {"shuffle": True, "compression": "gzip", "compression_opts": 1}),
    "i16-shuffle-gzip4": ("int16", {"shuffle": True, "compression": "gzip", "compression_opts": 4}),
    "u32-shuffle-gzip9": ("uint32", {"shuffle": True, "compression": "gzip", "compression_opts": 9}),
    "f64-shuffle-gzip1": ("float64", {"shuffle": True, "compression": "gzip", "compression_opts": 1}),
    "be-f32-shuffle-gzip4": (">f4", {"shuffle": True, "compression": "gzip", "compression_opts": 4}),
    # shuffle + zstd (hdf5plugin): zstd frames of the byte planes, framed as blosc zstd
    "u16-shuffle-zstd3": ("uint16", {"shuffle": True, **hdf5plugin.Zstd(clevel=3)}),
    "be-i32-shuffle-zstd1": (">i4", {"shuffle": True, **hdf5plugin.Zstd(clevel=1)}),
}
#: deflate among other filters: not one zlib stream of the chunk, so transcoded
NOT_FRAMED: dict[str, tuple[str, dict[str, Any]]] = {
    "u16-gzip-fletcher32": ("uint16", {"shuffle": True, "compression": "gzip", "fletcher32": True}),
    "u8-shuffle-gzip": ("uint8", {"shuffle": True, "compression": "gzip"}),
}
FILES = {**UNSHUFFLED, **SHUFFLED, **NOT_FRAMED}


def data_for(dtype: str) -> np.ndarray:
    return smooth(SHAPE, dtype, scale=100.0 if np.dtype(dtype).itemsize == 1 else 3000.0)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("deflate")
    for name, (dtype, options) in FILES.items():
        with h5py.File(directory / f"{name}.h5", "w") as f:
            f.create_dataset("data", data=data_for(dtype), chunks=CHUNKS, **options)
    for name, shuffle in (("sparse", False), ("sparse-shuffled", True)):
        with h5py.File(directory / f"{name}.h5", "w") as f:
            dataset = f.create_dataset(
                "data",
                shape=SHAPE,
                dtype="int16",
                chunks=CHUNKS,
                fillvalue=-7,
                compression="gzip",
                shuffle=shuffle,
            )
            dataset[0:8, 0:64, 0:64] = data_for("int16")[0:8, 0:64, 0:64]
    for name, shuffle, mask in (("masked", False, 1), ("masked-shuffled", True, 0b11)):
        with h5py.File(directory / f"{name}.h5", "w") as f:
            dataset = f.create_dataset(
                "data", data=data_for("uint16"), chunks=CHUNKS, compression="gzip", shuffle=shuffle
            )
            block = np.ascontiguousarray(data_for("uint16")[8:16, 64:128, 0:64])
            dataset.id.write_direct_chunk((8, 64, 0), block.tobytes(), filter_mask=mask)  # stored raw
    return directory


@pytest.fixture(scope="module")
def auto_url(root: Path) -> Iterator[str]:
    with serve(Settings.from_mapping({"roots": {ROOT: str(root)}, "chunks": {"min_yx": 64}})) as url:
        yield url


@pytest.fixture(scope="module")
def gzip_url(root: Path) -> Iterator[str]:
    settings = {"roots": {ROOT: str(root)}, "chunks": {"codec": "gzip", "min_yx": 64}}
    with serve(Settings.from_mapping(settings)) as url:
        yield url


FRAMED_BY_AUTO = sorted({*UNSHUFFLED, *SHUFFLED, "sparse", "sparse-shuffled", "masked", "masked-shuffled"})
FRAMED_BY_GZIP = sorted({*UNSHUFFLED, "sparse", "masked"})


def stored_level(dataset: h5py.Dataset) -> int:
    """The level of the dataset's deflate or zstd filter (its first filter value)."""
    plist = dataset.id.get_create_plist()
    for index in range(plist.get_nfilters()):
        code, _, values, _ = plist.get_filter(index)
        if code in (h5py.h5z.FILTER_DEFLATE, 32015):  # 32015: zstd
            return int(values[0])
    raise AssertionError(f"{dataset.name}: no deflate or zstd filter")


def served_and_stored(
    client: httpx.Client, url: str, path: Path, counts: dict[str, int]
) -> Iterator[tuple[tuple[int, ...], int, bytes, bytes]]:
    """(grid coords, filter mask, stored bytes, served bytes) of every stored chunk of
    ``path``'s dataset served at ``url``; absent chunks must answer 404 (``counts["absent"]``)."""
    with h5py.File(path, "r") as f:
        dataset = f["data"]
        for coords in np.ndindex(*GRID):
            response = client.get(f"{url}/c/" + "/".join(map(str, coords)))
            origin = tuple(i * c for i, c in zip(coords, CHUNKS, strict=True))
            if dataset.id.get_chunk_info_by_coord(origin).byte_offset is None:
                assert response.status_code == 404, coords
                counts["absent"] += 1
                continue
            assert response.status_code == 200, coords
            mask, stored = dataset.id.read_direct_chunk(origin)
            yield coords, mask, stored, response.content


@pytest.mark.parametrize("name", sorted({*FILES, "sparse", "sparse-shuffled", "masked", "masked-shuffled"}))
def test_zarr_python_reads_h5pys_values_exactly_by_default(name: str, root: Path, auto_url: str) -> None:
    compressor = "blosc" if name in FRAMED_BY_AUTO or name == "u16-gzip-fletcher32" else "zstd"
    assert_zarr_reads_exactly(f"{auto_url}/{ROOT}/{name}.h5/data/0", root / f"{name}.h5", compressor, CHUNKS)


@pytest.mark.parametrize("name", FRAMED_BY_AUTO)
def test_every_stored_chunk_is_the_one_block_of_a_blosc_frame(name: str, root: Path, auto_url: str) -> None:
    url = f"{auto_url}/{ROOT}/{name}.h5/data/0"
    dtype = read_data(root / f"{name}.h5").dtype
    shuffled = name in SHUFFLED or name.endswith("-shuffled")
    cname = "zstd" if "zstd" in name else "zlib"
    counts = {"framed": 0, "encoded": 0, "absent": 0}
    with h5py.File(root / f"{name}.h5", "r") as f:
        level = stored_level(f["data"])
    with httpx.Client() as client:
        meta = client.get(f"{url}/zarr.json").json()
        assert meta["codecs"][0]["configuration"]["endian"] == ("big" if name.startswith("be-") else "little")
        assert meta["codecs"][-1] == {
            "name": "blosc",
            "configuration": {
                "cname": cname,
                "clevel": level,
                "shuffle": "shuffle" if shuffled else "noshuffle",
                "typesize": dtype.itemsize,
                "blocksize": 0,
            },
        }
        for coords, mask, stored, served in served_and_stored(client, url, root / f"{name}.h5", counts):
            if mask == 0:
                nbytes = int(np.prod(CHUNKS)) * dtype.itemsize
                code = {"zlib": 3, "zstd": 4}[cname]
                flags = 0x10 | code << 5 | (1 if shuffled else 0)  # unsplit, the codec, (byte shuffle)
                sizes = (nbytes, nbytes, 24 + len(stored), 20, len(stored))  # block, frame, start, stream
                header = struct.pack("<BBBBIIIII", 2, 1, flags, dtype.itemsize, *sizes)
                assert served == header + stored, coords
                counts["framed"] += 1
            else:
                counts["encoded"] += 1
    assert counts["framed"] > 0
    assert counts["encoded"] == (1 if name.startswith("masked") else 0)
    assert (counts["absent"] > 0) == name.startswith("sparse")


@pytest.mark.parametrize("name", FRAMED_BY_GZIP)
def test_with_gzip_every_unshuffled_chunk_is_its_deflate_data_in_a_gzip_member(
    name: str, root: Path, gzip_url: str
) -> None:
    url = f"{gzip_url}/{ROOT}/{name}.h5/data/0"
    counts = {"rewrapped": 0, "reencoded": 0, "absent": 0}
    with h5py.File(root / f"{name}.h5", "r") as f:
        itemsize, level = f["data"].dtype.itemsize, f["data"].compression_opts
    with httpx.Client() as client:
        meta = client.get(f"{url}/zarr.json").json()
        assert meta["codecs"][-1] == {"name": "gzip", "configuration": {"level": level}}
        assert meta["codecs"][0]["configuration"]["endian"] == ("big" if name.startswith("be-") else "little")
        for coords, mask, stored, served in served_and_stored(client, url, root / f"{name}.h5", counts):
            assert len(gzip.decompress(served)) == np.prod(CHUNKS) * itemsize
            if mask == 0:
                assert served[10:-8] == stored[2:-4], coords
                counts["rewrapped"] += 1
            else:
                counts["reencoded"] += 1
    assert counts["rewrapped"] > 0
    assert counts["reencoded"] == (1 if name == "masked" else 0)
    assert (counts["absent"] > 0) == (name == "sparse")


@pytest.mark.parametrize("name", sorted({*UNSHUFFLED, *SHUFFLED, "masked"}))
def test_zarr_python_reads_h5pys_values_exactly_with_gzip(name: str, root: Path, gzip_url: str) -> None:
    """Shuffled streams are no gzip member's data: compressed afresh as gzip."""
    assert_zarr_reads_exactly(f"{gzip_url}/{ROOT}/{name}.h5/data/0", root / f"{name}.h5", "gzip", CHUNKS)


@pytest.mark.parametrize(
    "name", ["u16-gzip9", "be-u16-gzip4", "u32-shuffle-gzip9", "be-f32-shuffle-gzip4", "be-i32-shuffle-zstd1"]
)
@pytest.mark.parametrize("server", ["auto", "gzip"])
def test_tensorstore_reads_a_framed_array_exactly(
    name: str, server: str, request: pytest.FixtureRequest
) -> None:
    tensorstore = pytest.importorskip("tensorstore")
    url = request.getfixturevalue(f"{server}_url")
    spec = {"driver": "zarr3", "kvstore": f"{url}/{ROOT}/{name}.h5/data/0/"}
    served = tensorstore.open(spec).result().read().result()
    root = request.getfixturevalue("root")
    assert np.asarray(served).tobytes() == read_data(root / f"{name}.h5").tobytes()


@pytest.mark.parametrize("codec", ["zstd", "blosc-zstd"])
def test_other_codecs_compress_deflate_chunks_afresh(codec: str, root: Path) -> None:
    settings = {"roots": {ROOT: str(root)}, "chunks": {"codec": codec, "min_yx": 64}}
    with serve(Settings.from_mapping(settings)) as url:
        for name in ("u16-gzip1", "u16-shuffle-gzip1"):
            array = zarr.open_array(f"{url}/{ROOT}/{name}.h5/data/0", mode="r")
            compressor = array.metadata.codecs[-1].to_dict()
            assert compressor["name"] == codec.split("-")[0]
            if codec == "blosc-zstd":
                assert compressor["configuration"]["cname"] == "zstd"
            assert array[...].tobytes() == read_data(root / f"{name}.h5").tobytes()


def test_without_passthrough_deflate_chunks_are_compressed_afresh(root: Path) -> None:
    settings = {"roots": {ROOT: str(root)}, "chunks": {"passthrough": False, "min_yx": 64}}
    with serve(Settings.from_mapping(settings)) as url, httpx.Client() as client:
        meta = client.get(f"{url}/{ROOT}/u16-shuffle-gzip1.h5/data/0/zarr.json").json()
        assert meta["codecs"][-1]["configuration"]["cname"] == "zstd"  # from the shuffled chunks
        meta = client.get(f"{url}/{ROOT}/u16-gzip1.h5/data/0/zarr.json").json()
        assert meta["codecs"][-1]["name"] == "zstd"


def test_an_imaris_file_is_served_as_its_stored_blocks_by_default(tmp_path: Path) -> None:
    """A level stacked from one dataset per channel, cropped from arrays padded to whole
    blocks (Imaris, shuffle + gzip): each served chunk is a stored block in a blosc frame,
    padding included, read exactly by zarr-python in process and tensorstore over HTTP."""
    data = np.stack([smooth((20, 70, 90), "uint16", seed=c) for c in range(2)])[None]  # t c z y x
    compression = {"shuffle": True, "compression": "gzip", "compression_opts": 2}
    write_imaris(
        tmp_path / "cells.ims", ImarisSpec(data=data, levels=1, block=(8, 64, 64), compression=compression)
    )
    store = open_store(tmp_path / "cells.ims", Settings.from_mapping({}))
    try:
        group = zarr.open_group(store=store, mode="r")
        path = group.attrs["ome"]["multiscales"][0]["datasets"][0]["path"]
        array = group[path]
        assert array.chunks[-3:] == (8, 64, 64)
        assert array.metadata.codecs[-1].to_dict()["configuration"]["cname"] == "zlib"
        assert np.asarray(array[...]).tobytes() == data.reshape(array.shape).tobytes()
    finally:
        store.close()
    with h5py.File(tmp_path / "cells.ims", "r") as f:
        stored = f["DataSet/ResolutionLevel 0/TimePoint 0/Channel 1/Data"]
        _, block = stored.id.read_direct_chunk((8, 0, 64))
    with serve(Settings.from_mapping({"roots": {ROOT: str(tmp_path)}})) as url, httpx.Client() as client:
        chunk = client.get(f"{url}/{ROOT}/cells.ims/{path}/c/1/1/0/1")  # c z y x (t of one dropped)
        assert chunk.status_code == 200 and chunk.content[24:] == block
        tensorstore = pytest.importorskip("tensorstore")
        served = tensorstore.open({"driver": "zarr3", "kvstore": f"{url}/{ROOT}/cells.ims/{path}/"}).result()
        assert np.asarray(served.read().result()).tobytes() == data.reshape(served.shape).tobytes()


@pytest.mark.parametrize("shuffle", [False, True], ids=["deflate", "shuffle-deflate"])
def test_a_stored_chunk_of_only_the_fill_value_is_absent_as_an_encoded_one_is(
    tmp_path: Path, shuffle: bool
) -> None:
    """A stored chunk that deflates to very little may hold only the fill value: it is
    decoded to find out, and answers 404; a constant chunk of another value is sent."""
    data = data_for("uint16")
    data[0:8, 0:64, 0:64] = 0  # the fill value, stored
    data[0:8, 0:64, 64:128] = 7  # as small a stream, not the fill value
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_dataset("data", data=data, chunks=CHUNKS, compression="gzip", shuffle=shuffle)
        assert f["data"].id.get_chunk_info_by_coord((0, 0, 0)).byte_offset is not None
    settings = {"roots": {ROOT: str(tmp_path)}, "chunks": {"min_yx": 64}}
    with serve(Settings.from_mapping(settings)) as url, httpx.Client() as client:
        array = f"{url}/{ROOT}/empty.h5/data/0"
        assert client.get(f"{array}/c/0/0/0").status_code == 404
        constant = client.get(f"{array}/c/0/0/1")
        assert constant.status_code == 200 and constant.content[:3] == bytes([2, 1, 0x70 | shuffle])
        assert client.get(f"{array}/c/0/1/1").status_code == 200
        assert_zarr_reads_exactly(array, tmp_path / "empty.h5", "blosc", CHUNKS)
        keep = Settings.from_mapping({**settings, "chunks": {"min_yx": 64, "omit_empty": False}})
    with serve(keep) as url, httpx.Client() as client:
        assert client.get(f"{url}/{ROOT}/empty.h5/data/0/c/0/0/0").status_code == 200


def test_a_set_depth_is_served_even_where_stored_chunks_differ(root: Path) -> None:
    """``[chunks] z`` is taken as given: stored chunks of another depth are not sent as
    they are, but read and encoded in chunks of that depth."""
    settings = {"roots": {ROOT: str(root)}, "chunks": {"min_yx": 64, "z": 4}}
    with serve(Settings.from_mapping(settings)) as url:
        array = zarr.open_array(f"{url}/{ROOT}/u16-shuffle-gzip1.h5/data/0", mode="r")
        assert array.chunks == (4, 64, 64)
        assert array[...].tobytes() == read_data(root / "u16-shuffle-gzip1.h5").tobytes()
    settings["chunks"]["z"] = CHUNKS[0]
    with serve(Settings.from_mapping(settings)) as url, httpx.Client() as client:
        codec = client.get(f"{url}/{ROOT}/u16-shuffle-gzip1.h5/data/0/zarr.json").json()["codecs"][-1]
        assert codec["configuration"]["cname"] == "zlib"  # the stored depth: sent as stored
