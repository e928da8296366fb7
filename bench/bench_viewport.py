#!/usr/bin/env python3
"""Time to fill a viewport in headless Chromium (issue 11, item 6): Neuroglancer (one xy
plane, and the 4-panel layout with its 3-D view) and a zarrita.js plane view, on the
gateway (default 3-D chunks, sharded planes, one plane per chunk) against nginx serving a
converted copy in 64 x 128 x 128 chunks, side by side in one run.

1. The volume and its export are ``bench_volume.py``'s (the same ``--workdir`` reuses them):
   ``--planes`` x 1024 x 1024 uint16 in 64 x 128 x 128 chunks, gzip-1 + shuffle; the export
   (default settings) holds the gateway's 64 x 128 x 128 chunks (level 0: the stored zlib
   streams in blosc frames), served by Debian's nginx with
   ``bench_hot.py``'s static server block plus CORS (the viewers' pages are on another origin).
2. Servers: ``gateway`` (defaults: the source's 64 x 128 x 128 chunks), ``gateway zstd``
   (the same as zstd-1, the default before blosc-zstd of shuffled chunks), ``gateway
   blosc-zstd`` (blosc-zstd made from the shuffled chunks, the default before deflate
   chunks were sent in blosc frames), ``gateway sharded``
   (``[chunks] z = 1, shard = --shard``: one-plane inner chunks in 64-plane shards),
   ``gateway z=N`` (``[chunks] z = N``: N planes per chunk at every level, any N; ``z=1``
   in the default list), ``gateway browse`` (the default gateway's browsing view, at the
   URL its dataset page gives viewers: volumes in slabs of at most 16 planes), ``gateway
   browse [z=N] [CODEC]`` (the same with ``[browse] max_z = N`` and ``codec = CODEC``), ``--extra NAME=CHUNKS``
   (gateways of your own ``[chunks]`` keys) and ``nginx``. Every load gets a fresh server (cold
   caches; the file is in the page cache for all alike) and a fresh browser context (empty
   HTTP cache); Chromium itself (Debian's, through Playwright, ``tests/viewers/browser.py``)
   and the viewers' own pages stay up.
3. Views, 800 x 600 pixels:
   - ``ng xy``: Neuroglancer (its Python package's bundled client, hosted by the package on
     loopback, as in ``tests/viewers/test_neuroglancer.py``), the gateway's own viewer state
     for the image (``gateway.web.viewers.neuroglancer_state``) with ``layout = "xy"``;
   - ``ng 4panel``: the same state with ``layout = "4panel"`` (xy, xz, yz and the 3-D view);
   - ``ng slide``: Neuroglancer's xy layout on a 2-D slide instead of the volume: a pyramidal
     OME-TIFF written once with ``bench_tiff.py``'s generator (``--slide-size``, default 3 x
     8192 x 8192 uint16, 512 x 512 tiles, 5 levels, ``--slide-compression`` deflate: every
     chunk transcoded, or zstd: every chunk passed through) and its export;
   - ``zarrita xy``: a minimal page (served from this process) that does what Viv does for a
     2-D plane view: opens the OME-Zarr group with zarrita.js (``tests/viewers/js``), then
     fetches the tiles (chunk-sized, y/x) of level ``--zarrita-level`` covering the viewport
     centred on the middle plane, all at once, and draws them on a canvas.
4. "Filled": the page is ready (Neuroglancer's ``viewer.isReady()`` true; the zarrita page
   has drawn every tile) and no request to the data server is in flight or has ended for
   ``--quiet`` seconds (0.5). The time to fill is from navigation start to the later of the
   last data response's end and the moment the page became ready (browser timestamps).
   Also recorded: data requests, bytes, the first data request's start, console errors, a
   screenshot's lit fraction (a blank view is a failed load), and for zarrita the SHA-256 of
   the tiles it read, checked equal to h5py's pixels.
5. ``--loads`` loads per view and server, in rounds alternating the order of the servers
   (reversed every other round); medians, and ratios to nginx as medians of per-round
   ratios. Stops every process it started; writes every load as JSON to ``--workdir``.

    python bench/bench_viewport.py                  # 5 loads x 3 views x 4 servers, ~5-10 min on 2 cores
    python bench/bench_viewport.py --quick --views "ng xy" --servers gateway,nginx   # smoke, ~30 s
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

from bench_hot import STATIC_SITE, Server, run_and_report, start_gateway, start_nginx  # noqa: E402
from bench_tiff import generate as generate_slide  # noqa: E402
from bench_volume import (  # noqa: E402
    DATASET,
    ROOT,
    SHAPE_YX,
    ensure_bdv,
    ensure_export,
    ensure_volume,
    write_config,
)

from gateway.web.viewers import channels_from_omero, neuroglancer_state  # noqa: E402
from tests.viewers.browser import VIEWPORT, pixel_stats, running_browser  # noqa: E402

JS_DIR = REPO / "tests" / "viewers" / "js"
SERVERS = (
    "gateway",
    "gateway browse",
    "gateway zstd",
    "gateway blosc-zstd",
    "gateway sharded",
    "gateway z=1",
    "nginx",
)
#: ``gateway z=N``: ``[chunks] z = N``, any N.
Z_SERVER = re.compile(r"gateway z=([1-9][0-9]*)")
#: ``gateway browse [z=N] [CODEC]``: the default gateway's browsing view, with ``[browse]
#: max_z = N`` and ``codec = CODEC`` when given.
BROWSE_SERVER = re.compile(r"gateway browse(?: z=([1-9][0-9]*))?(?: ([a-z0-9-]+))?")
VIEWS = ("ng xy", "ng 4panel", "zarrita xy", "ng slide")
#: The slide of ``ng slide``: channels, tile, levels (its size and compression are options).
SLIDE_CHANNELS, SLIDE_TILE, SLIDE_LEVELS = 3, 512, 5

#: nginx as in bench_hot.py, plus what a viewer on another origin needs: CORS on every
#: answer, and preflights (zarrita asks for suffix ranges, which are not CORS-safelisted).
CORS_SITE = STATIC_SITE.replace(
    "location / {{}}",
    """location / {{
        add_header Access-Control-Allow-Origin "*" always;
        add_header Access-Control-Expose-Headers "Content-Range, Content-Length, ETag" always;
        if ($request_method = OPTIONS) {{
            add_header Access-Control-Allow-Origin "*";
            add_header Access-Control-Allow-Methods "GET, HEAD, OPTIONS";
            add_header Access-Control-Allow-Headers "Range";
            add_header Access-Control-Max-Age 86400;
            return 204;
        }}
    }}""",
)

#: Run in every page before its scripts: remembers since when Neuroglancer has been ready.
READY_PROBE = """
window.__bench = {readySince: null};
setInterval(() => {
  const viewer = window.viewer;
  if (!viewer || typeof viewer.isReady !== "function") return;
  if (viewer.isReady()) {
    if (window.__bench.readySince === null) window.__bench.readySince = performance.now();
  } else {
    window.__bench.readySince = null;
  }
}, 10);
"""

#: zarrita.js from tests/viewers/js/node_modules, mapped for the browser (its Node-only
#: storage backends are never imported: the index imports the fetch store alone).
IMPORT_MAP = {
    "imports": {
        "zarrita": "/nm/zarrita/dist/src/index.js",
        "@zarrita/storage/fetch": "/nm/@zarrita/storage/dist/src/fetch.js",
        "numcodecs": "/nm/numcodecs/dist/index.js",
        "numcodecs/zstd": "/nm/numcodecs/dist/zstd.js",
        "numcodecs/blosc": "/nm/numcodecs/dist/blosc.js",
        "numcodecs/lz4": "/nm/numcodecs/dist/lz4.js",
        "numcodecs/gzip": "/nm/numcodecs/dist/gzip.js",
        "numcodecs/zlib": "/nm/numcodecs/dist/zlib.js",
        "fflate": "/nm/fflate/esm/browser.js",
    }
}

#: What Viv's MultiscaleImageLayer does for one plane at one level: every chunk-sized tile in
#: the viewport fetched at once (``getTile`` = ``zarr.get`` of the tile's y/x at one z).
ZARRITA_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>zarrita plane view</title>
<script type="importmap">{import_map}</script></head>
<body style="margin:0;background:#000"><canvas id="view"></canvas>
<script type="module">
import * as zarr from "zarrita";
const bench = (window.__bench = {{ readySince: null }});
const q = new URLSearchParams(location.search);
const [z, y0, x0, height, width] = ["z", "y", "x", "h", "w"].map((k) => Number(q.get(k)));
try {{
  const group = await zarr.open(new zarr.FetchStore(q.get("image")), {{ kind: "group" }});
  const path = group.attrs.ome.multiscales[0].datasets[Number(q.get("level"))].path;
  const array = await zarr.open(group.resolve(path), {{ kind: "array" }});
  const [, tileY, tileX] = array.chunks;
  const [ty0, tx0] = [Math.floor(y0 / tileY) * tileY, Math.floor(x0 / tileX) * tileX];
  const ty1 = Math.min(array.shape[1], Math.ceil((y0 + height) / tileY) * tileY);
  const tx1 = Math.min(array.shape[2], Math.ceil((x0 + width) / tileX) * tileX);
  const [H, W] = [ty1 - ty0, tx1 - tx0];
  const pixels = new Uint16Array(H * W);
  const canvas = document.getElementById("view");
  [canvas.width, canvas.height] = [width, height];
  const context = canvas.getContext("2d");
  const tiles = [];
  for (let ty = ty0; ty < ty1; ty += tileY) for (let tx = tx0; tx < tx1; tx += tileX) tiles.push([ty, tx]);
  await Promise.all(tiles.map(async ([ty, tx]) => {{
    const [h, w] = [Math.min(tileY, ty1 - ty), Math.min(tileX, tx1 - tx)];
    const tile = await zarr.get(array, [z, zarr.slice(ty, ty + h), zarr.slice(tx, tx + w)]);
    const image = context.createImageData(w, h);
    for (let i = 0; i < h; i++) {{
      pixels.set(tile.data.subarray(i * w, (i + 1) * w), (ty - ty0 + i) * W + (tx - tx0));
      for (let j = 0; j < w; j++) {{
        const v = Math.min(255, tile.data[i * w + j] >> 4), o = 4 * (i * w + j);
        image.data[o] = image.data[o + 1] = image.data[o + 2] = v;
        image.data[o + 3] = 255;
      }}
    }}
    context.putImageData(image, tx - x0, ty - y0);
  }}));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", pixels.buffer));
  bench.sha256 = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  bench.region = [ty0, ty1, tx0, tx1];
  bench.tiles = tiles.length;
  bench.readySince = performance.now();
}} catch (error) {{
  bench.error = String(error && error.stack || error);
  console.error(error);
}}
</script></body></html>
"""


