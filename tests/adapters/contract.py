"""The adapter contract (STYLE.md, "The adapter contract") as a test class each family
subclasses, in the manner of zarr-python's ``zarr.testing.store.StoreTests``.

A subclass names its family and what its sample holds:

- ``adapter_type``: the family's ``Adapter`` class;
- ``axes``: per image, the axes (names and units) it must have;
- ``passthrough``: whether the sample's levels offer their stored chunks for
  pass-through;

and provides two fixtures:

- ``sample``: writes a sample file into ``tmp_path`` and returns its path;
- ``reference``: every level of every image of ``sample``, read with tifffile or h5py
  directly (not through the adapter) and put in the served axis order (t, c, z, y, x).

The tests then hold the adapter to the contract: a cheap ``can_open`` that
never raises, a ``Source`` of well-formed images, bit-exact and thread-safe ``read``,
pass-through chunks that decode to the same pixels, and a ``close`` that lets go of the file.
"""

from __future__ import annotations

import itertools
import os
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import imagecodecs
import numpy as np
import pytest

from adapters.base import (
    AXIS_ORDER,
    Adapter,
    AdapterError,
    Axis,
    Image,
    Level,
    NoTileCache,
    RawChunkFormat,
    Region,
    Source,
)

#: What ``can_open`` may read to sniff a file, far below the size of the padded sample.
SNIFF_BYTES_MAX = 1024 * 1024
#: Threads that read one level at once in the thread-safety test.
THREADS = 8


def to_tczyx(array: np.ndarray, axes: str) -> np.ndarray:
    """``array`` whose dimensions are named by ``axes`` (tifffile's letters, ``S`` for
    samples, which are channels) in the served order: a subsequence of t, c, z, y, x."""
    names = axes.upper().replace("S", "C")
    if len(names) != array.ndim or len(set(names)) != len(names):
        raise ValueError(f"cannot serve axes {axes!r} of an array of shape {array.shape}")
    order = sorted(range(len(names)), key=lambda i: "TCZYX".index(names[i]))
    return np.moveaxis(array, order, range(len(order)))


def assert_bit_exact(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Same shape, same (native) data type and the same bytes: NaN payloads, -0.0 count."""
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    expected = expected.astype(expected.dtype.newbyteorder("="), copy=False)
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype}, expected {expected.dtype}"
    same = np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(expected).tobytes()
    assert same, f"{what}: pixels differ at {np.argwhere(got != expected)[:5].tolist()}"


def probe_regions(shape: Sequence[int], tiles: Sequence[int]) -> list[Region]:
    """Regions that find off-by-one and tiling mistakes: the whole level, the last
    element, a box ending at the far edge (cut tiles), a box crossing tile boundaries at
    offsets off the tile grid, and a plane at the middle of the leading axes."""
    full = tuple(slice(0, n) for n in shape)
    corner = tuple(slice(n - 1, n) for n in shape)
    edge = tuple(slice(max(0, n - t - t // 3 - 1), n) for n, t in zip(shape, tiles, strict=True))
    crossing = []
    for n, t in zip(shape, tiles, strict=True):
        start = min(t // 2 + 1, n - 1)
        crossing.append(slice(start, min(n, start + t + 3)))
    plane = tuple(
        slice(n // 2, n // 2 + 1) if i < len(shape) - 2 else slice(0, n) for i, n in enumerate(shape)
    )
    return [full, corner, edge, tuple(crossing), plane]


def random_regions(shape: Sequence[int], count: int, seed: int) -> list[Region]:
    """``count`` boxes of random corners inside ``shape`` (deterministic per ``seed``)."""
    rng = np.random.default_rng(seed)
    regions = []
    for _ in range(count):
        starts = [int(rng.integers(0, n)) for n in shape]
        regions.append(
            tuple(slice(a, int(rng.integers(a + 1, n + 1))) for a, n in zip(starts, shape, strict=True))
        )
    return regions


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def bytes_read() -> int:
    """Bytes this process has read through read/pread calls (``rchar``), any library's."""
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))


