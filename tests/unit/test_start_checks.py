"""Configuration refused at start (issue 9, item 7): overlapping roots, reserved root names,
malformed public_url / trusted_proxies; and the new [server] limits' defaults. Issue 12:
[[labels]], [[rocrate]], [[chunks.rules]] and [auth] problems refused before serving, each
named by its dotted key, instead of surfacing at the first request."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from gateway.config.settings import RESERVED_ROOT_NAMES, Settings, SettingsError
from gateway.store.preflight import check_before_serving
from gateway.web import app as app_module
from gateway.web.auth import SIGNED_PREFIX


def roots_settings(**roots: Path) -> Settings:
    return Settings.from_mapping({"roots": {name: str(path) for name, path in roots.items()}})


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "x" / "private").mkdir(parents=True)
    (tmp_path / "y").mkdir()
    return tmp_path


@pytest.mark.parametrize("order", ["outer first", "inner first"])
def test_nested_roots_are_refused_in_either_order(tree, order):
    pairs = {"pub": tree / "x", "priv": tree / "x" / "private"}
    if order == "inner first":
        pairs = dict(reversed(list(pairs.items())))
    with pytest.raises(SettingsError, match="overlap") as caught:
        roots_settings(**pairs)
    assert "'pub'" in str(caught.value) and "'priv'" in str(caught.value)  # names both


def test_equal_roots_are_refused(tree):
    with pytest.raises(SettingsError, match="same directory") as caught:
        roots_settings(a=tree / "x", b=tree / "x")
    assert "'a'" in str(caught.value) and "'b'" in str(caught.value)


def test_a_root_reached_through_a_symlink_into_another_is_refused(tree):
    link = tree / "y" / "link"
    link.symlink_to(tree / "x" / "private")
    with pytest.raises(SettingsError, match="lies inside"):
        Settings(roots={"pub": tree / "x", "priv": link})  # constructed directly: not yet resolved


def test_a_symlinked_root_equal_to_another_is_refused(tree):
    link = tree / "y" / "same"
    link.symlink_to(tree / "x")
    with pytest.raises(SettingsError, match="same directory"):
        Settings(roots={"a": tree / "x", "b": link})


def test_siblings_with_a_common_name_prefix_are_accepted(tree):
    (tree / "x-more").mkdir()
    settings = roots_settings(x=tree / "x", more=tree / "x-more", y=tree / "y")
    assert set(settings.roots) == {"x", "more", "y"}


@pytest.mark.parametrize("name", sorted(RESERVED_ROOT_NAMES))
def test_reserved_root_names_are_refused(tree, name):
    with pytest.raises(SettingsError, match="reserves"):
        roots_settings(**{name: tree / "y"})


def test_the_v2_prefix_is_refused_as_a_root_name(tree):
    with pytest.raises(SettingsError, match="v2"):
        Settings.from_mapping({"roots": {"old": str(tree / "y")}, "zarr_v2": {"prefix": "old"}})


def test_reserved_names_cover_every_route_of_the_gateway():
    service = set(app_module._service_endpoints(Settings()))
    assert service | {SIGNED_PREFIX.strip("/")} <= RESERVED_ROOT_NAMES


@pytest.mark.parametrize(
    "url",
    [
        "zarr.example.org",
        "ftp://zarr.example.org",
        "https://zarr.example.org/zarr?x=1",
        "https://zarr.example.org/zarr#top",
        "https://user@zarr.example.org/",
        "https://zarr.example.org/a b",
        "https://",
    ],
)
def test_malformed_public_url_is_refused(url):
    with pytest.raises(SettingsError, match="public_url"):
        Settings.from_mapping({"server": {"public_url": url}})


@pytest.mark.parametrize(
    "url", ["https://zarr.example.org", "https://zarr.example.org/zarr/", "http://[::1]:8080/zarr"]
)
def test_public_url_is_accepted(url):
    assert Settings.from_mapping({"server": {"public_url": url}}).server.public_url == url


def test_public_url_path_must_equal_root_path():
    with pytest.raises(SettingsError, match="root_path"):
        Settings.from_mapping({"server": {"public_url": "https://z.example.org/a", "root_path": "/zarr"}})
    same = {"public_url": "https://z.example.org/zarr", "root_path": "/zarr"}
    assert Settings.from_mapping({"server": same}).server.root_path == "/zarr"


@pytest.mark.parametrize("proxy", ["nginx", "10.0.0.300", "10.0.0.0/33", ""])
def test_malformed_trusted_proxy_is_refused(proxy):
    with pytest.raises(SettingsError, match="trusted_proxies"):
        Settings.from_mapping({"server": {"trusted_proxies": [proxy]}})


def test_trusted_proxies_take_addresses_networks_and_star():
    proxies = ["127.0.0.1", "::1", "10.0.0.0/8", "*"]
    assert Settings.from_mapping({"server": {"trusted_proxies": proxies}}).server.trusted_proxies == tuple(
        proxies
    )


@pytest.mark.parametrize(
    "server",
    [
        {"header_timeout_seconds": 0},
        {"keep_alive_seconds": -1},
        {"max_connections": 0},
        {"max_header_bytes": 100},
    ],
)
def test_slow_client_limits_are_checked(server):
    with pytest.raises(SettingsError):
        Settings.from_mapping({"server": server})


def test_max_header_bytes_takes_a_size():
    assert Settings.from_mapping({"server": {"max_header_bytes": "32 KiB"}}).server.max_header_bytes == 32768


def test_defaults_fit_the_systemd_descriptor_limit():
    """deploy/README.md: connections, open files and a margin stay under LimitNOFILE=8192."""
    settings = Settings()
    assert settings.server.max_connections + settings.cache.open_files * 4 + 256 < 8192
    assert settings.server.header_timeout_seconds >= settings.server.keep_alive_seconds


def test_settings_round_trip_through_the_worker_mapping(tree):
    server = {"public_url": "https://z.example.org", "trusted_proxies": ["10.0.0.0/8"], "max_connections": 9}
    settings = Settings.from_mapping({"roots": {"a": str(tree / "y")}, "server": server})
    again = Settings.from_mapping(settings.to_mapping(), base=Path(os.sep))
    assert again.server == settings.server


# -- [[labels]], [[rocrate]], [[chunks.rules]] and [auth], refused at start (issue 12) ------------


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A root ``lab``: an image, label images that fit it or not, a broken file, an HDF5
    file holding an image and its label side by side."""
    root = tmp_path / "lab"
    root.mkdir()
    tifffile.imwrite(root / "img.tif", np.zeros((32, 40), np.uint16))
    tifffile.imwrite(root / "cells.tif", np.zeros((32, 40), np.uint8))
    tifffile.imwrite(root / "float.tif", np.zeros((32, 40), np.float32))
    tifffile.imwrite(root / "small.tif", np.zeros((31, 40), np.uint8))
    (root / "broken.tif").write_bytes(b"II*\x00not a tiff")
    with h5py.File(root / "run.h5", "w") as f:
        f["raw"] = np.zeros((8, 32, 40), np.uint16)
        f["seg"] = np.zeros((8, 32, 40), np.uint32)
    return root


