"""The dataset listing at ``/``: JSON for programs, a small HTML page for people."""

from __future__ import annotations

import asyncio
import html
from typing import Any
from urllib.parse import quote

from gateway.store import GatewayStore


async def build_listing(store: GatewayStore, base_url: str) -> dict[str, Any]:
    limit = store.settings.server.listing_limit
    found = await asyncio.get_running_loop().run_in_executor(
        store.executor, lambda: list(store.catalog.iter_datasets(limit=limit + 1))
    )
    base = base_url.rstrip("/")
    datasets = [
        {
            "path": url_path,
            "url": f"{base}/{quote(url_path)}",
            "zarr_json": f"{base}/{quote(url_path)}/zarr.json",
        }
        for url_path, _file in found[:limit]
    ]
    return {
        "roots": sorted(store.catalog.roots),
        "datasets": datasets,
        "truncated": len(found) > limit,
    }


def render_listing_html(listing: dict[str, Any]) -> str:
    rows = "\n".join(
        f'<tr><td><a href="{html.escape(d["zarr_json"])}">{html.escape(d["path"])}</a></td>'
        f"<td><code>{html.escape(d['url'])}</code></td></tr>"
        for d in listing["datasets"]
    )
    example = listing["datasets"][0]["url"] if listing["datasets"] else "http://host/root/file.tif"
    note = "<p><em>Listing truncated.</em></p>" if listing["truncated"] else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ome-zarr-gateway</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}td{{padding:.2rem 1rem}}
code{{background:#f4f4f4;padding:.1rem .3rem}}</style></head>
<body><h1>ome-zarr-gateway</h1>
<p>Files served read-only as OME-Zarr 0.5 (Zarr v3). Roots: {html.escape(", ".join(listing["roots"]))}.</p>
<table><tr><th>dataset</th><th>URL (paste into a viewer or zarr-python)</th></tr>
{rows}
</table>{note}
<h2>Open from Python</h2>
<pre>import zarr
group = zarr.open_group("{html.escape(example)}", mode="r")
print(group.attrs["ome"]["multiscales"][0]["axes"])
level0 = group["0"][:]  # or group["0/0"] for multi-image files</pre>
</body></html>
"""
