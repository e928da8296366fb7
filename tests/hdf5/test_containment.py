"""HDF5 files in a public root cannot make the gateway read anything outside that root.

Outside the served roots lie an HDF5 file of ``0xBEEF`` pixels, a raw file of the same
pixels and the text ``SECRET-…``, and the signing key; a second root ``priv`` (protected)
holds ``0xCAFE`` pixels. Files in the public root reach for them through every HDF5
indirection: external raw storage, virtual datasets, external links (absolute, ``../``,
through symlinks, into the other root, inside a BigDataViewer layout and an Imaris file),
and BigDataViewer XMLs naming an outside HDF5 file. Every ``zarr.json``, page and chunk the
server exposes is fetched (chunks uncompressed, so leaked bytes would appear verbatim) and
none may carry a pattern; refused datasets say why. An external link to a sibling file
inside the root still serves its pixels exactly.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import pytest
import zarr

from gateway.config.settings import Settings, SettingsError
from tests.hdf5.writers import BdvSetup, ImarisSpec, smooth, write_bdv, write_imaris
from tests.http.support import assert_json_error, new_client
from tests.server import serve

SECRET_TEXT = b"SECRET-9d2fa41c"
KEY_TEXT = b"SECRET-KEY-51be0d7a93c4f2e8"
SECRET_VALUE, PRIVATE_VALUE = 0xBEEF, 0xCAFE
#: Eight pixels in a row, little-endian: far longer than any chance match.
PATTERNS = {
    "outside pixels": np.full(8, SECRET_VALUE, "<u2").tobytes(),
    "outside pixels, big-endian": np.full(8, SECRET_VALUE, ">u2").tobytes(),
    "other root's pixels": np.full(8, PRIVATE_VALUE, "<u2").tobytes(),
    "outside text": SECRET_TEXT,
    "signing key": KEY_TEXT,
}
SHAPE = (64, 64)
JSON = {"Accept": "application/json"}


def secret_pixels(shape: tuple[int, ...] = SHAPE, value: int = SECRET_VALUE) -> np.ndarray:
    return np.full(shape, value, dtype=np.uint16)


def write_outside(outside: Path) -> None:
    with h5py.File(outside / "out.h5", "w") as f:
        f["secret"] = secret_pixels()
        f["cells"] = secret_pixels((4, 32, 32)).view(np.int16)
        f.create_group("grp")["inner"] = secret_pixels()
    raw = secret_pixels().tobytes()
    (outside / "raw.bin").write_bytes(raw + SECRET_TEXT * 64)
    (outside / "key.txt").write_bytes(KEY_TEXT)
    write_bdv(outside / "elsewhere.xml", "elsewhere.h5", [bdv_setup(secret_pixels((1, 4, 32, 32)))])


def bdv_setup(data: np.ndarray) -> BdvSetup:
    return BdvSetup(data, "view", factors=((1, 1, 1),), chunks=((4, 32, 32),), compression={})


def ok(f: h5py.File) -> None:
    """A healthy dataset beside the hostile one: the file is served, with a note."""
    f["ok"] = np.arange(math.prod(SHAPE), dtype=np.uint16).reshape(SHAPE)


def external_dataset(f: h5py.File, name: str, raw_name: str) -> None:
    nbytes = math.prod(SHAPE) * 2
    f.create_dataset(name, shape=SHAPE, dtype=np.uint16, external=[(raw_name, 0, nbytes)])


def virtual_dataset(f: h5py.File, source: Path, name: str) -> None:
    layout = h5py.VirtualLayout(shape=SHAPE, dtype=np.uint16)
    layout[:] = h5py.VirtualSource(str(source), name, shape=SHAPE)
    f.create_virtual_dataset("virtual", layout, fillvalue=0)


def write_public(pub: Path, outside: Path, priv: Path) -> dict[str, Any]:
    """The hostile files (and the expected refusal note of each) plus the positive cases."""
    notes: dict[str, str] = {}
    with h5py.File(pub / "external_abs.h5", "w") as f:
        ok(f)
        external_dataset(f, "leak", str(outside / "raw.bin"))
    notes["external_abs.h5"] = "external raw files"
    with h5py.File(pub / "external_rel.h5", "w") as f:
        external_dataset(f, "leak", "../outside/raw.bin")
    notes["external_rel.h5"] = "external raw files"
    with h5py.File(pub / "vds_outside.h5", "w") as f:
        ok(f)
        virtual_dataset(f, outside / "out.h5", "secret")
    notes["vds_outside.h5"] = "virtual dataset"
    with h5py.File(pub / "vds_priv.h5", "w") as f:
        virtual_dataset(f, priv / "priv.h5", "pixels")
    notes["vds_priv.h5"] = "virtual dataset"
    links = {
        "link_abs.h5": (str(outside / "out.h5"), "/secret"),
        "link_rel.h5": ("../outside/out.h5", "/secret"),
        "link_priv.h5": (str(priv / "priv.h5"), "/pixels"),
        "link_group.h5": ("../outside/out.h5", "/grp"),
        "link_symdir.h5": ("sub/escape/out.h5", "/secret"),  # sub/escape → outside
        "link_symfile.h5": ("alias.h5", "/secret"),  # alias.h5 → outside/out.h5
    }
    for name, (target, path) in links.items():
        with h5py.File(pub / name, "w") as f:
            if name in ("link_abs.h5", "link_group.h5"):
                ok(f)
            f["leak"] = h5py.ExternalLink(target, path)
        notes[name] = "lies outside the served folders"
    (pub / "sub").mkdir()
    os.symlink(outside, pub / "sub" / "escape")
    os.symlink(outside / "out.h5", pub / "alias.h5")

    # BigDataViewer: timepoint 1's cells are an external link out; the XML, an outside file
    volume = smooth((2, 4, 32, 32), seed=3)
    write_bdv(pub / "bdv_link.xml", "bdv_link.h5", [bdv_setup(volume)], timepoints=(0, 1))
    with h5py.File(pub / "bdv_link.h5", "a") as f:
        del f["t00001/s00/0/cells"]
        f["t00001/s00/0/cells"] = h5py.ExternalLink(str(outside / "out.h5"), "/cells")
    notes["bdv_link.xml"] = notes["bdv_link.h5"] = "lies outside the served folders"
    template = (outside / "elsewhere.xml").read_text()
    (pub / "bdv_abs.xml").write_text(
        template.replace(">elsewhere.h5<", f">{outside / 'elsewhere.h5'}<").replace(
            '<hdf5 type="relative">', '<hdf5 type="absolute">'
        )
    )
    (pub / "bdv_rel.xml").write_text(template.replace(">elsewhere.h5<", ">../outside/elsewhere.h5<"))
    notes["bdv_abs.xml"] = notes["bdv_rel.xml"] = "outside the XML's folder"

    # Imaris: level 0's Data is an external link out
    write_imaris(pub / "imaris_link.ims", ImarisSpec(smooth((1, 1, 4, 32, 32), seed=4), levels=1))
    with h5py.File(pub / "imaris_link.ims", "a") as f:
        del f["DataSet/ResolutionLevel 0/TimePoint 0/Channel 0/Data"]
        f["DataSet/ResolutionLevel 0/TimePoint 0/Channel 0/Data"] = h5py.ExternalLink(
            str(outside / "out.h5"), "/cells"
        )

    # positive: a partitioned BigDataViewer dataset (timepoints in a sibling file)
    part = smooth((1, 4, 32, 32), seed=5)
    write_bdv(pub / "bdv_part.xml", "bdv_part.h5", [bdv_setup(part)])
    with h5py.File(pub / "bdv_part.h5", "a") as master, h5py.File(pub / "bdv_part-t0.h5", "w") as member:
        master.copy(master["t00000"], member, "t00000")
        del master["t00000"]
        master["t00000"] = h5py.ExternalLink("bdv_part-t0.h5", "/t00000")
    return {"notes": notes, "bdv_volume": volume, "part": part}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    top = tmp_path_factory.mktemp("hdf5-containment")
    outside, pub, priv = top / "outside", top / "pub", top / "priv"
    for directory in (outside, pub, priv):
        directory.mkdir()
    write_outside(outside)
    with h5py.File(priv / "priv.h5", "w") as f:
        f["pixels"] = secret_pixels(value=PRIVATE_VALUE)
    expected = write_public(pub, outside, priv)
    settings = Settings.from_mapping(
        {
            "roots": {"pub": str(pub), "priv": str(priv)},
            "auth": {"protect": ["priv"], "signing_key_file": str(outside / "key.txt")},
            "chunks": {"codec": "none", "z": 1},  # one plane per chunk: a crawl of many chunks
        }
    )
    with serve(settings) as base, new_client() as client:
        yield {"base": base, "client": client, "top": top, **expected}


def walk_folder(client: httpx.Client, url: str) -> Iterator[dict[str, Any]]:
    """Every dataset entry of the folder page at ``url`` and of its sub-folders, page by page."""
    next_url: str | None = url
    while next_url:
        folder = client.get(next_url, headers=JSON)
        assert folder.status_code == 200, folder.text
        document = folder.json()
        yield from document["datasets"]
        for sub in document["folders"]:
            yield from walk_folder(client, sub["url"])
        next_url = document.get("next")


def crawl(client: httpx.Client, base: str) -> dict[str, list[httpx.Response]]:
    """Dataset URL path → every response of its tree: root ``zarr.json``, the page (JSON and
    HTML), and per image (and variant) each level's ``zarr.json`` and every chunk key."""
    found: dict[str, list[httpx.Response]] = {}
    for entry in walk_folder(client, f"{base}/pub/"):
        responses = found.setdefault(entry["path"], [])
        responses.append(client.get(f"{entry['url']}/zarr.json"))
        responses.append(client.get(f"{entry['url']}/"))
        page = client.get(f"{entry['url']}/", headers=JSON)
        responses.append(page)
        if page.status_code != 200:
            continue
        for image in page.json()["images"]:
            urls = [image["url"]] + ([image["variant"]["url"]] if "variant" in image else [])
            for url in urls:
                responses.append(client.get(f"{url}zarr.json"))
                for level in image["levels"]:
                    array = client.get(f"{url}{level['path']}/zarr.json")
                    responses.append(array)
                    assert array.status_code == 200, array.text
                    meta = array.json()
                    chunks = meta["chunk_grid"]["configuration"]["chunk_shape"]
                    grid = [range(math.ceil(n / c)) for n, c in zip(meta["shape"], chunks, strict=True)]
                    for index in itertools.product(*grid):
                        key = "/".join(map(str, index))
                        responses.append(client.get(f"{url}{level['path']}/c/{key}"))
    return found