def labelled(root: Path, image: str, source: str, **entry: str) -> Settings:
    return Settings.from_mapping(
        {"roots": {"lab": str(root)}, "labels": [{"image": image, "source": source, **entry}]}
    )


@pytest.mark.parametrize(
    ("image", "source"),
    [
        ("lab/img.tif", "lab/cells.tif"),
        ("lab/run.h5/raw", "lab/run.h5/seg"),
        ("/lab/img.tif/", "lab/cells.tif"),
    ],
)
def test_labels_that_fit_pass_the_start_checks(images: Path, image: str, source: str) -> None:
    check_before_serving(labelled(images, image, source))


@pytest.mark.parametrize(
    ("image", "source", "where", "reason"),
    [
        ("lab/img.tif", "lab/absent.tif", "labels[0].source", "'lab/absent.tif' is no dataset file"),
        ("lab/absent.tif", "lab/cells.tif", "labels[0].image", "'lab/absent.tif' is no dataset file"),
        ("lab/img.tif", "lab/float.tif", "labels[0].source", "float32 is not an integer type"),
        (
            "lab/img.tif",
            "lab/small.tif",
            "labels[0].source",
            "shape (31, 40) differs from the image's (32, 40)",
        ),
        ("lab/img.tif", "lab/broken.tif", "labels[0].source", "'lab/broken.tif' cannot be opened"),
        ("lab/run.h5/raw", "lab/run.h5/nothing", "labels[0].source", "holds no image at 'nothing'"),
        ("lab/img.tif", "lab/run.h5/seg", "labels[0].source", "its axes zyx do not match the image's yx"),
    ],
)
def test_a_label_that_cannot_be_served_refuses_the_start(
    images: Path, image: str, source: str, where: str, reason: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        check_before_serving(labelled(images, image, source))
    ((key, what),) = caught.value.problems
    assert key == where and reason in what, caught.value


def test_every_bad_label_is_named_at_once(images: Path) -> None:
    entries = [
        {"image": "lab/img.tif", "source": "lab/cells.tif"},
        {"image": "lab/img.tif", "source": "lab/float.tif", "name": "f"},
        {"image": "lab/img.tif", "source": "lab/small.tif", "name": "s"},
    ]
    settings = Settings.from_mapping({"roots": {"lab": str(images)}, "labels": entries})
    with pytest.raises(SettingsError) as caught:
        check_before_serving(settings)
    assert [key for key, _ in caught.value.problems] == ["labels[1].source", "labels[2].source"]


@pytest.mark.parametrize(
    ("entries", "where", "reason"),
    [
        (
            [{"image": "other/img.tif", "source": "lab/c.tif"}],
            "labels[0].image",
            "under no root (roots: lab)",
        ),
        ([{"image": "lab/img.tif", "source": "img.tif"}], "labels[0].source", "under no root"),
        ([{"image": "lab/img.tif", "source": "/lab/img.tif/"}], "labels[0].source", "its own label"),
        (
            [
                {"image": "lab/img.tif", "source": "lab/a.tif", "name": "cells"},
                {"image": "lab/img.tif/", "source": "lab/b.tif", "name": "cells"},
            ],
            "labels[1].name",
            "'cells' already names a label of 'lab/img.tif' (labels[0])",
        ),
    ],
)
def test_labels_wrong_on_their_face_are_refused_when_parsed(tmp_path: Path, entries, where, reason) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_mapping({"roots": {"lab": str(tmp_path)}, "labels": entries})
    assert any(key == where and reason in what for key, what in caught.value.problems), caught.value


@pytest.mark.parametrize(
    ("crate", "where"),
    [
        ({"dataset": "cells/*.tif"}, "rocrate[0].dataset"),
        ({"dataset": "cells.ome.tif"}, "rocrate[0].dataset"),
        ({"dataset": "lab/*", "organism": "human"}, "rocrate[0].organism"),
        ({"dataset": "lab/*", "organism": "txid9606"}, "rocrate[0].organism"),
        ({"dataset": "lab/*", "imaging_method": "fluorescence microscopy"}, "rocrate[0].imaging_method"),
        ({"dataset": "lab/*", "imaging_method": "FBbi:00000246"}, "rocrate[0].imaging_method"),
        ({"dataset": "lab/*", "license": "CC BY 4.0"}, "rocrate[0].license"),
    ],
)
def test_a_bad_rocrate_entry_is_refused_with_its_key(tmp_path: Path, crate, where) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_mapping({"roots": {"lab": str(tmp_path)}, "rocrate": [crate]})
    assert where in [key for key, _ in caught.value.problems], caught.value


@pytest.mark.parametrize(
    "crate",
    [
        {"dataset": "lab/cells3d/*", "organism": "NCBI:txid9606", "imaging_method": "obo:FBbi_00000246"},
        {"dataset": "*.tif", "license": "CC0-1.0"},
        {"dataset": "la*", "license": "https://creativecommons.org/licenses/by/4.0/"},
        {"dataset": "[lx]ab/*", "organism": "http://purl.obolibrary.org/obo/NCBITaxon_9606"},
    ],
)
def test_good_rocrate_entries_are_accepted(tmp_path: Path, crate) -> None:
    assert Settings.from_mapping({"roots": {"lab": str(tmp_path)}, "rocrate": [crate]}).rocrate[0].dataset


def test_a_chunk_rule_that_matches_no_dataset_is_refused(tmp_path: Path) -> None:
    rules = [{"pattern": "lab/*.h5", "z": 8}, {"pattern": "volumes/*.h5", "z": 64}]
    with pytest.raises(SettingsError) as caught:
        Settings.from_mapping({"roots": {"lab": str(tmp_path)}, "chunks": {"rules": rules}})
    assert [key for key, _ in caught.value.problems] == ["chunks.rules[1].pattern"]


def test_patterns_are_not_judged_without_roots() -> None:
    """A config checked on another machine, its roots given later on the command line."""
    assert Settings.from_mapping({"rocrate": [{"dataset": "cells/*"}]}).rocrate


def test_both_signing_keys_are_refused() -> None:
    with pytest.raises(SettingsError, match="auth: set signing_key or signing_key_file, not both"):
        Settings.from_mapping({"auth": {"signing_key": "k" * 32, "signing_key_file": "/etc/key"}})


@pytest.mark.parametrize(
    ("auth", "where", "reason"),
    [
        ({"protect": ["lab"]}, "auth.signing_key_file", "not set; protect = ['lab'] needs a signing key"),
        ({"signing_key": "short"}, "auth.signing_key", "5 bytes; a signing key needs at least 16"),
        (
            {"protect": ["lab"], "signing_key_file": "${OZG_TEST_UNSET_DIR}/signing.key"},
            "auth.signing_key_file",
            "${OZG_TEST_UNSET_DIR} is not set in the environment",
        ),
        (
            {"protect": ["lab"], "signing_key_file": "{tmp}/absent.key"},
            "auth.signing_key_file",
            "cannot read",
        ),
    ],
)
def test_auth_that_cannot_sign_refuses_the_start(tmp_path: Path, monkeypatch, auth, where, reason) -> None:
    monkeypatch.delenv("OZG_TEST_UNSET_DIR", raising=False)
    (tmp_path / "lab").mkdir()
    auth = {k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v for k, v in auth.items()}
    settings = Settings.from_mapping({"roots": {"lab": str(tmp_path / "lab")}, "auth": auth})
    with pytest.raises(SettingsError) as caught:
        check_before_serving(settings)
    assert str(caught.value).startswith(f"{where}: ") and reason in str(caught.value), caught.value


def test_the_start_checks_name_every_problem_at_once(tmp_path: Path) -> None:
    settings = Settings.from_mapping(
        {"roots": {"lab": str(tmp_path / "missing")}, "auth": {"protect": ["lab"], "signing_key": "x"}}
    )
    with pytest.raises(SettingsError) as caught:
        check_before_serving(settings)
    assert str(caught.value).startswith("root 'lab': ")
    assert [key for key, _ in caught.value.problems][1:] == ["auth.signing_key"]


def test_a_readable_key_and_existing_roots_pass(tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    (tmp_path / "signing.key").write_text("k" * 32)
    auth = {"protect": ["lab"], "signing_key_file": str(tmp_path / "signing.key")}
    check_before_serving(Settings.from_mapping({"roots": {"lab": str(tmp_path / "lab")}, "auth": auth}))
