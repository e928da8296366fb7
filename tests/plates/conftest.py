"""The plate fixtures (tests/plates/writers.py) written once and served by one real gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.config.settings import Settings
from tests.plates.support import ROOT, Fixture
from tests.plates.writers import FIXTURES, write_plate_tiff
from tests.server import serve


@pytest.fixture(scope="package")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Fixture]:
    root = tmp_path_factory.mktemp("plates") / ROOT
    root.mkdir()
    written = {}
    for seed, name in enumerate(FIXTURES):
        path = root / f"{name}.ome.tif"
        written[name] = Fixture(path, write_plate_tiff(name, path, seed=seed))
    return written


@pytest.fixture(scope="package")
def base(fixtures: dict[str, Fixture]) -> Iterator[str]:
    root = next(iter(fixtures.values())).path.parent
    with serve(Settings.from_mapping({"roots": {ROOT: str(root)}})) as url:
        yield url
