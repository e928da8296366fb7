"""Bit-exactness of HDF5 sources: a matrix of files written by h5py, read over HTTP.

Every variant is one file holding a dataset ``data`` (dtypes, chunked and contiguous
layouts, every filter the gateway decodes and some it leaves to h5py, fill values,
unallocated chunks, shapes not divisible by the chunks, big-endian data). One real
gateway per mode serves them all — lock-free reads (the default), lock-free reads off
(everything through h5py under one lock), and other served chunk settings — and
zarr-python 3 reads each image over HTTP; values, dtype and raw bytes (NaN payloads,
-0.0) must equal h5py's own reading of the dataset.

Variants whose chunks are zarr chunks as stored (a single blosc or zstd filter, square
power-of-two y/x) are also checked chunk by chunk: each allocated chunk must be served
byte for byte as stored (``read_direct_chunk``); ``test_passthrough_statistics`` counts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import httpx
import numpy as np
import pytest
import zarr
from ome_zarr_models.v05.image import Image as OmeImage

import adapters
from gateway.config.settings import Settings
from tests.hdf5.writers import pixels, smooth
from tests.server import serve

ROOT = "m"
SHAPE_2D = (50, 70)
CHUNK_2D = (16, 24)
SHAPE_3D = (20, 50, 70)
CHUNK_3D = (8, 16, 32)


@dataclass(frozen=True)
class Variant:
    """One file ``<name>.h5`` with a dataset ``data``."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)  # create_dataset keyword arguments
    fallback: bool = False  # read through h5py under the lock even when lock-free is on
    passthrough: bool = False  # its stored chunks are served as they are
    sparse: bool = False  # only some chunks are written (the others are unallocated)
    data: Callable[[tuple[int, ...], str], np.ndarray] | None = None
    masked: tuple[tuple[int, ...], ...] = ()  # chunks rewritten raw with filter mask 1

    @property
    def file(self) -> str:
        return f"{self.name}.h5"


def write(variant: Variant, path: Path) -> None:
    data = (variant.data or (lambda shape, dtype: pixels(shape, dtype, 3)))(variant.shape, variant.dtype)
    options = dict(variant.options)
    with h5py.File(path, "w") as f:
        if options.pop("compact", False):
            _create_compact(f, data)
            return
        if not variant.sparse:
            f.create_dataset("data", data=data, **options)
        else:
            dataset = f.create_dataset("data", shape=data.shape, dtype=data.dtype, **options)
            chunks = dataset.chunks or data.shape
            # every third chunk along the first dimension, and a corner region
            for start in range(0, data.shape[0], 3 * chunks[0]):
                region = (slice(start, start + chunks[0]), *(slice(0, c) for c in chunks[1:]))
                dataset[region] = data[region]
            corner = tuple(slice(n - 1, n) for n in data.shape)
            dataset[corner] = data[corner]
        for coords in variant.masked:
            dataset = f["data"]
            origin = tuple(i * c for i, c in zip(coords, dataset.chunks, strict=True))
            region = tuple(slice(o, o + c) for o, c in zip(origin, dataset.chunks, strict=True))
            block = np.zeros(dataset.chunks, dtype=dataset.dtype)
            part = data[region]
            block[tuple(slice(0, n) for n in part.shape)] = part
            dataset.id.write_direct_chunk(origin, block.tobytes(), filter_mask=1)


def _create_compact(f: h5py.File, data: np.ndarray) -> None:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.COMPACT)
    space = h5py.h5s.create_simple(data.shape)
    dataset = h5py.h5d.create(f.id, b"data", h5py.h5t.py_create(data.dtype), space, dcpl=dcpl)
    dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(data))


