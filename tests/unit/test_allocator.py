"""glibc's allocator settings of the serving processes (gateway.ops.allocator), checked in
a fresh interpreter each: they change the process they run in and its environment."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from gateway.ops import allocator

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")

_PROBE = """
import json, os
from gateway.ops.allocator import SETTINGS, tune_allocator
applied = tune_allocator()
print(json.dumps([applied, {name: os.environ.get(name) for name, _, _ in SETTINGS}]))
"""


def _tune(**environment: str) -> tuple[list[str], dict[str, str | None]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | environment
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    applied, values = json.loads(done.stdout)
    return applied, values


def test_every_setting_is_applied_and_passed_on_to_worker_processes():
    applied, values = _tune()
    assert applied == [name for name, _, _ in allocator.SETTINGS]
    assert values == {
        "MALLOC_MMAP_THRESHOLD_": str(4 * 1024**2),
        "MALLOC_TRIM_THRESHOLD_": str(32 * 1024**2),
        "MALLOC_ARENA_MAX": "4",
    }


def test_the_operators_own_settings_win():
    applied, values = _tune(MALLOC_ARENA_MAX="2", MALLOC_TRIM_THRESHOLD_="0")
    assert applied == ["MALLOC_MMAP_THRESHOLD_"]
    assert values["MALLOC_ARENA_MAX"] == "2" and values["MALLOC_TRIM_THRESHOLD_"] == "0"


def test_what_the_arenas_keep_fits_the_memory_margin():
    from gateway.config.settings import RSS_MARGIN_BYTES

    assert allocator.ARENA_MAX * allocator.TRIM_THRESHOLD_BYTES <= RSS_MARGIN_BYTES // 2
    assert allocator.MMAP_THRESHOLD_BYTES <= allocator.TRIM_THRESHOLD_BYTES
