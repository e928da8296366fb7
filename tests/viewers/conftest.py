"""The client compatibility suite: real clients read a real gateway on loopback.

Datasets are written once per session into a temp root ``lab``; what each client must
read is computed independently with tifffile (``Expected``). Client tools are installed
by ``.ci/run`` (pip extra ``clients``, ``npm ci`` in ``tests/viewers/js``, Debian's
``chromium``). A missing tool **fails** its tests; set ``OME_ZARR_GATEWAY_ALLOW_MISSING_CLIENTS=1``
to skip them instead (for a local run without the tools; never in CI).

The clients run in Node or Python read each dataset four times (``client_gateway`` is
parametrized): from a gateway serving plain chunks, from one serving virtual shards
(``[chunks] shard`` = ``SHARD``) whose last shards overhang the chunk grid and whose inner
chunks are partial at the array's edges, from one serving one-block blosc-zstd, and from
the browsing view (``/browse/``, the volume in slabs). The browser tests show a view from
several and compare the pictures.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import h5py
import numpy as np
import pytest
import tifffile

from gateway.config.settings import Settings
from gateway.demo import write_pyramid_ome_tiff, write_zstack_imagej
from tests.plates.writers import write_ome_tiff
from tests.pyramid_reference import reference_pyramid
from tests.server import serve

ALLOW_MISSING_ENV = "OME_ZARR_GATEWAY_ALLOW_MISSING_CLIENTS"
JS_DIR = Path(__file__).resolve().parent / "js"
CHROMIUM = os.environ.get("OME_ZARR_GATEWAY_CHROMIUM", "/usr/bin/chromium")
ROOT = "lab"
#: Inner chunks per shard along z, y and x. Three does not divide the chunk grids of these
#: datasets (2048² in 256² tiles: 8 per side; 40 planes; 4 chunks of 64 in y), so their
#: last shards overhang the grid; where a grid has fewer chunks the shard shrinks to it.
SHARD = (3, 3, 3)


def require(available: bool, what: str) -> None:
    """Fail (in CI) or skip (with the escape hatch set) when a client tool is missing."""
    if available:
        return
    if os.environ.get(ALLOW_MISSING_ENV) == "1":
        pytest.skip(f"{what} is missing ({ALLOW_MISSING_ENV}=1)")
    pytest.fail(f"{what} is missing: .ci/run installs it (set {ALLOW_MISSING_ENV}=1 to skip locally)")


def require_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        require(False, f"Python package {name!r} (pip install '.[clients]')")
        raise  # unreachable: require() fails or skips


def run_node(script: str, request: dict[str, Any]) -> Any:
    """Run ``tests/viewers/js/<script>`` with a JSON request; its JSON answer."""
    node = shutil.which("node")
    require(node is not None, "node")
    require((JS_DIR / "node_modules").is_dir(), f"npm packages in {JS_DIR} (npm ci)")
    done = subprocess.run(
        [str(node), script, json.dumps(request)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def sha256(array: np.ndarray) -> str:
    """Checksum of an array's little-endian C-order bytes (what JS typed arrays hold)."""
    import hashlib

    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return hashlib.sha256(np.ascontiguousarray(little).tobytes()).hexdigest()


@dataclass
class Expected:
    """What a dataset serves, read independently from the file with tifffile."""

    path: str  # URL path under the gateway
    groups: dict[str, list[np.ndarray]] = field(default_factory=dict)  # image group → levels

    def group_url(self, base: str, group: str = "") -> str:
        return f"{base}/{self.path}/" + (f"{group}/" if group else "")


def _ome_levels(path: Path, series: int = 0) -> list[np.ndarray]:
    with tifffile.TiffFile(path) as tif:
        return [level.asarray() for level in tif.series[series].levels]


def write_float64(path: Path) -> np.ndarray:
    """A float64 plane that no viewer shows as is: negative, fractional, striped, odd-sized."""
    y, x = np.mgrid[0:300, 0:500]
    data = (np.sin(y / 17.0) * np.cos(x / 23.0) * 1000.0 + x * 0.125 - 200.0).astype(np.float64)
    tifffile.imwrite(path, data, photometric="minisblack", rowsperstrip=64, compression="zlib")
    return data


def write_volume(path: Path) -> np.ndarray:
    """A shuffle + gzip HDF5 volume (h5py's ``shuffle=True``, as Imaris writes) in 16 x 64 x
    64 chunks, served as 3-D chunks of that shape: by default its stored zlib streams in
    blosc frames, with ``codec = "blosc-zstd"`` blosc-zstd made from the chunks still
    shuffled; partial in every axis: smooth structure to look at, plus noise so that every
    voxel counts."""
    z, y, x = np.mgrid[0:45, 0:200, 0:170]
    smooth = (np.sin(z / 5.0) + np.cos(y / 13.0) * np.sin(x / 11.0) + 2.0) * 8000.0
    noise = np.random.default_rng(7).integers(0, 500, smooth.shape)
    data = (smooth + noise).astype(np.uint16)
    with h5py.File(path, "w") as f:
        f.create_dataset("volume", data=data, chunks=(16, 64, 64), shuffle=True, compression="gzip")
    return data


#: Rows A-B, columns 1-3; wells A/1 (two fields: Image:0 and Image:1) and B/3 (Image:2).
PLATE_XML = (
    '<Plate ID="Plate:0" Name="viewers" Rows="2" Columns="3">'
    '<Well ID="Well:0" Row="0" Column="0">'
    '<WellSample ID="WellSample:0"><ImageRef ID="Image:0"/></WellSample>'
    '<WellSample ID="WellSample:1"><ImageRef ID="Image:1"/></WellSample></Well>'
    '<Well ID="Well:1" Row="1" Column="2">'
    '<WellSample ID="WellSample:2"><ImageRef ID="Image:2"/></WellSample></Well>'
    "</Plate>"
)


