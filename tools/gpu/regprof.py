"""Patch registration per step on one core: whole-frame phase correlation, the decimated patch
fit, the Gauss-Newton steps, the correlation check, and the full-frame warp the pipeline does.

    taskset -c 0 python3 tools/gpu/regprof.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np

from aoi.recipe import RegistrationSettings
from aoi.sources.synthetic.boardgen import golden_board
from aoi.vision import patchreg
from aoi.vision.registration import Registrar

RUNS = 200


def _truth(shape: tuple[int, int], dx: float, dy: float, angle: float) -> np.ndarray:
    h, w = shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    m[:, 2] += (dx, dy)
    return m


def profile(h: int, w: int) -> None:
    """Print ms per register for each step at one frame size."""
    board = golden_board(h, w, 5, "binary")
    moved = cv2.warpAffine(
        board, _truth(board.shape, 3.2, -2.1, 0.9), (w, h), borderMode=cv2.BORDER_REPLICATE
    )
    reg = Registrar(board, RegistrationSettings())
    aligner = reg._patches
    spent: dict[str, list[float]] = {}

    def timed(name: str, f: Callable) -> Callable:
        def call(*a: object, **k: object) -> object:
            t0 = time.perf_counter()
            out = f(*a, **k)
            spent.setdefault(name, []).append(time.perf_counter() - t0)
            return out

        return call

    saved = (patchreg._decimate, cv2.phaseCorrelate, patchreg._ncc)
    aligner._refine = timed("patch phase corr", aligner._refine)
    aligner._gradient_step = timed("gauss-newton", aligner._gradient_step)
    patchreg._decimate = timed("decimate", saved[0])
    cv2.phaseCorrelate = timed("whole phase corr", saved[1])
    patchreg._ncc = timed("correlation", saved[2])
    total, warp = [], []
    try:
        for _ in range(RUNS):
            t0 = time.perf_counter()
            found = reg.register(moved)
            t1 = time.perf_counter()
            reg.warp_to_template(moved, found)
            total.append(t1 - t0)
            warp.append(time.perf_counter() - t1)
    finally:
        patchreg._decimate, cv2.phaseCorrelate, patchreg._ncc = saved
    print(
        f"{w}x{h}: register p50 {np.median(total) * 1e3:.2f} p99 "
        f"{np.percentile(total, 99) * 1e3:.2f} ms; full-frame warpAffine p50 "
        f"{np.median(warp) * 1e3:.2f} p99 {np.percentile(warp, 99) * 1e3:.2f} ms"
    )
    for name, values in spent.items():
        per = sum(values) / RUNS * 1e3
        print(f"   {name:18s} {per:.3f} ms/register ({len(values) / RUNS:.2f} calls)")


def main() -> None:
    cv2.setNumThreads(1)
    for h, w in ((640, 640), (1024, 1024)):
        profile(h, w)


if __name__ == "__main__":
    main()
