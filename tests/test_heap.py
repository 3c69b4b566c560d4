"""aoi.heap: a freed large block is reused by the next board instead of faulted in again.

Each case runs in a fresh interpreter (malloc's tuning is process-wide and set once). The probe
mallocs and fills a 48 MiB block (over glibc's 32 MiB ceiling for its dynamic mmap threshold),
frees it, and counts the minor page faults of five more rounds: glibc's defaults hand such a
block back to the kernel on free, so each round faults its 12,288 pages in again; with the
station's tuning the rounds reuse the first one's pages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the tuning is glibc's (Linux only)"
)

_PROBE = """
import ctypes, json, resource, sys
from aoi.heap import retain_freed_memory
tuned = retain_freed_memory() if sys.argv[1] == "tune" else False
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def board():  # as ONNX Runtime without its arena: malloc, write, free (numpy asks for huge pages)
    block = libc.malloc(48 << 20)
    ctypes.memset(block, 1, 48 << 20)
    libc.free(block)
board()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    board()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"tuned": tuned, "faults": faults}))
"""

_PAGES = (48 << 20) // 4096


def _probe(mode: str, **env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    clean.pop("AOI_RETAIN_HEAP", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_freed_block_is_reused_not_faulted_in_again() -> None:
    default, tuned = _probe("default"), _probe("tune")
    assert tuned["tuned"] is True
    # glibc's defaults: every round faults (most of) the block in again.
    assert int(default["faults"]) > 2 * _PAGES  # type: ignore[arg-type]
    # Tuned: the five rounds reuse the first round's pages.
    assert int(tuned["faults"]) < _PAGES // 10  # type: ignore[arg-type]


def test_the_opt_out_and_the_sites_own_tuning_leave_malloc_alone() -> None:
    opted_out = _probe("tune", AOI_RETAIN_HEAP="0")
    assert opted_out["tuned"] is False
    assert int(opted_out["faults"]) > 2 * _PAGES  # type: ignore[arg-type]
    site = _probe("tune", MALLOC_TRIM_THRESHOLD_="131072")
    assert site["tuned"] is False


def test_the_cpu_backend_tunes_malloc_when_it_opens() -> None:
    """The station's CPU inference (ONNX Runtime without its arena) is what needs it."""
    probe = (
        "import aoi.heap as h\n"
        "from aoi.inference.onnxruntime import OnnxRuntimeBackend\n"
        "from aoi.recipe import find_recipe, load_recipe\n"
        "loaded = load_recipe(find_recipe('board-a-640'))\n"
        "print('BEFORE', h._done)\n"
        "with OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile):\n"
        "    print('OPEN', h._done)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MALLOC_", "GLIBC_")) and k != "AOI_RETAIN_HEAP"
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert "BEFORE False" in done.stdout
    assert "OPEN True" in done.stdout