def write_plate(path: Path) -> dict[str, np.ndarray]:
    """An OME-TIFF plate of three uint16 fields (one plane each): field path → pixels."""
    planes = write_ome_tiff(path, PLATE_XML, 3, shape=(200, 300))
    return dict(zip(["A/1/0", "A/1/1", "B/3/0"], planes, strict=True))


def write_two_images(path: Path) -> list[np.ndarray]:
    """An OME-TIFF with two images (the bioformats2raw layout): int16 ZYX and uint8 CYX."""
    rng = np.random.default_rng(5)
    first = rng.integers(-3000, 3000, (4, 70, 90), dtype=np.int16)
    second = rng.integers(1, 255, (2, 64, 64), dtype=np.uint8)
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(first, metadata={"axes": "ZYX", "Name": "volume"}, photometric="minisblack")
        tif.write(second, metadata={"axes": "CYX", "Name": "channels"}, photometric="minisblack")
    return [first, second]


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Expected]]:
    root = tmp_path_factory.mktemp("viewers") / ROOT
    root.mkdir()
    found: dict[str, Expected] = {}

    pyramid = root / "pyramid-3channel.ome.tif"
    write_pyramid_ome_tiff(pyramid)
    found["pyramid"] = Expected(f"{ROOT}/{pyramid.name}", {"": _ome_levels(pyramid)})

    zstack = root / "zstack-imagej.tif"
    write_zstack_imagej(zstack)
    volume = tifffile.imread(zstack)  # no pyramid in the file: level 1 is synthesized (mean)
    shapes = [volume.shape, (volume.shape[0], *(-(-n // 2) for n in volume.shape[1:]))]
    found["zstack"] = Expected(f"{ROOT}/{zstack.name}", {"": reference_pyramid(volume, shapes, "mean")})

    float64 = root / "float64-plane.tif"
    data = write_float64(float64)
    found["float64"] = Expected(f"{ROOT}/{float64.name}", {"": [data], "float32": [data.astype(np.float32)]})

    two = root / "two-images.ome.tif"
    first, second = write_two_images(two)
    found["two"] = Expected(f"{ROOT}/{two.name}", {"0": [first], "1": [second]})

    hdf5 = root / "volume.h5"
    voxels = write_volume(hdf5)
    # isotropic (no voxel size): z halves with y/x until the coarsest level fits one chunk
    shapes = [(45, 200, 170), (23, 100, 85), (12, 50, 43)]
    found["volume"] = Expected(f"{ROOT}/{hdf5.name}", {"volume": reference_pyramid(voxels, shapes, "mean")})

    plate = root / "plate.ome.tif"
    found["plate"] = Expected(f"{ROOT}/{plate.name}", {f: [p] for f, p in write_plate(plate).items()})
    return root, found


def gateway_settings(root: Path, *, sharded: bool = False, **sections: Any) -> Settings:
    """Settings serving ``root`` as ``ROOT``; ``sharded``: arrays in shards of ``SHARD``."""
    mapping: dict[str, Any] = {"roots": {ROOT: str(root)}, **sections}
    if sharded:
        mapping["chunks"] = {**mapping.get("chunks", {}), "shard": list(SHARD)}
    return Settings.from_mapping(mapping)


@pytest.fixture(scope="session")
def gateway(datasets: tuple[Path, dict[str, Expected]]) -> Iterator[str]:
    """One gateway for the non-browser clients (all origins allowed)."""
    with serve(gateway_settings(datasets[0])) as base:
        yield base


@pytest.fixture(scope="session")
def sharded_gateway(datasets: tuple[Path, dict[str, Expected]]) -> Iterator[str]:
    """The same datasets, every array served in virtual shards of ``SHARD`` inner chunks."""
    with serve(gateway_settings(datasets[0], sharded=True)) as base:
        yield base


@pytest.fixture(scope="session")
def blosc_zstd_gateway(datasets: tuple[Path, dict[str, Expected]]) -> Iterator[str]:
    """The same datasets with ``[chunks] codec = "blosc-zstd"``: every transcoded chunk one
    blosc block (zstd over the byte-shuffled chunk), a block size no reader chooses itself."""
    with serve(gateway_settings(datasets[0], chunks={"codec": "blosc-zstd"})) as base:
        yield base


@pytest.fixture(scope="session")
def browse_gateway(datasets: tuple[Path, dict[str, Expected]]) -> Iterator[str]:
    """The same datasets in the browsing view (what the dataset pages link viewers to), with
    ``[browse] max_z = 4``: the volume's 16-plane chunks cut in slabs of 4 planes; its base
    URL ends in the view's prefix."""
    with serve(gateway_settings(datasets[0], browse={"max_z": 4})) as base:
        yield f"{base}/browse"


_CLIENT_GATEWAYS = {
    "unsharded": "gateway",
    "sharded": "sharded_gateway",
    "blosc-zstd": "blosc_zstd_gateway",
    "browse": "browse_gateway",
}


@pytest.fixture(scope="session", params=list(_CLIENT_GATEWAYS))
def client_gateway(request: pytest.FixtureRequest) -> str:
    """Each gateway in turn: what every client must read alike."""
    base: str = request.getfixturevalue(_CLIENT_GATEWAYS[request.param])
    return base
