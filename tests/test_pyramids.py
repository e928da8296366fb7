"""Synthesized pyramids, read over HTTP by zarr-python from a real gateway, compared
bit-exactly with the numpy reference (``tests/pyramid_reference.py``) computed here from
the full-resolution array: intensity (mean) and label (mode, nearest) images, 2-D and 3-D,
odd shapes, every integer width, floats; the z policy; scale and translation; native
pyramids extended; the settings; and the read count of one coarsest chunk of a 1 GiB stack.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest
import tifffile
import zarr

import adapters.io.chunked
import adapters.io.files
from gateway.config.settings import Settings
from tests.pyramid_reference import reference_pyramid, synthesized_paths
from tests.server import serve

ROOT = "data"
#: Small chunks, so that small files get several levels.
CHUNKS = {"yx": 32, "min_yx": 16}


def _ints(dtype: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def _labels(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Blobs of a few values with ragged edges: ties and majorities both happen."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 5, tuple(-(-n // 3) for n in shape))
    labels = coarse.repeat(3, 0)[: shape[0]].repeat(3, 1)[:, : shape[1]]
    if len(shape) == 3:
        labels = labels.repeat(3, 2)[:, :, : shape[2]]
    noise = rng.random(shape) < 0.2
    return np.where(noise, rng.integers(0, 5, shape), labels).astype(np.uint32)


@dataclass(frozen=True)
class Case:
    name: str
    data: np.ndarray  # level 0 as served (t, c, z, y, x order)
    shapes: tuple[tuple[int, ...], ...]  # every served level, per the rules
    write: Callable[[Path, np.ndarray], None]
    group: str = ""
    method: str = "mean"


def _plain(path: Path, data: np.ndarray) -> None:
    tifffile.imwrite(path, data, photometric="minisblack", rowsperstrip=16)


def _imagej_anisotropic(path: Path, data: np.ndarray) -> None:
    # 0.5 µm pixels, 2 µm planes: z is 4x coarser than y/x
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"},
        rowsperstrip=16,
    )


def _ome(axes: str) -> Callable[[Path, np.ndarray], None]:
    def write(path: Path, data: np.ndarray) -> None:
        tifffile.imwrite(path, data, ome=True, metadata={"axes": axes}, photometric="minisblack")

    return write


def _hdf5(dataset: str) -> Callable[[Path, np.ndarray], None]:
    def write(path: Path, data: np.ndarray) -> None:
        with h5py.File(path, "a") as f:
            f.create_dataset(dataset, data=data, chunks=tuple(min(16, n) for n in data.shape))

    return write


RAW3D = _ints("uint16", (11, 150, 97), 3)
LABEL3D = _labels((11, 150, 97), 4)

CASES = [
    # 2-D, odd: 301 x 517 → 151 x 259 → ... until the plane fits a 32-pixel chunk
    Case("u8_2d_odd.tif", _ints("uint8", (301, 517), 1), ((301, 517), (151, 259), (76, 130), (38, 65), (19, 33), (10, 17)), _plain),
    Case("i8_2d.tif", _ints("int8", (64, 40), 2), ((64, 40), (32, 20)), _plain),
    # 3-D isotropic (no pixel size: 1 x 1 x 1): z halves with y/x
    Case("u16_3d_odd.tif", RAW3D, ((11, 150, 97), (6, 75, 49), (3, 38, 25), (2, 19, 13)), _plain),
    # 3-D anisotropic: z stays until halving it brings the voxel closer to a cube
    Case("i16_3d_aniso.tif", _ints("int16", (6, 256, 256), 5), ((6, 256, 256), (6, 128, 128), (6, 64, 64), (3, 32, 32)), _imagej_anisotropic),
    Case("u32_2d.tif", _ints("uint32", (33, 70), 6), ((33, 70), (17, 35), (9, 18)), _plain),
    Case("i32_2d.tif", _ints("int32", (70, 33), 7), ((70, 33), (35, 17), (18, 9)), _plain),
    Case("u64_2d.tif", _ints("uint64", (45, 45), 8), ((45, 45), (23, 23)), _plain),
    Case("i64_2d.tif", _ints("int64", (45, 45), 9), ((45, 45), (23, 23)), _plain),
    Case(
        "f32_3d.tif",
        np.random.default_rng(10).standard_normal((5, 67, 35)).astype(np.float32) * 1000,
        ((5, 67, 35), (3, 34, 18), (2, 17, 9)),
        _plain,
    ),
    Case(
        "f64_2d.tif",
        np.random.default_rng(11).standard_normal((40, 65)) * 1e6,
        ((40, 65), (20, 33), (10, 17)),
        _plain,
    ),
    # channels and time are never reduced
    Case("cyx.ome.tif", _ints("uint16", (3, 70, 50), 12), ((3, 70, 50), (3, 35, 25), (3, 18, 13)), _ome("CYX")),
    Case("tzyx.ome.tif", _ints("uint8", (2, 3, 40, 40), 13), ((2, 3, 40, 40), (2, 2, 20, 20)), _ome("TZYX")),
    # a label image served on its own, declared as the label of u16_3d_odd.tif: mode
    Case("labels3d.tif", LABEL3D, ((11, 150, 97), (6, 75, 49), (3, 38, 25), (2, 19, 13)), _plain, method="mode"),
    # HDF5: every dtype path through the HDF5 adapter; a bool mask
    Case("h5.h5", np.random.default_rng(14).random((9, 37, 41)) > 0.5, ((9, 37, 41), (5, 19, 21), (3, 10, 11)), _hdf5("mask"), group="mask"),
    Case("h5.h5", _ints("int16", (9, 37, 41), 15), ((9, 37, 41), (5, 19, 21), (3, 10, 11)), _hdf5("raw"), group="raw"),
    Case("h5.h5", _labels((9, 37, 41), 16).astype(np.int32), ((9, 37, 41), (5, 19, 21), (3, 10, 11)), _hdf5("seg"), group="seg", method="mode"),
]  # fmt: skip
LABELS = [
    {"image": f"{ROOT}/u16_3d_odd.tif", "source": f"{ROOT}/labels3d.tif", "name": "cells"},
    {"image": f"{ROOT}/h5.h5/raw", "source": f"{ROOT}/h5.h5/seg", "name": "seg"},
]


def _case_id(case: Case) -> str:
    return f"{case.name}/{case.group}" if case.group else case.name


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pyramids") / ROOT
    folder.mkdir()
    for case in CASES:
        case.write(folder / case.name, case.data)
    return folder


@pytest.fixture(scope="module")
def base(root: Path) -> Iterator[str]:
    settings = Settings.from_mapping({"roots": {ROOT: str(root)}, "chunks": CHUNKS, "labels": LABELS})
    with serve(settings) as url:
        yield url


def _group(base: str, case: Case, suffix: str = "") -> zarr.Group:
    path = f"{base}/{ROOT}/{case.name}" + (f"/{case.group}" if case.group else "") + suffix
    return zarr.open_group(path, mode="r")


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_levels_have_the_shapes_the_rules_give(base: str, case: Case) -> None:
    group = _group(base, case)
    paths = [d["path"] for d in group.attrs["ome"]["multiscales"][0]["datasets"]]
    assert tuple(group[p].shape for p in paths) == case.shapes
    assert synthesized_paths(group) == paths[1:]


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_every_synthesized_level_equals_the_numpy_reference(base: str, case: Case) -> None:
    group = _group(base, case)
    expected = reference_pyramid(case.data, case.shapes, case.method)
    for k, want in enumerate(expected):
        served = group[str(k)][...]
        assert served.dtype == want.dtype
        np.testing.assert_array_equal(served, want, err_msg=f"{_case_id(case)} level {k}", strict=True)


def test_label_pyramid_under_the_image_uses_the_mode(base: str) -> None:
    case = next(c for c in CASES if c.name == "u16_3d_odd.tif")
    labels = _group(base, case, "/labels")
    assert labels.attrs["ome"]["labels"] == ["cells"]
    cells = _group(base, case, "/labels/cells")
    assert cells.attrs["ome"]["image-label"] == {"source": {"image": "../../"}}
    expected = reference_pyramid(LABEL3D, case.shapes, "mode")
    paths = [d["path"] for d in cells.attrs["ome"]["multiscales"][0]["datasets"]]
    assert len(paths) == len(case.shapes)  # as many levels as the image (the spec's MUST)
    for path, want in zip(paths, expected, strict=True):
        np.testing.assert_array_equal(cells[path][...], want, strict=True)
        assert set(np.unique(cells[path][...])) <= set(np.unique(LABEL3D))  # no invented value


def test_the_dataset_page_lists_labels_with_their_image(base: str) -> None:
    (image,) = httpx.get(f"{base}/{ROOT}/u16_3d_odd.tif/", params={"format": "json"}).json()["images"]
    assert [label["name"] for label in image["labels"]] == ["cells"]
    assert [level["path"] for level in image["levels"]] == ["0", "1", "2", "3"]


def test_hdf5_label_dataset_beside_the_raw_one(base: str) -> None:
    raw = next(c for c in CASES if c.group == "raw")
    seg = next(c for c in CASES if c.group == "seg")
    group = _group(base, raw, "/labels/seg")
    expected = reference_pyramid(seg.data, raw.shapes, "mode")
    for k, want in enumerate(expected):
        np.testing.assert_array_equal(group[str(k)][...], want, strict=True)


def test_mean_levels_are_centred_on_their_blocks(base: str) -> None:
    case = next(c for c in CASES if c.name == "i16_3d_aniso.tif")
    multiscale = _group(base, case).attrs["ome"]["multiscales"][0]
    transforms = [d["coordinateTransformations"] for d in multiscale["datasets"]]
    scales = [t[0]["scale"] for t in transforms]
    translations = [t[1]["translation"] for t in transforms]
    assert scales == [[2, 0.5, 0.5], [2, 1, 1], [2, 2, 2], [4, 4, 4]]
    # half a finer pixel per halving: 0.25, then + 0.5, then + 1 (and z once: + 1)
    assert translations == [[0, 0, 0], [0, 0.25, 0.25], [0, 0.75, 0.75], [1, 1.75, 1.75]]
    assert multiscale["type"] == "mean"


def test_native_pyramid_that_stops_early_is_extended(tmp_path: Path) -> None:
    data = _ints("uint16", (2, 300, 260), 20)
    levels = [data, data[:, ::2, ::2]]  # a native level 1 that is not a mean: kept as is
    with tifffile.TiffWriter(tmp_path / "native.ome.tif", ome=True) as tif:
        tif.write(levels[0], subifds=1, metadata={"axes": "CYX"}, photometric="minisblack")
        tif.write(levels[1], subfiletype=1, photometric="minisblack")
    settings = Settings.from_mapping({"roots": {ROOT: str(tmp_path)}, "chunks": CHUNKS})
    with serve(settings) as url:
        group = zarr.open_group(f"{url}/{ROOT}/native.ome.tif", mode="r")
        paths = [d["path"] for d in group.attrs["ome"]["multiscales"][0]["datasets"]]
        assert synthesized_paths(group) == paths[2:]
        assert "type" not in group.attrs["ome"]["multiscales"][0]  # the native method is unknown
        shapes = [group[p].shape for p in paths]
        assert shapes == [(2, 300, 260), (2, 150, 130), (2, 75, 65), (2, 38, 33), (2, 19, 17)]
        expected = reference_pyramid(levels[1], shapes[1:], "mean")  # from native level 1
        for path, want in zip(paths[1:], expected, strict=True):
            np.testing.assert_array_equal(group[path][...], want, strict=True)


@pytest.mark.parametrize(
    ("section", "levels"),
    [({"enabled": False}, 1), ({"max_levels": 3}, 3), ({"max_levels": 1}, 1), ({}, 6)],
)
def test_settings_turn_pyramids_off_or_bound_them(
    tmp_path: Path, section: dict[str, object], levels: int
) -> None:
    _plain(tmp_path / "plane.tif", _ints("uint8", (301, 517), 1))
    settings = Settings.from_mapping({"roots": {ROOT: str(tmp_path)}, "chunks": CHUNKS, "pyramids": section})
    with serve(settings) as url:
        group = zarr.open_group(f"{url}/{ROOT}/plane.tif", mode="r")
        assert len(group.attrs["ome"]["multiscales"][0]["datasets"]) == levels


@pytest.mark.parametrize("method", ["nearest", "mean"])
def test_method_setting(tmp_path: Path, method: str) -> None:
    data = _ints("uint8", (70, 90), 21)
    labels = _labels((70, 90), 22)
    _plain(tmp_path / "image.tif", data)
    _plain(tmp_path / "labels.tif", labels)
    settings = Settings.from_mapping(
        {
            "roots": {ROOT: str(tmp_path)},
            "chunks": CHUNKS,
            "pyramids": {"method": method, "label_method": "nearest"},
            "labels": [{"image": f"{ROOT}/image.tif", "source": f"{ROOT}/labels.tif"}],
        }
    )
    with serve(settings) as url:
        image = zarr.open_group(f"{url}/{ROOT}/image.tif", mode="r")
        shapes = [image[str(k)].shape for k in range(3)]
        np.testing.assert_array_equal(
            image["2"][...], reference_pyramid(data, shapes, method)[2], strict=True
        )
        label = zarr.open_group(f"{url}/{ROOT}/image.tif/labels/labels", mode="r")
        np.testing.assert_array_equal(label["2"][...], labels[::4, ::4], strict=True)
        transforms = label.attrs["ome"]["multiscales"][0]["datasets"][2]["coordinateTransformations"]
        assert transforms[0]["scale"] == [4.0, 4.0]
        assert len(transforms) == 1 or transforms[1]["translation"] == [0.0, 0.0]  # nearest: no shift


# -- one pass over a 1 GiB stack --------------------------------------------------------

GIB_SHAPE = (64, 4096, 4096)  # uint8: 1 GiB of pixels
TILE = 512


def _tile_values() -> np.ndarray:
    """One value per 512 x 512 tile (z, tile row, tile column): smooth, varied."""
    z, ty, tx = np.meshgrid(np.arange(64), np.arange(8), np.arange(8), indexing="ij")
    return ((z * 7 + ty * 13 + tx * 29) % 251).astype(np.uint8)


def _write_gib_stack(path: Path) -> None:
    values = _tile_values()

    def tiles() -> Iterator[np.ndarray]:
        for z in range(GIB_SHAPE[0]):
            for ty in range(8):
                for tx in range(8):
                    yield np.full((TILE, TILE), values[z, ty, tx], np.uint8)

    # zstd tiles of constant data: ~200 kB on disk for 1 GiB of pixels
    tifffile.imwrite(
        path, tiles(), shape=GIB_SHAPE, dtype=np.uint8, tile=(TILE, TILE), compression="zstd", bigtiff=True
    )


class ReadLog:
    """Every positional read of one file: (offset, size)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.reads: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def record(self, path: Path, offset: int, size: int) -> None:
        if path.name == self.name:
            with self._lock:
                self.reads.append((offset, size))

    def take(self) -> list[tuple[int, int]]:
        with self._lock:
            reads, self.reads = self.reads, []
        return reads


