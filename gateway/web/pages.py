"""The pages for people (HTML) and programs (JSON) of one dataset at ``/<root>/<file>/``
(the dataset URL with its trailing slash, never a zarr key); folder pages and the list of
roots at ``/`` are ``gateway.web.folders``."""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import quote

import numpy as np

from gateway.config.settings import ViewerSettings
from gateway.levels import variants
from gateway.ngff.layout import OME_XML_KEY
from gateway.store import thumbnails
from gateway.store.catalog import Located
from gateway.web import viewers as viewers_mod

# -- one dataset ------------------------------------------------------------------------------


def describe_dataset(
    located: Located,
    base_url: str,
    viewers: ViewerSettings,
    zarr_v2_prefix: str | None = None,
    browse_prefix: str | None = None,
) -> dict[str, Any]:
    """What a person or program needs to know of a dataset and how to open it.
    ``zarr_v2_prefix``, ``browse_prefix``: the Zarr v2 and browsing views' URL prefixes
    (None: the view is off). The viewer links open the browsing view where it is on.

    Everything is read back from the dataset's own served ``zarr.json`` documents, so
    the page can never disagree with what clients get."""
    dataset = located.dataset
    tree = dataset.tree
    url = f"{base_url.rstrip('/')}/{quote(dataset.url_path)}/"
    browse = f"{base_url.rstrip('/')}/{browse_prefix}/{quote(dataset.url_path)}/" if browse_prefix else None
    groups = sorted(tree.images, key=lambda p: [int(s) if s.isdigit() else -1 for s in p.split("/") if s])
    images = [
        describe_image(tree.documents, path, url, viewers, browse)
        for path in groups
        if not variants.is_variant_group(path) and not _is_label_image(tree.documents, path)
    ]
    pictured = set(thumbnails.thumbnail_images(tree))
    for image in images:
        image.update(_thumbnail_links(image, image["path"] in pictured))
    return {
        "path": dataset.url_path,
        "url": url,
        "format": dataset.source.format,
        "multi_image": len(images) > 1,
        # the same tree with volumes in thin slabs, for viewers (what the viewer links open)
        "browse": browse,
        # the same tree as Zarr v2 / OME-Zarr 0.4 (clients that read no v3), and the OME-XML
        "zarr_v2": f"{base_url.rstrip('/')}/{zarr_v2_prefix}/{quote(dataset.url_path)}/"
        if zarr_v2_prefix
        else None,
        "ome_xml": url + OME_XML_KEY if OME_XML_KEY in tree.documents else None,
        # the first image's (gateway.store.thumbnails): what a listing shows of the dataset
        "thumbnail": f"{url}thumbnail.png" if pictured else None,
        # what the file holds but is not served, and why (a refused HDF5 link or layout)
        "warnings": list(dataset.source.warnings),
        "images": images,
    }


def _thumbnail_links(image: dict[str, Any], pictured: bool) -> dict[str, Any]:
    """Links to an image's thumbnail and to each of its channels' (none: its type or
    axes make no picture)."""
    if not pictured:
        return {"thumbnail": None, "channel_thumbnails": []}
    composite = f"{image['url']}thumbnail.png"
    channels = [f"{composite}?channel={index}" for index in range(len(image["channels"]))]
    return {"thumbnail": composite, "channel_thumbnails": channels}


def _is_label_image(documents: dict[str, bytes], path: str) -> bool:
    """Label images are listed with their image (``labels``), not as images of their own."""
    prefix = f"{path}/" if path else ""
    return "image-label" in json.loads(documents[f"{prefix}zarr.json"])["attributes"].get("ome", {})


