"""A defect network that reads each pair at several scales and averages its probability maps.

Usage::

    python -m models.multiscale models/aoi-defect-v3.onnx out.onnx --scales 1,1.25,1.5

Thin-track designs lose bites the network paints only in part at the camera's scale; the same
network finds more of them on the pair resampled larger, and loses a little on wide copper
(docs/benchmarks.md, "Issue 16, session 13"). Averaging the scales keeps both. The wrapped graph
keeps the station's contract (``boards`` uint8 ``[N, 2, H, W]`` with dynamic N, H, W in,
``probs`` float32 ``[N, 7, H/S, W/S]`` out), so every backend and load-time edit (the reduced
output, the device warp, FP16) treats it as any model, and a recipe switches to it by its
``[model] path``. Inside the graph, per scale ``s`` other than 1:

- the pair is resized to ``round(H * s / 16) * 16`` by ``round(W * s / 16) * 16`` (bilinear,
  half-pixel centres, rounded back to uint8: what ``cv2.resize`` with ``INTER_LINEAR`` gives);
- the network runs on it (its nodes copied under a prefix; the weights are shared);
- its maps are resized back to the scale-1 maps' size (bilinear) and the maps of all scales
  are averaged, so each cell's probabilities still sum to 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import onnx
from onnx import TensorProto, helper

INPUT_NAME = "boards"
OUTPUT_NAME = "probs"
#: The network's total stride: a resized pair keeps its sides multiples of it.
SIDE_MULTIPLE = 16
#: The metadata key that records the scales in the wrapped file.
SCALES_KEY = "aoi.multiscale"


def _branch(g: onnx.GraphProto, prefix: str, source: str) -> tuple[list[onnx.NodeProto], str]:
    """Copy of the network's nodes reading ``source``; tensors renamed under ``prefix``, the
    initializers (the weights) shared. Returns the copy's output name."""
    shared = {t.name for t in g.initializer}
    renamed = {INPUT_NAME: source}

    def name(t: str) -> str:
        if not t or t in shared:
            return t
        return renamed.setdefault(t, f"{prefix}{t}")

    nodes = []
    for node in g.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = f"{prefix}{node.name}"
        copy.input[:] = [name(t) for t in node.input]
        copy.output[:] = [name(t) for t in node.output]
        nodes.append(copy)
    return nodes, renamed[OUTPUT_NAME]


def _check_scales(scales: Sequence[float]) -> list[float]:
    out = [float(s) for s in scales]
    if not out or out[0] != 1.0 or len(set(out)) != len(out) or any(s <= 0 for s in out):
        msg = f"scales must start with 1 and be distinct and positive, found {list(scales)}"
        raise ValueError(msg)
    return out


