"""``ome-zarr-gateway export``: a dataset written to a folder with exactly the bytes the
gateway serves (in-process and over HTTP), readable by zarr-python bit-exactly, valid
OME-Zarr 0.5; absent chunks not written; resumable; nothing half-written on failure."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr_models.v05.image import Image
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import LocalStore

import gateway.store.dataset
from gateway.cli import main
from gateway.config.settings import Settings
from gateway.export import MARKER, ExportError, ExportFailed, chunk_keys, export_file, write_atomically
from gateway.store.inprocess import MountedStore, open_store
from tests.ngff_schemas import kind_of, validate
from tests.server import serve

ROOT = "lab"
TIFF = "two.ome.tif"
HDF5 = "volume.h5"


def _write_tiff(path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    volume = rng.integers(0, 4000, (5, 300, 260), dtype=np.uint16)
    small = rng.integers(0, 255, (2, 64, 64), dtype=np.uint8)
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(volume, metadata={"axes": "ZYX", "Name": "volume"}, photometric="minisblack")
        tif.write(small, metadata={"axes": "CYX", "Name": "small"}, photometric="minisblack")
    return {"0/0": volume, "1/0": small}


def _write_hdf5(path: Path) -> dict[str, np.ndarray]:
    """A chunked volume whose second half was never written: those chunks are absent."""
    data = np.zeros((6, 256, 200), np.uint16)
    data[:3] = np.random.default_rng(2).integers(1, 999, (3, 256, 200), dtype=np.uint16)
    with h5py.File(path, "w") as f:
        dataset = f.create_dataset("volume", shape=data.shape, dtype=data.dtype, chunks=(1, 64, 64))
        dataset[:3] = data[:3]
    return {"volume/0": data}


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    root = tmp_path_factory.mktemp("export") / ROOT
    root.mkdir()
    return root, {TIFF: _write_tiff(root / TIFF), HDF5: _write_hdf5(root / HDF5)}


@pytest.fixture(scope="module")
def settings(dataset_root: tuple[Path, dict[str, dict[str, np.ndarray]]]) -> Settings:
    root, _ = dataset_root
    return Settings.from_mapping(
        {
            "roots": {ROOT: str(root)},
            "chunks": {"yx": 128},
            "rocrate": [{"dataset": f"{ROOT}/*.tif", "name": "exported", "license": "CC0-1.0"}],
            "server": {"threads": 2},
        }
    )


@pytest.fixture(scope="module")
def exports(
    settings: Settings,
    dataset_root: tuple[Path, dict[str, dict[str, np.ndarray]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    root, _ = dataset_root
    folders = {}
    for name in (TIFF, HDF5):
        folders[name] = tmp_path_factory.mktemp("out") / name
        export_file(root / name, folders[name], settings)
    return folders


def _files(folder: Path) -> dict[str, Path]:
    return {
        p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file() and p.name != MARKER
    }


def _store_values(store: zarr.abc.store.Store, keys: list[str]) -> list[bytes | None]:
    async def read() -> list[bytes | None]:
        prototype = default_buffer_prototype()
        found = await asyncio.gather(*(store.get(key, prototype) for key in keys))
        return [None if buffer is None else buffer.to_bytes() for buffer in found]

    return asyncio.run(read())


def _all_keys(folder: Path) -> list[str]:
    """Every document key of an export and every chunk key its arrays declare."""
    keys = list(_files(folder))
    for key in list(keys):
        if key.rpartition("/")[2] == "zarr.json":
            metadata = json.loads((folder / key).read_bytes())
            if metadata["node_type"] == "array":
                keys += chunk_keys(key, metadata)
    return keys


@pytest.mark.parametrize("name", [TIFF, HDF5])
def test_every_object_is_the_served_bytes_and_absent_chunks_are_not_written(
    settings: Settings, exports: dict[str, Path], name: str
) -> None:
    folder = exports[name]
    keys = _all_keys(folder)
    store = MountedStore(settings)
    try:
        served = _store_values(store, [f"{ROOT}/{name}/{key}" for key in keys])
    finally:
        store.close()
    files = _files(folder)
    for key, value in zip(keys, served, strict=True):
        if value is None:  # all fill: not written
            assert key not in files, key
        else:
            assert files[key].read_bytes() == value, key
    assert set(files) == {k for k, v in zip(keys, served, strict=True) if v is not None}
    assert not list(folder.rglob("*.partial"))
    if name == HDF5:
        assert served.count(None) >= 3 * 2 * 2  # the unwritten half of level 0, at least
    else:
        assert "ro-crate-metadata.json" in files  # configured for lab/*.tif
        assert "OME/METADATA.ome.xml" in files


def test_the_export_equals_the_http_answers(settings: Settings, exports: dict[str, Path]) -> None:
    with serve(settings) as base, httpx.Client() as client:
        for name, folder in exports.items():
            for key, path in _files(folder).items():
                response = client.get(f"{base}/{ROOT}/{name}/{key}")
                assert response.status_code == 200, key
                assert response.content == path.read_bytes(), key


def test_a_file_outside_every_root_is_exported_as_open_store_serves_it(
    dataset_root: tuple[Path, dict[str, dict[str, np.ndarray]]], tmp_path: Path
) -> None:
    root, _ = dataset_root
    settings = Settings.from_mapping({"chunks": {"yx": 128}, "server": {"threads": 2}})
    done = export_file(root / TIFF, tmp_path / "out", settings)
    files = _files(tmp_path / "out")
    assert "ro-crate-metadata.json" not in files
    store = open_store(root / TIFF, settings)
    try:
        assert _store_values(store, list(files)) == [p.read_bytes() for p in files.values()]
    finally:
        store.close()
    assert done.written == len(files)


@pytest.mark.parametrize("name", [TIFF, HDF5])
def test_zarr_python_reads_the_export_bit_exactly(
    dataset_root: tuple[Path, dict[str, dict[str, np.ndarray]]], exports: dict[str, Path], name: str
) -> None:
    _, expected = dataset_root
    group = zarr.open_group(store=LocalStore(exports[name], read_only=True), mode="r")
    for path, data in expected[name].items():
        array = group[path]
        assert isinstance(array, zarr.Array)
        np.testing.assert_array_equal(array[...], data)


@pytest.mark.parametrize("name", [TIFF, HDF5])
def test_every_group_of_the_export_validates_as_ome_zarr_05(exports: dict[str, Path], name: str) -> None:
    folder = exports[name]
    images = 0
    for key in _files(folder):
        if key.rpartition("/")[2] != "zarr.json":
            continue
        path = key.removesuffix("zarr.json").rstrip("/")
        if json.loads((folder / key).read_bytes())["node_type"] != "group":
            continue
        group = zarr.open_group(store=LocalStore(folder, read_only=True), path=path, mode="r")
        attributes = group.attrs.asdict()
        for kind in kind_of(attributes, "0.5"):
            validate(attributes, "0.5", kind)
        if "multiscales" in attributes.get("ome", {}):
            Image.from_zarr(group)
            images += 1
    assert images == (2 if name == TIFF else 1)


def test_a_rerun_skips_every_complete_object(
    settings: Settings, dataset_root: tuple[Path, dict[str, dict[str, np.ndarray]]], exports: dict[str, Path]
) -> None:
    root, _ = dataset_root
    folder = exports[HDF5]
    before = {key: path.stat().st_mtime_ns for key, path in _files(folder).items()}
    done = export_file(root / HDF5, folder, settings)
    assert (done.written, done.skipped) == (0, len(before))
    assert {key: path.stat().st_mtime_ns for key, path in _files(folder).items()} == before
    assert "already complete (skipped)" in done.summary()


def test_a_failure_midway_leaves_no_partial_object_and_a_rerun_completes_it(
    settings: Settings,
    dataset_root: tuple[Path, dict[str, dict[str, np.ndarray]]],
    exports: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, _ = dataset_root
    render = gateway.store.dataset.render_chunk
    calls = 0

    def failing(node, coords, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 4:
            raise OSError("injected read error")
        return render(node, coords, *args, **kwargs)

    monkeypatch.setattr(gateway.store.dataset, "render_chunk", failing)
    folder = tmp_path / "out"
    with pytest.raises(ExportFailed) as failed:
        export_file(root / TIFF, folder, settings, concurrency=2)
    assert "/c/" in failed.value.key
    assert "injected read error" in str(failed.value)
    assert not list(folder.rglob("*.partial"))
    assert not (folder / "zarr.json").exists()  # documents come last: unfinished is visible
    kept = _files(folder)
    assert kept  # what was complete is kept

    monkeypatch.setattr(gateway.store.dataset, "render_chunk", render)
    done = export_file(root / TIFF, folder, settings)
    assert done.skipped == len(kept)
    final = _files(folder)
    assert {k: p.read_bytes() for k, p in final.items()} == {
        k: p.read_bytes() for k, p in _files(exports[TIFF]).items()
    }


def test_the_command_line_reports_a_failure_by_key(
    dataset_root: tuple[Path, dict[str, dict[str, np.ndarray]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, _ = dataset_root

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("injected read error")

    monkeypatch.setattr(gateway.store.dataset, "render_chunk", failing)
    assert main(["export", str(root / HDF5), str(tmp_path / "out"), "--threads", "2"]) == 1
    err = capsys.readouterr().err
    assert "error: export stopped at 'volume/0/c/" in err
    assert "injected read error" in err
    assert "run the same command again to resume" in err
    assert not list((tmp_path / "out").rglob("*.partial"))


def test_the_command_line_exports_and_summarises(
    dataset_root: tuple[Path, dict[str, dict[str, np.ndarray]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, _ = dataset_root
    assert main(["export", str(root / TIFF), str(tmp_path / "out"), "--threads", "2"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err  # not a terminal: the summary only
    assert f"exported {root / TIFF} to {tmp_path / 'out'}: " in err
    assert (tmp_path / "out" / "zarr.json").exists()
    assert main(["export", str(root / TIFF), str(tmp_path / "out")]) == 0
    assert "0 objects written" in capsys.readouterr().err


def test_a_folder_that_is_not_an_export_of_the_source_is_refused(
    settings: Settings,
    dataset_root: tuple[Path, dict[str, dict[str, np.ndarray]]],
    exports: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, _ = dataset_root
    with pytest.raises(ExportError, match="another source"):
        export_file(root / TIFF, exports[HDF5], settings)  # an export of another file
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["export", str(root / TIFF), str(foreign)]) == 2
    assert "holds no export" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    export_file(root / TIFF, empty, settings)  # an empty folder is fine
    assert (empty / "zarr.json").exists()


def test_a_source_that_cannot_be_served_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    assert main(["export", str(tmp_path / "notes.txt"), str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'notes.txt'}")
    assert not (tmp_path / "out").exists()


def test_an_interrupted_write_leaves_neither_the_object_nor_its_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Path, target: Path) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(tmp_path / "a" / "zarr.json", b"{}")
    assert list((tmp_path / "a").iterdir()) == []


@pytest.fixture(autouse=True)
def _no_leaked_partials(tmp_path: Path) -> Iterator[None]:
    yield
    assert not list(tmp_path.rglob("*.partial"))
