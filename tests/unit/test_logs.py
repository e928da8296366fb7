"""gateway.store.logs: one line per key per interval, with the repeats counted; bounded keys."""

from __future__ import annotations

import logging

import pytest

from gateway.store.logs import LogLimiter, RepeatFilter, dataset_label, one_line


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter(clock: Clock) -> LogLimiter:
    return LogLimiter(interval_seconds=10, max_keys=3, clock=clock)


def test_first_line_of_a_key_is_written(limiter):
    assert limiter.admit("a") == ""


def test_repeats_within_the_interval_are_suppressed(limiter, clock):
    limiter.admit("a")
    clock.now += 9.9
    assert [limiter.admit("a") for _ in range(5)] == [None] * 5


def test_next_line_after_the_interval_counts_the_repeats(limiter, clock):
    limiter.admit("a")
    for _ in range(5812):
        limiter.admit("a")
    clock.now += 12
    assert limiter.admit("a") == " (repeated 5,812 times in the last 12 s)"


def test_a_single_repeat_is_singular(limiter, clock):
    limiter.admit("a")
    limiter.admit("a")
    clock.now += 10
    assert limiter.admit("a") == " (repeated 1 time in the last 10 s)"


def test_no_count_when_nothing_was_suppressed(limiter, clock):
    limiter.admit("a")
    clock.now += 30
    assert limiter.admit("a") == ""


def test_a_new_interval_starts_with_the_line_written(limiter, clock):
    limiter.admit("a")
    clock.now += 10
    limiter.admit("a")
    clock.now += 5
    assert limiter.admit("a") is None


def test_keys_are_independent(limiter):
    assert limiter.admit(("lab/a.tif", "source_error")) == ""
    assert limiter.admit(("lab/b.tif", "source_error")) == ""
    assert limiter.admit(("lab/a.tif", "io_error")) == ""
    assert limiter.admit(("lab/a.tif", "source_error")) is None


def test_keys_are_bounded(limiter):
    for name in "abcdefgh":
        limiter.admit(name)
    assert len(limiter) == 3


def test_least_recently_seen_key_is_forgotten_first(limiter):
    for name in "abc":
        limiter.admit(name)
    limiter.admit("a")  # seen again (suppressed): now the most recent
    limiter.admit("d")
    assert limiter.admit("b") == ""  # forgotten: written again at once
    assert limiter.admit("a") is None


def test_log_writes_one_line_then_suppresses(limiter, caplog):
    logger = logging.getLogger("tests.logs")
    with caplog.at_level(logging.INFO, logger="tests.logs"):
        written = [limiter.log(logger, logging.ERROR, "k", f"failed {i}") for i in range(4)]
    assert written == [True, False, False, False]
    assert [r.getMessage() for r in caplog.records] == ["failed 0"]


def test_log_adds_the_count_to_the_next_line(limiter, clock, caplog):
    logger = logging.getLogger("tests.logs")
    with caplog.at_level(logging.INFO, logger="tests.logs"):
        for _ in range(3):
            limiter.log(logger, logging.WARNING, "k", "cannot open lab/a.tif")
        clock.now += 11
        limiter.log(logger, logging.WARNING, "k", "cannot open lab/a.tif")
    assert caplog.records[-1].getMessage() == "cannot open lab/a.tif (repeated 2 times in the last 11 s)"


def test_log_keeps_the_traceback_on_the_written_line(limiter, caplog):
    logger = logging.getLogger("tests.logs")
    error = RuntimeError("boom")
    with caplog.at_level(logging.INFO, logger="tests.logs"):
        limiter.log(logger, logging.ERROR, "k", "failed", exc_info=error)
        limiter.log(logger, logging.ERROR, "k", "failed", exc_info=error)
    assert len(caplog.records) == 1 and caplog.records[0].exc_info[1] is error


def test_log_of_a_disabled_level_counts_nothing(limiter, caplog):
    logger = logging.getLogger("tests.logs")
    with caplog.at_level(logging.ERROR, logger="tests.logs"):
        assert not limiter.log(logger, logging.INFO, "k", "opened")
    assert len(limiter) == 0


def test_log_message_is_one_line(limiter, caplog):
    logger = logging.getLogger("tests.logs")
    with caplog.at_level(logging.INFO, logger="tests.logs"):
        limiter.log(logger, logging.ERROR, "k", "first\nsecond\r\nthird")
    assert caplog.records[0].getMessage() == "first second third"


def test_one_line_caps_the_length():
    text = one_line("9" * 5000, limit=100)
    assert len(text) == 100 and text.endswith("…")


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/lab/sub/a.ome.tif/0/c/0/1", "lab/sub/a.ome.tif"),
        ("lab/a.tif/zarr.json", "lab/a.tif"),
        ("/lab/run.tif/b.h5/data/zarr.json", "lab/run.tif"),
        ("/lab/sub/", "lab/sub"),
        ("/", ""),
    ],
)
def test_dataset_label(path, label):
    assert dataset_label(path) == label


def test_dataset_label_is_capped():
    assert len(dataset_label("/x/" + "y" * 5000)) == 200


def test_repeat_filter_passes_one_warning_per_interval(clock):
    guard = RepeatFilter(LogLimiter(interval_seconds=10, clock=clock))
    records = [
        logging.LogRecord("uvicorn.error", logging.WARNING, "", 0, "Invalid HTTP request received.", (), None)
    ]
    records += [logging.makeLogRecord(vars(records[0])) for _ in range(3)]
    assert [guard.filter(r) for r in records] == [True, False, False, False]
    clock.now += 10
    again = logging.makeLogRecord(vars(records[0]))
    assert guard.filter(again)
    assert again.getMessage() == "Invalid HTTP request received. (repeated 3 times in the last 10 s)"


def test_repeat_filter_leaves_info_lines_alone(clock):
    guard = RepeatFilter(LogLimiter(interval_seconds=10, clock=clock))
    record = logging.LogRecord("uvicorn.error", logging.INFO, "", 0, "Started server process", (), None)
    assert all(guard.filter(record) for _ in range(3))
