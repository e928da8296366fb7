"""gateway.levels.pyramid: the reduction rules, the z policy, the coordinate transforms, and a
DownsampledLevel read through a tile cache."""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
import pytest

from adapters.base import full_region
from gateway.levels import pyramid
from gateway.levels.budget import WorkCancelled, WorkToken, bound
from gateway.levels.pyramid import (
    _NETWORKS,
    DownsampledLevel,
    LevelProbe,
    LevelTransform,
    _sorted,
    aligned_parts,
    downsample,
    extend,
    fits_one_chunk,
    reduced_shape,
    step_factors,
)
from tests.levels import ArrayLevel
from tests.pyramid_reference import reduce_reference


class DictTiles:
    """A TileCache that keeps everything and counts computations."""

    def __init__(self) -> None:
        self.values: dict[Hashable, np.ndarray] = {}
        self.computed = 0

    def get_many(
        self, keys: Sequence[Hashable], compute: Callable[[list[Hashable]], Mapping[Hashable, np.ndarray]]
    ) -> list[np.ndarray]:
        missing = [k for k in keys if k not in self.values]
        if missing:
            self.values.update(compute(missing))
            self.computed += len(missing)
        return [self.values[k] for k in keys]


@pytest.mark.parametrize("size", sorted(_NETWORKS))
def test_sorting_networks_sort_every_zero_one_input(size):
    for bits in itertools.product([0, 1], repeat=size):
        assert [int(v[0]) for v in _sorted([np.array([b]) for b in bits])] == sorted(bits)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"])
def test_integer_mean_never_overflows_at_the_extremes(dtype):
    info = np.iinfo(dtype)
    for value in (info.min, info.max):
        data = np.full((3, 5, 5), value, dtype)
        assert (downsample(data, (2, 2, 2), "mean") == value).all()
    mixed = np.array([[info.min, info.max], [info.max, info.max]], dtype)
    assert downsample(mixed, (2, 2), "mean").dtype == np.dtype(dtype)


def test_mean_rounds_half_up():
    assert downsample(np.array([[1, 2]], np.uint8), (1, 2), "mean").tolist() == [[2]]  # 1.5 → 2
    assert downsample(np.array([[-1, -2]], np.int8), (1, 2), "mean").tolist() == [[-1]]  # -1.5 → -1
    assert downsample(np.array([[1, 2, 2, 2]], np.uint8), (1, 2), "mean").tolist() == [[2, 2]]


def test_an_odd_edge_averages_its_valid_pixels_only():
    data = np.array([[10, 20, 200]], np.uint8)
    assert downsample(data, (1, 2), "mean").tolist() == [[15, 200]]


def test_mode_ties_go_to_the_smallest_value_and_invent_nothing():
    data = np.array([[7, 3], [3, 7]], np.uint32)
    assert downsample(data, (2, 2), "mode").tolist() == [[3]]
    labels = np.random.default_rng(1).choice([0, 5, 9, 11], (7, 9, 11)).astype(np.uint16)
    reduced = downsample(labels, (2, 2, 2), "mode")
    assert set(np.unique(reduced)) <= {0, 5, 9, 11}


def test_nearest_takes_the_first_pixel_of_each_block():
    data = np.arange(35).reshape(5, 7)
    np.testing.assert_array_equal(downsample(data, (2, 2), "nearest"), data[::2, ::2])
    np.testing.assert_array_equal(downsample(data, (1, 4), "nearest"), data[:, ::4])


