"""The station's backend alone on ORT CUDA: ``OnnxRuntimeBackend.predict`` per mode (issue 15).

Times ``predict`` (upload of the uint8 batch, the reduced graph, copy-back of the class maps)
for each ``AOI_ORT_CUDA`` mode, and the GPU memory ONNX Runtime holds after each (from
``nvidia-smi``, the process's own use). One JSON line per mode and shape.

    python3 tools/gpu/issue15_alone.py --model models/aoi-defect-v3.onnx --shape 1,640,640
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from aoi.inference.cuda_options import CudaOptions
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.recipe.schema import Profile, Shape4


def _gpu_mib() -> int:
    out = subprocess.run(  # noqa: S603 (fixed arguments, the driver's own tool)
        [
            shutil.which("nvidia-smi") or "nvidia-smi",
            "--query-compute-apps=pid,used_memory",
            "--format=csv,noheader,nounits",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for line in out.splitlines():
        pid, mib = (v.strip() for v in line.split(","))
        if int(pid) == os.getpid():
            return int(mib)
    return -1


def main() -> int:
    """Command line: time each mode at each ``--shape N,H,W``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--shape", action="append", required=True)
    p.add_argument("--modes", default="plain;bind;graph;graph,fp16")
    p.add_argument("--runs", type=int, default=300)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    for text in args.shape:
        n, h, w = (int(v) for v in text.split(","))
        shape = Shape4(batch=n, height_px=h, width_px=w)
        profile = Profile(min=shape, opt=shape, max=shape)
        batch = rng.integers(0, 256, (n, 2, h, w), dtype=np.uint8)
        for mode in args.modes.split(";"):
            before = _gpu_mib()
            backend = OnnxRuntimeBackend(
                args.model, profile, device="cuda", cuda=CudaOptions.parse(mode)
            )
            with backend:
                for _ in range(20):
                    backend.predict(batch)
                times = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    backend.predict(batch)
                    times.append((time.perf_counter() - t0) * 1e3)
                times.sort()
                graphs = backend.cuda_graphs
                row = {
                    "model": args.model.name,
                    "shape": [n, 2, h, w],
                    "mode": mode,
                    "p50_ms": round(statistics.median(times), 3),
                    "p99_ms": round(times[round(0.99 * (len(times) - 1))], 3),
                    "graphs": graphs,
                    "gpu_mib_before": before,
                    "gpu_mib": _gpu_mib(),
                }
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