# --- the servers and pages ----------------------------------------------------------------


class SiteServer:
    """The zarrita page and tests/viewers/js/node_modules, on loopback from a thread."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "zarrita.html").write_text(ZARRITA_PAGE.format(import_map=json.dumps(IMPORT_MAP)))
        link = folder / "nm"
        if not link.exists():
            link.symlink_to(JS_DIR / "node_modules")

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(folder), **kwargs)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Traffic:
    """The data server's requests in one page: counts, bytes, timestamps (epoch ms), and
    the chunk requests in flight."""

    base: str
    requests: int = 0
    in_flight: set[Any] = field(default_factory=set)
    failed: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    body_bytes: int = 0
    first_start: float | None = None
    last_end: float = 0.0
    last_event: float = field(default_factory=time.monotonic)

    def attach(self, page: Any) -> None:
        page.on("request", self.on_request)
        page.on("response", self.on_response)
        page.on("requestfinished", self.on_finished)
        page.on("requestfailed", self.on_failed)

    def _mine(self, request: Any) -> bool:
        return bool(request.url.startswith(self.base))

    def on_request(self, request: Any) -> None:
        if self._mine(request):
            self.requests += 1
            if "/c/" in request.url:  # chunks (a client may leave a metadata probe unread)
                self.in_flight.add(request)
            self.last_event = time.monotonic()
            now = time.time() * 1e3
            self.first_start = now if self.first_start is None else min(self.first_start, now)

    def on_response(self, response: Any) -> None:
        if self._mine(response.request):
            self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
            if response.request.method != "HEAD":  # zarrita asks a shard's length by HEAD
                self.body_bytes += int(response.headers.get("content-length", 0))

    def _ended(self, request: Any) -> None:
        self.in_flight.discard(request)
        self.last_event = time.monotonic()
        timing = request.timing
        end = time.time() * 1e3
        if timing.get("responseEnd", -1) >= 0 and timing.get("startTime", -1) > 0:
            end = timing["startTime"] + timing["responseEnd"]
            if timing.get("requestStart", -1) >= 0:
                self.first_start = min(self.first_start or end, timing["startTime"] + timing["requestStart"])
        self.last_end = max(self.last_end, end)

    def on_finished(self, request: Any) -> None:
        if self._mine(request):
            self._ended(request)

    def on_failed(self, request: Any) -> None:
        if self._mine(request):
            self.failed.append(f"{request.url}: {request.failure}")
            self._ended(request)


@dataclass
class Load:
    round: int
    view: str
    server: str
    filled: bool
    fill_s: float  # navigation start -> filled
    data_s: float  # first data request -> filled
    ready_s: float | None
    requests: int
    statuses: dict[int, int]
    mbytes: float
    lit_fraction: float
    console_errors: list[str]
    failed: list[str]
    bit_exact: bool | None = None  # zarrita: the tiles it read equal h5py's pixels
    error: str | None = None


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        if args.source == "bdv":  # the same pixels with native mipmaps, the image at the root
            self.volume = ensure_bdv(workdir / "data", args.planes)
            self.pixels_path, image = "t00000/s00/0/cells", ""
        else:
            self.volume = ensure_volume(workdir / "data", args.planes, source=args.source)
            self.pixels_path, image = DATASET, f"{DATASET}/"
        ensure_export(self.volume, workdir / "static")
        self.dataset_path = f"/{ROOT}/{self.volume.name}"
        self.image_path = f"{self.dataset_path}/{image}"
        self.view = exported_view(workdir / "static" / ROOT / self.volume.name / image, 1)
        shard = [int(n) for n in args.shard.split(",")]
        data = self.volume.parent
        self.configs = {
            "gateway": write_config(workdir / "gateway.toml", data, None),
            "gateway zstd": write_config(workdir / "gateway-zstd.toml", data, None, codec="zstd"),
            "gateway blosc-zstd": write_config(
                workdir / "gateway-blosc-zstd.toml", data, None, codec="blosc-zstd"
            ),
            "gateway sharded": write_config(workdir / "gateway-sharded.toml", data, 1, shard),
        }
        for name in args.servers:
            if (match := BROWSE_SERVER.fullmatch(name)) and (match[1] or match[2]):
                browse = {"max_z": int(match[1])} if match[1] else {}
                browse |= {"codec": match[2]} if match[2] else {}
                tag = "-".join(f"{k}{v}" for k, v in browse.items())
                self.configs[name] = write_config(
                    workdir / f"gateway-browse-{tag}.toml", data, None, browse=browse
                )
            elif match:
                self.configs[name] = self.configs["gateway"]
            if match := Z_SERVER.fullmatch(name):
                depth = int(match[1])
                self.configs[name] = write_config(workdir / f"gateway-z{depth}.toml", data, depth)
        for name, chunks in args.extra.items():  # --extra: [chunks] of servers of your own
            self.configs[name] = write_config(workdir / f"gateway-extra-{len(self.configs)}.toml", data, None)
            with open(self.configs[name], "a") as config:
                config.write(f"\n[chunks]\n{chunks}\n")
        self.logs = workdir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.slide: Path | None = None
        if "ng slide" in args.views:
            self.slide = ensure_slide(data, args.slide_size, args.slide_compression)
            ensure_export(self.slide, workdir / "static")
            self.slide_view = exported_view(workdir / "static" / ROOT / self.slide.name, SLIDE_CHANNELS)

    # the zarrita view's region and what it must read
    def zarrita_region(self) -> tuple[int, int, int, int, int]:
        """(z, y, x, height, width) of level ``--zarrita-level``: the viewport centred on the
        middle plane."""
        scale = 2**self.args.zarrita_level
        planes, ny, nx = -(-self.args.planes // scale), -(-SHAPE_YX[0] // scale), -(-SHAPE_YX[1] // scale)
        height, width = min(VIEWPORT["height"], ny), min(VIEWPORT["width"], nx)
        return planes // 2, (ny - height) // 2, (nx - width) // 2, height, width

    def expected_sha256(self, region: list[int]) -> str | None:
        """SHA-256 of h5py's pixels of the tile-aligned region the page read (level 0 only:
        coarser levels are the gateway's own means, checked by the test suite)."""
        if self.args.zarrita_level != 0:
            return None
        z = self.zarrita_region()[0]
        with h5py.File(self.volume.with_suffix(".h5"), "r") as f:
            pixels = f[self.pixels_path][z, region[0] : region[1], region[2] : region[3]]
        return hashlib.sha256(
            np.ascontiguousarray(pixels).view(np.uint16).astype("<u2").tobytes()
        ).hexdigest()

    @contextlib.contextmanager
    def server(self, name: str, tag: str) -> Iterator[Server]:
        ready = f"{self.dataset_path}/zarr.json"
        if name == "nginx":
            server = start_nginx(self.logs / "nginx", self.workdir / "static", ready, CORS_SITE)
        else:
            server = start_gateway(self.configs[name], self.logs / f"{name.replace(' ', '-')}-{tag}.log")
        try:
            yield server
        finally:
            server.stop()

    def url(
        self,
        view: str,
        data_base: str,
        ng_viewer: Any,
        ng_module: Any,
        site: SiteServer,
        browse: bool = False,
    ) -> str:
        """The page of ``view`` on the data server at ``data_base``; ``browse``: the image
        in the browsing view, at the URL the dataset's page links viewers to."""
        image_url = data_base + self.image_path
        if browse:
            page = httpx.get(f"{data_base}{self.dataset_path}/", params={"format": "json"}, timeout=30)
            image_url = page.json()["browse"] + self.image_path[len(self.dataset_path) + 1 :]
        if view == "ng slide":
            assert self.slide is not None
            state = neuroglancer_state(f"{data_base}/{ROOT}/{self.slide.name}/", *self.slide_view)
            state["layout"] = "xy"
            ng_viewer.set_state(ng_module.ViewerState(state))
            return str(ng_viewer.get_viewer_url())
        if view.startswith("ng "):
            state = neuroglancer_state(image_url, *self.view)
            state["layout"] = view.split(" ", 1)[1]
            ng_viewer.set_state(ng_module.ViewerState(state))
            return str(ng_viewer.get_viewer_url())
        z, y, x, h, w = self.zarrita_region()
        query = f"image={image_url}&level={self.args.zarrita_level}&z={z}&y={y}&x={x}&h={h}&w={w}"
        return f"{site.base}/zarrita.html?{query}"

    def load(
        self, browser: Any, view: str, name: str, round_: int, ng: tuple[Any, Any], site: SiteServer
    ) -> Load:
        module, viewer = ng
        with self.server(name, f"{view.replace(' ', '-')}-{round_}") as server:
            context = browser.new_context(viewport=VIEWPORT)
            try:
                context.add_init_script(READY_PROBE)
                page = context.new_page()
                traffic = Traffic(server.base)
                traffic.attach(page)
                errors: list[str] = []
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                browse = BROWSE_SERVER.fullmatch(name) is not None
                url = self.url(view, server.base, viewer, module, site, browse)
                page.goto(url)
                filled = self.wait_filled(page, traffic)
                origin, bench = page.evaluate("[performance.timeOrigin, window.__bench]")
                png = page.screenshot()
            finally:
                context.close()
        ready = bench.get("readySince")
        end = max(traffic.last_end - origin, ready or 0.0)
        start = (traffic.first_start or origin) - origin
        load = Load(
            round_,
            view,
            name,
            filled,
            end / 1e3,
            (end - start) / 1e3,
            None if ready is None else ready / 1e3,
            traffic.requests,
            dict(sorted(traffic.statuses.items())),
            traffic.body_bytes / 1e6,
            pixel_stats(
                png, top=50 if view.startswith("ng") else 0, bottom=30 if view.startswith("ng") else 0
            ).lit_fraction,
            errors,
            traffic.failed,
            error=bench.get("error"),
        )
        if view == "zarrita xy" and "sha256" in bench:
            expected = self.expected_sha256(bench["region"])
            load.bit_exact = None if expected is None else bench["sha256"] == expected
        return load

    def wait_filled(self, page: Any, traffic: Traffic) -> bool:
        """Until the page is ready and the data server has been quiet for ``--quiet`` s."""
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            page.wait_for_timeout(50)  # Playwright delivers events only while called
            quiet = not traffic.in_flight and time.monotonic() - traffic.last_event >= self.args.quiet
            if quiet and page.evaluate(
                "window.__bench && (window.__bench.readySince !== null || !!window.__bench.error)"
            ):
                return True
        return False