@pytest.mark.parametrize("method", ["mean", "mode", "nearest"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (6, 1, 3), (4, 5, 6), (2, 3, 9, 9)])
def test_downsample_agrees_with_the_reference(method, shape):
    data = np.random.default_rng(sum(shape)).integers(0, 6, shape).astype(np.int32)
    factors = tuple(2 if n > 1 else 1 for n in shape)
    assert reduced_shape(shape, factors) == tuple(-(-n // f) for n, f in zip(shape, factors, strict=True))
    np.testing.assert_array_equal(downsample(data, factors, method), reduce_reference(data, factors, method))


def test_mean_and_mode_refuse_factors_beyond_two():
    with pytest.raises(ValueError):
        downsample(np.zeros((8, 8)), (4, 4), "mean")


@pytest.mark.parametrize(
    ("scale", "units", "expected"),
    [
        ((1.0, 1.0, 1.0), (None, None, None), (2, 2, 2)),  # isotropic: z halves too
        ((4.0, 1.0, 1.0), ("micrometer",) * 3, (1, 2, 2)),  # z much coarser: kept
        ((4.0, 4.0, 4.0 / 1.5), ("micrometer",) * 3, (1, 2, 2)),  # z < new/√2 is false
        ((2.0, 4.0, 4.0), ("micrometer",) * 3, (2, 2, 2)),  # 2 µm < 8/√2
        ((0.002, 1.0, 1.0), ("millimeter", "micrometer", "micrometer"), (1, 2, 2)),  # 2 µm: kept
        ((1.0, 1.0, 1.0), ("nanometer", "micrometer", "micrometer"), (2, 2, 2)),  # 1 nm
    ],
)
def test_z_halves_while_comparable_to_the_plane(scale, units, expected):
    assert step_factors(("z", "y", "x"), units, (10, 100, 100), scale) == expected


def test_axes_of_size_one_and_non_spatial_axes_stay():
    assert step_factors(("t", "c", "z", "y", "x"), (None,) * 5, (3, 2, 1, 1, 9), (1.0,) * 5) == (
        1,
        1,
        1,
        1,
        2,
    )


def test_transform_of_a_reduced_level():
    base = LevelTransform((2.0, 0.5, 0.5), (10.0, 0.0, 1.0))
    assert base.reduced((1, 2, 2), centred=True) == LevelTransform((2.0, 1.0, 1.0), (10.0, 0.25, 1.25))
    assert base.reduced((1, 2, 2), centred=False) == LevelTransform((2.0, 1.0, 1.0), (10.0, 0.0, 1.0))


def test_a_downsampled_level_reads_its_finer_level_once_per_block():
    data = np.random.default_rng(3).integers(0, 255, (7, 64, 64), dtype=np.uint8)
    finer = ArrayLevel(data, (1, 16, 16))
    tiles = DictTiles()
    level = DownsampledLevel(finer, (2, 2, 2), "mean", (1, 16, 16), tiles, "k")
    assert level.shape == (4, 32, 32) and level.tile_shape == (1, 16, 16)
    whole = level.read(full_region(level.shape))
    np.testing.assert_array_equal(whole, reduce_reference(data, (2, 2, 2), "mean"))
    assert tiles.computed == 4 * 2 * 2
    reads = len(finer.reads)
    np.testing.assert_array_equal(level.read((slice(1, 3), slice(5, 30), slice(0, 32))), whole[1:3, 5:30])
    assert len(finer.reads) == reads  # served from the cache
    block = level.read((slice(0, 1), slice(0, 16), slice(0, 16)))
    assert not block.flags.writeable  # a view of a cached block


# -- a block reduced part by part (a few finer tiles at a time) --------------------------


def _covered(parts, source):
    """Every index of ``source`` counted once by ``parts``."""
    counts = np.zeros(tuple(s.stop - s.start for s in source), np.int32)
    for part in parts:
        counts[
            tuple(slice(p.start - s.start, p.stop - s.start) for p, s in zip(part, source, strict=True))
        ] += 1
    return counts


@pytest.mark.parametrize(
    ("source", "tiles", "factors"),
    [
        ((slice(0, 128), slice(256, 512), slice(0, 256)), (64, 128, 128), (2, 2, 2)),
        ((slice(2, 9), slice(0, 33), slice(6, 40)), (1, 5, 7), (2, 2, 2)),  # odd tiles, odd end
        ((slice(0, 4), slice(0, 300), slice(0, 300)), (4, 16, 300), (1, 2, 2)),  # strips
        ((slice(3, 27), slice(0, 27), slice(0, 27)), (2, 4, 4), (3, 3, 3)),  # nearest by 3
    ],
)
def test_aligned_parts_tile_the_source_at_multiples_of_the_factors(source, tiles, factors, monkeypatch):
    monkeypatch.setattr(pyramid, "MIN_PART_BYTES", 1)
    parts = aligned_parts(source, tiles, factors, 2)
    assert len(parts) > 1
    assert (_covered(parts, source) == 1).all()
    for part in parts:
        for p, s, f, t in zip(part, source, factors, tiles, strict=True):
            assert (p.start - s.start) % f == 0  # every part reduces as its share would
            assert p.start == s.start or p.start % np.lcm(t, f) == 0  # at the finer tiles' edges
            assert p.stop == s.stop or (p.stop - s.start) % f == 0


def test_aligned_parts_grow_to_the_minimum_and_stay_whole_when_too_many(monkeypatch):
    source = (slice(0, 128), slice(0, 256), slice(0, 256))
    parts = aligned_parts(source, (64, 128, 128), (2, 2, 2), 2)
    assert len(parts) == 8 and all(  # one stored 2 MiB chunk each: already above the minimum
        tuple(p.stop - p.start for p in part) == (64, 128, 128) for part in parts
    )
    strips = aligned_parts((slice(0, 2), slice(0, 1024), slice(0, 1024)), (1, 8, 1024), (2, 2, 2), 2)
    assert [p[1].stop - p[1].start for p in strips] == [256] * 4  # 8-row strips grown to 2 x 256 rows: 1 MiB
    assert (_covered(strips, (slice(0, 2), slice(0, 1024), slice(0, 1024))) == 1).all()
    monkeypatch.setattr(pyramid, "MIN_PART_BYTES", 1)
    assert aligned_parts((slice(0, 64), slice(0, 64)), (1, 1), (2, 2), 1) == [(slice(0, 64), slice(0, 64))]
    assert aligned_parts((slice(0, 3), slice(0, 5)), (8, 8), (2, 2), 1) == [(slice(0, 3), slice(0, 5))]


class SparseLevel(ArrayLevel):
    """An ArrayLevel whose tiles in ``absent`` hold no stored data (and are fill)."""

    def __init__(self, data, tile_shape, absent):
        super().__init__(data, tile_shape)
        self.absent = absent  # a region that any_stored reports empty

    def any_stored(self, region):
        return any(r.start < a.start or r.stop > a.stop for r, a in zip(region, self.absent, strict=True))


@pytest.mark.parametrize("method", ["mean", "mode", "nearest"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "int64", "float32", "bool"])
@pytest.mark.parametrize(
    ("shape", "tiles", "blocks"),
    [
        ((9, 21, 19), (3, 5, 4), (2, 4, 4)),  # odd everything: parts cut at 2x the odd tiles
        ((8, 32, 32), (1, 8, 8), (4, 8, 8)),  # one plane per tile (a TIFF stack)
        ((16, 24, 40), (4, 8, 8), (8, 12, 20)),  # each block reads many whole tiles
    ],
)
def test_a_block_reduced_part_by_part_equals_the_reference(method, dtype, shape, tiles, blocks, monkeypatch):
    monkeypatch.setattr(pyramid, "MIN_PART_BYTES", 1)  # parts of one or two tiles
    data = np.random.default_rng(len(dtype) + shape[0]).integers(0, 250, shape)
    data = data.astype(dtype) if dtype != "bool" else data > 125
    if dtype == "int64":
        data = data * (2**56) - 7  # sums that would overflow a naive int64 mean
    finer = ArrayLevel(data, tiles)
    factors = (2, 2, 2)
    level = DownsampledLevel(finer, factors, method, blocks, DictTiles(), "k")
    whole = level.read(full_region(level.shape))
    np.testing.assert_array_equal(whole, reduce_reference(data, factors, method))
    grid = math.prod(-(-n // b) for n, b in zip(level.shape, blocks, strict=True))
    assert len(finer.reads) > grid  # read in parts, not a region per block


def test_parts_with_nothing_stored_are_fill_without_reading(monkeypatch):
    monkeypatch.setattr(pyramid, "MIN_PART_BYTES", 1)
    data = np.random.default_rng(5).integers(1, 200, (8, 32, 32)).astype(np.uint16)
    absent = (slice(0, 8), slice(0, 16), slice(0, 32))
    data[absent] = 0
    finer = SparseLevel(data, (2, 8, 8), absent)
    level = DownsampledLevel(finer, (2, 2, 2), "mean", (4, 16, 16), DictTiles(), "k")
    np.testing.assert_array_equal(
        level.read(full_region(level.shape)), reduce_reference(data, (2, 2, 2), "mean")
    )
    assert finer.reads and all(r[1].start >= 16 for r in finer.reads)  # the empty half never read


def test_a_level_reduced_from_a_synthesized_one_part_by_part(monkeypatch):
    monkeypatch.setattr(pyramid, "MIN_PART_BYTES", 1)
    data = np.random.default_rng(9).integers(0, 60000, (20, 36, 44)).astype(np.uint16)
    tiles = DictTiles()
    level1 = DownsampledLevel(ArrayLevel(data, (4, 8, 8)), (2, 2, 2), "mean", (4, 6, 6), tiles, "1")
    level2 = DownsampledLevel(level1, (2, 2, 2), "mean", (3, 5, 5), tiles, "2")
    expected = reduce_reference(reduce_reference(data, (2, 2, 2), "mean"), (2, 2, 2), "mean")
    np.testing.assert_array_equal(level2.read(full_region(level2.shape)), expected)


def test_extend_adds_levels_until_the_plane_fits_a_chunk():
    finer = ArrayLevel(np.zeros((3, 300, 170), np.uint16), (1, 300, 170))
    pyramid = extend(
        [finer],
        [LevelTransform((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))],
        axis_names=("c", "y", "x"),
        units=(None, None, None),
        method="mean",
        chunks_of=lambda level: (1, 64, 64),
        tiles=DictTiles(),
        key="k",
    )
    assert [level.shape for level in pyramid.levels] == [
        (3, 300, 170),
        (3, 150, 85),
        (3, 75, 43),
        (3, 38, 22),
    ]
    assert pyramid.synthesized == 3
    assert pyramid.transforms[-1] == LevelTransform((1.0, 8.0, 8.0), (0.0, 3.5, 3.5))


def _volume_pyramid(shape, chunks_of, scale=(1.0, 1.0, 1.0)):
    finer = LevelProbe(shape=shape, dtype=np.dtype(np.uint8), tile_shape=(1, 1, 1))  # planned, never read
    return extend(
        [finer],
        [LevelTransform(scale, (0.0, 0.0, 0.0))],
        axis_names=("z", "y", "x"),
        units=("micrometer",) * 3,
        method="mean",
        chunks_of=chunks_of,
        tiles=DictTiles(),
        key="k",
    )


def test_a_volume_chunked_in_z_gets_levels_until_one_chunk_holds_it():
    pyramid = _volume_pyramid((1024, 1024, 1024), lambda level: tuple(min(64, n) for n in level.shape))
    assert [level.shape for level in pyramid.levels] == [(1024 >> k,) * 3 for k in range(5)]


def test_z_keeps_its_anisotropy_rule_while_levels_continue():
    pyramid = _volume_pyramid(
        (256, 1024, 1024), lambda level: (min(64, level.shape[0]), 128, 128), scale=(4.0, 1.0, 1.0)
    )
    assert [level.shape for level in pyramid.levels] == [
        (256, 1024, 1024),
        (256, 512, 512),
        (256, 256, 256),
        (128, 128, 128),
        (64, 64, 64),
    ]


def test_a_plane_chunked_volume_stops_when_the_plane_fits():
    pyramid = _volume_pyramid((1024, 1024, 1024), lambda level: (1, 256, 256))
    assert pyramid.levels[-1].shape == (256, 256, 256)


@pytest.mark.parametrize(
    ("shape", "chunks", "fits"),
    [
        ((64, 64, 64), (64, 64, 64), True),
        ((65, 64, 64), (64, 64, 64), False),
        ((65, 64, 64), (1, 64, 64), True),  # z by planes: only the plane counts
        ((64, 128, 64), (64, 64, 64), False),
    ],
)
def test_fits_one_chunk(shape, chunks, fits):
    assert fits_one_chunk("zyx", shape, chunks) is fits


# -- blocks of one read computed side by side ----------------------------------------------------


class ThreadRecordingLevel(ArrayLevel):
    """An ArrayLevel that records which thread read each region (and may act on a read)."""

    def __init__(self, data: np.ndarray, tile_shape: tuple[int, ...], on_read=None) -> None:
        super().__init__(data, tile_shape)
        self.threads: set[str] = set()
        self.on_read = on_read

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        if self.on_read is not None:
            self.on_read()
        return super().read(region)


def test_the_blocks_of_one_read_are_computed_in_several_threads():
    # a cold coarse chunk reads its whole footprint: one thread alone left the other cores idle
    data = np.random.default_rng(5).integers(0, 4000, (8, 64, 64), dtype=np.uint16)
    second_thread = threading.Event()

    def wait_for_a_second_thread() -> None:
        # the reads are tiny: on a loaded machine one pool thread could take every block
        # before the OS runs another, so each read waits (briefly) until two have read
        fanned = {name for name in finer.threads if name.startswith("gateway-pyramid")}
        if len(fanned) >= 2:
            second_thread.set()
        if not second_thread.wait(timeout=2):
            second_thread.set()  # waited in vain once: the assertion below tells

    finer = ThreadRecordingLevel(data, (2, 16, 16), on_read=wait_for_a_second_thread)
    level = DownsampledLevel(finer, (2, 2, 2), "mean", (1, 8, 8), DictTiles(), "k")
    np.testing.assert_array_equal(
        level.read(full_region(level.shape)), reduce_reference(data, (2, 2, 2), "mean")
    )
    fanned = {name for name in finer.threads if name.startswith("gateway-pyramid")}
    assert len(fanned) >= 2, finer.threads


def test_fan_out_is_one_level_deep_so_a_deep_pyramid_never_waits_for_the_pool():
    data = np.random.default_rng(6).integers(0, 255, (16, 128, 128), dtype=np.uint8)
    source = ThreadRecordingLevel(data, (4, 32, 32))
    tiles = DictTiles()
    one = DownsampledLevel(source, (2, 2, 2), "mean", (2, 16, 16), tiles, "one")
    two = DownsampledLevel(one, (2, 2, 2), "mean", (2, 8, 8), tiles, "two")
    three = DownsampledLevel(two, (2, 2, 2), "mean", (1, 4, 4), tiles, "three")
    want = reduce_reference(
        reduce_reference(reduce_reference(data, (2, 2, 2), "mean"), (2, 2, 2), "mean"), (2, 2, 2), "mean"
    )
    # more blocks at every level than the pool has threads: nested fan-out would deadlock
    np.testing.assert_array_equal(three.read(full_region(three.shape)), want)


def test_a_cancelled_computation_stops_its_fanned_out_blocks():
    token = WorkToken(60)
    data = np.random.default_rng(7).integers(0, 255, (8, 64, 64), dtype=np.uint8)
    finer = ThreadRecordingLevel(data, (2, 16, 16), on_read=token.cancel)  # cancelled at once
    level = DownsampledLevel(finer, (2, 2, 2), "mean", (1, 8, 8), DictTiles(), "k")
    with pytest.raises(WorkCancelled):
        bound(token, lambda: level.read(full_region(level.shape)))()
    assert len(finer.reads) < 16  # the blocks not yet started never read
