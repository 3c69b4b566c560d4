"""The FP16 variant of a model for the CUDA path, optionally with parts kept in FP32.

Float initializers become float16 and casts to float become casts to float16; ``Constant``
nodes keep their type (the Resize scales and reduction axes must stay float32 / int64). The
graph's inputs and outputs keep their types (``keep_io_types``): each float32 output is cast
back from float16 under its own name. Nodes named by a :class:`Fp32Span` (the stem up to a
node, everything from a node on) stay in FP32, with casts where values cross the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from aoi.errors import ModelError

if TYPE_CHECKING:
    import onnx

_NOT_FLOAT_OPS = ("ArgMax", "ArgMin", "Shape", "Constant", "NonZero", "Size")


@dataclass(frozen=True)
class Fp32Span:
    """Nodes kept in FP32: from the first up to ``until`` and from ``start`` to the last."""

    until: str = ""
    start: str = ""

    def kept(self, names: list[str]) -> set[int]:
        """Indices (graph order) of the nodes kept in FP32; unknown names are an error."""
        for name in (self.until, self.start):
            if name and name not in names:
                msg = f"no node named {name!r} to keep in FP32"
                raise ModelError(msg)
        keep: set[int] = set()
        if self.until:
            keep.update(range(names.index(self.until) + 1))
        if self.start:
            keep.update(range(names.index(self.start), len(names)))
        return keep


def softmax_tail(model: onnx.ModelProto) -> Fp32Span:
    """The span that keeps the softmax and the node giving it the logits in FP32.

    Measured on DeepPCB val (docs/benchmarks.md): an all-FP16 graph lost 0.0056 mAP@.33, the
    same with only this tail in FP32 lost none. The softmax is the first ``Softmax`` node or,
    as the station's models export it, the first ``ReduceMax`` (max-subtracted exp / sum).
    """
    nodes = list(model.graph.node)
    first = next((n for n in nodes if n.op_type in ("Softmax", "ReduceMax")), None)
    producer = {t: n.name for n in nodes for t in n.output}
    if first is None or first.input[0] not in producer:
        msg = "the model has no softmax (Softmax or ReduceMax) fed by a node to keep in FP32"
        raise ModelError(msg)
    return Fp32Span(start=producer[first.input[0]])


def to_fp16(model: onnx.ModelProto, span: Fp32Span | None = None) -> onnx.ModelProto:
    """A copy of ``model`` computing in float16 (but ``span``), its I/O types kept."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    nodes = list(g.node)
    fp32 = (span or Fp32Span()).kept([n.name for n in nodes])
    producer = {t: i for i, n in enumerate(nodes) for t in n.output}

    def is_float(t: str) -> bool:
        n = nodes[producer[t]]
        if n.op_type in _NOT_FLOAT_OPS:
            return False
        if n.op_type == "Cast":
            to = next(a.i for a in n.attribute if a.name == "to")
            return to in (TensorProto.FLOAT, TensorProto.FLOAT16)
        return True

    consumers: dict[str, set[int]] = {}
    for i, n in enumerate(nodes):
        for t in n.input:
            consumers.setdefault(t, set()).add(i)
    half_inits = set()
    for k, init in enumerate(g.initializer):
        users = consumers.get(init.name, set())
        if init.data_type == TensorProto.FLOAT and users and not users & fp32:
            values = numpy_helper.to_array(init).astype(np.float16)
            g.initializer[k].CopyFrom(numpy_helper.from_array(values, init.name))
            half_inits.add(init.name)
    for i, n in enumerate(nodes):
        if n.op_type == "Cast" and i not in fp32:
            for attr in n.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16

    def half(t: str) -> bool | None:
        """Whether tensor ``t`` is float16 (None: not a float tensor crossing precisions)."""
        if t in half_inits:
            return True
        if t in producer and is_float(t):
            return producer[t] not in fp32
        return None

    rebuilt, made = [], set()
    for i, n in enumerate(nodes):
        for j, t in enumerate(n.input):
            src = half(t)
            if src is None or src == (i not in fp32):
                continue
            to = TensorProto.FLOAT16 if i not in fp32 else TensorProto.FLOAT
            cast = f"{t}_as{'16' if to == TensorProto.FLOAT16 else '32'}"
            if cast not in made:
                rebuilt.append(helper.make_node("Cast", [t], [cast], to=to))
                made.add(cast)
            n.input[j] = cast
        rebuilt.append(n)
    del g.node[:]
    g.node.extend(rebuilt)
    del g.value_info[:]  # float32 annotations of intermediates would now be wrong
    for o in g.output:
        if o.type.tensor_type.elem_type != TensorProto.FLOAT or not half(o.name):
            continue
        renamed = o.name + "_fp16"
        for node in g.node:
            node.output[:] = [renamed if v == o.name else v for v in node.output]
            node.input[:] = [renamed if v == o.name else v for v in node.input]
        g.node.append(helper.make_node("Cast", [renamed], [o.name], to=TensorProto.FLOAT))
    onnx.checker.check_model(out)
    return out
