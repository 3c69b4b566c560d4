"""aoi.heap: a freed large block is reused by the next board instead of faulted in again.

Each case runs in a fresh interpreter (malloc's tuning is process-wide and set once) and counts
minor page faults, not time. glibc's defaults hand a freed block of tens of megabytes back to the
kernel, so the next round faults its pages in again; with the station's tuning the rounds reuse
the first one's pages.
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

#: 48 MiB: over glibc's 32 MiB ceiling for its dynamic mmap threshold.
_PAGES = (48 << 20) // 4096

_PROBE = """
import ctypes, json, resource, sys
import aoi.heap as heap
tuned = heap.retain_freed_memory() if sys.argv[1] == "tune" else False
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
print(json.dumps({"tuned": tuned, "faults": faults, "status": heap.status()}))
"""

_RIG_PROBE = """
import ctypes, json, resource, sys, threading
import numpy as np
import aoi.heap as heap
if sys.argv[1] == "main":
    from aoi.cli import main
    main(["recipe", "schema"])  # `aoi` itself: its first step, before the station's threads
from aoi.app.rig import Rig
from aoi.config import StationConfig
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.recipe import find_recipe, load_recipe

libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def other_thread():  # threads that malloc (and so get an arena), as a GUI's or a PLC's do
    for block in [libc.malloc(1000) for _ in range(100)]:
        libc.free(block)

out = {"arena": sorted(heap.applied)}
for t in [threading.Thread(target=other_thread) for _ in range(4)]:
    t.start()
    t.join()
loaded = load_recipe(find_recipe("board-b-1024"))
boards = np.random.default_rng(0).integers(0, 256, (1, 2, 1024, 1024), dtype=np.uint8)
with OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile, threads=1):
    out["side_session"] = sorted(heap.applied)  # a CPU session alone (a recipe check)
with Rig(loaded, StationConfig(), source_spec=None, backend="onnxruntime", threads=2) as rig:
    def cycle():  # the station's cycle thread, started after the rig opened
        for _ in range(12):  # the heap settles in 7-8 boards (docs/benchmarks.md)
            rig.backend.predict(boards)
        start = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        for _ in range(4):
            rig.backend.predict(boards)
        out["faults_per_run"] = (resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - start) / 4
    worker = threading.Thread(target=cycle)
    worker.start()
    worker.join()
out["after"] = sorted(heap.applied)
print(json.dumps(out))
"""


def _run(code: str, arg: str, **env: str) -> dict[str, object]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MALLOC_", "GLIBC_")) and k != "AOI_RETAIN_HEAP"
    }
    done = subprocess.run(
        [sys.executable, "-c", code, arg],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_freed_block_is_reused_not_faulted_in_again() -> None:
    default, tuned = _run(_PROBE, "default"), _run(_PROBE, "tune")
    assert tuned["tuned"] is True
    # glibc's defaults: every round faults (most of) the block in again.
    assert int(default["faults"]) > 2 * _PAGES  # type: ignore[arg-type]
    # Tuned: the five rounds reuse the first round's pages.
    assert int(tuned["faults"]) < _PAGES // 10  # type: ignore[arg-type]


def test_the_opt_out_and_the_sites_own_tuning_leave_malloc_alone() -> None:
    opted_out = _run(_PROBE, "tune", AOI_RETAIN_HEAP="0")
    assert opted_out["tuned"] is False
    assert int(opted_out["faults"]) > 2 * _PAGES  # type: ignore[arg-type]
    assert "AOI_RETAIN_HEAP=0" in str(opted_out["status"])  # what `aoi doctor` prints
    for name, value in (("MALLOC_TRIM_THRESHOLD_", "131072"), ("MALLOC_ARENA_MAX", "4")):
        site = _run(_PROBE, "tune", **{name: value})
        assert site["tuned"] is False
        assert f"tuned by the environment ({name})" in str(site["status"])
    tuned = _run(_PROBE, "tune")["status"]
    assert str(tuned).endswith("freed blocks up to 1 GiB kept for the next board")


def test_a_cpu_rig_under_aoi_reuses_its_tensors_at_1024() -> None:
    """`aoi` takes one malloc arena before any thread; a rig whose network runs on the CPU then
    keeps freed blocks, and its runs on a later thread fault no pages in. At 1024x1024 one run's
    block is larger than another thread's arena holds. A CPU session alone raises no threshold
    (a GPU station's recipe check stays out of it)."""
    tuned, default = _run(_RIG_PROBE, "main"), _run(_RIG_PROBE, "main", AOI_RETAIN_HEAP="0")
    assert tuned["arena"] == ["one arena"]
    assert tuned["side_session"] == ["one arena"]
    assert tuned["after"] == ["one arena", "thresholds"]
    assert default["after"] == []
    assert float(default["faults_per_run"]) > 1000  # type: ignore[arg-type]
    assert float(tuned["faults_per_run"]) < float(default["faults_per_run"]) / 10  # type: ignore[arg-type]
