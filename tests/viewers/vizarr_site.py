"""vizarr's prebuilt bundle (npm ``@galaxyproject/vizarr``), hosted on loopback the way
Galaxy hosts it, without the network.

The bundle (``static/index.js``) is Galaxy's build of vizarr. It reads
``#app[data-incoming]`` = ``{"root": R, "visualization_config": {"dataset_id": ID}}``,
then GETs ``R + "api/datasets/" + ID``; a "deferred" dataset answers with the URL to show
(``sources[0].source_uri``): here an image or plate served by the gateway. Offline, two
things of the bundle's need stand-ins:

- it imports a JPEG 2000 codec from a CDN at load time (``import ... from "https://..."``,
  for TIFF sources, never used for Zarr): the page's import map points that URL at a
  local module that exports the same name and refuses to decode;
- it preloads (``<link rel=modulepreload>``) chunk files of its build that the package
  does not ship (their code is inlined): empty modules answer them, instead of 404s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tests.viewers.conftest import JS_DIR, require

BUNDLE = JS_DIR / "node_modules" / "@galaxyproject" / "vizarr" / "static" / "index.js"
JPX_STUB = "/jpx-stub.js"

#: ``import{A as b}from"https://..."``: the bundle's static imports from other origins.
_REMOTE_IMPORT = re.compile(rb'import\{([^}]*)\}from"(https://[^"]+)"')
#: Vite's preload list: ``A.f=["./deflate-….js", …]``, loaded from the site root.
_PRELOAD_LIST = re.compile(rb'\.f=\[((?:"\./[\w.-]+\.js",?)+)\]')

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vizarr {dataset_id}</title>
<style>html, body, #app {{ margin: 0; width: 100%; height: 100%; }}</style>
<script type="importmap">{import_map}</script>
<script type="module" crossorigin src="/index.js"></script>
</head>
<body><div id="app" data-incoming='{incoming}'></div></body>
</html>
"""

#: What the bundle imports from the codec module: ``JpxImage``; decoding a JPEG 2000 tile
#: (TIFF sources only) fails loudly instead of the page failing to load.
_JPX_STUB = """export class JpxImage {
  parse() { throw new Error("JPEG 2000 decoding is not available offline (test stub)"); }
}
"""


def bundle() -> Path:
    """The bundle's path; fails (or skips locally) when ``npm ci`` did not install it."""
    require(BUNDLE.is_file(), f"@galaxyproject/vizarr in {JS_DIR} (npm ci)")
    return BUNDLE


def remote_imports(code: bytes) -> dict[str, list[str]]:
    """URL → names the bundle imports from another origin."""
    found: dict[str, list[str]] = {}
    for names, url in _REMOTE_IMPORT.findall(code):
        found.setdefault(url.decode(), []).extend(
            n.split(b" as ")[0].strip().decode() for n in names.split(b",")
        )
    return found


def preloaded_chunks(code: bytes) -> list[str]:
    """File names of the build's chunks the bundle preloads from the site root."""
    match = _PRELOAD_LIST.search(code)
    return [] if match is None else [name.decode()[3:-1] for name in match.group(1).split(b",")]


def vizarr_app(sources: Mapping[str, str]) -> Starlette:
    """The site: ``/view/<id>`` shows ``sources[<id>]`` (an OME-Zarr URL) in vizarr."""
    path = bundle()
    code = path.read_bytes()
    imports = remote_imports(code)
    if any(names != ["JpxImage"] for names in imports.values()):
        raise RuntimeError(f"the bundle imports more than the JPEG 2000 codec from a CDN: {imports}")
    import_map = json.dumps({"imports": dict.fromkeys(imports, JPX_STUB)})
    chunks = set(preloaded_chunks(code))

    async def page(request: Request) -> Response:
        dataset_id = request.path_params["dataset_id"]
        incoming = {"root": str(request.base_url), "visualization_config": {"dataset_id": dataset_id}}
        html = _PAGE.format(dataset_id=dataset_id, import_map=import_map, incoming=json.dumps(incoming))
        return HTMLResponse(html)

    async def dataset(request: Request) -> Response:
        source = sources.get(request.path_params["dataset_id"])
        if source is None:
            return JSONResponse({"detail": "no such dataset"}, status_code=404)
        return JSONResponse({"state": "deferred", "sources": [{"source_uri": source}]})

    async def script(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "index.js":
            return FileResponse(path, media_type="text/javascript")
        if f"/{name}" == JPX_STUB:
            return Response(_JPX_STUB, media_type="text/javascript")
        if name in chunks:
            return Response("", media_type="text/javascript")
        return Response(status_code=404)

    return Starlette(
        routes=[
            Route("/view/{dataset_id}", page),
            Route("/api/datasets/{dataset_id}", dataset),
            Route("/{name:str}", script),
        ]
    )