def describe_image(
    documents: dict[str, bytes],
    path: str,
    dataset_url: str,
    viewers: ViewerSettings,
    browse_url: str | None = None,
) -> dict[str, Any]:
    """An image group of a dataset; its viewer links open ``browse_url`` (the dataset's
    browsing view) where given."""
    prefix = f"{path}/" if path else ""
    group = json.loads(documents[f"{prefix}zarr.json"])["attributes"]["ome"]
    multiscale = group["multiscales"][0]
    axes = multiscale["axes"]
    axis_names = [a["name"] for a in axes]
    levels = []
    for entry in multiscale["datasets"]:
        array = json.loads(documents[f"{prefix}{entry['path']}/zarr.json"])
        levels.append(
            {
                "path": entry["path"],
                "shape": array["shape"],
                "chunks": array["chunk_grid"]["configuration"]["chunk_shape"],
                "scale": entry["coordinateTransformations"][0]["scale"],
            }
        )
    first = json.loads(documents[f"{prefix}{multiscale['datasets'][0]['path']}/zarr.json"])
    dtype = np.dtype(first["data_type"])
    count = levels[0]["shape"][axis_names.index("c")] if "c" in axis_names else 1
    channels = viewers_mod.channels_from_omero(group.get("omero"), count)
    image_url = dataset_url + prefix
    viewer_url = (browse_url or dataset_url) + prefix
    description: dict[str, Any] = {
        "path": path,
        "url": image_url,
        "browse": viewer_url if browse_url else None,  # the image in the browsing view
        "name": multiscale.get("name") or path or "image",
        "axes": axes,
        "shape": levels[0]["shape"],
        "dtype": first["data_type"],
        "levels": levels,
        "channels": channels,
        "codecs": first["codecs"],
        "links": _links(image_url, viewer_url, axes, levels[0]["scale"], channels, dtype, viewers),
        "notes": _dtype_notes(dtype),
        "snippets": {
            "zarr_python": viewers_mod.zarr_python_snippet(image_url),
            "tensorstore": viewers_mod.tensorstore_snippet(image_url),
        },
    }
    labels_key = f"{prefix}labels/zarr.json"
    if labels_key in documents:
        names = json.loads(documents[labels_key])["attributes"]["ome"]["labels"]
        description["labels"] = [{"name": name, "url": f"{image_url}labels/{name}/"} for name in names]
    variant_key = f"{prefix}{variants.VARIANT_NAME}/zarr.json"
    if variant_key in documents:
        variant_url = f"{image_url}{variants.VARIANT_NAME}/"
        variant_viewer_url = f"{viewer_url}{variants.VARIANT_NAME}/"
        description["variant"] = {
            "dtype": variants.VARIANT_NAME,
            "url": variant_url,
            "links": _links(
                variant_url,
                variant_viewer_url,
                axes,
                levels[0]["scale"],
                channels,
                variants.VARIANT_DTYPE,
                viewers,
            ),
        }
    return description


def _links(
    image_url: str,
    viewer_url: str,
    axes: list[dict[str, Any]],
    scale: list[float],
    channels: list[viewers_mod.ChannelInfo],
    dtype: np.dtype[Any],
    viewers: ViewerSettings,
) -> dict[str, str | None]:
    """Links opening the image in the viewers (at ``viewer_url``: its browsing view) and
    in the validator (at ``image_url``)."""
    state = viewers_mod.neuroglancer_state(viewer_url, axes, scale, channels)
    return {
        "neuroglancer": viewers_mod.neuroglancer_url(viewers.neuroglancer, state)
        if dtype in variants.NEUROGLANCER_IMAGE
        else None,
        "vizarr": viewers_mod.source_url(viewers.vizarr, viewer_url) if dtype in variants.VIV else None,
        "validator": viewers_mod.source_url(viewers.validator, image_url),
    }


def _dtype_notes(dtype: np.dtype[Any]) -> list[str]:
    notes = []
    if dtype not in variants.NEUROGLANCER_IMAGE:
        notes.append(f"Neuroglancer cannot show {dtype.name} images.")
    if dtype not in variants.VIV:
        notes.append(f"Viv and vizarr cannot load {dtype.name} images.")
    if notes:
        notes.append(
            f"The {variants.VARIANT_NAME} variant below serves the same pixels converted to "
            f"{variants.VARIANT_NAME} (exact for integers up to 2**24 in magnitude)."
        )
    return notes


def _e(value: object) -> str:
    return html.escape(str(value))


