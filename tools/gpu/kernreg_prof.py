"""Where registration's device time goes: each kernel of the one-launch estimate timed on the
GPU with CUDA events (launched one by one), and the whole captured graph's GPU time, per board.

Needs a CUDA device and cuda-python (no onnxruntime-gpu). On the GPU machine, from the
repository root:

    python3 tools/gpu/kernreg_prof.py --runs 200
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aoi.inference.kernreg import KernelSteps
from aoi.inference.tensorrt.cuda_mem import call, cudart
from aoi.recipe import RegistrationSettings
from aoi.sources.synthetic.boardgen import golden_board
from aoi.vision.registration import Registrar
from tests.vision.test_registration_accuracy import _truth

BOARDS = [(640, 640, "grey"), (1024, 1024, "binary"), (3000, 4096, "binary")]


def _event() -> object:
    return call("cudaEventCreate")


def _ms(a: object, b: object) -> float:
    return float(call("cudaEventElapsedTime", a, b))


def profile(h: int, w: int, look: str, runs: int) -> dict:
    board = golden_board(h, w, 5, look)  # type: ignore[arg-type]
    moved = cv2.warpAffine(board, _truth(board.shape, 2.3, -1.7, 0.4), (w, h),
                           borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    out: dict = {"board": f"{w}x{h} {look}"}
    for graphs in (False, True):
        reg = Registrar(board, RegistrationSettings())
        steps = KernelSteps(reg._patches.plan, network=False, graphs=graphs)
        reg.use_device(lambda _plan, s=steps: s)
        names = {id(f): n for n, f in steps.functions.items()}
        step = steps._estimate_run
        assert step is not None
        stream = steps.memory.stream.handle
        times: list[list[float]] = []
        whole: list[float] = []
        with steps.frame(moved):
            steps.memory.stream.synchronize()
            for _ in range(runs):
                if graphs:
                    a, b = _event(), _event()
                    call("cudaEventRecord", a, stream)
                    step.queue()
                    call("cudaEventRecord", b, stream)
                    call("cudaEventSynchronize", b)
                    whole.append(_ms(a, b))
                    call("cudaEventDestroy", a)
                    call("cudaEventDestroy", b)
                    continue
                events = [_event() for _ in range(len(step.launches) + 1)]
                call("cudaEventRecord", events[0], stream)
                for launch, ev in zip(step.launches, events[1:], strict=True):
                    launch(steps.memory.driver_stream)
                    call("cudaEventRecord", ev, stream)
                call("cudaEventSynchronize", events[-1])
                times.append([_ms(x, y) for x, y in itertools.pairwise(events)])
                for ev in events:
                    call("cudaEventDestroy", ev)
        if graphs:
            out["graph_gpu_ms_p50"] = round(float(np.median(whole)), 4)
        else:
            t = np.median(np.array(times), axis=0)
            per = [(names.get(id(launch._f), "?"), round(float(v) * 1000, 1))
                   for launch, v in zip(step.launches, t, strict=True)]  # fmt: skip
            out["kernels_us_p50"] = per
            out["launched_sum_ms"] = round(float(t.sum()), 4)
            by: dict[str, float] = {}
            for n, v in per:
                by[n] = round(by.get(n, 0.0) + v, 1)
            out["by_kernel_us"] = by
        steps.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    cudart()
    for h, w, look in BOARDS:
        print(json.dumps(profile(h, w, look, args.runs)), flush=True)


if __name__ == "__main__":
    main()