def incompressible(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Random bytes: LZF gives up on them, so HDF5 stores the chunks unfiltered (mask 1)."""
    return pixels(shape, dtype, 11)


def compressible(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return smooth(shape, dtype, 5, scale=100.0 if np.dtype(dtype).itemsize == 1 else 3000.0)


GZIP = {"compression": "gzip", "compression_opts": 4}
DTYPES = (
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "uint64",
    "int64",
    "float16",
    "float32",
    "float64",
    "bool",
)


def _filters(prefix: str, dtype: str) -> list[Variant]:
    chunked = {"chunks": CHUNK_3D}
    known: list[tuple[str, dict[str, Any]]] = [
        ("none", {}),
        ("gzip1", {"compression": "gzip", "compression_opts": 1}),
        ("gzip9", {"compression": "gzip", "compression_opts": 9}),
        ("shuffle", {"shuffle": True}),
        ("fletcher32", {"fletcher32": True}),
        ("shuffle-gzip-fletcher32", {"shuffle": True, "fletcher32": True, **GZIP}),
        ("lzf", {"compression": "lzf"}),
        ("shuffle-lzf", {"shuffle": True, "compression": "lzf"}),
        ("blosc-lz4-shuffle", dict(hdf5plugin.Blosc("lz4", 5, hdf5plugin.Blosc.SHUFFLE))),
        ("blosc-zstd-bitshuffle", dict(hdf5plugin.Blosc("zstd", 3, hdf5plugin.Blosc.BITSHUFFLE))),
        ("blosc-blosclz-noshuffle", dict(hdf5plugin.Blosc("blosclz", 9, hdf5plugin.Blosc.NOSHUFFLE))),
        ("blosc-zlib", dict(hdf5plugin.Blosc("zlib", 1, hdf5plugin.Blosc.SHUFFLE))),
        ("zstd", dict(hdf5plugin.Zstd(clevel=5))),
        ("lz4", dict(hdf5plugin.LZ4())),
        ("lz4-small-blocks", dict(hdf5plugin.LZ4(nbytes=1024))),
        ("fletcher32-zstd", {"fletcher32": True, **hdf5plugin.Zstd(clevel=1)}),
    ]
    variants = [
        Variant(f"{prefix}-{name}", dtype, SHAPE_3D, {**chunked, **options}, data=compressible)
        for name, options in known
    ]
    variants.append(
        Variant(f"{prefix}-lzf-incompressible", dtype, SHAPE_3D, {**chunked, "compression": "lzf"})
    )
    return variants


FALLBACKS: list[Variant] = [
    Variant("fallback-szip", "uint16", SHAPE_3D, {"chunks": CHUNK_3D, "compression": "szip"}, fallback=True),
    Variant("fallback-scaleoffset", "int32", SHAPE_3D, {"chunks": CHUNK_3D, "scaleoffset": 0}, fallback=True),
    Variant(
        "fallback-bitshuffle",
        "uint16",
        SHAPE_3D,
        {"chunks": CHUNK_3D, **hdf5plugin.Bitshuffle()},
        fallback=True,
    ),
    Variant(
        "fallback-blosc2", "float32", SHAPE_3D, {"chunks": CHUNK_3D, **hdf5plugin.Blosc2()}, fallback=True
    ),
    Variant("fallback-bzip2", "int16", SHAPE_3D, {"chunks": CHUNK_3D, **hdf5plugin.BZip2()}, fallback=True),
    Variant("fallback-compact", "uint16", (20, 30), {"compact": True}, fallback=True),
]

VARIANTS: list[Variant] = [
    *(Variant(f"dtype-{d}", d, SHAPE_2D, {"chunks": CHUNK_2D, "shuffle": True, **GZIP}) for d in DTYPES),
    *(Variant(f"contiguous-{d}", d, SHAPE_2D) for d in ("uint8", "int16", "float64", ">u2", ">f4")),
    Variant("contiguous-3d", "uint16", SHAPE_3D),
    # planes of 1.12 MB: virtual chunks are slabs of rows, the last one short
    Variant("contiguous-rows", "uint16", (3, 700, 800), data=compressible),
    Variant("contiguous-unwritten", "uint8", SHAPE_2D, {"fillvalue": 3}, sparse=True),
    *_filters("u16", "uint16"),
    *_filters("f32", "float32"),
    *(
        Variant(f"bigendian-{name}", dtype, SHAPE_3D, {"chunks": CHUNK_3D, **options}, data=compressible)
        for name, dtype, options in (
            ("gzip-u2", ">u2", GZIP),
            ("shuffle-gzip-i4", ">i4", {"shuffle": True, **GZIP}),
            ("blosc-f4", ">f4", dict(hdf5plugin.Blosc("lz4", 5, hdf5plugin.Blosc.SHUFFLE))),
            ("zstd-i8", ">i8", dict(hdf5plugin.Zstd())),
            ("none-f8", ">f8", {}),
        )
    ),
    Variant(
        "sparse-int16-fill", "int16", SHAPE_3D, {"chunks": CHUNK_3D, "fillvalue": -7, **GZIP}, sparse=True
    ),
    Variant("sparse-float-nan", "float32", SHAPE_3D, {"chunks": CHUNK_3D, "fillvalue": np.nan}, sparse=True),
    Variant(
        "sparse-uint8-default", "uint8", SHAPE_2D, {"chunks": CHUNK_2D, "compression": "lzf"}, sparse=True
    ),
    Variant("dims-4d", "uint16", (2, 3, 20, 30), {"chunks": (1, 1, 8, 16), **GZIP}),
    Variant("dims-5d", "uint8", (2, 2, 3, 20, 30), {"chunks": (1, 2, 3, 8, 8)}),
    Variant("dims-extendible", "uint16", SHAPE_2D, {"chunks": CHUNK_2D, "maxshape": (None, None)}),
    # pass-through: one blosc or zstd filter, square power-of-two y/x chunks
    Variant(
        "pass-zstd-planes",
        "uint16",
        (3, 300, 520),
        {"chunks": (1, 256, 256), **hdf5plugin.Zstd(clevel=3)},
        passthrough=True,
        data=compressible,
    ),
    Variant(
        "pass-blosc-cubes",
        "uint16",
        (70, 130, 100),
        {"chunks": (64, 64, 64), **hdf5plugin.Blosc("lz4", 5, hdf5plugin.Blosc.SHUFFLE)},
        passthrough=True,
        data=compressible,
    ),
    Variant(
        "pass-blosc-bigendian",
        ">f4",
        (40, 70, 90),
        {"chunks": (32, 32, 32), **hdf5plugin.Blosc("zstd", 2, hdf5plugin.Blosc.BITSHUFFLE)},
        passthrough=True,
        data=compressible,
    ),
    Variant(
        "pass-zstd-sparse",
        "int16",
        (130, 140, 150),
        {"chunks": (64, 64, 64), "fillvalue": 5, **hdf5plugin.Zstd()},
        passthrough=True,
        sparse=True,
        data=compressible,
    ),
    Variant(
        "pass-blosc-masked",
        "uint8",
        (2, 600, 300),
        {"chunks": (1, 256, 256), **hdf5plugin.Blosc("lz4", 1, hdf5plugin.Blosc.BITSHUFFLE)},
        passthrough=True,
        data=compressible,
        masked=((0, 1, 0), (1, 2, 1)),
    ),
    *FALLBACKS,
]

MODES = {
    "lock-free": {},
    "locked": {"hdf5": {"lock_free": False}},
    "chunked": {"chunks": {"codec": "blosc", "yx": 64, "min_yx": 32, "z": 4, "passthrough": False}},
}


# ---------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("hdf5-matrix")
    for variant in VARIANTS:
        write(variant, directory / variant.file)
    return directory


@pytest.fixture(scope="module", params=list(MODES))
def served(request: pytest.FixtureRequest, root: Path) -> Iterator[tuple[str, str]]:
    settings = Settings.from_mapping({"roots": {ROOT: str(root)}, **MODES[request.param]})
    with serve(settings) as url:
        yield request.param, url


@pytest.fixture(scope="module")
def base_url(root: Path) -> Iterator[str]:
    with serve(Settings.from_mapping({"roots": {ROOT: str(root)}})) as url:
        yield url


def expected(path: Path) -> np.ndarray:
    """h5py's reading of ``data``, native byte order, size-1 dimensions other than y/x
    dropped (the gateway's default axes keep the stored order)."""
    with h5py.File(path, "r") as f:
        data = np.asarray(f["data"][()])
    data = data.astype(data.dtype.newbyteorder("="))
    keep = tuple(i for i, n in enumerate(data.shape) if n != 1 or i >= data.ndim - 2)
    return data.reshape(tuple(data.shape[i] for i in keep))


def assert_bit_exact(served: np.ndarray, want: np.ndarray, what: str) -> None:
    assert served.dtype == want.dtype, (what, served.dtype, want.dtype)
    assert served.shape == want.shape, (what, served.shape, want.shape)
    assert served.tobytes() == want.tobytes(), what


def ids(variants: list[Variant]) -> list[str]:
    return [v.name for v in variants]


# ---------------------------------------------------------------------------------------
# Tests


def test_matrix_covers_the_issue() -> None:
    names = {v.name for v in VARIANTS}
    assert len(VARIANTS) >= 60
    for needed in (
        "u16-gzip1",
        "u16-shuffle",
        "u16-fletcher32",
        "u16-blosc-lz4-shuffle",
        "u16-zstd",
        "u16-lz4",
    ):
        assert needed in names
    assert any(v.sparse for v in VARIANTS) and any(v.passthrough for v in VARIANTS)
    assert any(">" in v.dtype for v in VARIANTS) and any("chunks" not in v.options for v in VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS, ids=ids(VARIANTS))
def test_bit_exact(variant: Variant, root: Path, served: tuple[str, str]) -> None:
    mode, base = served
    array = zarr.open_array(f"{base}/{ROOT}/{variant.file}/data/0", mode="r")
    assert_bit_exact(array[...], expected(root / variant.file), f"{variant.name} ({mode})")


@pytest.mark.parametrize("variant", VARIANTS, ids=ids(VARIANTS))
def test_fill_value_is_the_dataset_fill_value(variant: Variant, root: Path, base_url: str) -> None:
    array = zarr.open_array(f"{base_url}/{ROOT}/{variant.file}/data/0", mode="r")
    with h5py.File(root / variant.file, "r") as f:
        fill = f["data"].fillvalue
    served = np.asarray(array.metadata.fill_value)
    assert served.tobytes() == np.asarray(fill, dtype=served.dtype).tobytes(), (served, fill)


@pytest.mark.parametrize("variant", VARIANTS, ids=ids(VARIANTS))
def test_image_group_validates(variant: Variant, base_url: str) -> None:
    group = zarr.open_group(f"{base_url}/{ROOT}/{variant.file}/data", mode="r")
    OmeImage.from_zarr(group)
    assert zarr.open_group(f"{base_url}/{ROOT}/{variant.file}", mode="r").attrs.asdict() == {}


@pytest.mark.parametrize("variant", VARIANTS, ids=ids(VARIANTS))
def test_read_path(variant: Variant, root: Path) -> None:
    """Lock-free unless the variant needs h5py (and then the source says why)."""
    source = adapters.open_source(root / variant.file)
    try:
        fallback = [w for w in source.warnings if "under a lock" in w]
        assert bool(fallback) == variant.fallback, source.warnings
        locked = adapters.open_source(root / variant.file, options=adapters.OpenOptions(lock_free=False))
        try:
            assert any("lock-free reads are off" in w for w in locked.warnings)
        finally:
            locked.close()
    finally:
        source.close()


def test_unallocated_chunks_answer_404(base_url: str) -> None:
    """An all-unallocated served chunk is a 404 (clients fill it); an allocated one is not."""
    url = f"{base_url}/{ROOT}/sparse-int16-fill.h5/data/0"
    with httpx.Client() as client:
        chunks = client.get(f"{url}/zarr.json").json()["chunk_grid"]["configuration"]["chunk_shape"]
        assert chunks[0] == CHUNK_3D[0], chunks  # 3-D chunks follow the source's depth
        assert client.get(f"{url}/c/0/0/0").status_code == 200  # written
        assert client.get(f"{url}/c/{10 // chunks[0]}/0/0").status_code == 404  # z=8..15: never written


PASSTHROUGH = [v for v in VARIANTS if v.passthrough]
_stats: dict[str, dict[str, int]] = {}


@pytest.mark.parametrize("variant", PASSTHROUGH, ids=ids(PASSTHROUGH))
def test_stored_chunks_are_served_untouched(variant: Variant, root: Path, base_url: str) -> None:
    url = f"{base_url}/{ROOT}/{variant.file}/data/0"
    counts = {"chunks": 0, "untouched": 0, "unallocated": 0, "reencoded": 0}
    with h5py.File(root / variant.file, "r") as f, httpx.Client() as client:
        dataset = f["data"]
        meta = client.get(f"{url}/zarr.json").json()
        assert meta["chunk_grid"]["configuration"]["chunk_shape"] == list(dataset.chunks)
        name = "blosc" if "blosc" in variant.name else "zstd"
        assert [c["name"] for c in meta["codecs"]] == ["bytes", name]
        endian = "big" if variant.dtype.startswith(">") else "little"
        assert meta["codecs"][0]["configuration"]["endian"] == endian
        grid = [-(-n // c) for n, c in zip(dataset.shape, dataset.chunks, strict=True)]
        for coords in np.ndindex(*grid):
            counts["chunks"] += 1
            response = client.get(f"{url}/c/" + "/".join(str(i) for i in coords))
            origin = tuple(i * c for i, c in zip(coords, dataset.chunks, strict=True))
            info = dataset.id.get_chunk_info_by_coord(origin)
            if info.byte_offset is None:
                assert response.status_code == 404, coords
                counts["unallocated"] += 1
                continue
            assert response.status_code == 200, coords
            mask, stored = dataset.id.read_direct_chunk(origin)
            if mask == 0:
                assert response.content == stored, coords
                counts["untouched"] += 1
            else:
                assert response.content != stored, coords
                counts["reencoded"] += 1
    assert counts["untouched"] > 0
    assert counts["reencoded"] == len(variant.masked)
    _stats[variant.name] = counts


def test_passthrough_statistics() -> None:
    """Runs after the test above (file order): how often pass-through applied."""
    if len(_stats) != len(PASSTHROUGH):
        pytest.skip("run with the pass-through tests")
    total = {
        k: sum(s[k] for s in _stats.values()) for k in ("chunks", "untouched", "unallocated", "reencoded")
    }
    print(f"\npass-through: {total} over {len(_stats)} arrays: {_stats}")
    assert total["untouched"] >= 30