def test_one_chunk_of_the_coarsest_level_reads_a_gib_stack_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gib.tif"
    _write_gib_stack(path)
    log = ReadLog(path.name)
    original = adapters.io.files.PositionalFile.pread

    def counting_pread(self: adapters.io.files.PositionalFile, offset: int, size: int) -> bytes:
        log.record(self.path, offset, size)
        return original(self, offset, size)

    monkeypatch.setattr(adapters.io.files.PositionalFile, "pread", counting_pread)
    # These tiles compress to ~26 bytes, so the rule that fetches tiles less than 16 KiB
    # apart in one read would also fetch tiles of other blocks; without it, a tile read
    # twice is a byte range read twice (real tiles are far larger than such gaps).
    monkeypatch.setattr(adapters.io.chunked, "COALESCE_GAP_BYTES", 0)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        tiles = sorted(
            (int(o), int(n)) for p in tif.pages for o, n in zip(p.dataoffsets, p.databytecounts, strict=True)
        )
        assert len(page.dataoffsets) == 64 and len(tif.pages) == GIB_SHAPE[0]
    # z chunks of 64 planes: the coarsest level's one chunk covers the whole stack, so
    # answering it needs every level below it, down to every tile of the file
    # (no window estimate: it would read one plane when the file is opened)
    settings = Settings.from_mapping(
        {
            "roots": {ROOT: str(tmp_path)},
            "chunks": {"z": 64},
            "cache": {"tile_bytes": "256 MiB"},
            "metadata": {"estimate_windows": False},
        }
    )
    with serve(settings) as url:
        group = zarr.open_group(f"{url}/{ROOT}/gib.tif", mode="r")
        shapes = [group[str(k)].shape for k in range(4)]
        assert shapes == [(64, 4096, 4096), (32, 2048, 2048), (16, 1024, 1024), (8, 512, 512)]
        assert group["3"].chunks == (8, 512, 512)
        log.take()  # opening the file and the metadata

        coarsest = group["3"][...]  # one chunk

        reads = sorted(log.take())
        end = 0
        for offset, size in reads:  # no byte twice...
            assert offset >= end, "a byte range of the file was read twice"
            end = offset + size
        read_tiles = [(o, n) for o, n in tiles if any(r <= o and o + n <= r + size for r, size in reads)]
        assert read_tiles == tiles  # ...and every tile once: 4096 tiles, 1 GiB of pixels
        # constant tiles: the pyramid is the z-reduction of the tile values, repeated
        values = _tile_values()
        for _ in range(3):
            values = reference_pyramid(values, [values.shape, (values.shape[0] // 2, 8, 8)], "mean")[1]
        np.testing.assert_array_equal(coarsest, values.repeat(64, 1).repeat(64, 2), strict=True)

        # the levels between were computed once, through the tile cache: a chunk of
        # level 2 now reads nothing from the file
        group["2"][0:16, 0:512, 0:512]
        assert log.take() == []
