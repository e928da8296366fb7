"""Folder pages: every directory under a root at its URL with a trailing slash (``/lab/2024/``),
and the list of roots at ``/``. HTML for people, JSON for programs (``routes._page``).

A page is a breadcrumb, the folder's sub-folders (``folders``) and datasets (``datasets``),
paged (``limit``, the cursor ``after``, a ``next`` link) and filtered by name (``q``).
Listing opens no file (``gateway.store.folders``): each dataset carries a ``status`` —
``ok`` with its format, shape, data type and levels, ``unreadable`` with the reason (not
offered as a link that would fail), ``part`` with the dataset it is a piece of
(``part_of``: a member of a multi-file OME-TIFF set), or ``unknown`` until the background
probe that starts once the page is answered has looked at it (a reload shows it).

What a caller sees follows access control (``gateway.web.auth.Access``): ``/`` lists the
public roots to anyone and a protected root only to a request whose token grants it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.store.catalog import split_url_path
from gateway.store.folders import Entry, FolderListing, Known
from gateway.store.mounts import Mounts
from gateway.web import links
from gateway.web.auth import ACCESS_KEY, Access
from gateway.web.errors import GatewayHTTPError

#: Entries per page unless ``?limit=`` says otherwise (at most ``server.listing_limit``).
DEFAULT_LIMIT = 100
#: Longest ``q`` and ``after`` accepted (a file name is at most 255 bytes on most systems).
MAX_QUERY_CHARS = 256
MAX_CURSOR_CHARS = 1024
#: Datasets of one page probed in the background at most (the prober bounds the rest).
PROBES_PER_PAGE = 100


@dataclass(frozen=True, slots=True)
class PageQuery:
    """What a folder page was asked for: a name filter, a cursor and a page size."""

    q: str = ""
    after: str = ""
    limit: int = DEFAULT_LIMIT

    @classmethod
    def from_request(cls, request: Request, max_limit: int) -> PageQuery:
        """The query of ``request``; a 400 for a malformed one (said how)."""
        params = request.query_params
        q, after = params.get("q", ""), params.get("after", "")
        if len(q) > MAX_QUERY_CHARS:
            raise _bad_query(f"q is longer than {MAX_QUERY_CHARS} characters")
        if len(after) > MAX_CURSOR_CHARS:
            raise _bad_query(f"after is longer than {MAX_CURSOR_CHARS} characters")
        limit = min(DEFAULT_LIMIT, max_limit)
        if "limit" in params:
            text = params["limit"]
            if not (text.isascii() and text.isdigit() and len(text) <= 9 and 1 <= int(text) <= max_limit):
                raise _bad_query(f"limit must be a whole number from 1 to {max_limit}, not {text[:40]!r}")
            limit = int(text)
        return cls(q, after, limit)


def _bad_query(detail: str) -> GatewayHTTPError:
    return GatewayHTTPError(400, "bad_query", detail)


@dataclass(frozen=True, slots=True)
class FolderPage:
    """A folder page's document (its JSON; the HTML renders it) and the datasets on it
    nothing is known of yet (to probe once the page is answered)."""

    document: dict[str, Any]
    unknown: list[str]

    def html(self) -> str:
        return render_folder_html(self.document)

    def probe_later(self, mounts: Mounts) -> BackgroundTask | None:
        """Probing of the unknown datasets, to run after the response is sent."""
        if not self.unknown:
            return None

        async def enqueue() -> None:  # async: stays on the event loop, the probes do not
            mounts.prober.enqueue(self.unknown[:PROBES_PER_PAGE])

        return BackgroundTask(enqueue)


def _access(request: Request) -> Access | None:
    access: Access | None = request.scope.get(ACCESS_KEY)
    return access


def _allows(access: Access | None, path: str) -> bool:
    return access is None or access.allows(path)


async def folder_page(request: Request, mounts: Mounts, path: str) -> FolderPage | None:
    """The page of the folder at URL path ``path`` ("": the roots); None when there is no
    such folder (a 404 for the caller to answer, or a dataset's page)."""
    if path and split_url_path(path) is None:
        return None
    settings = mounts.settings
    try:
        query, malformed = PageQuery.from_request(request, max(1, settings.server.listing_limit)), None
    except GatewayHTTPError as exc:  # said only if this is a folder (not a dataset's page)
        query, malformed = PageQuery(limit=1), exc
    access = _access(request)
    visible = None if access is None or path else access.allows  # within a folder: all or nothing
    listing = await mounts.list_folder(
        path, query=query.q, after=query.after, limit=query.limit, visible=visible
    )
    if listing is None:
        return None
    if malformed is not None:
        raise malformed
    base = links.base_url(request, settings.server)
    document = describe_folder(listing, base, query, access, json_format=request.query_params.get("format"))
    if not path:
        document["roots"] = [name for name in sorted(mounts.catalog.roots) if _allows(access, name)]
        if access is not None and access.grant is not None and access.grant.prefix:
            prefix = access.grant.prefix
            document["granted"] = {"path": prefix, "url": f"{base}{quote(prefix)}/"}
    return FolderPage(document, listing.unknown())


def describe_folder(
    listing: FolderListing, base: str, query: PageQuery, access: Access | None, json_format: str | None = None
) -> dict[str, Any]:
    """The JSON document of a folder page; ``base`` ends in ``/`` (``links.base_url``)."""
    path = listing.path
    folder_url = f"{base}{quote(path)}/" if path else base
    page = listing.page
    next_url = None
    if page.next_cursor is not None:
        params = {"q": query.q, "limit": str(query.limit), "after": page.next_cursor, "format": json_format}
        next_url = folder_url + "?" + urlencode({k: v for k, v in params.items() if v})
    return {
        "path": path,
        "url": folder_url,
        "breadcrumb": _breadcrumb(path, base, access),
        "folders": [_folder(listing, e, base) for e in page.entries if e.is_folder],
        "datasets": [
            _dataset(listing, e, base, listing.known.get(e.name)) for e in page.entries if not e.is_folder
        ],
        "q": query.q,
        "limit": query.limit,
        "total": page.total,
        "next": next_url,
    }


def _breadcrumb(path: str, base: str, access: Access | None) -> list[dict[str, Any]]:
    """The folders above and including this one, each linked where the caller may go."""
    crumbs: list[dict[str, Any]] = [{"name": "/", "path": "", "url": base}]
    segments = path.split("/") if path else []
    for depth in range(1, len(segments) + 1):
        here = "/".join(segments[:depth])
        url = f"{base}{quote(here)}/" if _allows(access, here) else None
        crumbs.append({"name": segments[depth - 1], "path": here, "url": url})
    return crumbs


def _folder(listing: FolderListing, entry: Entry, base: str) -> dict[str, Any]:
    url_path = listing.url_path(entry)
    return {"name": entry.name, "path": url_path, "url": f"{base}{quote(url_path)}/"}


def _dataset(listing: FolderListing, entry: Entry, base: str, known: Known | None) -> dict[str, Any]:
    """A dataset entry: its addresses, and what is known of it (``status``). An unreadable
    one keeps its ``url`` (its identity) but offers no page, metadata or thumbnail."""
    url_path = listing.url_path(entry)
    url = f"{base}{quote(url_path)}"
    status = "unknown" if known is None else "ok" if known.summary is not None else "unreadable"
    if known is not None and known.part_of:  # a member of a multi-file set: no dataset of its own
        status = "part"
    usable = status not in ("unreadable", "part")
    summary = known.summary if known is not None else None
    described: dict[str, Any] = {
        "name": entry.name,
        "path": url_path,
        "url": url,
        "page": f"{url}/" if usable else None,
        "zarr_json": f"{url}/zarr.json" if usable else None,
        "status": status,
        "format": summary.format if summary else None,
        "shape": list(summary.shape) if summary else None,
        "dtype": summary.dtype if summary else None,
        "axes": summary.axes if summary else None,
        "levels": summary.levels if summary else None,
        "images": summary.images if summary else None,
    }
    if summary is not None:
        described["warnings"] = summary.warnings
        described["thumbnail"] = f"{url}/thumbnail.png"
    if status == "unreadable":
        described["reason"] = known.reason if known is not None else ""
    if status == "part" and known is not None:
        described["part_of"] = {"path": known.part_of, "page": f"{base}{quote(known.part_of)}/"}
    return described


async def slash_redirect(request: Request, mounts: Mounts, path: str) -> Response | None:
    """A redirect of a folder's URL without its trailing slash (``/lab/2024``) to its page;
    None when ``path`` names no folder. Keys of open datasets are not looked up on disk."""
    segments = split_url_path(path)
    if segments is None or segments[0] not in mounts.catalog.roots:
        return None
    if mounts.catalog.locate_cached(path) is not None:
        return None  # a key of an open dataset (a chunk left out as empty): no folder
    if await mounts.run(mounts.catalog.folder_path, path) is None:
        return None
    # relative: keeps whatever prefix the client used (a proxy's path, /s/<token>)
    location = f"./{quote(segments[-1])}/"
    if request.url.query:
        location += f"?{request.url.query}"
    headers = {"Cache-Control": mounts.settings.server.cache_control_pages}
    return RedirectResponse(location, status_code=301, headers=headers)


# -- HTML ----------------------------------------------------------------------------------------


def python_example(datasets: list[dict[str, Any]]) -> str | None:
    """How to open a dataset of the page from Python: the first one known readable (an
    unknown or unreadable one would make an example that fails); None when there is none."""
    chosen = next((d for d in datasets if d["status"] == "ok"), None)
    if chosen is None:
        return None
    level = '"0/0"' if (chosen.get("images") or 1) > 1 else '"0"'
    return (
        "import zarr\n"
        f'group = zarr.open_group("{chosen["url"]}", mode="r")\n'
        'print(group.attrs["ome"]["multiscales"][0]["axes"])\n'
        f"level0 = group[{level}][:]"
    )


def _e(value: object) -> str:
    return html.escape(str(value))


def _crumbs_html(crumbs: list[dict[str, Any]]) -> str:
    parts = []
    for crumb in crumbs:
        label = "ome-zarr-gateway" if not crumb["path"] else crumb["name"]
        parts.append(f'<a href="{_e(crumb["url"])}">{_e(label)}</a>' if crumb["url"] else _e(label))
    return '<nav class="breadcrumb">' + " / ".join(parts) + " /</nav>"


def _shape_text(dataset: dict[str, Any]) -> str:
    shape = " \u00d7 ".join(str(n) for n in dataset["shape"])
    return f"{shape} ({dataset['axes']})" if dataset.get("axes") else shape


def _dataset_row(dataset: dict[str, Any]) -> str:
    name = _e(dataset["name"])
    status = dataset["status"]
    if status == "unreadable":
        return (
            f'<tr class="unreadable"><td></td><td>{name}</td>'
            f'<td colspan="4" class="reason">unreadable: {_e(dataset.get("reason") or "unknown reason")}</td></tr>'
        )
    if status == "part":
        whole = dataset["part_of"]
        return (
            f'<tr class="part"><td></td><td>{name}</td><td colspan="4">part of '
            f'<a href="{_e(whole["page"])}">{_e(whole["path"].rsplit("/", 1)[-1])}</a></td></tr>'
        )
    link = f'<a href="{_e(dataset["page"])}">{name}</a>'
    if status == "unknown":
        return f'<tr class="unknown"><td></td><td>{link}</td><td colspan="4">not opened yet</td></tr>'
    thumbnail = (
        f'<img src="{_e(dataset["thumbnail"])}" alt="" loading="lazy" width="64" height="64" '
        'onerror="this.remove()">'
    )
    warned = (
        f' <span class="warn">({dataset["warnings"]} warning(s))</span>' if dataset.get("warnings") else ""
    )
    return (
        f'<tr class="ok"><td class="thumb">{thumbnail}</td><td>{link}{warned}</td>'
        f"<td>{_e(dataset['format'])}</td><td>{_e(_shape_text(dataset))}</td>"
        f"<td>{_e(dataset['dtype'])}</td><td>{_e(dataset['levels'])}</td></tr>"
    )


def _filter_html(document: dict[str, Any]) -> str:
    """The name filter (it keeps the page size) and how many entries match."""
    limit_field = f'<input type="hidden" name="limit" value="{document["limit"]}">'
    total = document["total"]
    shown = len(document["folders"]) + len(document["datasets"])
    count = f"{total} {'entry' if total == 1 else 'entries'}"
    count += " matching the filter" if document["q"] else ""
    count += f", {shown} on this page" if shown < total else ""
    return (
        f'<form role="search" method="get"><input type="search" name="q" value="{_e(document["q"])}" '
        f'placeholder="filter by name" aria-label="filter by name">{limit_field}<button>Filter</button></form>'
        f'<p class="count">{count}.</p>'
    )


def render_folder_html(document: dict[str, Any]) -> str:
    """A folder page for people: the breadcrumb, a filter, the sub-folders, the datasets
    (linked unless unreadable, thumbnails of the readable ones), the next page."""
    path = document["path"]
    title = f"{path}/" if path else "ome-zarr-gateway"
    folders = "".join(f'<li><a href="{_e(f["url"])}">{_e(f["name"])}/</a></li>' for f in document["folders"])
    datasets = "".join(_dataset_row(d) for d in document["datasets"])
    parts = [
        _crumbs_html(document["breadcrumb"]),
        f"<h1>{_e(title)}</h1>",
    ]
    if not path:
        parts.append("<p>Files served read-only as OME-Zarr 0.5 (Zarr v3). Roots:</p>")
    granted = document.get("granted")
    if granted:
        parts.append(
            f'<p class="granted">Your link grants <a href="{_e(granted["url"])}">{_e(granted["path"])}/</a>.</p>'
        )
    if path or document["q"] or document["next"]:  # a handful of roots needs no filter
        parts.append(_filter_html(document))
    if folders:
        parts.append(f'<ul class="folders">{folders}</ul>')
    if datasets:
        parts.append(
            '<table class="datasets"><tr><th></th><th>dataset</th><th>format</th><th>shape</th>'
            f"<th>data type</th><th>levels</th></tr>{datasets}</table>"
        )
    if document["next"]:
        parts.append(f'<p><a rel="next" class="next" href="{_e(document["next"])}">next page</a></p>')
    example = python_example(document["datasets"])
    if example:
        parts.append(f"<h2>Open from Python</h2><pre>{_e(example)}</pre>")
    parts.append(
        "<p>JSON: this URL with <code>Accept: application/json</code> or <code>?format=json</code>.</p>"
    )
    body = "\n".join(parts)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>{_e(title)} — ome-zarr-gateway</title>
<style>{_STYLE}</style></head>
<body>
{body}
</body></html>
"""


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}td,th{padding:.2rem .8rem;text-align:left}"
    "code,pre{background:#f4f4f4;padding:.1rem .3rem}pre{padding:.6rem}.breadcrumb{margin-bottom:1rem}"
    ".folders{columns:3 14rem;padding-left:1.2rem}.unreadable,.unknown td:last-child{color:#777}"
    ".reason{color:#a40}.warn{color:#a40;font-size:.9em}td.thumb{width:64px;padding:.1rem}"
    "img{object-fit:contain;background:#000;display:block}input[type=search]{width:20rem}"
)
