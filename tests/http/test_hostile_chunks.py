"""Over HTTP: decompression bombs, a giant chunk and sparse giant grids.

A bomb chunk answers a JSON 500 for that request only: the file's other chunks, its
metadata and every other file keep being served (the module's ``gateway`` fixture checks
a healthy file after every test). Honest zstd chunks still pass through byte for byte.
"""

from __future__ import annotations

import resource
import zlib

import h5py
import numpy as np
import pytest

from tests.bombs import (
    BOMBS,
    GIANT_CHUNK,
    GiB,
    MiB,
    giant_block,
    write_bomb_h5,
    write_giant_chunk_h5,
    write_sparse_giant,
    write_zstd_tiff_bomb,
)
from tests.http.support import assert_json_error, decode_chunk, running_gateway

SHAPE = (1024, 1024)  # 4 x 4 chunks of 256 x 256; chunk (0, 0) is the bomb
GIANTS = {"giant-2e20.h5": 2**20, "giant-1e9.h5": 10**9}
STORED = [(3, 5), (40, 41)]  # source chunks (64 x 64) of the sparse giants


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    honest = {f"{name}.h5": write_bomb_h5(root / f"{name}.h5", name, SHAPE) for name in BOMBS}
    honest["bomb.tif"] = write_zstd_tiff_bomb(root / "bomb.tif", SHAPE)
    write_giant_chunk_h5(root / "giant-chunk.h5")
    for name, edge in GIANTS.items():
        write_sparse_giant(root / name, edge, STORED)
    with running_gateway(root) as gw:
        gw.honest = honest  # type: ignore[attr-defined]
        yield gw


def array_url(name: str) -> str:
    return f"data/{name}/0" if name.endswith(".tif") else f"data/{name}/x/0"


@pytest.mark.parametrize("name", [*(f"{n}.h5" for n in sorted(BOMBS)), "bomb.tif"])
def test_bomb_chunk_is_a_json_500_and_the_rest_is_served(gateway, name: str) -> None:
    before = peak_rss()
    metadata = gateway.get(f"{array_url(name)}/zarr.json")
    assert metadata.status_code == 200
    assert metadata.json()["chunk_grid"]["configuration"]["chunk_shape"] == [256, 256]
    document = assert_json_error(gateway.get(f"{array_url(name)}/c/0/0"), 500)
    assert "(0, 0" in document["detail"]  # names the chunk
    assert_json_error(gateway.get(f"{array_url(name)}/c/0/0"), 500)  # not cached as a success
    chunk = gateway.get(f"{array_url(name)}/c/3/3")
    assert chunk.status_code == 200
    expected = gateway.honest[name][768:, 768:]
    np.testing.assert_array_equal(decode_chunk(chunk.content, metadata.json()), expected)
    assert peak_rss() - before < 512 * MiB  # a bomb that inflated would add 2 GiB


def test_bomb_file_honest_zstd_chunk_still_passes_through(gateway) -> None:
    response = gateway.get(f"{array_url('zstd.h5')}/c/2/1")
    assert response.status_code == 200
    with h5py.File(gateway.root / "zstd.h5", "r") as f:
        _, stored = f["x"].id.read_direct_chunk((512, 256))
    assert response.content == stored


def test_bomb_chunk_of_a_pass_through_tiff_is_not_sent(gateway) -> None:
    response = gateway.get(f"{array_url('bomb.tif')}/c/0/0")
    assert response.status_code == 500
    assert not response.content.startswith(b"\x28\xb5\x2f\xfd")  # no zstd frame went out


def test_chunk_over_the_budget_is_refused(gateway) -> None:
    assert gateway.get(f"{array_url('giant-chunk.h5')}/zarr.json").status_code == 200
    before = peak_rss()
    document = assert_json_error(gateway.get(f"{array_url('giant-chunk.h5')}/c/0/0"), 500)
    assert f"{GiB} bytes, more than the {256 * MiB} allowed per chunk" in document["detail"]
    assert peak_rss() - before < 512 * MiB


