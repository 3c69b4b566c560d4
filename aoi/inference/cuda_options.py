"""How the CUDA path runs (``CudaOptions``): IO binding, CUDA graphs, FP16, and what the graph
does on the device, from the defaults or ``AOI_ORT_CUDA`` (aoi/inference/ort_cuda.py's
docstring lists the words)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from aoi.errors import ModelError
from aoi.inference.fp16 import Fp32Span

ENV_VAR = "AOI_ORT_CUDA"
_MODES = ("plain", "bind", "graph")


@dataclass(frozen=True)
class CudaOptions:
    """How the CUDA path runs: IO binding, CUDA graphs per fixed shape, FP16 weights."""

    io_binding: bool = True
    cuda_graph: bool = True
    fp16: bool = False
    #: With ``fp16``: the nodes kept in FP32 (none by default).
    fp32: Fp32Span = field(default_factory=Fp32Span)
    #: With ``fp16``: keep the softmax and its logits in FP32 (:func:`softmax_tail`).
    fp32_tail: bool = False
    max_graphs: int = 4
    #: The graph registers channel 0 itself (aoi/inference/warp.py).
    warp: bool = True
    #: Registration's measuring steps run on the device too (aoi/inference/devreg.py).
    registration: bool = True
    #: A whole frame goes to the network as it is, uploaded once (aoi/inference/frame_input.py).
    frames: bool = True
    #: Registration's steps as the station's CUDA kernels (aoi/inference/kernreg.py) where
    #: cuda-python can build them; off (``nokernels``): devreg's ONNX graphs.
    kernels: bool = True
    #: With the kernels and a whole frame: the network's run is queued behind registration's
    #: on the kernels' stream (aoi/inference/chain.py); off (``nochain``): after the host's.
    chain: bool = True
    #: With the chain: registration and the network captured as one CUDA graph where CUDA and
    #: ONNX Runtime allow (``capture``, aoi/inference/chain.py); off by default: queued call by
    #: call, each run on ONNX Runtime's own graph.
    capture: bool = False

    @classmethod
    def parse(cls, text: str) -> CudaOptions:
        """Options from ``mode[,fp16][,fp32until=NODE][,fp32from=NODE]`` with mode ``plain``,
        ``bind`` or ``graph``."""
        words = [w.strip() for w in text.split(",") if w.strip()]
        mode = next((w for w in words if w in _MODES), "graph")
        spans = dict(w.split("=", 1) for w in words if "=" in w)
        flags = (*_MODES, "fp16", "fp32tail", "warp", "nowarp", "noreg", "noframe", "nokernels",
                 "nochain", "capture")  # fmt: skip
        unknown = [w for w in words if w not in flags and "=" not in w]
        unknown += [k for k in spans if k not in ("fp32until", "fp32from")]
        if unknown:
            msg = (
                f"{ENV_VAR}={text!r}: unknown words {unknown} "
                "(plain, bind, graph, fp16, fp32tail, nowarp, noreg, noframe, nokernels, nochain, "
                "capture, fp32until=NODE, fp32from=NODE)"
            )
            raise ModelError(msg)
        span = Fp32Span(spans.get("fp32until", ""), spans.get("fp32from", ""))
        graph = mode == "graph"
        tail = "fp32tail" in words
        return cls(
            mode != "plain", graph, fp16="fp16" in words, fp32=span, fp32_tail=tail,
            warp="nowarp" not in words, registration="noreg" not in words,
            frames="noframe" not in words, kernels="nokernels" not in words,
            chain="nochain" not in words, capture="capture" in words,
        )  # fmt: skip

    @classmethod
    def from_env(cls) -> CudaOptions:
        """The defaults, or what ``AOI_ORT_CUDA`` says."""
        text = os.environ.get(ENV_VAR, "")
        return cls.parse(text) if text else cls()

    @property
    def label(self) -> str:
        mode = "plain" if not self.io_binding else "graph" if self.cuda_graph else "bind"
        span = "".join(
            f",{k}={v}"
            for k, v in (("fp32until", self.fp32.until), ("fp32from", self.fp32.start))
            if v
        )
        tail = ",fp32tail" if self.fp32_tail else ""
        fp16 = ",fp16" + tail + span if self.fp16 else ""
        off = ("" if self.warp else ",nowarp") + ("" if self.registration else ",noreg")
        off += ("" if self.frames else ",noframe") + ("" if self.kernels else ",nokernels")
        off += ("" if self.chain else ",nochain") + (",capture" if self.capture else "")
        return mode + fp16 + off
