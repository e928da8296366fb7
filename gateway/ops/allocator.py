"""glibc's allocator set for chunk-sized buffers, in the processes that serve or export.

Every chunk the gateway computes allocates and frees arrays of 0.5 to 16 MiB: a decoded
source chunk, its unshuffled copy, the pair sums of a pyramid level, the encoded bytes.
glibc hands out blocks above its mmap threshold (128 KiB, raised on the fly to the largest
block freed so far) as fresh mappings, and gives back the top of an arena once more than
its trim threshold is free there. Either way the next buffer is new memory, which the
kernel faults in and zeroes page by page: with the defaults a cold coarse chunk of a
volume's synthesized pyramid spent a third of its CPU in page faults and zeroing.

A fixed mmap threshold of 4 MiB keeps chunk-sized buffers in the arenas, a trim threshold
of 32 MiB keeps a few of them there for reuse, and at most 4 arenas bound what is kept:
4 x 32 MiB beyond the memory in use, within the 256 MiB the memory estimate
(``gateway.config.settings.RSS_MARGIN_BYTES``) allows besides the caches. Measured on the
bench volume (bench/README.md): its coarsest chunk 2.2 → 1.3 s of CPU together with
reducing part by part (``gateway.levels.pyramid``).

Applied by ``serve`` and ``export`` only, never on import (an in-process user's allocator
is theirs), and not over settings the environment already makes (``MALLOC_*``). Worker
processes inherit them through the environment (glibc reads it when a process starts).
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

logger = logging.getLogger(__name__)

#: mallopt parameters (glibc's malloc.h) and the environment variables glibc reads at start.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

MMAP_THRESHOLD_BYTES = 4 * 1024**2
TRIM_THRESHOLD_BYTES = 32 * 1024**2
ARENA_MAX = 4

SETTINGS: tuple[tuple[str, int, int], ...] = (
    ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
    ("MALLOC_TRIM_THRESHOLD_", _M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
    ("MALLOC_ARENA_MAX", _M_ARENA_MAX, ARENA_MAX),
)


def tune_allocator() -> list[str]:
    """Set glibc's thresholds in this process (those the environment does not set already)
    and in the environment for processes started from it; the names of those set (none
    where the C library is not glibc)."""
    if platform.libc_ver()[0] != "glibc":
        return []
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return []
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = []
    for variable, parameter, value in SETTINGS:
        if variable in os.environ:
            continue  # the operator's choice
        if mallopt(parameter, value) != 1:
            logger.debug("mallopt(%d, %d) refused", parameter, value)
            continue
        os.environ[variable] = str(value)
        applied.append(variable)
    return applied