def _link_items(links: dict[str, str | None]) -> str:
    names = {
        "neuroglancer": "Open in Neuroglancer",
        "vizarr": "Open in Viv/vizarr",
        "validator": "Open in the OME-NGFF validator",
    }
    items = []
    for key, label in names.items():
        target = links.get(key)
        if target:
            items.append(f'<li><a class="{key}" href="{_e(target)}">{label}</a></li>')
        else:
            items.append(f"<li>{label}: not available for this data type</li>")
    return "<ul>" + "".join(items) + "</ul>"


def _snippet(title: str, code: str) -> str:
    return (
        f'<h4>{_e(title)} <button type=button class=copy onclick="copySnippet(this)">copy</button></h4>'
        f"<pre>{_e(code)}</pre>"
    )


#: The copy buttons' script. ``navigator.clipboard`` exists only in secure contexts (https,
#: or loopback): over plain http from another machine the snippet is copied from a selected
#: hidden text area (``execCommand("copy")``), else left selected for the person to copy.
_COPY_SCRIPT = """
function copySnippet(button) {
  var snippet = button.parentNode.nextElementSibling, text = snippet.textContent;
  function said(copied) {
    button.textContent = copied ? "copied" : "selected: press Ctrl+C";
    setTimeout(function () { button.textContent = "copy"; }, 2500);
  }
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(
      function () { said(true); }, function () { said(copyBySelection(snippet, text)); });
  } else {
    said(copyBySelection(snippet, text));
  }
}
function copyBySelection(snippet, text) {
  var area = document.createElement("textarea"), copied = false;
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.cssText = "position:fixed;top:0;left:0;opacity:0";
  document.body.appendChild(area);
  area.focus();
  area.select();
  try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
  document.body.removeChild(area);
  if (!copied) {
    var range = document.createRange(), selection = window.getSelection();
    range.selectNodeContents(snippet);
    selection.removeAllRanges();
    selection.addRange(range);
  }
  return copied;
}
"""


def _views_html(description: dict[str, Any]) -> str:
    """Links to the dataset's other views: the browsing view, OME-Zarr 0.4 (Zarr v2) and the
    original OME-XML."""
    items = []
    if description.get("browse"):
        browse = _e(description["browse"])
        items.append(
            "<li>For viewers (what the viewer links open): volumes in slabs of a few planes, "
            f'fast to show a plane: <a class="browse" href="{browse}">{browse}</a></li>'
        )
    if description.get("zarr_v2"):
        v2 = _e(description["zarr_v2"])
        items.append(
            "<li>Zarr v2 / OME-Zarr 0.4, for clients that read no Zarr v3: "
            f'<a class="zarr-v2" href="{v2}">{v2}</a></li>'
        )
    if description.get("ome_xml"):
        xml = _e(description["ome_xml"])
        items.append(
            f'<li>The original OME-XML: <a class="ome-xml" href="{xml}">OME/METADATA.ome.xml</a></li>'
        )
    return f'<ul class="views">{"".join(items)}</ul>' if items else ""


def _warnings_html(warnings: list[str]) -> str:
    """What is wrong with the file (truncated, damaged, partly refused), before anything else."""
    if not warnings:
        return ""
    items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
    return f'<section class="warnings"><h2>Warnings</h2><ul class="note warning">{items}</ul></section>'


#: Channels shown in a dataset page's strip of channel thumbnails (each is one request).
MAX_STRIP_CHANNELS = 16


def _thumbnail_html(image: dict[str, Any]) -> str:
    """The image's thumbnail and, for several channels, a strip of each one alone."""
    if not image.get("thumbnail"):
        return ""
    name = _e(image["name"])
    strip = ""
    shown = list(zip(image["channels"], image["channel_thumbnails"], strict=True))[:MAX_STRIP_CHANNELS]
    if len(shown) > 1:
        strip = "".join(
            f'<figure><img class="channel-thumbnail" src="{_e(url)}" alt="channel {_e(c["label"])}">'
            f"<figcaption>{_e(c['label'])}</figcaption></figure>"
            for c, url in shown
        )
        more = len(image["channels"]) - len(shown)
        strip = f'<div class="channel-strip">{strip}{f"<p>and {more} more</p>" if more > 0 else ""}</div>'
    return (
        f'<div class="thumbnails"><img class="thumbnail" src="{_e(image["thumbnail"])}" '
        f'alt="thumbnail of {name}">{strip}</div>'
    )


