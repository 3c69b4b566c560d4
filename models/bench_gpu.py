"""GPU latency of a defect model with ONNX Runtime's CUDA provider: plain run and IO binding.

Usage (on a machine with onnxruntime-gpu)::

    python -m models.bench_gpu --model models/aoi-defect-v2.onnx --shape 1,640,640 \\
        --shape 8,1024,1024 --runs 200

``plain`` is ``session.run`` with numpy in and out (host copies included); ``iobinding`` keeps
the uint8 input and the output on the GPU (``run_with_iobinding``), the way a station that
uploads the frame once would run. Prints one JSON object per shape.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def _stats(times_ms: list[float]) -> dict[str, float]:
    times_ms = sorted(times_ms)
    return {
        "p50_ms": statistics.median(times_ms),
        "p99_ms": times_ms[min(len(times_ms) - 1, round(0.99 * (len(times_ms) - 1)))],
        "mean_ms": statistics.fmean(times_ms),
        "min_ms": times_ms[0],
    }


def cuda_session(model: Path, cudnn_search: str = "") -> object:
    """An ORT session on the CUDA provider (optionally with a cuDNN algorithm search mode)."""
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # CUDA/cuDNN from the nvidia-* wheels PyTorch brings
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    cuda: object = "CUDAExecutionProvider"
    if cudnn_search:
        cuda = ("CUDAExecutionProvider", {"cudnn_conv_algo_search": cudnn_search})
    session = ort.InferenceSession(str(model), options, providers=[cuda, "CPUExecutionProvider"])
    providers = session.get_providers()
    if providers[0] != "CUDAExecutionProvider":
        msg = f"CUDA provider not in use (session providers {providers})"
        raise SystemExit(msg)
    return session


def alternating(
    model: Path, shapes: list[tuple[int, int, int]], runs: int, cudnn_search: str
) -> dict:
    """Plain runs cycling through ``shapes`` (a tiled frame's full and partial batches)."""
    session = cuda_session(model, cudnn_search)
    rng = np.random.default_rng(0)
    inputs = [rng.integers(0, 256, size=(n, 2, h, w), dtype=np.uint8) for n, h, w in shapes]
    times: list[list[float]] = [[] for _ in shapes]
    for i in range(runs * len(shapes) + 2 * len(shapes)):
        k = i % len(shapes)
        t0 = time.perf_counter()
        session.run(["probs"], {"boards": inputs[k]})  # type: ignore[attr-defined]
        if i >= 2 * len(shapes):
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {
        "alternating": [[n, 2, h, w] for n, h, w in shapes],
        "cudnn_conv_algo_search": cudnn_search or "default (EXHAUSTIVE)",
        "plain": [_stats(t) for t in times],
    }


def bench(model: Path, shapes: list[tuple[int, int, int]], runs: int, warmup: int) -> list[dict]:
    """Latency per shape ``(N, H, W)`` on the CUDA provider; fails if CUDA is not used."""
    import onnxruntime as ort

    session = cuda_session(model)
    providers = session.get_providers()  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    out = []
    for n, h, w in shapes:
        boards = rng.integers(0, 256, size=(n, 2, h, w), dtype=np.uint8)
        boards[:, 1] = boards[:, 0]
        for _ in range(warmup):
            session.run(["probs"], {"boards": boards})
        plain = []
        for _ in range(runs):
            t0 = time.perf_counter()
            session.run(["probs"], {"boards": boards})
            plain.append((time.perf_counter() - t0) * 1e3)
        binding = session.io_binding()
        binding.bind_ortvalue_input("boards", ort.OrtValue.ortvalue_from_numpy(boards, "cuda", 0))
        binding.bind_output("probs", "cuda", 0)
        for _ in range(warmup):
            session.run_with_iobinding(binding)
        bound = []
        for _ in range(runs):
            t0 = time.perf_counter()
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()
            bound.append((time.perf_counter() - t0) * 1e3)
        out.append(
            {
                "shape": [n, 2, h, w],
                "plain": _stats(plain),
                "iobinding": _stats(bound),
                "runs": runs,
                "ort": ort.__version__,
                "providers": providers,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: time one model at each ``--shape N,H,W``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--shape", action="append", required=True, help="N,H,W")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--alternate",
        choices=["", "DEFAULT", "HEURISTIC", "EXHAUSTIVE"],
        default=None,
        help="cycle through the shapes with this cuDNN search ('' = ORT's default)",
    )
    args = parser.parse_args(argv)
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shape]
    if args.alternate is not None:
        result = alternating(args.model, shapes, args.runs, args.alternate)  # type: ignore[arg-type]
        print(json.dumps({"model": str(args.model), **result}), flush=True)
        return 0
    for result in bench(args.model, shapes, args.runs, args.warmup):  # type: ignore[arg-type]
        print(json.dumps({"model": str(args.model), **result}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
