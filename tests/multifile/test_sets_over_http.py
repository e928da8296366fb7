"""Multi-file sets over HTTP, as clients meet them: one dataset at the master read
bit-exactly by zarr-python; members answering 404 ``part_of_dataset`` and listed as parts;
a missing member a 5xx for its chunks only; a member replaced (or appearing) on disk
taken up by the set."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import zarr

from gateway.config.settings import Settings
from tests.http.support import decode_chunk
from tests.multifile.sets import (
    Image,
    Ref,
    binary_only_xml,
    ome_xml,
    ramp,
    write_companion_set,
    write_mmstack,
    write_planes,
)
from tests.server import serve

JSON = {"Accept": "application/json"}
#: how long a change on disk may take to be seen (a few stat intervals of 0.1 s)
DEADLINE_SECONDS = 10.0


def settings(root: Path) -> Settings:
    return Settings.from_mapping({"roots": {"data": str(root)}, "cache": {"stat_interval_seconds": 0.1}})


def chunk(client: httpx.Client, array_url: str, key: str) -> tuple[httpx.Response, np.ndarray | None]:
    metadata = client.get(f"{array_url}/zarr.json").json()
    response = client.get(f"{array_url}/{key}")
    return response, decode_chunk(response.content, metadata) if response.status_code == 200 else None


def eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not check():
        assert time.monotonic() < deadline, "the change on disk was not taken up"
        time.sleep(0.05)


def test_a_micromanager_set_is_one_image_and_its_splits_are_parts(root: Path) -> None:
    stack = write_mmstack(root, ramp((2, 3, 2, 32, 48)), [4, 4, 4], tile=(16, 16), compression="zlib")
    master, splits = stack.files[0].name, [f.name for f in stack.files[1:]]
    with serve(settings(root)) as base:
        group = zarr.open_group(f"{base}/data/{master}", mode="r")
        axes = [axis["name"] for axis in group.attrs["ome"]["multiscales"][0]["axes"]]
        assert axes == ["t", "c", "z", "y", "x"]
        np.testing.assert_array_equal(group["0"][:], stack.data.transpose(0, 2, 1, 3, 4))
        for split in splits:
            response = httpx.get(f"{base}/data/{split}/zarr.json")
            assert response.status_code == 404
            assert response.json() == {
                "error": "part_of_dataset",
                "detail": f"data/{split} is part of the dataset data/{master}; open that instead",
            }


def test_folder_listings_show_members_as_parts_of_the_set(root: Path) -> None:
    written = write_companion_set(root, ramp((3, 16, 16), "uint8"))
    with serve(settings(root)) as base, httpx.Client() as client:
        assert client.get(f"{base}/data/{written.companion.name}/zarr.json").status_code == 200
        datasets = {d["name"]: d for d in client.get(f"{base}/data/", headers=JSON).json()["datasets"]}
        assert datasets[written.companion.name]["status"] == "ok"
        for member in written.members:
            entry = datasets[member.name]
            assert entry["status"] == "part"
            assert entry["part_of"]["path"] == f"data/{written.companion.name}"
            assert entry["page"] is None and entry["zarr_json"] is None
        page = client.get(f"{base}/data/").text  # HTML: a link to the set, none to the member
        assert f'href="{base}/data/{written.companion.name}/"' in page
        assert f'href="{base}/data/{written.members[0].name}/"' not in page


def test_a_member_probed_alone_is_listed_as_a_part(root: Path) -> None:
    written = write_companion_set(root, ramp((2, 16, 16), "uint8"))
    with serve(settings(root)) as base, httpx.Client() as client:
        assert client.get(f"{base}/data/{written.members[1].name}/zarr.json").status_code == 404
        datasets = {d["name"]: d for d in client.get(f"{base}/data/", headers=JSON).json()["datasets"]}
        assert datasets[written.members[1].name]["status"] == "part"


def test_a_missing_member_fails_its_chunks_only(root: Path) -> None:
    written = write_companion_set(root, ramp((3, 32, 32), "uint8"))
    written.members[1].unlink()
    with serve(settings(root)) as base, httpx.Client() as client:
        array = f"{base}/data/{written.companion.name}/0"
        for z in (0, 2):
            response, served = chunk(client, array, f"c/{z}/0/0")
            assert response.status_code == 200
            np.testing.assert_array_equal(served[0], written.data[z])
        response, _ = chunk(client, array, "c/1/0/0")
        assert response.status_code == 500, "never fill values, never a 404 'empty chunk'"
        body = response.json()
        assert body["error"] == "source_error"
        assert written.members[1].name in body["detail"]
        assert response.headers["cache-control"] == "no-store"
        # the member comes back: the set is reopened and serves it
        write_planes(
            written.members[1], written.data[1:2], binary_only_xml(written.companion.name, written.uuids[1])
        )
        eventually(lambda: chunk(client, array, "c/1/0/0")[0].status_code == 200)
        np.testing.assert_array_equal(chunk(client, array, "c/1/0/0")[1][0], written.data[1])


def test_a_member_replaced_on_disk_invalidates_the_set(root: Path) -> None:
    written = write_companion_set(root, ramp((3, 32, 32), "uint8"))
    with serve(settings(root)) as base, httpx.Client() as client:
        array = f"{base}/data/{written.companion.name}/0"
        before = client.get(f"{base}/data/{written.companion.name}/zarr.json").headers["etag"]
        np.testing.assert_array_equal(chunk(client, array, "c/2/0/0")[1][0], written.data[2])
        replacement = ramp((1, 32, 32), "uint8", offset=101)
        staged = root / ".staged.ome.tiff"
        write_planes(staged, replacement, binary_only_xml(written.companion.name, written.uuids[2]))
        os.replace(staged, written.members[2])
        eventually(lambda: bool(np.array_equal(chunk(client, array, "c/2/0/0")[1][0], replacement[0])))
        after = client.get(f"{base}/data/{written.companion.name}/zarr.json").headers["etag"]
        assert after != before  # the dataset's identity includes its members'


def test_a_set_referring_outside_the_root_reads_nothing_there(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = ramp((1, 16, 16), "uint8", offset=200)
    write_planes(outside / "secret.ome.tiff", secret, binary_only_xml("set.companion.ome", "urn:uuid:x"))
    os.symlink(outside / "secret.ome.tiff", root / "inside.ome.tiff")
    refs = [Ref({"Z": 0}, 0, 1, "inside.ome.tiff"), Ref({"Z": 1}, 0, 1, "../outside/secret.ome.tiff")]
    (root / "set.companion.ome").write_text(ome_xml([Image({"X": 16, "Y": 16, "Z": 2}, "uint8", refs)]))
    with serve(settings(root)) as base:
        response = httpx.get(f"{base}/data/set.companion.ome/zarr.json")
        assert response.status_code == 500
        assert response.json()["error"] == "source_unreadable"
        assert "outside" in response.json()["detail"] or "leaves" in response.json()["detail"]


@pytest.mark.parametrize("name", ["set.companion.ome"])
def test_a_companion_that_is_no_ome_xml_is_no_dataset(root: Path, name: str) -> None:
    (root / name).write_text("just text")
    with serve(settings(root)) as base:
        assert httpx.get(f"{base}/data/{name}/zarr.json").status_code == 404
