"""Registration on the device against the CPU: accuracy (corner error against the true motion)
and time per ``register``, CPU steps (OpenCV) against device steps (aoi/inference/devreg.py).

    python3 tools/figures/devreg.py [--device cuda|cpu] [--runs 300]

Prints one table row per frame size; ``--device cpu`` runs the graphs on ONNX Runtime's CPU
provider (the standard DFT: slow, for checking only).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "vision"))
from test_registration_accuracy import MOTIONS, corner_errors

from aoi.inference.devreg import DeviceSteps
from aoi.recipe import RegistrationSettings
from aoi.sources.synthetic.boardgen import golden_board
from aoi.vision.registration import Registrar

SIZES = [(512, 640, "binary", 4.0), (640, 640, "grey", 0.0), (1024, 1024, "binary", 4.0),
         (3000, 4096, "binary", 0.0)]  # fmt: skip


def _timed(registrar: Registrar, frame: np.ndarray, runs: int) -> np.ndarray:
    registrar.register(frame)
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        registrar.register(frame)
        out.append(time.perf_counter() - t)
    return np.array(out) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    print(f"{len(MOTIONS)} motions {MOTIONS}; time: one moved board (-2.5, 1.5 px, 0.8 deg)")
    print("| frame | corner error CPU steps max / mean px | device steps max / mean px "
          "| register CPU p50 / p99 ms | device p50 / p99 ms |")  # fmt: skip
    print("|---|---|---|---|---|")
    for h, w, look, noise in SIZES:
        board = golden_board(h, w, 5, look)
        cpu = Registrar(board, RegistrationSettings())
        dev = Registrar(board, RegistrationSettings())
        dev.use_device(lambda plan: DeviceSteps(plan, device=args.device))
        e_cpu = corner_errors(cpu, board, noise)
        e_dev = corner_errors(dev, board, noise)
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 0.8, 1.0)
        m[:, 2] += (-2.5, 1.5)
        moved = cv2.warpAffine(board, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
        t_cpu, t_dev = _timed(cpu, moved, args.runs), _timed(dev, moved, args.runs)
        print(
            f"| {w}x{h} {look} noise {noise:g} | {e_cpu.max():.4f} / {e_cpu.mean():.4f} "
            f"| {e_dev.max():.4f} / {e_dev.mean():.4f} "
            f"| {np.median(t_cpu):.2f} / {np.percentile(t_cpu, 99):.2f} "
            f"| {np.median(t_dev):.2f} / {np.percentile(t_dev, 99):.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
