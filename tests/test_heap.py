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


_BACKEND_PROBE = """
import ctypes, json, resource, threading
import numpy as np
import aoi.heap as heap
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.recipe import find_recipe, load_recipe

libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def other_thread():  # threads that malloc first (each gets an arena), as a GUI's or a PLC's do
    for block in [libc.malloc(1000) for _ in range(100)]:
        libc.free(block)

for t in [threading.Thread(target=other_thread) for _ in range(4)]:
    t.start()
    t.join()
before = heap._done
loaded = load_recipe(find_recipe("board-b-1024"))
boards = np.random.default_rng(0).integers(0, 256, (1, 2, 1024, 1024), dtype=np.uint8)
out = {}
with OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile, threads=2) as backend:
    def cycle():  # the station's cycle thread, started after the rig opened
        for _ in range(3):
            backend.predict(boards)
        start = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        for _ in range(4):
            backend.predict(boards)
        out["faults_per_run"] = (resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - start) / 4
    worker = threading.Thread(target=cycle)
    worker.start()
    worker.join()
print(json.dumps({"before": before, "after": heap._done, **out}))
"""


def _backend_probe(**env: str) -> dict[str, object]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MALLOC_", "GLIBC_")) and k != "AOI_RETAIN_HEAP"
    }
    done = subprocess.run(
        [sys.executable, "-c", _BACKEND_PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_cpu_backend_reuses_its_tensors_at_1024() -> None:
    """The CPU backend tunes malloc when it opens; its runs on another thread then fault no
    pages in (at 1024x1024 one run's block is larger than a thread's own malloc arena holds,
    which is why one arena serves every thread)."""
    tuned, default = _backend_probe(), _backend_probe(AOI_RETAIN_HEAP="0")
    assert tuned["before"] is False
    assert tuned["after"] is True
    assert default["after"] is False
    assert float(default["faults_per_run"]) > 1000  # type: ignore[arg-type]
    assert float(tuned["faults_per_run"]) < float(default["faults_per_run"]) / 10  # type: ignore[arg-type]