def decode_raw_chunk(data: bytes, raw: RawChunkFormat, dtype: np.dtype[np.generic]) -> np.ndarray:
    """A pass-through chunk decoded as a zarr client would: its codec, then C-order
    elements of ``raw.chunk_shape`` in ``raw.endian`` byte order."""
    if raw.compressor == "zstd":
        data = imagecodecs.zstd_decode(data)
    elif raw.compressor == "zlib":  # served framed (tests/hdf5/test_deflate_passthrough.py)
        data = zlib.decompress(data)
        if raw.shuffled:  # byte planes (every element's first byte, then...) to elements
            data = np.frombuffer(data, np.uint8).reshape(dtype.itemsize, -1).T.tobytes()
    elif raw.compressor == "blosc":
        data = imagecodecs.blosc_decode(data)
    stored = dtype.newbyteorder("<" if raw.endian == "little" else ">")
    return np.frombuffer(data, dtype=stored).reshape(raw.chunk_shape)


class AdapterContract:
    """What every adapter family promises; subclass it once per family and sample kind."""

    adapter_type: ClassVar[type[Adapter]]
    #: per image, the axes it must have (units where the sample records them)
    axes: ClassVar[tuple[tuple[Axis, ...], ...]]
    #: whether the sample's levels offer stored chunks for pass-through (some level does;
    #: zlib streams count, which the gateway frames) or not (none does: its codec or
    #: layout is not a zarr chunk's)
    passthrough: ClassVar[bool] = False

    # -- what a subclass provides ----------------------------------------------------------

    @pytest.fixture
    def sample(self, tmp_path: Path) -> Path:
        """Write the sample into ``tmp_path``; return the path ``open`` is given."""
        raise NotImplementedError

    @pytest.fixture
    def reference(self, sample: Path) -> list[list[np.ndarray]]:
        """Per image, per level (finest first): the pixels read without the adapter."""
        raise NotImplementedError

    # -- shared fixtures -------------------------------------------------------------------

    @pytest.fixture
    def adapter(self) -> Adapter:
        return self.adapter_type()

    @pytest.fixture
    def source(self, adapter: Adapter, sample: Path) -> Iterator[Source]:
        opened = adapter.open(sample, NoTileCache())
        yield opened
        opened.close()

    @pytest.fixture
    def levels(
        self, source: Source, reference: list[list[np.ndarray]]
    ) -> list[tuple[str, Level, np.ndarray]]:
        """(name, level, reference pixels) of every level of every image (as many as the
        reference has: ``test_levels_match_the_reference`` checks the counts)."""
        return [
            (f"image {i} level {k}", level, pixels)
            for i, (image, expected) in enumerate(zip(source.images, reference, strict=False))
            for k, (level, pixels) in enumerate(zip(image.levels, expected, strict=False))
        ]

    # -- can_open --------------------------------------------------------------------------

    def test_can_open_accepts_the_sample(self, adapter: Adapter, sample: Path) -> None:
        assert adapter.can_open(sample) is True

    @pytest.mark.parametrize(
        "make",
        [
            pytest.param(lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)), id="garbage"),
            pytest.param(lambda p: p.write_bytes(b""), id="empty"),
            pytest.param(lambda p: p.mkdir(), id="directory"),
            pytest.param(lambda p: None, id="missing"),
        ],
    )
    def test_can_open_refuses_what_is_not_a_sample_without_raising(
        self, adapter: Adapter, sample: Path, tmp_path: Path, make: Callable[[Path], object]
    ) -> None:
        path = tmp_path / "other" / sample.name  # the same suffix: only content can tell
        path.parent.mkdir()
        make(path)
        assert adapter.can_open(path) is False

    def test_can_open_reads_only_a_prefix(self, adapter: Adapter, sample: Path, tmp_path: Path) -> None:
        big = tmp_path / "big" / sample.name
        big.parent.mkdir()
        big.write_bytes(sample.read_bytes())
        os.truncate(big, big.stat().st_size + 256 * SNIFF_BYTES_MAX)  # a hole: cheap to make
        before = bytes_read()
        adapter.can_open(big)
        assert bytes_read() - before <= SNIFF_BYTES_MAX

    # -- open ------------------------------------------------------------------------------

    def test_images_have_ordered_axes_with_units(self, source: Source) -> None:
        for image in source.images:
            names = [a.name for a in image.axes]
            assert names == [n for n in AXIS_ORDER if n in names]
        assert tuple(image.axes for image in source.images) == self.axes

    def test_channels_match_the_channel_axis(self, source: Source) -> None:
        for image in source.images:
            if "c" in image.axis_names:
                assert len(image.channels) == image.levels[0].shape[image.axis_names.index("c")]
            else:
                assert len(image.channels) <= 1

    def test_levels_go_from_finest_to_coarsest(self, source: Source) -> None:
        for image in source.images:
            planes = [_plane(image, level) for level in image.levels]
            assert all(a[0] >= b[0] and a[1] >= b[1] for a, b in itertools.pairwise(planes)), planes
            assert all(len(level.tile_shape) == len(level.shape) for level in image.levels)

    def test_levels_match_the_reference(
        self, source: Source, reference: list[list[np.ndarray]], levels: list[tuple[str, Level, np.ndarray]]
    ) -> None:
        assert [len(image.levels) for image in source.images] == [len(image) for image in reference]
        for name, level, expected in levels:
            assert level.shape == expected.shape, name
            assert level.dtype == expected.dtype.newbyteorder("="), name

    # -- read ------------------------------------------------------------------------------

    def test_read_returns_exactly_the_region(self, levels: list[tuple[str, Level, np.ndarray]]) -> None:
        for name, level, expected in levels:
            regions = probe_regions(level.shape, level.tile_shape) + random_regions(level.shape, 8, 0)
            for region in regions:
                assert_bit_exact(level.read(region), expected[region], f"{name} {region}")

    def test_concurrent_reads_are_exact(self, levels: list[tuple[str, Level, np.ndarray]]) -> None:
        name, level, expected = levels[0]
        work = [random_regions(level.shape, 12, seed) for seed in range(THREADS)]
        start = threading.Barrier(THREADS)
        failures: list[BaseException] = []

        def reader(regions: list[Region]) -> None:
            start.wait()
            try:
                for region in regions:
                    assert_bit_exact(level.read(region), expected[region], f"{name} {region}")
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        threads = [threading.Thread(target=reader, args=(regions,)) for regions in work]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures, failures[0]

    # -- pass-through ----------------------------------------------------------------------

    def test_passthrough_chunks_decode_to_the_same_pixels(
        self, levels: list[tuple[str, Level, np.ndarray]]
    ) -> None:
        offered = [(name, level, expected) for name, level, expected in levels if level.raw_chunk_format]
        assert bool(offered) == self.passthrough
        for name, level, expected in offered:
            raw = level.raw_chunk_format
            assert raw is not None and len(raw.chunk_shape) == len(level.shape)
            grid = [range(-(-n // c)) for n, c in zip(level.shape, raw.chunk_shape, strict=True)]
            served = 0
            for coords in np.ndindex(*(len(r) for r in grid)):
                data = level.read_raw_chunk(coords)
                if data is None:
                    continue
                chunk = decode_raw_chunk(data, raw, level.dtype)
                region = tuple(
                    slice(i * c, min((i + 1) * c, n))
                    for i, c, n in zip(coords, raw.chunk_shape, level.shape, strict=True)
                )
                inside = tuple(slice(0, s.stop - s.start) for s in region)
                assert_bit_exact(
                    chunk[inside].astype(level.dtype), expected[region], f"{name} chunk {coords}"
                )
                served += 1
            assert served, f"{name}: no stored chunk was passed through"

    # -- close -----------------------------------------------------------------------------

    def test_close_releases_the_file(self, adapter: Adapter, sample: Path) -> None:
        before = open_descriptors()
        source = adapter.open(sample, NoTileCache())
        level = source.images[0].levels[0]
        region = tuple(slice(0, n) for n in level.shape)  # some of it is stored: read from the file
        level.read(region)
        source.close()
        assert open_descriptors() == before
        with pytest.raises(AdapterError):
            level.read(region)
        source.close()  # idempotent


def _plane(image: Image, level: Level) -> tuple[int, int]:
    names = image.axis_names
    return level.shape[names.index("y")], level.shape[names.index("x")]
