"""The network alone on ONNX Runtime's CPU provider: p50 / p99 ms over N runs of a random
uint8 [1, 2, 640, 640] pair, 2 intra-op threads, spinning off as the station runs it (or on).

    python3 tools/gpu/ort_cpu_alone.py MODEL.onnx [RUNS] [SPIN]

malloc is tuned as a station whose network runs on the CPU tunes it (aoi/heap.py);
``AOI_RETAIN_HEAP=0`` keeps glibc's defaults, as every figure before 2026-11-29's eleventh round
had them.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import onnxruntime as ort

from aoi.heap import retain_freed_memory


def main(model: str, runs: int = 300, spin: str = "0") -> None:
    heap = retain_freed_memory()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.enable_cpu_mem_arena = False
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).integers(0, 256, (1, 2, 640, 640), dtype=np.uint8)
    feed = {session.get_inputs()[0].name: x}
    for _ in range(10):
        session.run(None, feed)
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        session.run(None, feed)
        ms.append((time.perf_counter() - t) * 1e3)
    p50, p99 = np.percentile(ms, [50, 99])
    out = {"ort": ort.__version__, "file": ort.__file__, "spin": spin, "runs": runs, "heap": heap}
    print(json.dumps({**out, "p50_ms": round(p50, 2), "p99_ms": round(p99, 2)}))


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) if i == 0 else a for i, a in enumerate(sys.argv[2:])))