def exported_view(image: Path, channels: int) -> tuple[list[dict[str, Any]], list[float], Any]:
    """OME axes, finest scale and channels (as the dataset page's viewer links take them) of
    the exported image group ``image``."""
    ome = json.loads((image / "zarr.json").read_text())["attributes"]["ome"]
    multiscale = ome["multiscales"][0]
    scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
    return multiscale["axes"], scale, channels_from_omero(ome.get("omero"), channels)


def ensure_slide(folder: Path, size: int, compression: str) -> Path:
    """The 2-D slide of ``ng slide``, written once into the volume's folder (so every
    server configuration serves it too) with ``bench_tiff.py``'s generator."""
    path = folder / f"slide-{SLIDE_CHANNELS}x{size}-{compression}.ome.tif"
    if not path.exists():
        print(f"writing {path.name} ...", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        generate_slide(path, SLIDE_CHANNELS, size, SLIDE_TILE, SLIDE_LEVELS, compression)
    return path


def schedule(names: list[str], loads: int) -> Iterator[tuple[int, str]]:
    for round_ in range(loads):
        yield from ((round_, name) for name in (names if round_ % 2 == 0 else names[::-1]))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench(args, args.workdir)
    site = SiteServer(args.workdir / "site")
    import neuroglancer

    neuroglancer.set_server_bind_address("127.0.0.1", 0)
    viewer = neuroglancer.Viewer()
    loads: list[Load] = []
    try:
        with running_browser() as browser:
            for view in args.views:
                for round_, name in schedule(args.servers, args.loads):
                    load = bench.load(browser, view, name, round_, (neuroglancer, viewer), site)
                    loads.append(load)
                    flag = "" if load.filled and not load.error else f"  NOT FILLED {load.error or ''}"
                    exact = "" if load.bit_exact is None else f"  bit-exact {load.bit_exact}"
                    print(
                        f"  {view:10s} round {round_} {name:16s} fill {load.fill_s:6.2f} s (data {load.data_s:6.2f} s)"
                        f" {load.requests:5d} requests {load.mbytes:7.1f} MB  lit {load.lit_fraction:.2f}{exact}{flag}",
                        flush=True,
                    )
    finally:
        neuroglancer.stop()
        site.close()
    return {
        "volume": {
            "name": bench.volume.name,
            "shape": [args.planes, *SHAPE_YX],
            "chunks": [64, 128, 128],
            "source": args.source,
        },
        "slide": None
        if bench.slide is None
        else {
            "name": bench.slide.name,
            "shape": [SLIDE_CHANNELS, args.slide_size, args.slide_size],
            "tile": SLIDE_TILE,
            "levels": SLIDE_LEVELS,
            "compression": args.slide_compression,
        },
        "viewport": VIEWPORT,
        "shard": args.shard,
        "zarrita": {"level": args.zarrita_level, "region_zyxhw": bench.zarrita_region()},
        "quiet_s": args.quiet,
        "loads": [asdict(load) for load in loads],
        "summary": summarize(loads, args.views, args.servers),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_after": os.getloadavg(),
    }


def summarize(loads: list[Load], views: list[str], servers: list[str]) -> list[dict[str, Any]]:
    """Per view and server: medians over loads; ratios to nginx are medians of per-round ratios."""
    fill = {(x.view, x.round, x.server): x.fill_s for x in loads}
    data = {(x.view, x.round, x.server): x.data_s for x in loads}
    rows = []
    for view in views:
        rounds = sorted({x.round for x in loads if x.view == view})
        for name in servers:
            mine = [x for x in loads if x.view == view and x.server == name]
            row: dict[str, Any] = {
                "view": view,
                "server": name,
                "loads": len(mine),
                "filled": sum(x.filled and not x.error for x in mine),
                "fill_s": statistics.median(x.fill_s for x in mine),
                "data_s": statistics.median(x.data_s for x in mine),
                "requests": statistics.median(x.requests for x in mine),
                "mbytes": statistics.median(x.mbytes for x in mine),
                "lit_fraction": statistics.median(x.lit_fraction for x in mine),
                "bit_exact": None
                if all(x.bit_exact is None for x in mine)
                else all(x.bit_exact for x in mine),
            }
            if "nginx" in servers:
                row["fill_to_nginx"] = statistics.median(
                    fill[view, n, name] / fill[view, n, "nginx"] for n in rounds
                )
                row["data_to_nginx"] = statistics.median(
                    data[view, n, name] / data[view, n, "nginx"] for n in rounds
                )
            rows.append(row)
    return rows


def table(results: dict[str, Any]) -> str:
    volume = results["volume"]
    lines = [
        f"{'x'.join(map(str, volume['shape']))} uint16 volume {volume['name']} (gzip-1 + shuffle, 64x128x128 "
        f"HDF5 chunks{', native mipmaps' if volume.get('source') == 'bdv' else ''}); "
        f"viewport {results['viewport']['width']}x{results['viewport']['height']}; filled = ready and "
        f"{results['quiet_s']} s without data traffic; medians over loads, each on a fresh server",
        "",
        *(
            []
            if not results.get("slide")
            else [
                f"ng slide: {results['slide']['name']} ({'x'.join(map(str, results['slide']['shape']))} uint16, "
                f"{results['slide']['tile']}x{results['slide']['tile']} {results['slide']['compression']} tiles, "
                f"{results['slide']['levels']} levels)",
                "",
            ]
        ),
        "| view | server | filled | fill s | / nginx | data s | / nginx | requests | MB | lit | bit-exact |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in results["summary"]:
        ratio = (
            (f"{row['fill_to_nginx']:.2f}x", f"{row['data_to_nginx']:.2f}x")
            if "fill_to_nginx" in row
            else ("-", "-")
        )
        exact = "-" if row["bit_exact"] is None else str(row["bit_exact"]).lower()
        lines.append(
            f"| {row['view']} | {row['server']} | {row['filled']}/{row['loads']} | {row['fill_s']:.2f} | {ratio[0]} "
            f"| {row['data_s']:.2f} | {ratio[1]} | {row['requests']:.0f} | {row['mbytes']:.1f} "
            f"| {row['lit_fraction']:.2f} | {exact} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    bench_dir = Path(tempfile.gettempdir()) / "ome-zarr-gateway-bench"
    parser.add_argument(
        "--workdir", type=Path, default=bench_dir / "volume", help="shared with bench_volume.py"
    )
    parser.add_argument("--planes", type=int, default=256, help="z planes of 1024x1024 uint16 (default 256)")
    parser.add_argument("--loads", type=int, default=5, help="loads per view and server (default 5)")
    parser.add_argument("--views", default=",".join(VIEWS), help=f"comma-separated, of {', '.join(VIEWS)}")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated, of {', '.join(SERVERS)}, gateway z=N or gateway browse CODEC",
    )
    parser.add_argument(
        "--shard", default="64,1,1", help="shard of 'gateway sharded', with z = 1 (default 64,1,1)"
    )
    parser.add_argument(
        "--zarrita-level", type=int, default=0, help="level of the zarrita plane view (default 0)"
    )
    parser.add_argument(
        "--source",
        choices=("gzip", "deflate", "bdv"),
        default="gzip",
        help="the volume: bench_volume.py's HDF5 (gzip + shuffle, no pyramid: coarse levels synthesized; "
        "deflate: gzip without shuffle) or the same pixels as BigDataViewer writes them (bdv: native "
        "mipmaps down to one chunk)",
    )
    parser.add_argument(
        "--slide-size", type=int, default=8192, help="y and x of the ng slide view's slide (default 8192)"
    )
    parser.add_argument(
        "--slide-compression",
        choices=("deflate", "zstd"),
        default="deflate",
        help="its tiles: deflate (transcoded by the gateway) or zstd (passed through)",
    )
    parser.add_argument("--quiet", type=float, default=0.5, help="seconds without data traffic (default 0.5)")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds before a load counts as not filled"
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME=CHUNKS",
        help="a gateway of your own with these [chunks] keys, ';' between them, e.g. "
        "'z16 none=z = 16; codec = \"none\"' (repeatable; its level-0 URL is the canonical one)",
    )
    parser.add_argument("--quick", action="store_true", help="64 planes, 1 load")
    args = parser.parse_args()
    args.views = [v.strip() for v in args.views.split(",") if v.strip()]
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.extra = dict(item.split("=", 1) for item in args.extra)
    args.extra = {name.strip(): chunks.replace(";", "\n") for name, chunks in args.extra.items()}
    args.servers += [name for name in args.extra if name not in args.servers]
    servers = {
        s
        for s in args.servers
        if not (Z_SERVER.fullmatch(s) or BROWSE_SERVER.fullmatch(s) or s in args.extra)
    }
    if bad := (set(args.views) - set(VIEWS)) | (servers - set(SERVERS)):
        parser.error(f"unknown views or servers {sorted(bad)}")
    if args.quick:
        args.planes, args.loads = 64, 1
    return run_and_report(args.workdir, "viewport", lambda: measure(args), table)


if __name__ == "__main__":
    sys.exit(main())
