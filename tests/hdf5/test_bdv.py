"""BigDataViewer datasets over HTTP: the shared pybdv sample and generated XML + HDF5 pairs.

Pixels must equal h5py's reading of ``t<tp>/s<setup>/<level>/cells`` (int16 seen as
uint16); scale, units, translation, chunking and channel names must follow the XML and
the HDF5 tables (``resolutions``, ``subdivisions``), and every image group must validate.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import h5py
import hdf5plugin
import httpx
import numpy as np
import pytest
import zarr
from ome_zarr_models.v05.image import Image as OmeImage

import adapters
from gateway.config.settings import Settings
from tests.hdf5.writers import BdvSetup, smooth, write_bdv
from tests.pyramid_reference import synthesized_paths
from tests.server import serve

SAMPLE = "pybdv_derived/cells3d_stardist"


@pytest.fixture(scope="module")
def shared_url(shared_data: Path) -> Iterator[str]:
    with serve(Settings.from_mapping({"roots": {"shared": str(shared_data)}})) as url:
        yield url


def multiscale(group: zarr.Group) -> dict:
    return group.attrs["ome"]["multiscales"][0]


def scales(group: zarr.Group) -> list[list[float]]:
    return [d["coordinateTransformations"][0]["scale"] for d in multiscale(group)["datasets"]]


# ---------------------------------------------------------------------------------------
# The shared sample (pybdv: 2 setups of different shapes, 3 and 2 levels, gzip)


def xml_setups(path: Path) -> list[dict]:
    root = ET.parse(path).getroot()
    return [
        {
            "id": int(setup.findtext("id")),
            "name": setup.findtext("name"),
            "size": [int(v) for v in setup.findtext("size").split()],
            "voxel": [float(v) for v in setup.findtext("voxelSize/size").split()],
            "unit": setup.findtext("voxelSize/unit"),
        }
        for setup in root.iter("ViewSetup")
    ]


def test_sample_is_a_bioformats2raw_tree_of_two_images(shared_url: str) -> None:
    root = zarr.open_group(f"{shared_url}/shared/{SAMPLE}.xml", mode="r")
    assert root.attrs["ome"]["bioformats2raw.layout"] == 3
    series = zarr.open_group(f"{shared_url}/shared/{SAMPLE}.xml/OME", mode="r").attrs["ome"]["series"]
    assert series == ["0", "1"]


@pytest.mark.parametrize("setup", [0, 1])
def test_sample_pixels_are_bit_exact(setup: int, shared_data: Path, shared_url: str) -> None:
    with h5py.File(shared_data / f"{SAMPLE}.h5", "r") as f:
        levels = len(f[f"s{setup:02d}/resolutions"])
        for level in range(levels):
            want = f[f"t00000/s{setup:02d}/{level}/cells"][()].view(np.uint16)
            array = zarr.open_array(f"{shared_url}/shared/{SAMPLE}.xml/{setup}/{level}", mode="r")
            served = array[...]
            assert served.dtype == np.uint16
            assert served.tobytes() == want.tobytes(), (setup, level)


@pytest.mark.parametrize("setup", [0, 1])
def test_sample_metadata_follows_the_xml(setup: int, shared_data: Path, shared_url: str) -> None:
    described = xml_setups(shared_data / f"{SAMPLE}.xml")[setup]
    group = zarr.open_group(f"{shared_url}/shared/{SAMPLE}.xml/{setup}", mode="r")
    OmeImage.from_zarr(group)
    ms = multiscale(group)
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert all(a["unit"] == "micrometer" for a in ms["axes"])
    x, y, z = described["size"]
    assert group["0"].shape == (z, y, x)
    with h5py.File(shared_data / f"{SAMPLE}.h5", "r") as f:
        resolutions = f[f"s{setup:02d}/resolutions"][()]
        subdivisions = f[f"s{setup:02d}/subdivisions"][()]
    vx, vy, vz = described["voxel"]
    native = len(resolutions)  # then levels of ours, until one 3-D chunk holds the coarsest
    assert synthesized_paths(group) == [d["path"] for d in ms["datasets"]][native:]
    for level, scale in enumerate(scales(group)[:native]):
        fx, fy, fz = resolutions[level]
        assert scale == pytest.approx([vz * fz, vy * fy, vx * fx], rel=1e-6), level
        # the source chunking is the HDF5 subdivision (x, y, z)
        with h5py.File(shared_data / f"{SAMPLE}.h5", "r") as f:
            assert f[f"t00000/s{setup:02d}/{level}/cells"].chunks == tuple(subdivisions[level][::-1])
    assert group.attrs["ome"]["omero"]["channels"][0]["label"] == described["name"]
    assert ms["name"] == described["name"]


def test_sample_hdf5_alone_is_served_without_calibration(shared_data: Path, shared_url: str) -> None:
    group = zarr.open_group(f"{shared_url}/shared/{SAMPLE}.h5/0", mode="r")
    OmeImage.from_zarr(group)
    assert scales(group)[0] == [1.0, 1.0, 1.0]
    with h5py.File(shared_data / f"{SAMPLE}.h5", "r") as f:
        assert group["0"][...].tobytes() == f["t00000/s00/0/cells"][()].tobytes()


def folder_datasets(url: str) -> list[dict]:
    """Every dataset entry of a folder page (following ``next``)."""
    found: list[dict] = []
    while url:
        page = httpx.get(url, headers={"Accept": "application/json"}).json()
        found += page["datasets"]
        url = page["next"]
    return found


def test_listing_shows_bdv_xml_but_no_other_xml(shared_url: str) -> None:
    folder, name = f"shared/{SAMPLE}".rsplit("/", 1)
    paths = {d["path"] for d in folder_datasets(f"{shared_url}/{folder}/")}
    assert f"{folder}/{name}.xml" in paths
    assert f"{folder}/{name}.h5" in paths
    # a listing opens no file: an .xml is listed until probed (in the background after a
    # listing), then left out when it is no BigDataViewer file
    deadline = time.monotonic() + 60
    while remaining := folder_datasets(f"{shared_url}/shared/ome_types/xml/"):
        assert all(d["status"] == "unknown" for d in remaining), remaining
        assert time.monotonic() < deadline, sorted(d["path"] for d in remaining)
        time.sleep(0.2)


def test_other_xml_is_not_a_dataset(shared_url: str) -> None:
    for key in ("zarr.json", "0/zarr.json"):
        response = httpx.get(f"{shared_url}/shared/ome_types/xml/single-image.ome.xml/{key}")
        assert response.status_code == 404, response.text


def test_adapter_sniffs_spimdata(shared_data: Path) -> None:
    assert adapters.find_adapter(shared_data / f"{SAMPLE}.xml") is not None
    assert adapters.find_adapter(shared_data / "ome_types/xml/spim.ome.xml") is None
    # an OME-XML whose annotation embeds a <SpimData> document is still not one
    assert adapters.find_adapter(shared_data / "ome_types/xml/invalid_xml_annotation.ome.xml") is None
    assert not adapters.is_dataset_file(shared_data / "ome_types/xml/bad.ome.xml")
    assert adapters.is_dataset_file(shared_data / f"{SAMPLE}.xml")


# ---------------------------------------------------------------------------------------
# Generated datasets


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("bdv")
    volumes = {name: smooth((3, 12, 40, 30), seed=seed) for seed, name in enumerate(("a", "b", "c"))}
    channels = [
        BdvSetup(volumes["a"], "nuclei", voxel=(0.2, 0.2, 0.8), channel=0),
        BdvSetup(volumes["b"], "actin", voxel=(0.2, 0.2, 0.8), channel=1),
        # another angle: a separate image even with the same shape
        BdvSetup(volumes["c"], "side view", voxel=(0.2, 0.2, 0.8), channel=0, angle=90),
    ]
    write_bdv(
        root / "multi.xml",
        "multi.h5",
        channels,
        timepoints=(0, 2, 5),
        missing=[(2, 1)],
        channel_names={0: "DAPI", 1: "Phalloidin"},
        extra_transform=(1, 0, 0, 5, 0, 1, 0, -6, 0, 0, 1, 7),
    )
    cube = smooth((1, 70, 130, 100), seed=7)
    write_bdv(
        root / "blosc.xml",
        "blosc.h5",
        [
            BdvSetup(
                cube,
                "cube",
                voxel=(1.0, 1.0, 1.0),
                factors=((1, 1, 1), (2, 2, 2)),
                chunks=((64, 64, 64), (64, 64, 64)),
                compression=dict(hdf5plugin.Blosc("lz4", 5, hdf5plugin.Blosc.SHUFFLE)),
            )
        ],
    )
    plain = smooth((1, 5, 40, 50), np.float32, seed=8)
    write_bdv(
        root / "rotated.xml",
        "rotated.h5",
        [BdvSetup(plain, "tilted", affine=(0, -1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0))],
    )
    (root / "outside").mkdir()
    write_bdv(root / "outside" / "inner.xml", "inner.h5", [BdvSetup(plain, "x")])
    (root / "escape.xml").write_text(
        (root / "outside" / "inner.xml").read_text().replace("inner.h5", "../../etc/passwd.h5")
    )
    with serve(Settings.from_mapping({"roots": {"b": str(root)}})) as url:
        yield {"root": root, "url": url, "volumes": volumes, "cube": cube, "plain": plain}


def test_channels_and_timepoints_stack(generated: dict) -> None:
    url = generated["url"]
    volumes = generated["volumes"]
    group = zarr.open_group(f"{url}/b/multi.xml/0", mode="r")
    OmeImage.from_zarr(group)
    assert [a["name"] for a in multiscale(group)["axes"]] == ["t", "c", "z", "y", "x"]
    want = np.stack([volumes["a"], volumes["b"]], axis=1)
    want[1, 1] = 0  # timepoint 2 of setup 1 is a missing view: fill
    assert group["0"][...].tobytes() == want.tobytes()
    assert group["1"][...].tobytes() == np.ascontiguousarray(want[..., ::2, ::2]).tobytes()
    labels = [c["label"] for c in group.attrs["ome"]["omero"]["channels"]]
    assert labels == ["DAPI", "Phalloidin"]


def test_missing_view_chunks_answer_404(generated: dict) -> None:
    url = f"{generated['url']}/b/multi.xml/0/0"
    assert httpx.get(f"{url}/c/1/1/0/0/0").status_code == 404
    assert httpx.get(f"{url}/c/1/0/0/0/0").status_code == 200


def test_other_angle_is_its_own_image(generated: dict) -> None:
    group = zarr.open_group(f"{generated['url']}/b/multi.xml/1", mode="r")
    OmeImage.from_zarr(group)
    assert [a["name"] for a in multiscale(group)["axes"]] == ["t", "z", "y", "x"]
    assert group["0"][...].tobytes() == generated["volumes"]["c"].tobytes()


def test_scale_units_and_translation(generated: dict) -> None:
    group = zarr.open_group(f"{generated['url']}/b/multi.xml/0", mode="r")
    ms = multiscale(group)
    assert scales(group)[0] == pytest.approx([1.0, 1.0, 0.8, 0.2, 0.2])
    assert scales(group)[1] == pytest.approx([1.0, 1.0, 0.8, 0.4, 0.4])
    transforms = ms["datasets"][0]["coordinateTransformations"]
    assert transforms[1] == {"type": "translation", "translation": [0.0, 0.0, 7.0, -6.0, 5.0]}
    units = {a["name"]: a.get("unit") for a in ms["axes"]}
    assert units == {"t": None, "c": None, "z": "micrometer", "y": "micrometer", "x": "micrometer"}


def test_blosc_chunks_pass_through(generated: dict) -> None:
    url = f"{generated['url']}/b/blosc.xml"
    group = zarr.open_group(url, mode="r")
    OmeImage.from_zarr(group)
    cube = generated["cube"][0]
    assert group["0"][...].tobytes() == cube.tobytes()
    assert group["1"][...].tobytes() == np.ascontiguousarray(cube[::2, ::2, ::2]).tobytes()
    meta = httpx.get(f"{url}/0/zarr.json").json()
    assert [c["name"] for c in meta["codecs"]] == ["bytes", "blosc"]
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [64, 64, 64]
    with h5py.File(generated["root"] / "blosc.h5", "r") as f:
        _, stored = f["t00000/s00/0/cells"].id.read_direct_chunk((0, 64, 0))
    assert httpx.get(f"{url}/0/c/0/1/0").content == stored


def test_rotation_is_reported_and_left_out(generated: dict) -> None:
    group = zarr.open_group(f"{generated['url']}/b/rotated.xml", mode="r")
    OmeImage.from_zarr(group)
    assert scales(group)[0] == [1.0, 0.5, 0.5]  # the voxel size (z x y x) of the setup
    assert len(multiscale(group)["datasets"][0]["coordinateTransformations"]) == 1
    source = adapters.open_source(generated["root"] / "rotated.xml")
    try:
        assert any("rotation" in w for w in source.warnings)
    finally:
        source.close()
    assert group["0"][...].tobytes() == generated["plain"][0].tobytes()


def test_hdf5_outside_the_xml_folder_is_refused(generated: dict) -> None:
    response = httpx.get(f"{generated['url']}/b/escape.xml/zarr.json")
    assert response.status_code == 500
    assert "outside the XML's folder" in response.json()["detail"]


def test_inner_folder_dataset_is_served(generated: dict) -> None:
    group = zarr.open_group(f"{generated['url']}/b/outside/inner.xml", mode="r")
    assert group["0"][...].tobytes() == generated["plain"][0].tobytes()


def test_dependency_is_the_hdf5_file(generated: dict) -> None:
    source = adapters.open_source(generated["root"] / "multi.xml")
    try:
        assert [d.path.name for d in source.dependencies] == ["multi.h5"]
    finally:
        source.close()
