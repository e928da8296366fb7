"""gateway.store.catalog leases: a source leaves the pool at any time but is closed only when
no lease holds it; the pool is bounded by bytes too; unreadable files say so."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from adapters.base import Source, SourceReadError, full_region
from gateway.config.settings import Settings
from gateway.store.cache import ByteLRU
from gateway.store.catalog import Catalog, Dataset, SourceUnavailableError
from tests.catalogs import make_catalog

PIXELS = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("a", "b", "c"):
        tifffile.imwrite(tmp_path / f"{name}.tif", PIXELS, tile=(32, 32), photometric="minisblack")
    return tmp_path


def new_catalog(root: Path, **cache: object) -> Catalog:
    return make_catalog(Settings.from_mapping({"roots": {"data": str(root)}, "cache": cache}), ByteLRU(0))


@pytest.fixture
def catalog(root: Path) -> Iterator[Catalog]:
    catalog = new_catalog(root, open_files=1)
    yield catalog
    catalog.close()


def read_all(dataset: Dataset) -> np.ndarray:
    level = dataset.source.images[0].levels[0]
    return level.read(full_region(level.shape))


def test_evicted_source_stays_open_while_leased(catalog: Catalog) -> None:
    with catalog.lease("data/a.tif") as a:
        assert a is not None
        with catalog.lease("data/b.tif"):  # open_files = 1: a leaves the pool
            assert not a.dataset.pooled
            np.testing.assert_array_equal(read_all(a.dataset), PIXELS)
    assert a.dataset.closed
    with pytest.raises(SourceReadError, match="closed"):
        read_all(a.dataset)


def test_released_source_stays_open_while_pooled(catalog: Catalog) -> None:
    with catalog.lease("data/a.tif") as a:
        assert a is not None
    assert a.dataset.pooled and not a.dataset.closed
    np.testing.assert_array_equal(read_all(a.dataset), PIXELS)


def test_unleased_evicted_source_is_closed_at_once(catalog: Catalog) -> None:
    a = catalog.locate("data/a.tif")
    assert a is not None
    catalog.locate("data/b.tif")
    assert a.dataset.closed


def test_hold_on_a_closed_dataset_is_refused(catalog: Catalog) -> None:
    a = catalog.locate("data/a.tif")
    assert a is not None
    catalog.locate("data/b.tif")
    with pytest.raises(SourceUnavailableError, match="closed"), catalog.hold(a.dataset):
        pass


def test_pool_is_bounded_by_parsed_bytes(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Source, "parsed_bytes", lambda self: 400)
    catalog = new_catalog(root, open_files=10, open_file_bytes=1000)
    try:
        found = [catalog.locate(f"data/{name}.tif") for name in ("a", "b", "c")]
        assert [f is not None and f.dataset.closed for f in found] == [True, False, False]
        assert (catalog.open_count, catalog.open_bytes) == (2, 800)
    finally:
        catalog.close()


def test_growth_seen_on_release_evicts(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = {"a.tif": 400, "b.tif": 400}
    monkeypatch.setattr(Source, "parsed_bytes", lambda self: sizes[self.path.name])
    monkeypatch.setattr("gateway.store.catalog.MEASURE_INTERVAL_SECONDS", 0.0)
    catalog = new_catalog(root, open_files=10, open_file_bytes=1000)
    try:
        a = catalog.locate("data/a.tif")
        with catalog.lease("data/b.tif"):
            sizes["b.tif"] = 700  # an index learnt while reading
        assert a is not None and a.dataset.closed
        assert (catalog.open_count, catalog.open_bytes) == (1, 700)
    finally:
        catalog.close()


def test_real_sources_report_their_tile_offsets(root: Path) -> None:
    big = root / "big.tif"
    tifffile.imwrite(big, np.zeros((1024, 1024), np.uint8), tile=(16, 16), photometric="minisblack")
    catalog = new_catalog(root)
    try:
        small, large = catalog.locate("data/a.tif"), catalog.locate("data/big.tif")
        assert small is not None and large is not None
        # 4,096 tiles (against 4): an int64 offset and byte count each
        assert large.dataset.source.parsed_bytes() - small.dataset.source.parsed_bytes() >= 2 * 8 * (4096 - 4)
    finally:
        catalog.close()


def test_sweep_closes_a_deleted_file_without_a_request(root: Path) -> None:
    catalog = new_catalog(root, stat_interval_seconds=0)
    try:
        a = catalog.locate("data/a.tif")
        assert a is not None
        (root / "a.tif").unlink()
        assert catalog.sweep() == 1
        assert a.dataset.closed and catalog.open_count == 0
    finally:
        catalog.close()


def test_sweep_keeps_a_leased_deleted_file_open_until_release(root: Path) -> None:
    catalog = new_catalog(root, stat_interval_seconds=0)
    try:
        with catalog.lease("data/a.tif") as a:
            assert a is not None
            (root / "a.tif").unlink()
            catalog.sweep()
            assert not a.dataset.pooled and not a.dataset.closed
            np.testing.assert_array_equal(read_all(a.dataset), PIXELS)
        assert a.dataset.closed
    finally:
        catalog.close()


def test_file_without_read_bits_is_permission_denied(root: Path) -> None:
    catalog = new_catalog(root, stat_interval_seconds=0)
    try:
        assert catalog.locate("data/a.tif") is not None
        os.chmod(root / "a.tif", 0)
        with pytest.raises(SourceUnavailableError, match="permission denied"):
            catalog.locate("data/a.tif")
        assert catalog.open_count == 0  # the opened version was retired
    finally:
        catalog.close()


def test_chmod_is_a_change_even_when_still_readable(root: Path) -> None:
    catalog = new_catalog(root, stat_interval_seconds=0)
    try:
        first = catalog.locate("data/a.tif")
        os.chmod(root / "a.tif", 0o640)
        second = catalog.locate("data/a.tif")
        assert first is not None and second is not None
        assert second.dataset is not first.dataset and first.dataset.closed
        assert second.dataset.identity == first.dataset.identity  # ETags do not change
    finally:
        catalog.close()
