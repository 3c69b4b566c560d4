"""Graph surgery at load time: the model ends in the per-cell argmax class and its probability.

The shipped ONNX ends in ``probs``, float32 ``[N, 1 + classes, H/S, W/S]`` (28 bytes a cell);
postprocessing reads only which class wins each cell and with what probability. Appending
``ArgMax`` (first index on ties, as numpy's) and ``ReduceMax`` over the class axis, and making
them the graph's only outputs, lets the runtime drop the maps where they are computed: 5 bytes a
cell with a float32 score (defects identical to the full maps') or 3 with float16. The same
edit serves ONNX Runtime and TensorRT (which parses the edited bytes), and the file on disk,
its hash and its engine cache key stay the model's own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper

from aoi.errors import ModelError
from aoi.inference.base import CLASS_NAME, OUTPUT_NAME, SCORE_NAME

log = logging.getLogger(__name__)

ScoreDtype = Literal["float32", "float16"]
_ONNX_DTYPES = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def reduce_model(model: onnx.ModelProto, score_dtype: ScoreDtype = "float32") -> onnx.ModelProto:
    """A copy of ``model`` whose outputs are ``cls`` (uint8) and ``score`` (``score_dtype``)."""
    outputs = {o.name: o for o in model.graph.output}
    if OUTPUT_NAME not in outputs:
        msg = f"model must have an output {OUTPUT_NAME!r} to reduce, found {list(outputs)}"
        raise ModelError(msg)
    dims = outputs[OUTPUT_NAME].type.tensor_type.shape.dim
    if len(dims) != 4:
        msg = f"output {OUTPUT_NAME!r} must be [N, classes, H, W], found {len(dims)} dims"
        raise ModelError(msg)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    g.node.append(
        helper.make_node(
            "ArgMax", [OUTPUT_NAME], ["cls_i64"], axis=1, keepdims=0, select_last_index=0
        )
    )
    g.node.append(helper.make_node("Cast", ["cls_i64"], [CLASS_NAME], to=TensorProto.UINT8))
    score = SCORE_NAME if score_dtype == "float32" else "score_f32"
    if _opset(model) >= 18:  # ReduceMax took its axes as an input from opset 18 on
        g.initializer.append(helper.make_tensor("reduce_axes", TensorProto.INT64, [1], [1]))
        g.node.append(
            helper.make_node("ReduceMax", [OUTPUT_NAME, "reduce_axes"], [score], keepdims=0)
        )
    else:
        g.node.append(helper.make_node("ReduceMax", [OUTPUT_NAME], [score], axes=[1], keepdims=0))
    if score_dtype != "float32":
        g.node.append(helper.make_node("Cast", [score], [SCORE_NAME], to=_ONNX_DTYPES[score_dtype]))
    # Output N, H, W keep the model's own symbolic or fixed sizes.
    nhw = [d.dim_param or d.dim_value for i, d in enumerate(dims) if i != 1]
    del g.output[:]
    g.output.extend(
        [
            helper.make_tensor_value_info(CLASS_NAME, TensorProto.UINT8, nhw),
            helper.make_tensor_value_info(SCORE_NAME, _ONNX_DTYPES[score_dtype], nhw),
        ]
    )
    onnx.checker.check_model(out)
    return out


def reduced_bytes(path: Path, score_dtype: ScoreDtype = "float32") -> bytes:
    """The serialised reduced model of the ONNX file at ``path``."""
    return reduced_model(path, score_dtype).SerializeToString()


def reduced_model(path: Path, score_dtype: ScoreDtype = "float32") -> onnx.ModelProto:
    """The reduced model of the ONNX file at ``path``."""
    try:
        model = onnx.load(str(path))
    except (OSError, DecodeError) as err:
        msg = f"{path}: not a loadable ONNX model ({err})"
        raise ModelError(msg) from err
    try:
        return reduce_model(model, score_dtype)
    except onnx.checker.ValidationError as err:
        msg = f"{path}: the reduced model does not check ({err})"
        raise ModelError(msg) from err
