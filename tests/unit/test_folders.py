"""gateway.store.folders: directories listed without opening a file, paged by a cursor, and
what is unknown learnt in the background, boundedly."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tifffile

from gateway.config.settings import Settings
from gateway.store.cache import ByteLRU
from gateway.store.folders import Entry, Prober, page_entries, scan_directory
from tests.catalogs import make_catalog


def is_tiff_name(name: str) -> bool:
    return name.lower().endswith((".tif", ".tiff"))


def names(entries: list[Entry] | tuple[Entry, ...]) -> list[str]:
    return [e.cursor for e in entries]


@pytest.fixture
def tree(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    for name in ("b.tif", "A.tif", "c.TIFF", "notes.txt", ".hidden.tif"):
        (root / name).write_bytes(b"")
    (root / "sub").mkdir()
    (root / "run.tif").mkdir()  # a folder named like a file is a folder
    (root / ".git").mkdir()
    (outside / "secret.tif").write_bytes(b"")
    os.symlink(outside / "secret.tif", root / "link-out.tif")
    os.symlink(outside, root / "outdir")
    os.symlink(root / "b.tif", root / "link-in.tif")
    os.symlink(root / "sub", root / "sublink")
    os.symlink(root / "loop.tif", root / "loop.tif")
    os.mkfifo(root / "pipe.tif")
    (root / "back\\slash.tif").write_bytes(b"")
    return root


def test_scan_lists_folders_then_dataset_names_sorted_case_insensitively(tree):
    entries = scan_directory(tree, tree, is_tiff_name)
    assert names(entries) == ["run.tif/", "sub/", "sublink/", "A.tif", "b.tif", "c.TIFF", "link-in.tif"]


def test_scan_leaves_out_hidden_outside_fifos_loops_and_unreachable_names(tree):
    listed = set(names(scan_directory(tree, tree, is_tiff_name)))
    for name in (
        ".hidden.tif",
        ".git/",
        "link-out.tif",
        "outdir/",
        "pipe.tif",
        "loop.tif",
        "back\\slash.tif",
    ):
        assert name not in listed


def test_scan_leaves_out_names_that_are_not_utf8(tmp_path):
    os.close(os.open(os.path.join(os.fsencode(tmp_path), b"bad\xff.tif"), os.O_CREAT | os.O_WRONLY))
    (tmp_path / "good.tif").write_bytes(b"")
    assert names(scan_directory(tmp_path, tmp_path, is_tiff_name)) == ["good.tif"]


#: Paths opened while ``watching`` is set (an audit hook cannot be removed: it stays idle).
OPENED: list[str] = []
WATCHING = threading.Event()


def _record_opens(event: str, args: tuple) -> None:
    if event == "open" and WATCHING.is_set():
        OPENED.append(os.fsdecode(args[0]) if isinstance(args[0], (str, bytes)) else str(args[0]))


sys.addaudithook(_record_opens)


def test_scan_opens_no_file(tree):
    OPENED.clear()
    WATCHING.set()
    try:
        listed = scan_directory(tree, tree, is_tiff_name)
    finally:
        WATCHING.clear()
    assert listed and OPENED == []


def test_the_open_watch_has_teeth(tree):
    WATCHING.set()
    try:
        (tree / "b.tif").read_bytes()
    finally:
        WATCHING.clear()
    assert OPENED[-1].endswith("b.tif")


# -- paging ----------------------------------------------------------------------------------------


def entries_of(*cursors: str) -> list[Entry]:
    return [Entry(c.rstrip("/"), c.endswith("/"), c) for c in cursors]


ALL = entries_of("a/", "B/", "c/", "a.tif", "B.tif", "c.tif", "d.tif")


@pytest.mark.parametrize("limit", [1, 2, 3, 6, 7, 100])
def test_pages_follow_each_other_without_gap_or_repeat(limit):
    seen, after = [], ""
    while True:
        page = page_entries(ALL, after=after, limit=limit)
        assert len(page.entries) <= limit and page.total == len(ALL)
        seen += names(page.entries)
        if page.next_cursor is None:
            break
        after = page.next_cursor
    assert seen == names(ALL)


def test_last_full_page_has_no_next():
    assert page_entries(ALL, limit=len(ALL)).next_cursor is None
    assert page_entries(ALL, limit=len(ALL) - 1).next_cursor == "c.tif"


def test_cursor_of_a_deleted_entry_continues_where_it_was():
    page = page_entries(entries_of("a/", "c/", "a.tif", "c.tif"), after="b/", limit=10)
    assert names(page.entries) == ["c/", "a.tif", "c.tif"]
    page = page_entries(entries_of("a/", "a.tif", "c.tif"), after="b.tif", limit=10)
    assert names(page.entries) == ["c.tif"]


@pytest.mark.parametrize("after", ["zzz", "zzz/", "\x00", "../../etc", "é" * 300])
def test_any_cursor_is_a_position(after):
    page = page_entries(ALL, after=after, limit=3)
    assert page.total == len(ALL) and len(page.entries) <= 3


def test_query_filters_by_name_case_insensitively_before_paging():
    page = page_entries(ALL, query="b", limit=1)
    assert (names(page.entries), page.total, page.next_cursor) == (["B/"], 2, "B/")
    assert names(page_entries(ALL, query="b", after="B/", limit=1).entries) == ["B.tif"]
    assert page_entries(ALL, query="nothing").total == 0


# -- the catalog: a listing opens nothing; a probe learns and remembers ----------------------------


@pytest.fixture
def catalog(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    tifffile.imwrite(root / "good.tif", np.ones((3, 16, 24), np.uint16), photometric="minisblack")
    (root / "empty.tif").write_bytes(b"")
    (root / "junk.tif").write_bytes(b"this is no image at all")
    (root / "other.xml").write_text("<notbdv/>")
    catalog = make_catalog(Settings(roots={"data": root}), ByteLRU(10**6))
    yield catalog
    catalog.close()


def statuses(catalog) -> dict[str, str]:
    listing = catalog.list_folder("data", limit=100)
    return {
        e.name: "?" if e.name not in listing.known else "ok" if listing.known[e.name].summary else "bad"
        for e in listing.page.entries
    }


def test_listing_knows_nothing_until_probed_and_opens_nothing(catalog):
    OPENED.clear()
    WATCHING.set()
    try:
        found = statuses(catalog)
    finally:
        WATCHING.clear()
    assert found == {"empty.tif": "?", "good.tif": "?", "junk.tif": "?", "other.xml": "?"}
    assert OPENED == [] and catalog.open_count == 0  # not even other.xml is sniffed


def test_probe_learns_summary_and_reasons(catalog):
    for name in ("good.tif", "empty.tif", "junk.tif", "other.xml"):
        catalog.probe(f"data/{name}")
    listing = catalog.list_folder("data")
    known = listing.known
    assert known["good.tif"].summary.shape == (3, 16, 24)
    assert known["good.tif"].summary.dtype == "uint16"
    assert known["empty.tif"].reason == "empty file (0 bytes)"
    assert "no adapter recognises" in known["junk.tif"].reason
    assert "other.xml" not in {e.name for e in listing.page.entries}  # no dataset at all
    assert catalog.open_count == 0  # probes do not fill the pool


def test_what_a_request_opened_is_known_to_the_listing(catalog):
    catalog.locate("data/good.tif/zarr.json")
    assert statuses(catalog)["good.tif"] == "ok"


def test_a_rewritten_file_is_unknown_again(catalog, tmp_path):
    catalog.probe("data/good.tif")
    time.sleep(0.01)
    tifffile.imwrite(tmp_path / "root" / "good.tif", np.ones((5, 5), np.uint8), photometric="minisblack")
    assert statuses(catalog)["good.tif"] == "?"
    catalog.probe("data/good.tif")
    assert catalog.list_folder("data").known["good.tif"].summary.shape == (5, 5)


def test_probe_refuses_what_no_listing_shows(catalog, tmp_path):
    outside = tmp_path / "secret.tif"
    tifffile.imwrite(outside, np.ones((4, 4), np.uint8), photometric="minisblack")
    os.symlink(outside, tmp_path / "root" / "out.tif")
    for path in (
        "data/out.tif",
        "data/../secret.tif",
        "data/.x.tif",
        "data/missing.tif",
        "data",
        "nope/a.tif",
    ):
        assert catalog.probe(path) is None, path


def test_folder_path_keeps_inside_the_root(catalog, tmp_path):
    (tmp_path / "root" / "sub").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path, tmp_path / "root" / "up")
    assert catalog.folder_path("data/sub") == tmp_path / "root" / "sub"
    for path in (
        "data/up",
        "data/up/elsewhere",
        "data/..",
        "data/good.tif",
        "data/.sub",
        "other",
        "",
        "data/sub/",
    ):
        assert catalog.folder_path(path) is None, path


# -- the prober ----------------------------------------------------------------------------------


def test_prober_runs_a_few_at_a_time_and_bounds_its_backlog():
    running, peak, done = 0, 0, []
    lock = threading.Lock()

    def probe(url_path: str) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
            done.append(url_path)

    async def scenario() -> int:
        with ThreadPoolExecutor(8) as pool:
            prober = Prober(probe, pool, concurrency=2, backlog=5)
            queued = prober.enqueue([f"f{i}" for i in range(20)])
            prober.enqueue(["f0", "f1"])  # already queued: not twice
            while prober.pending:
                await asyncio.sleep(0.01)
            prober.close()
            return queued

    assert asyncio.run(scenario()) == 5
    assert sorted(done) == ["f0", "f1", "f2", "f3", "f4"]
    assert peak <= 2


def test_prober_survives_a_failing_probe_and_stops_when_closed():
    done = []

    def probe(url_path: str) -> None:
        if url_path == "bad":
            raise RuntimeError("boom")
        done.append(url_path)

    async def scenario() -> None:
        with ThreadPoolExecutor(2) as pool:
            prober = Prober(probe, pool, concurrency=1)
            prober.enqueue(["bad", "good"])
            while prober.pending:
                await asyncio.sleep(0.01)
            prober.close()
            assert prober.enqueue(["late"]) == 0

    asyncio.run(scenario())
    assert done == ["good"]


def test_prober_without_threads_probes_nothing():
    async def scenario() -> int:
        with ThreadPoolExecutor(1) as pool:
            return Prober(lambda p: None, pool, concurrency=0).enqueue(["a"])

    assert asyncio.run(scenario()) == 0