def test_no_byte_from_outside_the_root_in_any_response(world: Any) -> None:
    trees = crawl(world["client"], world["base"])
    assert len(trees) >= 15, sorted(trees)
    leaks, total = set(), 0
    for responses in trees.values():
        for response in responses:
            total += 1
            assert response.status_code < 500 or response.json()["error"], response.text
            leaks |= {(what, str(response.url)) for what, p in PATTERNS.items() if p in response.content}
    assert not leaks, sorted(leaks)
    assert total > 100


@pytest.mark.parametrize(
    "name",
    [
        "external_rel.h5",
        "vds_priv.h5",
        "link_rel.h5",
        "link_priv.h5",
        "link_symdir.h5",
        "link_symfile.h5",
        "bdv_abs.xml",
        "bdv_rel.xml",
    ],
)
def test_refused_file_answers_json_with_the_reason(world: Any, name: str) -> None:
    response = world["client"].get(f"{world['base']}/pub/{name}/zarr.json")
    document = assert_json_error(response, 500)
    assert world["notes"][name] in document["detail"], document


@pytest.mark.parametrize(
    "name", ["external_abs.h5", "vds_outside.h5", "link_abs.h5", "bdv_link.xml", "bdv_link.h5"]
)
def test_served_file_notes_the_refused_part_on_its_page(world: Any, name: str) -> None:
    client, base = world["client"], world["base"]
    page = client.get(f"{base}/pub/{name}/", headers=JSON)
    assert page.status_code == 200, page.text
    warnings = page.json()["warnings"]
    assert any(world["notes"][name] in w for w in warnings), warnings
    html = client.get(f"{base}/pub/{name}/").text
    assert world["notes"][name] in html


