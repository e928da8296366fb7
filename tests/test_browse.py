"""The browsing view (``/browse/<root>/<file>/``): the same groups, levels and pixels as the
canonical view, with volumes chunked deeper than ``[browse] max_z`` planes cut in slabs;
the dataset pages' viewer links open it. zarr-python and tensorstore read it bit-exactly
over HTTP from a real server, for every codec it can be set to; arrays it does not cut are
the canonical view's own bytes; the views never share a cached chunk."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import h5py
import hdf5plugin
import httpx
import numpy as np
import pytest
import tensorstore as ts
import tifffile
import zarr

from adapters.base import Axis, Image, Source
from gateway.config.settings import ChunkSettings, PyramidSettings, Settings, SettingsError
from gateway.ngff.layout import TreeOptions, build_tree
from gateway.store.wrappers import overview_keys
from gateway.web.auth import mint_token, signed_path
from tests.server import serve
from tests.unit.test_layout import FakeLevel

ROOT = "lab"
#: file → (HDF5 dataset or None for a TIFF, its pixels' chunk depth in the canonical view,
#: the browsing view's depth at max_z = 16, what these tests serve: small files, every case)
VOLUMES = {
    "shuffled.h5": ("volume", 32, 16),  # gzip + shuffle: slabs from the stored chunks still shuffled
    "deflate.h5": ("volume", 32, 16),  # gzip without shuffle
    "zstd.h5": ("volume", 24, 12),  # zstd, passed through canonically; halved to 12
    "float.h5": ("volume", 64, 16),  # uncompressed float32 64^3 chunks
    "odd.h5": ("volume", 20, 10),
    "shallow.h5": ("volume", 8, 8),  # already within max_z: not cut
}
PLANAR = ("stack.tif", "slide.tif")  # a plane per page, and a 2-D image: not cut


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("browse") / ROOT
    folder.mkdir()
    rng = np.random.default_rng(11)

    def volume(shape: tuple[int, ...], dtype: str) -> np.ndarray:
        smooth = np.linspace(0, 3000, shape[-1], dtype=np.float64)
        return (smooth + rng.normal(0, 40, shape)).clip(0, 60000).astype(dtype)

    def write(name: str, data: np.ndarray, **options: object) -> None:
        with h5py.File(folder / name, "w") as f:
            f.create_dataset("volume", data=data, **options)  # type: ignore[arg-type]

    write(
        "shuffled.h5", volume((70, 300, 260), "<u2"), chunks=(32, 128, 128), compression="gzip", shuffle=True
    )
    write("deflate.h5", volume((40, 256, 256), ">i2"), chunks=(32, 128, 128), compression="gzip")
    write("zstd.h5", volume((48, 256, 256), "<u2"), chunks=(24, 128, 128), **hdf5plugin.Zstd(clevel=1))
    write("float.h5", volume((100, 128, 128), "<f4"), chunks=(64, 64, 64))
    write("odd.h5", volume((41, 128, 128), "<u1"), chunks=(20, 128, 128), compression="gzip", shuffle=True)
    write("shallow.h5", volume((30, 256, 256), "<u2"), chunks=(8, 128, 128), compression="gzip")
    tifffile.imwrite(folder / "stack.tif", volume((6, 300, 300), "<u2"), rowsperstrip=64)
    tifffile.imwrite(folder / "slide.tif", volume((600, 700), "<u2"), tile=(256, 256))
    return folder


def _settings(root: Path, default_max_z: bool = False, **sections: Any) -> Settings:
    """Settings serving ``root``; the browsing view at ``max_z = 16`` unless
    ``default_max_z`` or ``sections`` say otherwise."""
    browse = {} if default_max_z else {"max_z": 16}
    sections["browse"] = browse | sections.get("browse", {})
    return Settings.from_mapping({"roots": {ROOT: str(root)}, "chunks": {"yx": 128}, **sections})


@pytest.fixture(scope="module")
def base(root: Path) -> Iterator[str]:
    with serve(_settings(root)) as url:
        yield url


def _pixels(root: Path, name: str) -> np.ndarray:
    if name.endswith(".tif"):
        return np.asarray(tifffile.imread(root / name))
    with h5py.File(root / name) as f:
        return np.asarray(f["volume"][...])


def _image(name: str) -> str:
    return f"{ROOT}/{name}/volume" if name.endswith(".h5") else f"{ROOT}/{name}"


def _open(url: str) -> zarr.Group:
    return zarr.open_group(store=zarr.storage.FsspecStore.from_url(url, read_only=True), mode="r")


def _json(url: str) -> dict:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, (url, response.text)
    return response.json()


@pytest.mark.parametrize("name", sorted(VOLUMES))
def test_every_level_reads_as_the_canonical_view_in_slabs_of_at_most_max_z(base, root, name):
    _, depth, browse_depth = VOLUMES[name]
    canonical = _open(f"{base}/{_image(name)}")
    browsing = _open(f"{base}/browse/{_image(name)}")
    assert browsing.attrs["ome"] == canonical.attrs["ome"]  # the same levels, scales, channels
    paths = [d["path"] for d in canonical.attrs["ome"]["multiscales"][0]["datasets"]]
    assert len(paths) >= 2
    assert canonical[paths[0]].chunks[0] == depth
    assert browsing[paths[0]].chunks == (browse_depth, *canonical[paths[0]].chunks[1:])
    for path in paths:
        plain, cut = canonical[path], browsing[path]
        assert cut.chunks[0] <= 16
        assert (cut.shape, cut.dtype) == (plain.shape, plain.dtype)
        assert np.array_equal(cut[...], plain[...]), path
    np.testing.assert_array_equal(browsing[paths[0]][...], _pixels(root, name))


@pytest.mark.parametrize("name", PLANAR)
def test_images_that_nothing_cuts_are_the_canonical_documents(base, name):
    dataset = f"{ROOT}/{name}"
    for key in ("zarr.json", "0/zarr.json", "1/zarr.json"):
        plain = httpx.get(f"{base}/{dataset}/{key}")
        cut = httpx.get(f"{base}/browse/{dataset}/{key}")
        assert plain.status_code == cut.status_code == 200
        assert cut.content == plain.content, key
    ndim = len(_json(f"{base}/{dataset}/0/zarr.json")["shape"])
    chunk = "0/c/" + "/".join(["0"] * ndim)
    plain = httpx.get(f"{base}/{dataset}/{chunk}")
    assert plain.status_code == 200
    assert httpx.get(f"{base}/browse/{dataset}/{chunk}").content == plain.content


def test_uncut_levels_of_a_cut_image_keep_their_bytes(base):
    # shallow.h5 is cut nowhere; float.h5's coarse levels are 25 and 13 planes: cut too
    name = "shallow.h5"
    for key in ("0/zarr.json", "0/c/1/1/1"):
        plain = httpx.get(f"{base}/{_image(name)}/{key}")
        assert httpx.get(f"{base}/browse/{_image(name)}/{key}").content == plain.content


def test_the_views_never_share_a_cached_chunk(base, root):
    # the same key names 32 planes canonically and 16 in the browsing view, in one chunk cache
    image = _image("shuffled.h5")
    canonical = httpx.get(f"{base}/{image}/0/c/1/0/0")
    browsing = httpx.get(f"{base}/browse/{image}/0/c/1/0/0")
    again = httpx.get(f"{base}/{image}/0/c/1/0/0")
    assert canonical.status_code == browsing.status_code == 200
    assert again.content == canonical.content
    slab = np.frombuffer(browsing.content, "<u2").reshape(16, 128, 128)  # codec "none": the bytes
    np.testing.assert_array_equal(slab, _pixels(root, "shuffled.h5")[16:32, :128, :128])


def test_consolidated_metadata_describes_the_slabs(base):
    group = zarr.open_group(
        store=zarr.storage.FsspecStore.from_url(f"{base}/browse/{_image('shuffled.h5')}", read_only=True),
        mode="r",
        use_consolidated=True,
    )
    assert group.metadata.consolidated_metadata is not None
    assert group["0"].chunks == (16, 128, 128)
    root = _json(f"{base}/browse/{_image('shuffled.h5')}/zarr.json")
    inner = root["consolidated_metadata"]["metadata"]["0"]
    assert inner["chunk_grid"]["configuration"]["chunk_shape"] == [16, 128, 128]


@pytest.mark.parametrize("name", ["shuffled.h5", "zstd.h5", "float.h5"])
def test_tensorstore_reads_the_browsing_view(base, root, name):
    array = ts.open({"driver": "zarr3", "kvstore": f"{base}/browse/{_image(name)}/0/"}).result()
    assert array.chunk_layout.read_chunk.shape[0] == VOLUMES[name][2]
    np.testing.assert_array_equal(array.read().result(), _pixels(root, name))


#: codec → the last codec of level 0 of shuffled.h5, deflate.h5, odd.h5 (auto: blosc-zstd
#: from byte planes where the stored chunks are shuffled, zstd elsewhere; uint8 has no bytes
#: to shuffle)
CODECS = {
    "blosc-zstd": ("blosc", "blosc", "blosc"),
    "blosc-lz4": ("blosc", "blosc", "blosc"),
    "zstd": ("zstd", "zstd", "zstd"),
    "gzip": ("gzip", "gzip", "gzip"),
    "auto": ("blosc", "zstd", "zstd"),
}


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_each_codec_of_the_view_reads_bit_exactly(root, codec):
    with serve(_settings(root, browse={"codec": codec})) as url:
        for name, last in zip(("shuffled.h5", "deflate.h5", "odd.h5"), CODECS[codec], strict=True):
            array = _open(f"{url}/browse/{_image(name)}")["0"]
            document = _json(f"{url}/browse/{_image(name)}/0/zarr.json")
            assert document["codecs"][-1]["name"] == last, name
            assert array.chunks[0] <= 16
            np.testing.assert_array_equal(array[...], _pixels(root, name))


def test_the_default_max_z_is_32(root):
    """Chunks of 64 planes are cut in slabs of 32; chunks of 32 planes or fewer are not cut."""
    with serve(_settings(root, default_max_z=True)) as url:
        assert _open(f"{url}/browse/{_image('float.h5')}")["0"].chunks == (32, 64, 64)
        shuffled = _open(f"{url}/browse/{_image('shuffled.h5')}")["0"]
        assert shuffled.chunks == (32, 128, 128)
        plain = httpx.get(f"{url}/{_image('shuffled.h5')}/0/zarr.json").content
        assert httpx.get(f"{url}/browse/{_image('shuffled.h5')}/0/zarr.json").content == plain


def test_max_z_is_a_setting(root):
    with serve(_settings(root, browse={"max_z": 4})) as url:
        array = _open(f"{url}/browse/{_image('shuffled.h5')}")["0"]
        assert array.chunks == (4, 128, 128)
        np.testing.assert_array_equal(array[...], _pixels(root, "shuffled.h5"))


def test_the_dataset_page_links_viewers_to_the_browsing_view(base):
    page = _json(f"{base}/{ROOT}/shuffled.h5/?format=json")
    assert page["browse"] == f"{base}/browse/{ROOT}/shuffled.h5/"
    image = page["images"][0]
    links = image["links"]
    browse_image = f"{base}/browse/{_image('shuffled.h5')}/"
    assert browse_image in unquote(links["neuroglancer"])
    assert browse_image in unquote(links["vizarr"])
    assert "/browse/" not in unquote(links["validator"])  # the validator checks the canonical tree
    assert image["url"] == f"{base}/{_image('shuffled.h5')}/"
    assert image["browse"] == browse_image
    html = httpx.get(f"{base}/{ROOT}/shuffled.h5/", headers={"Accept": "text/html"}).text
    assert f'class="browse" href="{page["browse"]}"' in html


def test_a_views_dataset_url_opens_the_dataset_page(base):
    """The page links the browsing and Zarr v2 views' dataset URLs; followed by a person,
    they open the same page (not a JSON 404)."""
    page = _json(f"{base}/{ROOT}/shuffled.h5/?format=json")
    for view in ("browse", "zarr_v2"):
        assert _json(f"{page[view]}?format=json") == page, view
    html = httpx.get(page["browse"], headers={"Accept": "text/html"})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{base}/browse/{ROOT}/missing.h5/").status_code == 404


def test_a_view_turned_off_is_not_served_nor_linked(root):
    with serve(_settings(root, browse={"enabled": False})) as url:
        assert httpx.get(f"{url}/browse/{_image('shuffled.h5')}/zarr.json").status_code == 404
        page = _json(f"{url}/{ROOT}/shuffled.h5/?format=json")
        assert page["browse"] is None
        assert "/browse/" not in unquote(page["images"][0]["links"]["neuroglancer"])


def test_another_prefix_can_be_set(root):
    with serve(_settings(root, browse={"prefix": "view"})) as url:
        assert _open(f"{url}/view/{_image('shuffled.h5')}")["0"].chunks == (16, 128, 128)
        assert httpx.get(f"{url}/browse/{_image('shuffled.h5')}/zarr.json").status_code == 404


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"roots": {"browse": "."}}, "browsing view's URL prefix"),
        ({"roots": {"x": "."}, "browse": {"prefix": "v2"}}, "both 'v2'"),
        ({"browse": {"prefix": "a/b"}}, "prefix"),
        ({"browse": {"max_z": 0}}, "max_z"),
        ({"browse": {"codec": "brotli"}}, "codec"),
    ],
)
def test_bad_settings_are_refused(mapping, message):
    with pytest.raises((SettingsError, ValueError), match=message):
        Settings.from_mapping(mapping)


def test_probes_of_other_formats_are_404_without_opening_the_file(base):
    for key in (".zarray", ".zattrs", "attributes.json", "info"):
        response = httpx.get(f"{base}/browse/{ROOT}/shuffled.h5/{key}")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/json")


def test_bad_keys_of_the_view_are_clear_4xx(base):
    for key in ("0/c/99/0/0", "0/c/0/0", "0/c/a/0/0", "nothing/zarr.json"):
        response = httpx.get(f"{base}/browse/{_image('shuffled.h5')}/{key}")
        assert response.status_code in (400, 404), key
        assert "error" in response.json()
    assert httpx.get(f"{base}/browse/{ROOT}/missing.h5/zarr.json").status_code == 404
    # escapes from the roots: tests/http/test_containment.py, in every view


def test_a_protected_root_needs_a_grant_in_the_view_too(root):
    """A token for a dataset opens its browsing view too (judged as ``<root>/...``), and a
    token for another dataset does not."""
    settings = _settings(root, auth={"protect": [ROOT], "signing_key": "k" * 32})
    token = mint_token(settings.auth.key(), f"{ROOT}/shuffled.h5", int(time.time()) + 600)
    other = mint_token(settings.auth.key(), f"{ROOT}/odd.h5", int(time.time()) + 600)
    path = f"browse/{_image('shuffled.h5')}/0/c/0/0/0"
    with serve(settings) as url:
        assert httpx.get(f"{url}/{path}").status_code == 401
        assert httpx.get(f"{url}{signed_path(token, path)}").status_code == 200
        assert httpx.get(f"{url}{signed_path(other, path)}").status_code == 403


# -- the overview computed ahead ----------------------------------------------------------


def _chunk_entries(url: str) -> int:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith('gateway_cache_entries{cache="chunks"}'):
            return int(float(line.split()[-1]))
    raise AssertionError("no chunk cache gauge")


def test_reading_an_image_group_in_the_view_computes_its_overview_ahead(root):
    """shuffled.h5 has no pyramid: its coarsest level (one chunk) is computed from the whole
    volume. Serving the browsing view's group document starts it; the viewer's request for
    that chunk then finds it cached. The canonical view starts nothing."""
    image = _image("shuffled.h5")
    with serve(_settings(root)) as url:
        levels = _json(f"{url}/browse/{image}/zarr.json")["attributes"]["ome"]["multiscales"][0]["datasets"]
        coarsest = f"{url}/browse/{image}/{levels[-1]['path']}/c/0/0/0"
        deadline = time.monotonic() + 60
        while _chunk_entries(url) == 0:
            assert time.monotonic() < deadline, "the overview was not computed ahead"
            time.sleep(0.05)
        response = httpx.get(coarsest)
        assert response.status_code == 200
        assert 'chunk-cache;desc="hit"' in response.headers["server-timing"]
        level = _open(f"{url}/browse/{image}")[levels[-1]["path"]]
        chunk = np.frombuffer(response.content, "<u2").reshape(level.chunks)  # codec "none"; edges padded
        depth, height, width = (min(c, n) for c, n in zip(level.chunks, level.shape, strict=True))
        np.testing.assert_array_equal(chunk[:depth, :height, :width], level[:depth, :height, :width])
    with serve(_settings(root)) as url:
        assert httpx.get(f"{url}/{image}/zarr.json").status_code == 200
        time.sleep(1.0)
        assert _chunk_entries(url) == 0


def test_only_computed_overviews_of_few_chunks_are_started():
    def overviews(channels: int, levels: int = 1) -> dict[str, tuple[str, ...]]:
        shapes = [(channels, 1024 >> k, 1024 >> k) for k in range(levels)]
        image = Image(
            name="i",
            axes=(Axis("c"), Axis("y", "micrometer"), Axis("x", "micrometer")),
            levels=tuple(FakeLevel(s, (1, 256, 256)) for s in shapes),
            scale=(1.0, 1.0, 1.0),
        )
        source = Source(path=Path("x.tif"), format="test", images=(image,))
        options = TreeOptions(pyramids=PyramidSettings(enabled=True))
        return overview_keys(build_tree(source, ChunkSettings(), options))

    assert overviews(1) == {"zarr.json": ("2/c/0/0/0",)}  # 1024 → 512 → 256: one chunk, computed
    assert overviews(4) == {"zarr.json": tuple(f"2/c/{c}/0/0" for c in range(4))}
    assert overviews(5) == {}  # five channels: not ahead
    assert overviews(1, levels=3) == {}  # the file's own levels reach one chunk: nothing to compute
