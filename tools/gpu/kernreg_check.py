"""Registration's CUDA kernels (aoi/inference/kernreg.py) against the CPU steps and devreg's ONNX
graphs: corner error per known motion, each step's numbers side by side, and time per register.

Needs a CUDA device and cuda-python (no onnxruntime-gpu: the kernels get their own frame buffer,
and devreg's graphs run on ONNX Runtime's CPU provider for the step comparison). On the GPU
machine, from the repository root:

    python3 tools/gpu/kernreg_check.py --runs 300 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aoi.inference.devreg import DeviceSteps
from aoi.inference.kernreg import KernelSteps
from aoi.recipe import RegistrationSettings
from aoi.sources.synthetic.boardgen import golden_board
from aoi.vision.registration import Registrar
from tests.vision.test_registration_accuracy import _truth, corner_errors

BOARDS = [
    (512, 640, "binary", 4.0, 5),
    (640, 640, "grey", 0.0, 5),
    (1024, 1024, "binary", 4.0, 5),
    (3000, 4096, "binary", 0.0, 9),
]


def _steps(board: np.ndarray, factory: object) -> Registrar:
    r = Registrar(board, RegistrationSettings())
    if factory is not None:
        r.use_device(factory)
    return r


def _compare(kern: Registrar, graph: Registrar, moved: np.ndarray, warp: np.ndarray) -> dict:
    """Each step of both paths on one frame: largest absolute difference."""
    ks, gs = kern._patches.steps, graph._patches.steps
    with ks.frame(moved) as a, gs.frame(moved) as b:
        ca, cb = a.coarse_shift(), b.coarse_shift()
        first = np.array([[1.0, 0.0, ca[0]], [0.0, 1.0, ca[1]]])
        pa, pb = a.patch_shifts(0, first), b.patch_shifts(0, first)
        last = len(kern._patches.plan.levels) - 1
        la, lb = a.patch_shifts(last, warp), b.patch_shifts(last, warp)
        ga, gb = a.gradient(warp), b.gradient(warp)
        ra, rb = a.correlation(), b.correlation()
    return {
        "coarse": [list(ca), list(cb)],
        "first_patches_max_diff": float(np.abs(pa - pb).max()),
        "last_level_patches_max_diff": float(np.abs(la - lb).max()),
        "gradient_max_diff": float(np.abs(ga - gb).max()),
        "gradient_scale": float(np.abs(gb).max()),
        "correlation": [ra, rb],
    }


def _time(r: Registrar, frame: np.ndarray, runs: int) -> list[float]:
    for _ in range(5):
        r.register(frame)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r.register(frame)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _step_times(r: Registrar, frame: np.ndarray, warp: np.ndarray, runs: int) -> dict:
    """p50 ms of the frame's copy in, the coarse run and one gradient step."""
    steps = r._patches.steps
    t: dict[str, list[float]] = {"frame_in": [], "coarse": [], "gradient": []}
    for _ in range(runs):
        t0 = time.perf_counter()
        with steps.frame(frame) as f:
            t1 = time.perf_counter()
            f.coarse_shift()
            t2 = time.perf_counter()
            f.gradient(warp)
            t3 = time.perf_counter()
        t["frame_in"].append(t1 - t0)
        t["coarse"].append(t2 - t1)
        t["gradient"].append(t3 - t2)
    return {k: round(float(np.median(v)) * 1e3, 4) for k, v in t.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    report = []
    for h, w, look, noise, seed in BOARDS:
        board = golden_board(h, w, seed, look)
        cpu = _steps(board, None)
        kern = _steps(board, lambda plan: KernelSteps(plan, network=False))
        plain = _steps(board, lambda plan: KernelSteps(plan, network=False, graphs=False))
        stepwise = _steps(board, lambda plan: KernelSteps(plan, network=False, whole=False))
        graph = _steps(board, lambda plan: DeviceSteps(plan, device="cpu"))
        row: dict = {"board": f"{w}x{h} {look}, noise {noise}"}
        for name, r in (("cpu", cpu), ("kernels", kern), ("kernels_stepwise", stepwise),
                        ("graphs", graph)):  # fmt: skip
            e = corner_errors(r, board, noise)
            row[f"corner_error_{name}"] = [round(float(v), 4) for v in e]
        truth = _truth(board.shape, 3.0, -2.0, 0.8)
        moved = cv2.warpAffine(board, truth, (w, h), borderMode=cv2.BORDER_REPLICATE)
        row["steps"] = _compare(stepwise, graph, moved, cpu.register(moved).transform)
        steps = kern._patches.steps
        row["graphs_captured"] = steps._estimate_run is not None and all(
            run.graph is not None for run in (steps._coarse_run, steps._estimate_run)
        )
        runs = [("cpu", cpu), ("kernels", kern), ("kernels_stepwise", stepwise)]
        for name, r in [*runs, ("kernels_launched", plain)]:
            t = np.array(_time(r, moved, args.runs))
            row[f"register_ms_{name}"] = [round(float(np.percentile(t, q)), 3) for q in (50, 99)]
        warp = cpu.register(moved).transform
        row["step_ms_kernels"] = _step_times(stepwise, moved, warp, args.runs)
        print(json.dumps(row), flush=True)
        report.append(row)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
