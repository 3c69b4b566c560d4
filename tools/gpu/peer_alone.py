"""Model-alone latency of any ONNX models on ONNX Runtime's CUDA provider, the same way for all:
IO binding with the input and outputs on the GPU, then the same with a CUDA graph (issue 15's
peer comparison: ours against YOLO11n at 640).

    python3 tools/gpu/peer_alone.py models/aoi-defect-v3.onnx:1,2,640,640 \\
        /tmp/yolo11n.onnx:1,3,640,640
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np

_TYPES = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32, "tensor(float16)": np.float16}


def _time(session, ort, shape: list[int], runs: int = 300, warmup: int = 50) -> dict:
    inp = session.get_inputs()[0]
    rng = np.random.default_rng(0)
    dtype = _TYPES[inp.type]
    host = (rng.random(shape) * 255).astype(dtype)
    binding = session.io_binding()
    binding.bind_ortvalue_input(inp.name, ort.OrtValue.ortvalue_from_numpy(host, "cuda", 0))
    for out in session.get_outputs():
        binding.bind_output(out.name, "cuda", 0)
    times = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 4),
        "p99_ms": round(times[round(0.99 * (len(times) - 1))], 4),
        "min_ms": round(times[0], 4),
    }


def main() -> None:
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
    for spec in sys.argv[1:]:
        path, shape_text = spec.rsplit(":", 1)
        shape = [int(v) for v in shape_text.split(",")]
        row = {"model": path, "shape": shape, "ort": ort.__version__}
        for mode, graph in (("iobinding", False), ("iobinding+cuda_graph", True)):
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            cuda = ("CUDAExecutionProvider", {"enable_cuda_graph": "1" if graph else "0"})
            try:
                session = ort.InferenceSession(path, options, providers=[cuda])
                row[mode] = _time(session, ort, shape)
            except Exception as err:  # noqa: BLE001 - a bench tool reports and goes on
                row[mode] = f"failed: {type(err).__name__}: {str(err)[:200]}"
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
