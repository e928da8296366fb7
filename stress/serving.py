"""What every section starts from: a work folder, a root, a config, a running gateway."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stress.process import Budget, GatewayProcess, stated_budget, write_config
from stress.profiles import Profile


@dataclass
class Served:
    root: Path
    config: Path
    server: GatewayProcess
    budget: Budget

    @property
    def base(self) -> str:
        return self.server.base


def base_config(root: Path, profile: Profile, **sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Root ``data``; small caches (a tight budget shows a bomb); no access log (the
    server's log then holds only warnings and errors, which the sections count)."""
    config: dict[str, dict[str, Any]] = {
        "roots": {"data": str(root)},
        "cache": {"chunk_bytes": profile.chunk_cache_bytes, "tile_bytes": profile.tile_cache_bytes},
        "server": {"access_log": "off", "threads": profile.threads},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return config


@contextmanager
def serving(workdir: Path, name: str, config: dict[str, dict[str, Any]]) -> Iterator[Served]:
    path = write_config(workdir / f"{name}.toml", config)
    server = GatewayProcess(path, workdir / f"{name}.log")
    with server:
        yield Served(Path(config["roots"]["data"]), path, server, stated_budget(path))
