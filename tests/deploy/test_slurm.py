"""deploy/slurm: the batch script, run as Slurm would run it (bash, with SLURM_* set) but
with the gateway command given directly instead of through Apptainer: it starts the
gateway on a free port, prints the tunnel command, serves, and stops on SIGTERM (scancel)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import tifffile

from tests.deploy.support import DEPLOY, Process, wait_for

SCRIPT = DEPLOY / "slurm" / "ome-zarr-gateway.sbatch"


def test_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_batch_job_serves_and_prints_the_tunnel(tmp_path: Path):
    data = tmp_path / "run42"
    data.mkdir()
    tifffile.imwrite(data / "a.tif", np.ones((64, 64), np.uint16), photometric="minisblack")
    env = {
        "OZG_COMMAND": f"{sys.executable} -m gateway",
        "SLURM_SUBMIT_HOST": "login1",
        "SLURMD_NODENAME": "node042",
        "SLURM_CPUS_PER_TASK": "2",
        "USER": "alice",
        "TMPDIR": str(tmp_path),
    }
    job = Process.start(["bash", str(SCRIPT), str(data)], env=env, cwd=Path(__file__).resolve().parents[2])
    try:
        wait_for(lambda: "ssh -N" in job.output, "the tunnel instructions", timeout=90)
        tunnel = re.search(r"ssh -N -L 8000:127\.0\.0\.1:(\d+) -J alice@login1 alice@node042", job.output)
        assert tunnel, job.output
        base = f"http://127.0.0.1:{tunnel.group(1)}"
        assert httpx.get(f"{base}/health").status_code == 200
        assert httpx.get(f"{base}/run42/a.tif/zarr.json").status_code == 200
    finally:
        os.kill(job.popen.pid, signal.SIGTERM)  # what scancel does to the batch step
        code = job.stop(timeout=60)
    assert code == 0, job.output
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the gateway went down with the job
        try:
            httpx.get(f"{base}/health", timeout=1)
        except httpx.TransportError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the gateway outlived its job")


def test_script_refuses_a_missing_directory(tmp_path: Path):
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "nope")], capture_output=True, text=True)
    assert done.returncode == 2 and "not a directory" in done.stderr
