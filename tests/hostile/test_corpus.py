"""The hostile corpus is what it claims: at least 40 files, and its frames are valid
streams of the formats they name (decoded here at honest sizes by h5py/hdf5plugin and
zlib), so a bomb is a bomb and not merely garbage."""

from __future__ import annotations

import zlib

import h5py
import hdf5plugin
import numpy as np
import pytest

from tests.hostile.corpus import Scale, plant_secrets, write_corpus
from tests.hostile.frames import (
    blosc_zstd_frame,
    deflate_stream,
    lz4_h5_frame,
    zstd_declared_size,
    zstd_rle_frame,
)

SMALL = Scale(bomb_bytes=4 * 1024**2, giant_edge=2**12, big_chunk_bytes=1024**2, lzw_bytes=1024**2)


def test_corpus_has_at_least_40_distinct_files(tmp_path):
    secrets = plant_secrets(tmp_path / "outside")
    entries = write_corpus(tmp_path / "root", secrets, SMALL)
    names = [e.name for e in entries]
    assert len(set(names)) == len(names) >= 40
    assert all((tmp_path / "root" / name).exists() for name in names)
    assert secrets.marker in secrets.raw.read_bytes()


@pytest.mark.parametrize(
    ("filters", "frame"),
    [
        (dict(hdf5plugin.Zstd()), zstd_rle_frame(256 * 256, byte=7)),
        (dict(hdf5plugin.Blosc(cname="zstd")), blosc_zstd_frame(256 * 256, block_bytes=20000, byte=7)),
        (dict(hdf5plugin.LZ4()), lz4_h5_frame(256 * 256, block_bytes=30000, byte=7)),
        ({"compression": "gzip"}, deflate_stream(256 * 256, 7)),
    ],
    ids=["zstd", "blosc", "lz4", "deflate"],
)
def test_frames_decode_to_what_they_say(tmp_path, filters, frame):
    path = tmp_path / "frame.h5"
    with h5py.File(path, "w") as f:
        dataset = f.create_dataset("data", shape=(256, 256), dtype="u1", chunks=(256, 256), **filters)
        dataset.id.write_direct_chunk((0, 0), frame)
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["data"][:], np.full((256, 256), 7, np.uint8))


def test_deflate_stream_of_odd_length_round_trips():
    length = 3 * 1024**2 + 17
    assert zlib.decompress(deflate_stream(length, 2)) == bytes([2]) * length


def test_zstd_declared_size_reads_the_header():
    assert zstd_declared_size(zstd_rle_frame(100, declared=2**31)) == 2**31
    assert zstd_declared_size(b"not zstd") is None
