"""Shared fixtures: real servers on loopback, the shared sample data, temp roots."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from gateway.config.settings import Settings
from tests.server import serve

PROJECT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real sample files); tests skip, loudly, only when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"sample data folder {SHARED_DATA} is missing")
    return SHARED_DATA


@pytest.fixture
def server() -> Callable[[Settings], AbstractContextManager[str]]:
    """``with server(settings) as base_url:`` — a real uvicorn gateway, stopped on exit."""
    return serve


@pytest.fixture
def serve_dir(tmp_path: Path) -> Iterator[tuple[Path, Callable[..., AbstractContextManager[str]]]]:
    """A temp root ``data`` and a way to serve it (with optional settings overrides)."""
    root = tmp_path / "root"
    root.mkdir()

    def start(**sections: object) -> AbstractContextManager[str]:
        settings = Settings.from_mapping({"roots": {"data": str(root)}, **sections})
        return serve(settings)

    yield root, start
