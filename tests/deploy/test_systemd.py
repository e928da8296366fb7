"""deploy/systemd: ``systemd-analyze verify`` (what systemd itself checks when loading the
units: directives, values, the executable, dependencies) and ``systemd-analyze security
--offline`` (the hardening score) on the shipped files.

The units live in a scratch root (``--root``) holding a copy of the system's unit
directory and a stand-in for the installed executable, so the check needs neither
systemd running (it does not run in containers) nor an install in /opt."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.support import DEPLOY, require_tool

UNITS = DEPLOY / "systemd"
INSTANCE = "ome-zarr-gateway@8001.service"
#: exposure x 10 (systemd's "OK" band ends at 4.9; the shipped unit scores 1.2)
MAX_EXPOSURE = "20"


def exec_start(unit: str) -> str:
    return re.search(r"^ExecStart=(\S+)", unit, re.MULTILINE).group(1)


@pytest.fixture
def scratch_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    system_units = Path("/usr/lib/systemd/system")
    if not system_units.is_dir():
        system_units = Path("/lib/systemd/system")
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS.iterdir():
        shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    executable = root / exec_start((UNITS / "ome-zarr-gateway@.service").read_text()).lstrip("/")
    executable.parent.mkdir(parents=True)
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    return root


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    tool = require_tool("systemd-analyze")
    return subprocess.run([tool, *args, f"--root={root}"], capture_output=True, text=True, check=False)


def test_units_pass_verify(scratch_root):
    done = analyze(scratch_root, "verify", INSTANCE, "ome-zarr-gateway.target")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # not even a warning (an unknown key is one)


def test_verify_catches_a_broken_unit(scratch_root):
    unit = scratch_root / "etc/systemd/system/ome-zarr-gateway@.service"
    unit.write_text(
        unit.read_text().replace("NoNewPrivileges=yes", "NoNewPrivileges=yes\nProtectSystm=strict")
    )
    assert "Unknown key" in analyze(scratch_root, "verify", INSTANCE).stderr
    unit.write_text(unit.read_text().replace("/venv/bin/", "/venv/nowhere/"))
    assert analyze(scratch_root, "verify", INSTANCE).returncode != 0  # the executable is checked


def test_unit_is_hardened(scratch_root):
    done = analyze(scratch_root, "security", "--offline=yes", f"--threshold={MAX_EXPOSURE}", INSTANCE)
    assert done.returncode == 0, done.stdout[-2000:]
    unit = (UNITS / "ome-zarr-gateway@.service").read_text()
    for directive in (
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "DynamicUser=yes",
        "ReadOnlyPaths=-/srv/imaging",
        "CapabilityBoundingSet=\n",
    ):
        assert directive in unit


def test_one_instance_per_port(scratch_root):
    unit = (UNITS / "ome-zarr-gateway@.service").read_text()
    assert "--port %i" in unit and "OME_ZARR_GATEWAY__SERVER__INSTANCE=%H-%i" in unit
    done = analyze(scratch_root, "cat-config", "systemd/system.conf")  # the tool runs at all
    assert done.returncode == 0
