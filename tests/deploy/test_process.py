"""The gateway as a service process: settings from file and environment (CLI > env > file),
JSON access logs that never contain a token, ``sign``, graceful shutdown."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import numpy as np
import tifffile

from tests.deploy.support import PROJECT, Process, free_port, start_gateway, wait_for

KEY = "0123456789abcdef0123456789abcdef"


def write_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        folder / "a.tif", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) + 1, photometric="minisblack"
    )
    return folder


def test_settings_precedence_cli_over_env_over_file(tmp_path):
    data = write_dataset(tmp_path / "data")
    extra = write_dataset(tmp_path / "extra")  # roots may not overlap (checked at start)
    config = tmp_path / "gateway.toml"
    file_port = free_port()
    config.write_text(
        f'[roots]\nlab = "{data}"\n[server]\nport = {file_port}\ninstance = "from-file"\naccess_log = "off"\n'
    )
    env_port, cli_port = free_port(), free_port()
    env = {
        "OME_ZARR_GATEWAY__SERVER__PORT": str(env_port),  # loses to --port
        "OME_ZARR_GATEWAY__SERVER__INSTANCE": "from-env",  # wins over the file
        "OME_ZARR_GATEWAY__CHUNKS__CODEC": "gzip",  # not in the file at all
        "OME_ZARR_GATEWAY__ROOTS__EXTRA": str(extra),  # a root from the environment
    }
    process = Process.start(
        [sys.executable, "-m", "gateway", "serve", str(config), "--port", str(cli_port)], env, cwd=PROJECT
    )
    try:
        base = f"http://127.0.0.1:{cli_port}"
        wait_for(lambda: httpx.get(f"{base}/health").status_code == 200, "the gateway up")
        response = httpx.get(f"{base}/lab/a.tif/0/zarr.json")
        assert response.headers["x-gateway-instance"] == "from-env"
        assert response.json()["codecs"][-1]["name"] == "gzip"
        assert httpx.get(f"{base}/extra/a.tif/zarr.json").status_code == 200
        for port in (file_port, env_port):
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                raise AssertionError(f"something answers on {port}")
            except httpx.TransportError:
                pass
    finally:
        process.stop()


def test_bad_environment_value_is_a_clear_error(tmp_path):
    data = write_dataset(tmp_path / "data")
    env = {"OME_ZARR_GATEWAY__SERVER__WORKERS": "many"}
    process = Process.start([sys.executable, "-m", "gateway", "serve", str(data)], env, cwd=PROJECT)
    assert process.popen.wait(timeout=60) == 2
    process.stop()
    assert "OME_ZARR_GATEWAY__SERVER__WORKERS" in process.output


def test_access_log_is_json_and_never_holds_a_token(tmp_path):
    data = write_dataset(tmp_path / "data")
    (tmp_path / "signing.key").write_text(KEY + "\n")
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[roots]\nlab = "{data}"\n[server]\naccess_log = "json"\n'
        f'[auth]\nprotect = ["lab"]\nsigning_key_file = "{tmp_path / "signing.key"}"\n'
    )
    gateway = start_gateway(config, "g-log")
    try:
        signed = Process.start(
            [
                sys.executable,
                "-m",
                "gateway",
                "sign",
                str(config),
                "lab/a.tif",
                "--expires",
                "10m",
                "--base-url",
                gateway.base,
            ],
            cwd=PROJECT,
        )
        assert signed.popen.wait(timeout=60) == 0
        signed.stop()
        url = signed.lines[0].strip()
        token = url.split("/s/", 1)[1].split("/", 1)[0]
        assert url == f"{gateway.base}/s/{token}/lab/a.tif/"
        assert httpx.get(f"{url}zarr.json").status_code == 200
        assert httpx.get(f"{url}0/c/0/0?token={token}").status_code == 200
        assert httpx.get(f"{url}nope/zarr.json", headers={"Referer": f"{url}page"}).status_code == 404
        bearer = httpx.get(
            f"{gateway.base}/lab/a.tif/zarr.json", headers={"Authorization": f"Bearer {token}"}
        )
        assert bearer.status_code == 200
        assert httpx.get(f"{gateway.base}/lab/a.tif/zarr.json").status_code == 401
    finally:
        gateway.process.stop()
    output = gateway.process.output
    assert token not in output
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    paths = [r["path"] for r in records]
    assert "/s/<redacted>/lab/a.tif/zarr.json" in paths
    assert "/s/<redacted>/lab/a.tif/0/c/0/0?token=%3Credacted%3E" in paths
    assert {r["status"] for r in records} >= {200, 401, 404}
    chunk = next(r for r in records if r["kind"] == "chunk")
    assert chunk["instance"] == "g-log" and chunk["bytes"] > 0 and chunk["duration_ms"] > 0


def test_sigterm_closes_files_and_pool(tmp_path):
    data = write_dataset(tmp_path / "data")
    config = tmp_path / "gateway.toml"
    config.write_text(f'[roots]\nlab = "{data}"\n')
    gateway = start_gateway(config, "g-stop")
    assert httpx.get(f"{gateway.base}/lab/a.tif/0/c/0/0").status_code == 200
    assert gateway.process.stop() in (0, -15)  # uvicorn re-raises SIGTERM after shutting down
    output = gateway.process.output
    assert "closed 1 open dataset(s) and the read pool" in output
    assert output.index("Waiting for application shutdown") < output.index("closed 1 open dataset(s)")
