"""How much each section does. Every section is bounded by a count AND a time."""

from __future__ import annotations

from dataclasses import dataclass

from tests.hostile.corpus import FULL as FULL_SCALE
from tests.hostile.corpus import SHORT as SHORT_SCALE
from tests.hostile.corpus import Scale

MiB = 1024**2


@dataclass(frozen=True)
class Profile:
    name: str
    fuzz_paths: int
    fuzz_seconds: float
    soak_clients: int
    soak_seconds: float
    pool_threads: int
    pool_files: int
    pool_seconds: float
    pool_requests: int
    fault_readers: int
    fault_seconds: float
    corpus_scale: Scale
    corpus_request_timeout: float  # a request of a hostile file slower than this "hangs"
    corpus_seconds: float
    slow_headers: int
    slow_header_wait: float  # how long half-sent requests are watched for closing
    heads: int
    #: Server caches: small, so that the stated RSS budget is tight enough to see a bomb.
    chunk_cache_bytes: int = 64 * MiB
    tile_cache_bytes: int = 64 * MiB
    threads: int = 4


FULL = Profile(
    name="full",
    fuzz_paths=12_000,
    fuzz_seconds=600,
    soak_clients=64,
    soak_seconds=600,
    pool_threads=16,
    pool_files=10,
    pool_seconds=60,
    pool_requests=200_000,
    fault_readers=8,
    fault_seconds=60,
    corpus_scale=FULL_SCALE,
    corpus_request_timeout=60,
    corpus_seconds=1800,
    slow_headers=1000,
    slow_header_wait=60,
    heads=10_000,
)

SHORT = Profile(
    name="short",
    fuzz_paths=10_000,
    fuzz_seconds=120,
    soak_clients=64,
    soak_seconds=15,
    pool_threads=16,
    pool_files=10,
    pool_seconds=20,  # issue 10's figure: open_files = 2, 16 threads, 10 files, 20 s
    pool_requests=20_000,
    fault_readers=8,
    fault_seconds=6,
    corpus_scale=SHORT_SCALE,
    corpus_request_timeout=10,
    corpus_seconds=300,
    slow_headers=200,
    slow_header_wait=15,
    heads=2_000,
)

#: What the pytest module runs (tests/stress): the same code, smaller counts.
CI = Profile(
    name="ci",
    fuzz_paths=1_500,
    fuzz_seconds=30,
    soak_clients=64,
    soak_seconds=5,
    pool_threads=16,
    pool_files=10,
    pool_seconds=3,
    pool_requests=5_000,
    fault_readers=8,
    fault_seconds=4,
    corpus_scale=Scale(bomb_bytes=512 * MiB, big_chunk_bytes=512 * MiB),
    corpus_request_timeout=5,
    corpus_seconds=150,
    slow_headers=100,
    slow_header_wait=12,
    heads=500,
    chunk_cache_bytes=32 * MiB,
    tile_cache_bytes=32 * MiB,
)

PROFILES = {p.name: p for p in (FULL, SHORT, CI)}