def _render_image(image: dict[str, Any]) -> str:
    axes = ", ".join(
        f"{a['name']} ({a['type']}{', ' + a['unit'] if a.get('unit') else ''})" for a in image["axes"]
    )
    level_rows = "".join(
        f"<tr><td>{_e(level['path'])}</td><td>{_e(level['shape'])}</td><td>{_e(level['chunks'])}</td>"
        f"<td>{_e(level['scale'])}</td></tr>"
        for level in image["levels"]
    )
    channels = "".join(
        f'<li><span style="color:#{_e(c["color"])}">&#9632;</span> {_e(c["label"])} '
        f"(window {c['start']:g} to {c['end']:g})</li>"
        for c in image["channels"]
    )
    codecs = ", ".join(
        c["name"] + (f" {json.dumps(c.get('configuration', {}))}" if c.get("configuration") else "")
        for c in image["codecs"]
    )
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in image["notes"])
    variant = ""
    if "variant" in image:
        v = image["variant"]
        variant = (
            f'<h4>{_e(v["dtype"])} variant: <code class="variant">{_e(v["url"])}</code></h4>'
            + _link_items(v["links"])
        )
    labels = "".join(
        f'<li>{_e(label["name"])}: <code class="label-url">{_e(label["url"])}</code></li>'
        for label in image.get("labels", [])
    )
    if labels:
        variant += f"<h3>Labels</h3><ul>{labels}</ul>"
    return f"""<section class="image"><h2>{_e(image["name"])}</h2>{_thumbnail_html(image)}
<p>URL (paste into a viewer or client): <code class="image-url">{_e(image["url"])}</code></p>
<table><tr><th>shape</th><td>{_e(image["shape"])}</td></tr>
<tr><th>data type</th><td>{_e(image["dtype"])}</td></tr>
<tr><th>axes</th><td>{_e(axes)}</td></tr>
<tr><th>codecs</th><td>{_e(codecs)}</td></tr>
<tr><th>levels</th><td>{len(image["levels"])}</td></tr></table>
<table class="levels"><tr><th>level</th><th>shape</th><th>chunks</th><th>scale</th></tr>{level_rows}</table>
<h3>Channels</h3><ul>{channels}</ul>
{notes}<h3>Open</h3>{_link_items(image["links"])}{variant}
{_snippet("zarr-python", image["snippets"]["zarr_python"])}
{_snippet("tensorstore", image["snippets"]["tensorstore"])}
</section>"""


def render_dataset_html(description: dict[str, Any]) -> str:
    images = "\n".join(_render_image(image) for image in description["images"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>{_e(description["path"])} — ome-zarr-gateway</title>
<style>{_STYLE}</style></head>
<body><p><a href="{"../" * (description["path"].count("/") + 1)}">all datasets</a></p><h1>{_e(description["path"])}</h1>
<p>{_e(description["format"])} file served as OME-Zarr 0.5 (Zarr v3) at <code>{_e(description["url"])}</code>.
JSON: this URL with <code>Accept: application/json</code> or <code>?format=json</code>.</p>
{_views_html(description)}
{_warnings_html(description["warnings"])}
{images}
<script>{_COPY_SCRIPT}</script>
</body></html>
"""


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}td,th{padding:.2rem 1rem;text-align:left}"
    "code,pre{background:#f4f4f4;padding:.1rem .3rem}pre{padding:.6rem}.note{color:#a40}"
    "section{border-top:1px solid #ccc;margin-top:1.5rem}"
    ".thumbnails{float:right;margin:0 0 1rem 1rem;max-width:256px}.thumbnail{display:block;background:#000}"
    ".channel-strip{display:flex;flex-wrap:wrap;gap:.3rem}.channel-strip figure{margin:.3rem 0 0;font-size:.75rem}"
    ".channel-strip img{display:block;height:48px;background:#000}section{display:flow-root}"
)
