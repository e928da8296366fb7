"""adapters.diagnostics: library log lines captured per thread as a source's warnings,
summarised, deduplicated and bounded."""

from __future__ import annotations

import logging
import threading

import pytest

from adapters.diagnostics import (
    MAX_RECORDS,
    MAX_WARNING_CHARS,
    add_failure,
    add_warnings,
    captured_logs,
    summarise,
)

LIBRARY = "test_diagnostics_library"


def test_add_warnings_keeps_order_and_drops_repeats():
    warnings = ["a"]
    add_warnings(warnings, ["b", "a", "c", "b"])
    assert warnings == ["a", "b", "c"]


def test_add_warnings_is_bounded_and_counts_what_it_left_out():
    warnings: list[str] = []
    add_warnings(warnings, [f"problem {i}" for i in range(10)], limit=4)
    assert warnings == ["problem 0", "problem 1", "problem 2", "7 more warnings not shown"]
    add_warnings(warnings, ["problem 99"], limit=4)
    assert warnings[-1] == "8 more warnings not shown"
    assert len(warnings) == 4


def test_a_warning_is_one_line_and_capped():
    warnings: list[str] = []
    add_warnings(warnings, ["line one\nline two\t" + "x" * 5000])
    (only,) = warnings
    assert "\n" not in only and only.startswith("line one line two x")
    assert len(only) == MAX_WARNING_CHARS


def test_summarise_folds_repeats_that_differ_only_in_numbers():
    messages = [
        "<tifffile.TiffFile 'a.tif'> generic series raised TiffFileError('corrupted tag list @1049232')",
        "<tifffile.TiffFile 'a.tif'> generic series raised TiffFileError('corrupted tag list @1311840')",
        "<tifffile.TiffPages @8> invalid page offset 491776",
        "<tifffile.TiffFile 'a.tif'> generic series raised TiffFileError('corrupted tag list @7')",
    ]
    assert summarise(messages, "tifffile: ") == [
        "tifffile: generic series raised TiffFileError('corrupted tag list @1049232') (and 2 more like it)",
        "tifffile: <tifffile.TiffPages @8> invalid page offset 491776",
    ]


def test_add_failure_keeps_one_warning_per_kind_of_damage():
    warnings = ["the file is truncated: image 0: 30 of 60 planes lie beyond the end"]
    for offset in range(0, 5000, 100):
        add_failure(warnings, f"reading failed: x.tif: bytes {offset}..{offset + 99} lie outside the file")
    add_failure(warnings, "reading failed: x.tif: stored chunk (0, 1) cannot be decoded (zlib error)")
    assert warnings[1:] == [
        "reading failed: x.tif: bytes 0..99 lie outside the file",
        "reading failed: x.tif: stored chunk (0, 1) cannot be decoded (zlib error)",
    ]


def test_captured_records_do_not_reach_the_log(caplog):
    logger = logging.getLogger(LIBRARY)
    with caplog.at_level(logging.INFO), captured_logs(LIBRARY) as messages:
        logger.warning("page %d is broken", 7)
        logger.error("and another")
    assert messages == ["page 7 is broken", "and another"]
    assert not [r for r in caplog.records if r.name == LIBRARY]


def test_records_outside_a_capture_reach_the_log(caplog):
    logger = logging.getLogger(LIBRARY)
    with captured_logs(LIBRARY):
        pass
    with caplog.at_level(logging.INFO):
        logger.warning("not captured")
    assert [r.getMessage() for r in caplog.records if r.name == LIBRARY] == ["not captured"]


def test_capture_is_per_thread(caplog):
    """A worker capturing while another thread logs: each record goes where it belongs."""
    logger = logging.getLogger(LIBRARY)
    inside = threading.Event()
    logged = threading.Event()
    captured: list[str] = []

    def worker() -> None:
        with captured_logs(LIBRARY) as messages:
            logger.warning("from the worker")
            inside.set()
            assert logged.wait(10)
            logger.warning("from the worker again")
        captured.extend(messages)

    with caplog.at_level(logging.INFO):
        thread = threading.Thread(target=worker)
        thread.start()
        assert inside.wait(10)
        logger.warning("from the main thread")  # while the worker captures
        logged.set()
        thread.join(10)
    assert captured == ["from the worker", "from the worker again"]
    assert [r.getMessage() for r in caplog.records if r.name == LIBRARY] == ["from the main thread"]


def test_many_threads_capture_their_own_records_only():
    logger = logging.getLogger(LIBRARY)
    results: dict[int, list[str]] = {}
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        start.wait()
        with captured_logs(LIBRARY) as messages:
            for i in range(200):
                logger.warning("worker %d record %d", n, i)
        results[n] = list(messages)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for n in range(8):
        assert results[n] == [f"worker {n} record {i}" for i in range(200)]


def test_nested_captures_collect_in_the_innermost():
    logger = logging.getLogger(LIBRARY)
    with captured_logs(LIBRARY) as outer:
        logger.warning("outer 1")
        with captured_logs(LIBRARY) as inner:
            logger.warning("inner")
        logger.warning("outer 2")
    assert outer == ["outer 1", "outer 2"]
    assert inner == ["inner"]


def test_a_flood_is_bounded():
    logger = logging.getLogger(LIBRARY)
    with captured_logs(LIBRARY) as messages:
        for i in range(MAX_RECORDS + 500):
            logger.warning("line %d", i)
    assert len(messages) == MAX_RECORDS + 1
    assert messages[-1] == f"500 further messages of {LIBRARY} dropped"


def test_an_exception_in_the_block_ends_the_capture(caplog):
    logger = logging.getLogger(LIBRARY)
    with pytest.raises(RuntimeError), captured_logs(LIBRARY):
        raise RuntimeError("open failed")
    with caplog.at_level(logging.INFO):
        logger.warning("after")
    assert [r.getMessage() for r in caplog.records if r.name == LIBRARY] == ["after"]
