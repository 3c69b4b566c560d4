"""A small ONNX graph builder for the registration graphs (:mod:`aoi.inference.devreg`).

Only what those graphs need: inputs, outputs, constants, nodes, a decimation matching
``aoi.vision.patchreg._decimate``, and a phase correlation whose FFT is ONNX Runtime's CUDA
``Rfft``/``Irfft`` (``fft="cuda"``) or the standard ``DFT`` operator (``fft="onnx"``, for the CPU
provider, which has no ``Rfft``).
"""

from __future__ import annotations

import numpy as np

from aoi.errors import ModelError

#: DFT (the CPU variant) needs opset 17; GridSample 16.
OPSET = 17
_MS = "com.microsoft"
_FFTS = ("cuda", "onnx")


class GraphBuilder:
    """Builds one ONNX model node by node; names are generated."""

    def __init__(self, fft: str) -> None:
        from onnx import helper

        if fft not in _FFTS:
            msg = f"fft must be one of {_FFTS}, got {fft!r}"
            raise ModelError(msg)
        self._h = helper
        self.fft = fft
        self._nodes: list[object] = []
        self._inits: list[object] = []
        self._inputs: list[object] = []
        self._outputs: list[object] = []
        self._n = 0

    def _name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def input(self, name: str, dtype: type, shape: list[int]) -> str:
        from onnx import helper

        self._inputs.append(helper.make_tensor_value_info(name, _elem(dtype), shape))
        return name

    def output(self, name: str, dtype: type, shape: list[int]) -> None:
        from onnx import helper

        self._outputs.append(helper.make_tensor_value_info(name, _elem(dtype), shape))

    def const(self, value: np.ndarray | np.generic) -> str:
        from onnx import numpy_helper

        name = self._name("c")
        self._inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def ints(self, *values: int) -> str:
        """An int64 vector constant (shapes, axes, slice bounds)."""
        return self.const(np.array(values, np.int64))

    def op(
        self, op_type: str, *inputs: str, name: str | None = None, domain: str = "", **attrs: object
    ) -> str:
        out = name or self._name(op_type.lower())
        node = self._h.make_node(op_type, list(inputs), [out], domain=domain or None, **attrs)
        self._nodes.append(node)
        return out

    def model(self) -> bytes:
        from onnx import helper

        graph = helper.make_graph(
            self._nodes, "registration", self._inputs, self._outputs, self._inits
        )
        opsets = [helper.make_opsetid("", OPSET)]
        if self.fft == "cuda":
            opsets.append(helper.make_opsetid(_MS, 1))
        model = helper.make_model(graph, opset_imports=opsets, producer_name="aoi")
        model.ir_version = 8
        return model.SerializeToString()

    def decimate(self, x: str, factor: int) -> str:
        """``x`` [1, 1, h, w] reduced ``factor`` times as ``patchreg._decimate`` does: every
        (factor/2)-th pixel, then the mean of each 2x2 block."""
        if factor == 1:
            return x
        stride = max(1, factor // 2)
        if stride > 1:
            big = np.iinfo(np.int64).max
            x = self.op(
                "Slice",
                x,
                self.ints(0, 0),
                self.ints(big, big),
                self.ints(2, 3),
                self.ints(stride, stride),
            )
        return self.op("AveragePool", x, kernel_shape=[2, 2], strides=[2, 2])

    def phase_correlation(self, x: str, template: np.ndarray) -> str:
        """The normalised cross-power surfaces [B, h, w] of ``x`` [B, h, w] against the windowed
        ``template`` patches [B, h, w]: the peak of each lies at the shift of ``x``'s patch."""
        if self.fft == "cuda":
            spectrum = np.fft.rfft2(template.astype(np.float64))
            f = self.op("Rfft", x, domain=_MS, signal_ndim=2, normalized=0, onesided=1)
        else:
            spectrum = np.fft.fft2(template.astype(np.float64))
            f = self.op("Unsqueeze", x, self.ints(-1))
            f = self.op("DFT", f, axis=2, onesided=0)
            f = self.op("DFT", f, axis=1, onesided=0)
        t_re = self.const(spectrum.real.astype(np.float32)[..., None])
        t_im = self.const(spectrum.imag.astype(np.float32)[..., None])
        one = self.ints(1, 1)
        re, im = self._split(f, one)
        # f * conj(t): (a + ib)(c - id) = (ac + bd) + i(bc - ad)
        c_re = self.op("Add", self.op("Mul", re, t_re), self.op("Mul", im, t_im))
        c_im = self.op("Sub", self.op("Mul", im, t_re), self.op("Mul", re, t_im))
        mag = self.op(
            "Sqrt", self.op("Add", self.op("Mul", c_re, c_re), self.op("Mul", c_im, c_im))
        )
        mag = self.op("Max", mag, self.const(np.float32(1e-12)))
        cross = self.op("Concat", self.op("Div", c_re, mag), self.op("Div", c_im, mag), axis=-1)
        if self.fft == "cuda":
            return self.op("Irfft", cross, domain=_MS, signal_ndim=2, normalized=0, onesided=1)
        back = self.op("DFT", cross, axis=1, onesided=0, inverse=1)
        back = self.op("DFT", back, axis=2, onesided=0, inverse=1)
        real, _ = self._split(back, one)
        return self.op("Squeeze", real, self.ints(-1))

    def peak(self, surfaces: str, k: int, h: int, w: int) -> str:
        """``aoi.regplan.peak_shifts`` of ``surfaces`` [K, h, w] in the graph: [K, 2] signed
        sub-pixel shifts (x, y), the 3x3 centroid (circular neighbours) around the argmax."""
        flat = self.op("Reshape", surfaces, self.ints(k, h * w))
        idx = self.op("ArgMax", flat, axis=1, keepdims=1)  # [K, 1], ties to the first
        py = self.op("Div", idx, self.ints(w))
        px = self.op("Sub", idx, self.op("Mul", py, self.ints(w)))
        dy, dx = (v.ravel() for v in np.mgrid[-1:2, -1:2])
        ys = self.op("Mod", self.op("Add", py, self.ints(*(dy + h))), self.ints(h))  # [K, 9]
        xs = self.op("Mod", self.op("Add", px, self.ints(*(dx + w))), self.ints(w))
        lin = self.op("Add", self.op("Mul", ys, self.ints(w)), xs)
        vals = self.op("GatherElements", flat, lin, axis=1)
        vals = self.op("Max", vals, self.const(np.float32(0)))
        total = self.op("ReduceSum", vals, self.ints(1), keepdims=1)
        total = self.op("Max", total, self.const(np.float32(1e-12)))
        out = []
        for at, offsets, size in ((px, dx, w), (py, dy, h)):
            moment = self.op("Mul", vals, self.const(offsets.astype(np.float32)[None]))
            frac = self.op("Div", self.op("ReduceSum", moment, self.ints(1), keepdims=1), total)
            s = self.op("Add", self.op("Cast", at, to=1), frac)
            wrapped = self.op("Sub", s, self.const(np.float32(size)))
            past = self.op("Greater", s, self.const(np.float32(size / 2)))
            out.append(self.op("Where", past, wrapped, s))
        return self.op("Concat", *out, axis=1)

    def split(self, x: str, parts: int, axis: int = -1) -> list[str]:
        """``x`` cut into ``parts`` pieces of one element each along ``axis``."""
        outs = [self._name("part") for _ in range(parts)]
        sizes = self.ints(*([1] * parts)) if parts > 1 else self.ints(1)
        self._nodes.append(self._h.make_node("Split", [x, sizes], outs, axis=axis))
        return outs

    def _split(self, x: str, sizes: str) -> tuple[str, str]:
        re, im = self._name("re"), self._name("im")
        self._nodes.append(self._h.make_node("Split", [x, sizes], [re, im], axis=-1))
        return re, im


def _elem(dtype: type) -> int:
    from onnx import TensorProto

    table = {
        np.uint8: TensorProto.UINT8,
        np.float32: TensorProto.FLOAT,
        np.int64: TensorProto.INT64,
    }
    return table[dtype]
