"""Fixtures of the multi-file suites: a served folder (``root``) beside an outside one."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.base import NoTileCache, OpenOptions, Source
from adapters.io.files import FileAccess
from adapters.registry import default_registry


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def open_in(root: Path, path: Path) -> Source:
    """Open ``path`` as the gateway opens a file of the root ``root``."""
    return default_registry().open(path, NoTileCache(), OpenOptions(access=FileAccess.under(root)))