def test_link_to_a_group_outside_is_refused_with_a_note(world: Any) -> None:
    page = world["client"].get(f"{world['base']}/pub/link_group.h5/", headers=JSON).json()
    assert [image["path"] for image in page["images"]] == ["ok"]
    assert any("leak" in w and "lies outside the served folders" in w for w in page["warnings"]), page


def test_bdv_view_behind_an_outside_link_reads_as_fill(world: Any) -> None:
    served = zarr.open_array(f"{world['base']}/pub/bdv_link.xml/0", mode="r")[...]
    assert served.shape == (2, 4, 32, 32)
    np.testing.assert_array_equal(served[0], world["bdv_volume"][0])
    assert not served[1].any()  # timepoint 1 (the link out) is a missing view: fill


def test_imaris_data_behind_an_outside_link_is_not_served(world: Any) -> None:
    response = world["client"].get(f"{world['base']}/pub/imaris_link.ims/zarr.json")
    assert_json_error(response, 500)


def test_external_link_to_a_sibling_file_serves_exact_pixels(world: Any) -> None:
    client, base = world["client"], world["base"]
    served = zarr.open_array(f"{base}/pub/bdv_part.xml/0", mode="r")[...]
    np.testing.assert_array_equal(served, world["part"][0])
    page = client.get(f"{base}/pub/bdv_part.xml/", headers=JSON).json()
    assert page["warnings"] == []


def test_signing_key_file_inside_a_root_refuses_to_start(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "keys").mkdir(parents=True)
    (root / "keys" / "signing.key").write_bytes(KEY_TEXT)
    with pytest.raises(SettingsError, match="inside root 'data'"):
        Settings.from_mapping(
            {"roots": {"data": str(root)}, "auth": {"signing_key_file": str(root / "keys" / "signing.key")}}
        )


def test_signing_key_reached_through_a_symlink_into_a_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "signing.key").write_bytes(KEY_TEXT)
    os.symlink(root / "signing.key", tmp_path / "key-link")
    with pytest.raises(SettingsError, match="outside every served folder"):
        Settings.from_mapping(
            {"roots": {"data": str(root)}, "auth": {"signing_key_file": str(tmp_path / "key-link")}}
        )


def test_signing_key_outside_the_roots_is_accepted(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "signing.key").write_bytes(KEY_TEXT)
    settings = Settings.from_mapping(
        {"roots": {"data": str(root)}, "auth": {"signing_key_file": str(tmp_path / "signing.key")}}
    )
    assert settings.auth.key() == KEY_TEXT
