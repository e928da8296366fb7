"""Pool pressure on a real server: ten files, an open-file pool of two, sixteen threads.

No chunk or tile cache, so every request leases a source through the pool and sources
leave the pool while other requests are still reading them. A source closed under a
reader answers 500 ("file was closed"); a lease keeps it open until its last reader is
done. ``python -m stress --only pool`` runs the same load for 20 s against a gateway process.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import numpy as np
import pytest

from adapters.io.files import PositionalFile
from tests.http.support import HEALTHY_TILE, decode_chunk, new_client, write_healthy

FILES = 10
THREADS = 16
OPEN_FILES = 2
#: Short on purpose (the suite shares two cores); the stress section runs 20 s.
PRESSURE_SECONDS = 3.5
KEYS = ("c/0/0", "c/0/1", "c/1/0", "c/1/1")


def expected_chunk(pixels: np.ndarray, key: str) -> np.ndarray:
    row, column = (int(n) for n in key.split("/")[1:])
    ty, tx = HEALTHY_TILE
    return pixels[row * ty : (row + 1) * ty, column * tx : (column + 1) * tx]


@pytest.fixture
def opened_files(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the files the adapters open (one entry per opening, reopenings included)."""
    opened: list[str] = []
    original = PositionalFile.__init__

    def counting_init(self: PositionalFile, path, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        original(self, path, *args, **kwargs)
        opened.append(self.path.name)

    monkeypatch.setattr(PositionalFile, "__init__", counting_init)
    return opened


def test_pool_pressure_gives_no_5xx_and_exact_bytes(serve_dir, opened_files):
    root, start = serve_dir
    files = {f"f{i}.tif": write_healthy(root / f"f{i}.tif", offset=1000 * i + 1) for i in range(FILES)}
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    per_thread = [0] * THREADS
    lock = threading.Lock()
    cache = {"open_files": OPEN_FILES, "chunk_bytes": 0, "tile_bytes": 0}
    with start(cache=cache) as base:
        with new_client() as client:
            arrays = {name: client.get(f"{base}/data/{name}/0/zarr.json").json() for name in files}
        deadline = time.monotonic() + PRESSURE_SECONDS

        def hammer(worker: int) -> None:
            rng = random.Random(worker)
            with new_client() as client:
                while time.monotonic() < deadline:
                    name, key = rng.choice(list(files)), rng.choice(KEYS)
                    response = client.get(f"{base}/data/{name}/0/{key}")
                    with lock:
                        per_thread[worker] += 1
                        statuses[response.status_code] += 1
                        if response.status_code != 200:
                            failures.append(f"{name}/{key}: {response.status_code} {response.text[:200]}")
                        elif not np.array_equal(
                            decode_chunk(response.content, arrays[name]), expected_chunk(files[name], key)
                        ):
                            failures.append(f"{name}/{key}: wrong bytes")

        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    assert server_errors == 0, failures[:10]
    assert failures == [], failures[:10]
    assert min(per_thread) >= 1, per_thread  # all sixteen threads were reading at once
    # the pool churned: files left it and were opened again while others were in use
    assert len(opened_files) > FILES, Counter(opened_files)
