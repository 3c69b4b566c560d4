"""Export a trained defect network to ONNX, check it, validate it against PyTorch and time it.

Usage::

    python -m models.export --checkpoint runs/synthetic-v1/last.pt --out models/aoi-defect-v1.onnx
    python -m models.export --bench models/aoi-defect-v1.onnx          # ORT CPU latency only

The exported graph honours the station's contract: input ``boards`` uint8 ``[N, 2, H, W]`` with
dynamic N, H, W; output ``probs`` float32 ``[N, 7, H/S, W/S]``; opset 17.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from models.net import OUTPUT_STRIDE, AoiDefectNet, NetConfig, count_macs, count_parameters

log = logging.getLogger(__name__)

INPUT_NAME = "boards"
OUTPUT_NAME = "probs"
OPSET = 17
#: Sizes (H, W) at which the ONNX graph is compared with PyTorch.
VALIDATION_SIZES: tuple[tuple[int, int], ...] = ((256, 320), (640, 640))


def load_checkpoint(path: Path) -> AoiDefectNet:
    """Rebuild the network of a training checkpoint (``{"net_config": ..., "model": ...}``)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = AoiDefectNet(NetConfig.from_mapping(dict(state["net_config"])))
    model.load_state_dict(state["model"])
    return model.eval()


def export_onnx(model: AoiDefectNet, out: Path) -> None:
    """Write ``model`` to ``out`` as ONNX (opset 17, dynamic N/H/W) and run onnx.checker on it."""
    model = model.eval()
    example = torch.zeros(1, 2, 64, 64, dtype=torch.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False: no onnxscript needed) announces its retirement.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(out),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            dynamic_axes={
                INPUT_NAME: {0: "N", 2: "H", 3: "W"},
                OUTPUT_NAME: {0: "N", 2: "H_out", 3: "W_out"},
            },
            do_constant_folding=True,
        )
    graph = onnx.load(str(out))
    graph.doc_string = (
        "AOI bare-PCB defect segmentation. Input boards uint8 [N,2,H,W] "
        "(0: registered test, 1: golden template). "
        f"Output probs float32 [N,7,H/{OUTPUT_STRIDE},W/{OUTPUT_STRIDE}], "
        "softmax over background, open, short, mousebite, spur, spurious_copper, pin_hole."
    )
    onnx.save(graph, str(out))
    onnx.checker.check_model(str(out), full_check=True)


def cpu_session(path: Path, threads: int = 2) -> ort.InferenceSession:
    """An ORT CPU session as the station runs it: ``threads`` intra-op threads, all graph opts."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def validate_onnx(
    model: AoiDefectNet,
    path: Path,
    sizes: tuple[tuple[int, int], ...] = VALIDATION_SIZES,
    atol: float = 1e-4,
    seed: int = 0,
) -> float:
    """Compare ORT and PyTorch outputs on random pairs at each size; return the worst abs error.

    Raises ``AssertionError`` naming the size if the graph's names, dtype or shape break the
    contract or the outputs differ by more than ``atol``.
    """
    session = cpu_session(path)
    (inp,) = session.get_inputs()
    (outp,) = session.get_outputs()
    assert inp.name == INPUT_NAME, f"{path}: input is {inp.name!r}, expected {INPUT_NAME!r}"
    assert outp.name == OUTPUT_NAME, f"{path}: output is {outp.name!r}, expected {OUTPUT_NAME!r}"
    assert inp.type == "tensor(uint8)", f"{path}: input type {inp.type}, expected uint8"
    rng = np.random.default_rng(seed)
    worst = 0.0
    model = model.eval()
    for batch, (h, w) in enumerate(sizes, start=1):
        boards = rng.integers(0, 256, size=(batch, 2, h, w), dtype=np.uint8)
        # Make channel 1 mostly agree with channel 0, as a registered pair does.
        boards[:, 1] = np.where(rng.random((batch, h, w)) < 0.9, boards[:, 0], boards[:, 1])
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: boards})
        with torch.no_grad():
            want = model(torch.from_numpy(boards)).numpy()
        expected = (batch, 7, h // OUTPUT_STRIDE, w // OUTPUT_STRIDE)
        assert got.shape == expected, f"{path} at {h}x{w}: shape {got.shape}, expected {expected}"
        err = float(np.abs(got - want).max())
        assert err <= atol, f"{path} at {h}x{w}: ORT differs from PyTorch by {err:.2e} > {atol}"
        worst = max(worst, err)
        log.info("validated %dx%d batch %d: max |ORT - torch| = %.2e", h, w, batch, err)
    return worst


def benchmark_onnx(
    path: Path,
    *,
    height: int = 640,
    width: int = 640,
    runs: int = 50,
    warmup: int = 10,
    threads: int = 2,
) -> dict[str, float]:
    """ORT CPU latency of one ``[1, 2, height, width]`` inference: p50/p99/mean in ms."""
    session = cpu_session(path, threads)
    rng = np.random.default_rng(0)
    boards = rng.integers(0, 256, size=(1, 2, height, width), dtype=np.uint8)
    for _ in range(warmup):
        session.run([OUTPUT_NAME], {INPUT_NAME: boards})
    times_ms = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run([OUTPUT_NAME], {INPUT_NAME: boards})
        times_ms.append((time.perf_counter() - start) * 1e3)
    times_ms.sort()
    return {
        "p50_ms": statistics.median(times_ms),
        "p99_ms": times_ms[min(len(times_ms) - 1, round(0.99 * (len(times_ms) - 1)))],
        "mean_ms": statistics.fmean(times_ms),
        "min_ms": times_ms[0],
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: export + check + validate (+ time), or time an existing ONNX file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="training checkpoint (.pt)")
    parser.add_argument("--out", type=Path, default=Path("models/aoi-defect-v1.onnx"))
    parser.add_argument("--bench", type=Path, help="only time this ONNX file")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.bench is not None:
        stats = benchmark_onnx(args.bench, runs=args.runs)
        print(f"{args.bench} ORT CPU 2 threads [1,2,640,640]: " + _fmt(stats))
        return 0
    if args.checkpoint is None:
        parser.error("--checkpoint or --bench is required")
    model = load_checkpoint(args.checkpoint)
    export_onnx(model, args.out)
    worst = validate_onnx(model, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB), onnx.checker ok")
    print(f"ORT vs PyTorch at {VALIDATION_SIZES}: max abs diff {worst:.2e}")
    print(f"parameters {count_parameters(model)}, MACs at 640x640 {count_macs(model, 640, 640):,}")
    print("ORT CPU 2 threads [1,2,640,640]: " + _fmt(benchmark_onnx(args.out, runs=args.runs)))
    return 0


def _fmt(stats: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.2f}" for k, v in stats.items())


if __name__ == "__main__":
    raise SystemExit(main())
