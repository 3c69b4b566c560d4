"""Freed memory stays in the process: glibc's malloc tuned for a cycle that allocates the same
large buffers for every board.

ONNX Runtime's CPU provider runs here without its memory arena (closing a session that held one
kept the GIL for 143 ms and stalled the PLC link: docs/benchmarks.md, issue 12), so every run
mallocs its intermediate tensors and frees them again, and numpy and OpenCV do the same with
their full-frame temporaries. glibc serves a block above its mmap threshold (128 KiB, rising to
at most 32 MiB) with a fresh ``mmap`` and hands the top of its heap back to the kernel above its
trim threshold, so every board faulted tens of megabytes of zeroed pages in again: the network
at 640x640 took 21 ms instead of 10 on 2 cores (docs/benchmarks.md, "Issue 15, eleventh round").

:func:`retain_freed_memory` raises both thresholds to 1 GiB and has every thread share malloc's
main arena (another thread's arena grows in heaps of at most 64 MiB; one 1024x1024 run needs a
larger block, which glibc then maps afresh whatever the threshold). Freed blocks go back to
malloc's free lists and the next board reuses them: board-b-1024's network went from 60 to 33
ms. The price is that the heap does not shrink after a peak: after a panel recipe, a small
board's station keeps the panel's peak resident. Closing a session stays cheap (its blocks are
freed into the heap, not unmapped). A thread that allocated before the tuning may keep an arena
of its own; the station's cycle thread starts after the rig (and so the backend) opened.

ONNX Runtime's CPU backend calls it when it opens (:mod:`aoi.inference.onnxruntime`). A GPU
station keeps glibc's defaults: on the H200 the panel's cycle was 1.7-1.9 ms slower at p50 with
the tuning (registration and postprocessing, which work on numpy's large host arrays; numpy asks
for huge pages on fresh mappings, which a reused heap block does not get), while the 640 cycle
was 0.3 ms faster. It does nothing where the C library is not glibc, where the environment
already tunes malloc (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or
``GLIBC_TUNABLES``: the site's own choice wins), or where ``AOI_RETAIN_HEAP=0`` (to measure the
difference).
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

#: mallopt(3) parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
#: Both thresholds: larger than any block one board allocates (a panel batch is ~0.4 GiB).
THRESHOLD_BYTES = 1 << 30
#: Set to "0" to keep glibc's defaults.
OPT_OUT = "AOI_RETAIN_HEAP"
_SITE_TUNING = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

_done = False


def retain_freed_memory() -> bool:
    """Tune glibc's malloc to keep freed blocks (once per process); True where it now does."""
    global _done  # noqa: PLW0603 - one process-wide setting, applied once
    if _done:
        return True
    if os.environ.get(OPT_OUT, "1") == "0":
        log.info("malloc left at glibc's defaults (%s=0)", OPT_OUT)
        return False
    site = [name for name in _SITE_TUNING if name in os.environ]
    if site:
        log.info("malloc left as the environment tunes it (%s)", ", ".join(site))
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.info("malloc left as it is: the C library is not glibc")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(M_ARENA_MAX, 1) != 1:
        log.warning("glibc refused one malloc arena for all threads")
        return False
    if mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES) != 1:
        log.warning("glibc refused an mmap threshold of %d bytes", THRESHOLD_BYTES)
        return False
    if mallopt(M_TRIM_THRESHOLD, THRESHOLD_BYTES) != 1:
        log.warning("glibc refused a trim threshold of %d bytes", THRESHOLD_BYTES)
        return False
    _done = True
    log.info("malloc keeps freed blocks up to %d MiB in the process", THRESHOLD_BYTES >> 20)
    return True