def multiscale_model(model: onnx.ModelProto, scales: Sequence[float]) -> onnx.ModelProto:
    """``model`` wrapped to average its maps over ``scales`` (the first must be 1)."""
    scales = _check_scales(scales)
    src = model.graph
    if [i.name for i in src.input] != [INPUT_NAME] or [o.name for o in src.output] != [OUTPUT_NAME]:
        msg = f"model must map {INPUT_NAME!r} to {OUTPUT_NAME!r}, found {src.input} -> {src.output}"
        raise ValueError(msg)
    nodes: list[onnx.NodeProto] = []
    inits = [
        helper.make_tensor("ms_nc_start", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ms_nc_end", TensorProto.INT64, [1], [2]),
        helper.make_tensor("ms_hw_end", TensorProto.INT64, [1], [4]),
        helper.make_tensor("ms_side", TensorProto.FLOAT, [], [float(SIDE_MULTIPLE)]),
        helper.make_tensor("ms_zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("ms_full", TensorProto.FLOAT, [], [255.0]),
        helper.make_tensor("ms_share", TensorProto.FLOAT, [], [1.0 / len(scales)]),
    ]
    op = helper.make_node
    nodes += [
        op("Shape", [INPUT_NAME], ["ms_shape"]),
        op("Slice", ["ms_shape", "ms_nc_start", "ms_nc_end"], ["ms_nc"]),
        op("Slice", ["ms_shape", "ms_nc_end", "ms_hw_end"], ["ms_hw"]),
        op("Cast", ["ms_hw"], ["ms_hw_f"], to=TensorProto.FLOAT),
        op("Cast", [INPUT_NAME], ["ms_boards_f"], to=TensorProto.FLOAT),
    ]
    maps: list[str] = []
    for i, s in enumerate(scales):
        prefix = f"ms{i}/"
        if s == 1.0:
            source = INPUT_NAME
        else:
            inits.append(helper.make_tensor(f"{prefix}s", TensorProto.FLOAT, [], [s]))
            nodes += [
                op("Mul", ["ms_hw_f", f"{prefix}s"], [f"{prefix}hw_s"]),
                op("Div", [f"{prefix}hw_s", "ms_side"], [f"{prefix}hw_q"]),
                op("Round", [f"{prefix}hw_q"], [f"{prefix}hw_r"]),
                op("Mul", [f"{prefix}hw_r", "ms_side"], [f"{prefix}hw_m"]),
                op("Cast", [f"{prefix}hw_m"], [f"{prefix}hw_i"], to=TensorProto.INT64),
                op("Concat", ["ms_nc", f"{prefix}hw_i"], [f"{prefix}sizes"], axis=0),
                op("Resize", ["ms_boards_f", "", "", f"{prefix}sizes"], [f"{prefix}up"],
                   mode="linear", coordinate_transformation_mode="half_pixel"),
                op("Round", [f"{prefix}up"], [f"{prefix}up_r"]),
                op("Clip", [f"{prefix}up_r", "ms_zero", "ms_full"], [f"{prefix}up_c"]),
                op("Cast", [f"{prefix}up_c"], [f"{prefix}boards"], to=TensorProto.UINT8),
            ]  # fmt: skip
            source = f"{prefix}boards"
        branch, out = _branch(src, prefix, source)
        nodes += branch
        maps.append(out)
    nodes.append(op("Shape", [maps[0]], ["ms_map_shape"]))
    back = [maps[0]]
    for i, m in enumerate(maps[1:], start=1):
        nodes.append(
            op("Resize", [m, "", "", "ms_map_shape"], [f"ms{i}/back"],
               mode="linear", coordinate_transformation_mode="half_pixel")
        )  # fmt: skip
        back.append(f"ms{i}/back")
    nodes += [op("Sum", back, ["ms_sum"]), op("Mul", ["ms_sum", "ms_share"], [OUTPUT_NAME])]
    graph = helper.make_graph(
        nodes, f"{src.name}-multiscale", list(src.input), list(src.output),
        initializer=[*src.initializer, *inits],
    )  # fmt: skip
    out = helper.make_model(graph, opset_imports=list(model.opset_import))
    out.ir_version = model.ir_version
    out.producer_name = "aoi models.multiscale"
    for p in model.metadata_props:
        out.metadata_props.add(key=p.key, value=p.value)
    out.metadata_props.add(key=SCALES_KEY, value=",".join(f"{s:g}" for s in scales))
    onnx.checker.check_model(out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="the network's ONNX file")
    p.add_argument("out", type=Path, help="where to write the wrapped ONNX file")
    p.add_argument("--scales", default="1,1.25,1.5", help="comma-separated, the first 1")
    args = p.parse_args(argv)
    try:
        scales = [float(s) for s in args.scales.split(",")]
        wrapped = multiscale_model(onnx.load(args.model), scales)
    except (ValueError, OSError, onnx.checker.ValidationError) as err:
        print(f"aoi-multiscale: {err}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(wrapped, args.out)
    print(f"{args.out}: {args.model.name} at scales {args.scales}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
