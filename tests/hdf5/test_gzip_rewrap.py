"""HDF5 deflate chunks served as gzip members without compressing them again.

With ``[chunks] codec = "gzip"``, a dataset whose only filter is deflate (zlib streams)
passes its chunks through rewrapped: a gzip header, the stored deflate data, the CRC-32
and size of the decoded chunk. These files are written by h5py (levels 1, 4 and 9;
several dtypes; big-endian; sparse with a fill value; a chunk stored unfiltered) and read
over HTTP by zarr-python and tensorstore, which verify the gzip trailer; each served chunk
must hold exactly the stored deflate data. Other settings transcode as before.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import pytest
import zarr

from gateway.config.settings import Settings
from tests.hdf5.served import assert_zarr_reads_exactly, read_data
from tests.hdf5.writers import smooth
from tests.server import serve

ROOT = "rewrap"
SHAPE = (20, 150, 140)  # edge chunks in every axis
CHUNKS = (8, 64, 64)
GZIP_SETTINGS = {"chunks": {"codec": "gzip", "min_yx": 64}}

FILES: dict[str, tuple[str, dict[str, Any]]] = {
    "u16-gzip1": ("uint16", {"compression": "gzip", "compression_opts": 1}),
    "u16-gzip9": ("uint16", {"compression": "gzip", "compression_opts": 9}),
    "u8-gzip4": ("uint8", {"compression": "gzip", "compression_opts": 4}),
    "f32-gzip4": ("float32", {"compression": "gzip", "compression_opts": 4}),
    "be-u16-gzip4": (">u2", {"compression": "gzip", "compression_opts": 4}),
}


def data_for(dtype: str) -> np.ndarray:
    return smooth(SHAPE, dtype, scale=100.0 if np.dtype(dtype).itemsize == 1 else 3000.0)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("rewrap")
    for name, (dtype, options) in FILES.items():
        with h5py.File(directory / f"{name}.h5", "w") as f:
            f.create_dataset("data", data=data_for(dtype), chunks=CHUNKS, **options)
    with h5py.File(directory / "sparse.h5", "w") as f:
        dataset = f.create_dataset(
            "data", shape=SHAPE, dtype="int16", chunks=CHUNKS, fillvalue=-7, compression="gzip"
        )
        dataset[0:8, 0:64, 0:64] = data_for("int16")[0:8, 0:64, 0:64]
    with h5py.File(directory / "masked.h5", "w") as f:
        dataset = f.create_dataset("data", data=data_for("uint16"), chunks=CHUNKS, compression="gzip")
        block = np.ascontiguousarray(data_for("uint16")[8:16, 64:128, 0:64])
        dataset.id.write_direct_chunk((8, 64, 0), block.tobytes(), filter_mask=1)  # stored raw
    with h5py.File(directory / "shuffled.h5", "w") as f:  # shuffle + deflate: no zlib of the elements
        f.create_dataset("data", data=data_for("uint16"), chunks=CHUNKS, shuffle=True, compression="gzip")
    return directory


@pytest.fixture(scope="module")
def base_url(root: Path) -> Iterator[str]:
    with serve(Settings.from_mapping({"roots": {ROOT: str(root)}, **GZIP_SETTINGS})) as url:
        yield url


ALL = sorted({*FILES, "sparse", "masked", "shuffled"})


@pytest.mark.parametrize("name", ALL)
def test_zarr_python_reads_h5pys_values_exactly(name: str, root: Path, base_url: str) -> None:
    assert_zarr_reads_exactly(f"{base_url}/{ROOT}/{name}.h5/data/0", root / f"{name}.h5", "gzip", CHUNKS)


@pytest.mark.parametrize("name", [*sorted(FILES), "sparse", "masked"])
def test_every_stored_chunk_is_its_deflate_data_in_a_gzip_member(
    name: str, root: Path, base_url: str
) -> None:
    url = f"{base_url}/{ROOT}/{name}.h5/data/0"
    counts = {"rewrapped": 0, "reencoded": 0, "absent": 0}
    with h5py.File(root / f"{name}.h5", "r") as f, httpx.Client() as client:
        dataset = f["data"]
        meta = client.get(f"{url}/zarr.json").json()
        assert meta["codecs"][-1] == {"name": "gzip", "configuration": {"level": dataset.compression_opts}}
        assert meta["codecs"][0]["configuration"]["endian"] == ("big" if name.startswith("be-") else "little")
        for coords in np.ndindex(*(-(-n // c) for n, c in zip(SHAPE, CHUNKS, strict=True))):
            response = client.get(f"{url}/c/" + "/".join(map(str, coords)))
            origin = tuple(i * c for i, c in zip(coords, CHUNKS, strict=True))
            if dataset.id.get_chunk_info_by_coord(origin).byte_offset is None:
                assert response.status_code == 404, coords
                counts["absent"] += 1
                continue
            assert response.status_code == 200, coords
            mask, stored = dataset.id.read_direct_chunk(origin)
            assert len(gzip.decompress(response.content)) == np.prod(CHUNKS) * dataset.dtype.itemsize
            if mask == 0:
                assert response.content[10:-8] == stored[2:-4], coords
                counts["rewrapped"] += 1
            else:
                counts["reencoded"] += 1
    assert counts["rewrapped"] > 0
    assert counts["reencoded"] == (1 if name == "masked" else 0)
    assert (counts["absent"] > 0) == (name == "sparse")


def test_tensorstore_reads_a_rewrapped_array_exactly(root: Path, base_url: str) -> None:
    tensorstore = pytest.importorskip("tensorstore")
    spec = {"driver": "zarr3", "kvstore": f"{base_url}/{ROOT}/u16-gzip9.h5/data/0/"}
    served = tensorstore.open(spec).result().read().result()
    assert np.asarray(served).tobytes() == read_data(root / "u16-gzip9.h5").tobytes()


@pytest.mark.parametrize("codec", ["auto", "zstd"])
def test_other_codecs_compress_deflate_chunks_afresh(codec: str, root: Path) -> None:
    settings = {"roots": {ROOT: str(root)}, "chunks": {"codec": codec, "min_yx": 64}}
    with serve(Settings.from_mapping(settings)) as url:
        array = zarr.open_array(f"{url}/{ROOT}/u16-gzip1.h5/data/0", mode="r")
        assert [c.to_dict()["name"] for c in array.metadata.codecs] == ["bytes", "zstd"]
        assert array[...].tobytes() == read_data(root / "u16-gzip1.h5").tobytes()
