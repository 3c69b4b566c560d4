"""Freed memory stays in the process: glibc's malloc tuned for a cycle that allocates the same
large buffers for every board.

ONNX Runtime's CPU provider runs here without its memory arena (closing a session that held one
kept the GIL for 143 ms and stalled the PLC link: docs/benchmarks.md, issue 12), so every run
mallocs its intermediate tensors and frees them again. glibc serves a block above its mmap
threshold (128 KiB, rising to at most 32 MiB) with a fresh ``mmap`` and hands the top of its heap
back to the kernel above its trim threshold, so every board faulted tens of megabytes of zeroed
pages in again: the network at 640x640 took 21 ms instead of 10 on 2 cores, at 1024x1024 60
instead of 33 (docs/benchmarks.md, "Issue 15, eleventh round").

Two steps, both process-wide:

- :func:`one_malloc_arena`, which ``aoi`` calls first thing (:func:`aoi.cli.main`), before the
  station starts its threads: every thread allocates from malloc's main heap. Another thread's
  arena grows in heaps of at most 64 MiB and unmaps a heap it empties, and one 1024x1024 run
  needs a larger block. Taken only when the rig opens (after ONNX Runtime's session started its
  threads), the cycle thread's page faults did not always settle (24 boards at 1024: never).
- :func:`retain_freed_memory`, which the station calls when the rig it opens runs its network on
  the CPU (:mod:`aoi.app.rig`: ``aoi run``, ``bench``, ``gui``, ``eval``): the mmap and trim
  thresholds go to 1 GiB, so freed blocks go back to malloc's free lists and the next board
  reuses them, once the heap has settled (7-8 boards at 1024). The price is memory: the heap
  keeps its peak (docs/benchmarks.md has the resident sizes), and after a panel recipe a small
  board's station keeps the panel's peak resident. Closing a session stays cheap (its blocks
  go back to the heap, not to the kernel).

A GPU station does not take the second step, also when it checks a recipe on a CPU session on
the side: on the H200 the panel's cycle was 1.7-1.9 ms slower at p50 with the thresholds raised
(registration and postprocessing work on numpy's large host arrays; numpy asks for huge pages on
fresh mappings, which a reused heap block does not get), while the 640 cycle was 0.3 ms faster.

Neither step does anything where the C library is not glibc, where the environment already
tunes malloc (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or
``GLIBC_TUNABLES``: the site's own choice wins), or where ``AOI_RETAIN_HEAP=0`` (to measure the
difference).
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

#: mallopt(3) parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
#: Both thresholds: larger than any block one board allocates (a panel batch is ~0.4 GiB).
THRESHOLD_BYTES = 1 << 30
#: Set to "0" to keep glibc's defaults.
OPT_OUT = "AOI_RETAIN_HEAP"
_SITE_TUNING = (
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "GLIBC_TUNABLES",
)

#: What has been applied in this process.
applied: set[str] = set()


def one_malloc_arena() -> bool:
    """Every thread allocates from malloc's main heap (call before threads start); True where
    it now does."""
    return _apply("one arena", [(M_ARENA_MAX, 1)])


def retain_freed_memory() -> bool:
    """Freed blocks up to 1 GiB stay in the process for the next board (and, best effort where
    :func:`one_malloc_arena` was not called first, one arena); True where they now do."""
    one_malloc_arena()
    return _apply(
        "thresholds", [(M_MMAP_THRESHOLD, THRESHOLD_BYTES), (M_TRIM_THRESHOLD, THRESHOLD_BYTES)]
    )


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (``getrusage``: KiB on Linux)."""
    import resource  # Unix only, as the tuning itself

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def status() -> str:
    """One line for ``aoi doctor`` and the run summary: what this process's malloc does."""
    not_ours = _not_ours()
    if not_ours is not None:
        return not_ours
    if "one arena" not in applied:
        return "glibc's defaults here (aoi's main takes one arena; not glibc, or refused)"
    if "thresholds" in applied:
        return "one arena for every thread; freed blocks up to 1 GiB kept for the next board"
    return "one arena for every thread; freed blocks kept once a rig runs its network on the CPU"


def _not_ours() -> str | None:
    """Why the tuning is left to someone else (the opt-out, the site's environment), or None."""
    if os.environ.get(OPT_OUT, "1") == "0":
        return f"glibc's defaults ({OPT_OUT}=0): on the CPU the network runs about 2x slower"
    site = [name for name in _SITE_TUNING if name in os.environ]
    if site:
        return f"tuned by the environment ({', '.join(site)}), not by aoi"
    return None


def _apply(step: str, settings: list[tuple[int, int]]) -> bool:
    if step in applied:
        return True
    mallopt = _mallopt()
    if mallopt is None:
        return False
    for param, value in settings:
        if mallopt(param, value) != 1:
            log.warning("glibc refused mallopt(%d, %d)", param, value)
            return False
    applied.add(step)
    log.info("malloc tuned for the cycle: %s", step)
    return True


def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's mallopt, or None where the tuning is not ours to make (and the log says why)."""
    not_ours = _not_ours()
    if not_ours is not None:
        log.info("malloc left alone: %s", not_ours)
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.info("malloc left alone: the C library is not glibc")
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt  # type: ignore[no-any-return]
