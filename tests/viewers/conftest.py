"""The client compatibility suite: real clients read a real gateway on loopback.

Datasets are written once per session into a temp root ``lab``; what each client must
read is computed independently with tifffile (``Expected``). Client tools are installed
by ``.ci/run`` (pip extra ``clients``, ``npm ci`` in ``tests/viewers/js``, Debian's
``chromium``). A missing tool **fails** its tests; set ``OME_ZARR_GATEWAY_ALLOW_MISSING_CLIENTS=1``
to skip them instead (for a local run without the tools; never in CI).
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

import numpy as np
import pytest
import tifffile

from gateway.config.settings import Settings
from gateway.demo import write_pyramid_ome_tiff, write_zstack_imagej
from tests.pyramid_reference import reference_pyramid
from tests.server import serve

ALLOW_MISSING_ENV = "OME_ZARR_GATEWAY_ALLOW_MISSING_CLIENTS"
JS_DIR = Path(__file__).resolve().parent / "js"
CHROMIUM = os.environ.get("OME_ZARR_GATEWAY_CHROMIUM", "/usr/bin/chromium")
ROOT = "lab"


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
    return root, found


@pytest.fixture(scope="session")
def gateway(datasets: tuple[Path, dict[str, Expected]]) -> Iterator[str]:
    """One gateway for the non-browser clients (all origins allowed)."""
    root, _ = datasets
    with serve(Settings.from_mapping({"roots": {ROOT: str(root)}})) as base:
        yield base
