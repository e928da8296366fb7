"""In-process users open the same stores HTTP serves, without loading the web stack.

Every module of the store side is imported in a fresh interpreter (this one has loaded
Starlette long ago); none may pull in Starlette, uvicorn or the gateway's HTTP rooms.
``lint-imports`` (pyproject.toml) states the same statically; this checks what really loads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]

STORE_SIDE = ("gateway.store", "gateway.ngff", "gateway.levels", "gateway.config")
WEB_STACK = ("starlette", "uvicorn", "gateway.web")

PROBE = """
import importlib, json, pkgutil, sys
imported = []
for name in sys.argv[1:]:
    package = importlib.import_module(name)
    imported.append(name)
    for module in pkgutil.walk_packages(package.__path__, name + "."):
        importlib.import_module(module.name)
        imported.append(module.name)
print(json.dumps({"imported": imported, "loaded": sorted(sys.modules)}))
"""


def test_store_side_loads_no_web_stack():
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *STORE_SIDE],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "gateway.store.catalog" in report["imported"]  # the walk saw the store's modules
    web = [m for m in report["loaded"] if any(m == p or m.startswith(f"{p}.") for p in WEB_STACK)]
    assert web == []
