"""gateway.levels.budget and the checks a synthesized level makes: work tokens, checkpoints
between blocks, and blocks over nothing stored that are fill without reading."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.base import NoTileCache, may_hold_data
from gateway.config.settings import ServerSettings, SettingsError
from gateway.levels.budget import BudgetExceeded, WorkCancelled, WorkToken, bound, checkpoint, current_token
from gateway.levels.pyramid import DownsampledLevel, is_synthesized
from gateway.levels.variants import Float32Level
from tests.levels import ArrayLevel


class SparseLevel(ArrayLevel):
    """An ArrayLevel whose data lies only in ``stored`` (a region); it says so, cheaply."""

    def __init__(self, data: np.ndarray, stored: tuple[slice, ...], fill_value: float = 0) -> None:
        super().__init__(data, fill_value=fill_value)
        self.stored = stored
        self.asked: list[tuple[slice, ...]] = []

    def any_stored(self, region: tuple[slice, ...]) -> bool:
        self.asked.append(region)
        return all(r.start < s.stop and s.start < r.stop for r, s in zip(region, self.stored, strict=True))


class OnFirstRead(ArrayLevel):
    """An ArrayLevel that does something to a token when it is first read."""

    def __init__(self, data: np.ndarray, action) -> None:
        super().__init__(data)
        self.action = action

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        if not self.reads:
            self.action()
        return super().read(region)


def blocks_level(finer, block=(8, 8)) -> DownsampledLevel:
    return DownsampledLevel(finer, (2, 2), "mean", block, NoTileCache(), "k")


# -- tokens -------------------------------------------------------------------------------


def test_a_fresh_token_lets_work_go_on():
    WorkToken(60).check()


def test_a_cancelled_token_stops_work():
    token = WorkToken(60)
    token.cancel()
    with pytest.raises(WorkCancelled):
        token.check()


def test_a_token_past_its_deadline_stops_work_with_its_budget_named():
    token = WorkToken(2)
    token.deadline -= 3
    with pytest.raises(BudgetExceeded, match="budget of 2 s"):
        token.check()


def test_checkpoint_outside_bounded_work_is_a_no_op():
    assert current_token() is None
    checkpoint()


def test_bound_sets_the_token_for_the_call_only():
    token = WorkToken(60)
    seen = bound(token, current_token)()
    assert seen is token
    assert current_token() is None


def test_bound_does_not_start_cancelled_work():
    token = WorkToken(60)
    token.cancel()
    calls = []
    with pytest.raises(WorkCancelled):
        bound(token, lambda: calls.append(1))()
    assert calls == []


# -- a synthesized level checks its token between blocks ----------------------------------


def test_cancelled_work_stops_before_the_next_block():
    token = WorkToken(60)
    finer = OnFirstRead(np.ones((64, 64), np.uint16), token.cancel)
    level = blocks_level(finer)  # 32 x 32 in 16 blocks of 8 x 8
    with pytest.raises(WorkCancelled):
        bound(token, lambda: level.read((slice(0, 32), slice(0, 32))))()
    assert len(finer.reads) == 1  # the block under way finished; no other began


def test_work_over_budget_stops_before_the_next_block():
    token = WorkToken(60)

    def expire() -> None:
        token.deadline -= 120

    finer = OnFirstRead(np.ones((64, 64), np.uint16), expire)
    level = blocks_level(finer)
    with pytest.raises(BudgetExceeded):
        bound(token, lambda: level.read((slice(0, 32), slice(0, 32))))()
    assert len(finer.reads) == 1


def test_unbounded_reads_compute_every_block():
    finer = ArrayLevel(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    out = blocks_level(finer).read((slice(0, 32), slice(0, 32)))
    assert out.shape == (32, 32)
    assert len(finer.reads) == 16


# -- blocks over nothing stored are fill at once -----------------------------------------


def test_a_block_over_nothing_stored_is_fill_without_reading():
    data = np.zeros((64, 64), np.uint16)
    data[40:48, 8:16] = 1000
    finer = SparseLevel(data, (slice(40, 48), slice(8, 16)), fill_value=0)
    level = blocks_level(finer)
    out = level.read((slice(0, 32), slice(0, 32)))
    assert finer.reads == [(slice(32, 48), slice(0, 16))]  # the one block with data under it
    expected = np.zeros((32, 32), np.uint16)
    expected[20:24, 4:8] = 1000
    np.testing.assert_array_equal(out, expected)


def test_fill_blocks_carry_the_fill_value():
    finer = SparseLevel(np.full((32, 32), 7, np.int16), (slice(0, 0), slice(0, 0)), fill_value=7)
    out = blocks_level(finer).read((slice(0, 16), slice(0, 16)))
    assert finer.reads == []
    assert out.dtype == np.int16 and (out == 7).all()


def test_any_stored_asks_the_source_once_through_a_chain_of_levels():
    source = SparseLevel(np.zeros((256, 256), np.uint8), (slice(200, 210), slice(0, 5)))
    coarse = blocks_level(blocks_level(blocks_level(source)))  # 32 x 32
    assert coarse.any_stored((slice(25, 27), slice(0, 1)))
    assert not coarse.any_stored((slice(0, 25), slice(0, 32)))
    assert source.asked == [(slice(200, 216), slice(0, 8)), (slice(0, 200), slice(0, 256))]
    assert source.reads == []


def test_levels_that_cannot_tell_may_hold_data():
    assert may_hold_data(ArrayLevel(np.zeros((4, 4))), (slice(0, 4), slice(0, 4)))


def test_variants_pass_the_question_on():
    source = SparseLevel(np.zeros((16, 16), np.uint16), (slice(0, 1), slice(0, 1)))
    variant = Float32Level(source)
    assert may_hold_data(variant, (slice(0, 2), slice(0, 2)))
    assert not may_hold_data(variant, (slice(4, 8), slice(4, 8)))


def test_synthesized_levels_are_recognised_through_wrappers():
    native = ArrayLevel(np.zeros((16, 16), np.uint8))
    assert not is_synthesized(native)
    assert is_synthesized(blocks_level(native))
    assert is_synthesized(Float32Level(blocks_level(native)))
    assert not is_synthesized(Float32Level(native))


# -- settings -----------------------------------------------------------------------------


def test_the_heavy_pool_defaults_to_half_the_threads():
    assert ServerSettings(threads=8).heavy_pool_threads == 4
    assert ServerSettings(threads=1).heavy_pool_threads == 1
    assert ServerSettings(threads=8, heavy_threads=3).heavy_pool_threads == 3


@pytest.mark.parametrize("bad", [{"request_seconds": 0.0}, {"request_seconds": -1.0}, {"heavy_threads": -1}])
def test_bad_budgets_are_refused(bad):
    with pytest.raises(SettingsError):
        ServerSettings(**bad)