@pytest.mark.parametrize("name", sorted(GIANTS))
def test_sparse_giant_metadata_is_served(gateway, name: str) -> None:
    edge = GIANTS[name]
    before = peak_rss()
    group = gateway.get(f"data/{name}/x/zarr.json")
    assert group.status_code == 200
    assert group.json()["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] == "0"
    metadata = gateway.get(f"{array_url(name)}/zarr.json")
    assert metadata.status_code == 200
    assert metadata.json()["shape"] == [edge, edge]
    assert metadata.json()["fill_value"] == 9
    assert peak_rss() - before < 512 * MiB  # a dense chunk index of 2^28 cells took 2.1 GB


@pytest.mark.parametrize("name", sorted(GIANTS))
def test_sparse_giant_allocated_chunk_is_exact(gateway, name: str) -> None:
    metadata = gateway.get(f"{array_url(name)}/zarr.json").json()
    chunk_shape = metadata["chunk_grid"]["configuration"]["chunk_shape"]
    for coords in STORED:
        y, x = coords[0] * GIANT_CHUNK[0], coords[1] * GIANT_CHUNK[1]
        key = (y // chunk_shape[0], x // chunk_shape[1])
        response = gateway.get(f"{array_url(name)}/c/{key[0]}/{key[1]}")
        assert response.status_code == 200, response.text
        chunk = decode_chunk(response.content, metadata)
        expected = np.full(chunk_shape, 9, dtype=np.uint16)
        oy, ox = y - key[0] * chunk_shape[0], x - key[1] * chunk_shape[1]
        expected[oy : oy + GIANT_CHUNK[0], ox : ox + GIANT_CHUNK[1]] = giant_block(coords)
        np.testing.assert_array_equal(chunk, expected)


@pytest.mark.parametrize("name", sorted(GIANTS))
def test_sparse_giant_unallocated_chunk_is_absent(gateway, name: str) -> None:
    last = GIANTS[name] // 512 - 1
    for key in ("c/0/1", f"c/{last}/{last}"):
        assert gateway.get(f"{array_url(name)}/{key}").status_code == 404


def write_secret_and_short(tmp_path, short: bytes | None = None) -> np.ndarray:
    """``secret.h5``, and ``short.h5`` whose one shuffled deflate chunk inflates to
    ``short``, by default half its size of noise (a hostile file)."""
    secret = np.full((256, 256), 0xBEEF, np.uint16)
    with h5py.File(tmp_path / "secret.h5", "w") as f:
        f.create_dataset("x", data=secret, chunks=(256, 256), shuffle=True, compression="gzip")
    if short is None:
        short = np.random.default_rng(3).integers(0, 256, 256 * 256, np.uint8).tobytes()
    with h5py.File(tmp_path / "short.h5", "w") as f:
        dataset = f.create_dataset(
            "x", shape=(256, 256), dtype="u2", chunks=(256, 256), shuffle=True, compression="gzip"
        )
        dataset.id.write_direct_chunk((0, 0), zlib.compress(short))
    return secret


def test_a_short_shuffled_deflate_chunk_never_shows_the_previous_chunk(tmp_path) -> None:
    """Shuffled deflate chunks the server decodes (here to compress them as zstd) are
    inflated into a buffer each worker thread reuses. A hostile file whose chunk inflates
    to half its size must get a 500, not the rest of the buffer: another file's pixels,
    decoded just before in the same thread."""
    secret = write_secret_and_short(tmp_path)
    chunks = {"codec": "zstd"}
    with running_gateway(tmp_path, server={"threads": 1}, chunks=chunks) as gateway:  # one buffer
        metadata = gateway.get(f"{array_url('secret.h5')}/zarr.json").json()
        served = gateway.get(f"{array_url('secret.h5')}/c/0/0")
        np.testing.assert_array_equal(decode_chunk(served.content, metadata), secret)
        document = assert_json_error(gateway.get(f"{array_url('short.h5')}/c/0/0"), 500)
        assert "instead of" in document["detail"]


def test_a_short_deflate_chunk_sent_as_stored_fails_in_the_client(tmp_path) -> None:
    """By default the same chunk is sent as stored, in a blosc frame: the server inflates
    nothing, and the client's inflate refuses a stream that is not the chunk's size."""
    secret = write_secret_and_short(tmp_path)
    with running_gateway(tmp_path, server={"threads": 1}) as gateway:
        metadata = gateway.get(f"{array_url('secret.h5')}/zarr.json").json()
        assert metadata["codecs"][-1]["configuration"]["cname"] == "zlib"
        served = gateway.get(f"{array_url('secret.h5')}/c/0/0")
        np.testing.assert_array_equal(decode_chunk(served.content, metadata), secret)
        short = gateway.get(f"{array_url('short.h5')}/c/0/0")
        assert short.status_code == 200
        with pytest.raises(RuntimeError):
            decode_chunk(short.content, metadata)


def test_a_short_deflate_chunk_the_fill_check_decodes_is_a_500(tmp_path) -> None:
    """A short stream that deflates very well is decoded to see whether it is all fill:
    the server finds it short and answers 500 for it, and serves on."""
    write_secret_and_short(tmp_path, short=bytes(256 * 256))
    with running_gateway(tmp_path, server={"threads": 1}) as gateway:
        document = assert_json_error(gateway.get(f"{array_url('short.h5')}/c/0/0"), 500)
        assert "instead of" in document["detail"]
        assert gateway.get(f"{array_url('secret.h5')}/c/0/0").status_code == 200
