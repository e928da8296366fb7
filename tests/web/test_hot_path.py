"""gateway.web.hotpath: ready values answered before Starlette, exactly as the app would."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tifffile
from starlette.applications import Starlette

from gateway.config.settings import ServerSettings
from gateway.store.inprocess import open_store
from gateway.store.mounts import StoreMount
from gateway.web.hotpath import HotPath
from tests.http.support import running_gateway

#: Headers that differ between any two answers (the date, the timing of this request).
VOLATILE = {"date", "server-timing"}
#: A date before any file's mtime: If-Modified-Since with it sends the request through the
#: app's route (a conditional header), which answers the whole entity like the hot path.
LONG_AGO = "Sun, 06 Nov 1994 08:49:37 GMT"


def _stable(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in VOLATILE}


@pytest.mark.parametrize(
    "path",
    [
        "data/healthy.tif/zarr.json",
        "data/healthy.tif/0/c/0/0",
        "v2/data/healthy.tif/.zattrs",
        "v2/data/healthy.tif/0/0/0",
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_hot_answer_equals_the_routed_answer(tmp_path: Path, path: str, method: str) -> None:
    with running_gateway(tmp_path) as gateway:
        url = f"{gateway.base}/{path}"
        routed = gateway.client.request(method, url, headers={"If-Modified-Since": LONG_AGO})
        hot = gateway.client.request(method, url)  # the value is ready now: the hot path
        assert routed.status_code == hot.status_code == 200
        assert hot.content == routed.content
        assert _stable(hot) == _stable(routed)


def test_hot_path_stays_behind_access_control(tmp_path: Path) -> None:
    key_file = tmp_path / "signing.key"
    key_file.write_bytes(b"k" * 32)
    root = tmp_path / "root"
    root.mkdir()
    auth = {"auth": {"signing_key_file": str(key_file), "protect": ["data"]}}
    with running_gateway(root, **auth) as gateway:
        url = f"{gateway.base}/data/healthy.tif/zarr.json"
        for _ in range(2):  # the second would be ready: still refused
            assert gateway.client.get(url).status_code == 401


def test_hot_path_serves_under_the_mount_prefix(tmp_path: Path) -> None:
    with running_gateway(tmp_path, server={"root_path": "/zarr"}) as gateway:
        # the proxy strips the prefix; the app's links carry it (gateway.web.middleware.MountPath)
        url = f"{gateway.base}/data/healthy.tif/0/c/0/0"
        first, second = gateway.client.get(url), gateway.client.get(url)
        assert first.status_code == second.status_code == 200
        assert first.content == second.content
        assert gateway.client.get(f"{gateway.base}/").status_code == 200


class _Recorder:
    """An app behind the hot path that records what reaches it."""

    def __init__(self, keys: Any) -> None:
        self.state = Starlette().state
        self.state.keys = keys
        self.state.server = ServerSettings()
        self.exception_handlers: dict[Any, Any] = {}
        self.paths: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _ask(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]] = ()) -> int:  # type: ignore[assignment]
    sent: list[dict[str, Any]] = []
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        if received > 1:  # as a server's: after the (empty) body, nothing until a disconnect
            await asyncio.Event().wait()
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": list(headers)}
    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"])


@pytest.fixture
def hot(tmp_path: Path) -> Any:
    path = tmp_path / "plane.tif"
    tifffile.imwrite(path, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    store = open_store(path)
    recorder = _Recorder(StoreMount(store))
    yield HotPath(recorder, reserved={"health"}), recorder  # type: ignore[arg-type]
    store.close()


def test_a_ready_document_never_reaches_the_app(hot: Any) -> None:
    app, recorder = hot
    assert _ask(app, "GET", "/zarr.json") == 200
    assert _ask(app, "HEAD", "/0/zarr.json") == 200
    assert recorder.paths == []


def test_a_chunk_that_needs_work_is_computed_here(hot: Any) -> None:
    app, recorder = hot
    assert _ask(app, "HEAD", "/0/c/0/0") == 200  # read and encoded, without the app
    assert _ask(app, "GET", "/0/c/0/0") == 200  # then ready in the cache
    assert recorder.paths == []


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/", []),  # the index
        ("GET", "/health", []),  # a service path
        ("GET", "/0/", []),  # a page
        ("POST", "/zarr.json", []),  # not a read
        ("GET", "/zarr.json", [(b"range", b"bytes=0-3")]),
        ("GET", "/zarr.json", [(b"if-none-match", b'"x"')]),  # another entity: a 200, the app's
        ("GET", "/zarr.json", [(b"if-none-match", b'"x"'), (b"range", b"bytes=0-1")]),
        ("GET", "/zarr.json", [(b"if-modified-since", LONG_AGO.encode())]),
        ("GET", "/nothing/zarr.json", []),  # absent: the app answers the 404
    ],
)
def test_everything_else_goes_to_the_app(hot: Any, method: str, path: str, headers: list[Any]) -> None:
    app, recorder = hot
    assert _ask(app, method, path, headers) == 299
    assert recorder.paths == [path]


@pytest.mark.parametrize("path", ["data/healthy.tif/zarr.json", "data/healthy.tif/0/c/0/0"])
def test_hot_revalidation_equals_the_routed_one(tmp_path: Path, path: str) -> None:
    with running_gateway(tmp_path) as gateway:
        url = f"{gateway.base}/{path}"
        etag = gateway.client.get(url).headers["etag"]
        # with a Range too, the request is the app's (its route answers the 304 first)
        routed = gateway.client.get(url, headers={"If-None-Match": etag, "Range": "bytes=0-1"})
        hot = gateway.client.get(url, headers={"If-None-Match": etag})
        assert routed.status_code == hot.status_code == 304
        assert hot.content == routed.content == b""
        assert _stable(hot) == _stable(routed)
        other = gateway.client.get(url, headers={"If-None-Match": '"another"'})
        assert other.status_code == 200 and other.headers["etag"] == etag


def test_a_revalidation_of_the_current_entity_never_reaches_the_app(hot: Any) -> None:
    app, recorder = hot
    etag = _first_etag(app)
    assert _ask(app, "GET", "/zarr.json", [(b"if-none-match", etag)]) == 304
    assert _ask(app, "GET", "/zarr.json", [(b"if-none-match", b"*")]) == 299  # only the value can answer *
    assert recorder.paths == ["/zarr.json"]


def _first_etag(app: Any) -> bytes:
    captured: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        captured.append(message)

    scope = {"type": "http", "method": "GET", "path": "/zarr.json", "root_path": "", "headers": []}
    asyncio.run(app(scope, receive, send))
    return dict(captured[0]["headers"])[b"etag"]
