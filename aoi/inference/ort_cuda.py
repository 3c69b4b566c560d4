"""ONNX Runtime on CUDA with the tensors kept on the device: IO binding, CUDA graphs, FP16.

The reduced graph (:mod:`aoi.inference.reduce`) ends in ``cls`` (uint8) and ``score``; this
module runs it with device-resident buffers bound once per input shape: the uint8 batch is
uploaded once per predict (``update_inplace``) and only the small reduced maps come back. For
each fixed shape (a recipe pads its batches to the profile's ``opt``, so there is usually one)
a session is built from the model with that shape written into its input, so every shape
computation folds away and all nodes land on the CUDA provider, which ORT's CUDA graph capture
(``enable_cuda_graph``) needs; a CUDA-graph session replays one captured graph, hence one
session per shape (at most ``max_graphs``; other shapes share one session without a graph).

FP16 (``fp16``) casts the float initializers and the input's normalisation to float16 and
keeps the graph's inputs and outputs as they were (``keep_io_types``); its parity against FP32
is measured on the DeepPCB val split (docs/benchmarks.md).

``AOI_ORT_CUDA`` (for benches: ``plain``, ``bind``, ``graph``, each optionally ``,fp16`` and
``,fp32tail`` (the softmax and its logits in FP32: the variant that keeps the val mAP),
``,fp32until=NODE`` / ``,fp32from=NODE``, ``,nowarp``: the cycle warps on the CPU instead of
the graph, aoi/inference/warp.py; ``,noreg``: registration measures on the CPU instead of the
device; ``,nokernels``: registration measures with ONNX graphs, aoi/inference/devreg.py,
instead of the station's CUDA kernels, aoi/inference/kernreg.py; ``,noframe``: a whole frame goes
up padded beside its template every board instead of once, aoi/inference/frame_input.py;
``,nochain``: the network's run waits for the host's registration instead of being queued
behind the kernels', aoi/inference/chain.py; ``,capture``: captured with the kernels as one
CUDA graph instead of queued call by call)
overrides the defaults (``graph``, FP32, device warp, registration with the kernels where
cuda-python can build them, frame input, and the network queued behind the kernels;
aoi/inference/cuda_options.py).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from aoi.errors import InferenceError, ModelError
from aoi.inference.base import CLASS_NAME, INPUT_NAME, SCORE_NAME
from aoi.inference.cuda_options import CudaOptions
from aoi.inference.fp16 import Fp32Span, softmax_tail, to_fp16
from aoi.inference.frame_input import FrameSlot, SharedFrame, fixed_frame_shape, fixed_inputs
from aoi.inference.warp import AFFINE_NAME, affine_feed
from aoi.inference.warp import LAST_NODE as WARP_LAST_NODE
from aoi.types import ClassMaps, FrameBatch

if TYPE_CHECKING:  # onnx is needed only where the graph is edited (the CUDA path)
    import onnx

log = logging.getLogger(__name__)

ORT_ERRORS = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.InvalidGraph,
    ort_state.NotImplemented,
    ort_state.RuntimeException,
    ort_state.EPFail,
)


@dataclass(frozen=True)
class BufferPlan:
    """The device buffers of one input shape: the uint8 batch in, the reduced maps out."""

    input_shape: tuple[int, int, int, int]
    output_shape: tuple[int, int, int]
    score_dtype: np.dtype

    @property
    def bytes_in(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def bytes_back(self) -> int:
        """Bytes copied back per predict: one class byte and one score per cell."""
        return int(np.prod(self.output_shape)) * (1 + self.score_dtype.itemsize)


def plan_buffers(
    input_shape: tuple[int, ...], output_shape: tuple[int, ...], score_dtype: str
) -> BufferPlan:
    """The buffer plan of a [N, 2, H, W] input whose reduced maps are [N, H', W']."""
    if len(input_shape) != 4 or input_shape[1] != 2 or min(input_shape) < 1:
        msg = f"input shape must be [N, 2, H, W] with positive sizes, got {list(input_shape)}"
        raise InferenceError(msg)
    if len(output_shape) != 3 or output_shape[0] != input_shape[0] or min(output_shape) < 1:
        n = input_shape[0]
        msg = f"reduced maps must be [N, H', W'] with N = {n}, got {list(output_shape)}"
        raise InferenceError(msg)
    n, c, h, w = input_shape
    return BufferPlan((n, c, h, w), tuple(output_shape), np.dtype(score_dtype))  # type: ignore[arg-type]


def fixed_shape(model: onnx.ModelProto, shape: tuple[int, ...]) -> onnx.ModelProto:
    """A copy of ``model`` whose input ``boards`` has the concrete ``shape``."""
    inp = next((i for i in model.graph.input if i.name == INPUT_NAME), None)
    if inp is None or len(inp.type.tensor_type.shape.dim) != len(shape):
        msg = f"model has no {len(shape)}-d input {INPUT_NAME!r} to fix"
        raise ModelError(msg)
    # A warping model's affine maps: one per board.
    return fixed_inputs(model, {INPUT_NAME: shape, AFFINE_NAME: (shape[0], 2, 3)})


class _Slot:
    """One input shape's session, bound device buffers and host padding buffer."""

    def __init__(
        self, session: ort.InferenceSession, plan: BufferPlan, graph: bool, warp: bool
    ) -> None:
        self.session = session
        self.plan = plan
        self.graph = graph
        self.host = np.zeros(plan.input_shape, np.uint8)
        new = ort.OrtValue.ortvalue_from_shape_and_type
        self.dev_in = new(plan.input_shape, np.uint8, "cuda", 0)
        self.dev_cls = new(plan.output_shape, np.uint8, "cuda", 0)
        self.dev_score = new(plan.output_shape, plan.score_dtype.type, "cuda", 0)
        self.binding = session.io_binding()
        self.binding.bind_ortvalue_input(INPUT_NAME, self.dev_in)
        self.dev_affine: ort.OrtValue | None = None
        if warp:
            n = plan.input_shape[0]
            self.dev_affine = new((n, 2, 3), np.float32, "cuda", 0)
            self.binding.bind_ortvalue_input(AFFINE_NAME, self.dev_affine)
        self.binding.bind_ortvalue_output(CLASS_NAME, self.dev_cls)
        self.binding.bind_ortvalue_output(SCORE_NAME, self.dev_score)

    def run(self, batch: np.ndarray, affine: np.ndarray | None = None) -> ClassMaps:
        n = batch.shape[0]
        if self.dev_affine is not None:
            self.dev_affine.update_inplace(affine_feed(affine, self.plan.input_shape))
        fed = batch
        if n != self.plan.input_shape[0] or not batch.flags.c_contiguous:
            self.host[:n] = batch
            self.host[n:] = 0
            fed = self.host
        self.dev_in.update_inplace(fed)
        self.session.run_with_iobinding(self.binding)
        return ClassMaps(self.dev_cls.numpy()[:n], self.dev_score.numpy()[:n])


class CudaRunner:
    """Runs a reduced model on the CUDA provider with bound device buffers, one slot per shape.

    ``model`` is the reduced ONNX (``cls`` and ``score`` outputs); the runner owns its sessions.
    """

    def __init__(
        self,
        model: onnx.ModelProto,
        options: CudaOptions,
        session_options: ort.SessionOptions,
        score_dtype: str,
        device_lock: threading.Lock | None = None,
        frame_model: onnx.ModelProto | None = None,
    ) -> None:
        self.options = options
        #: Held around every transfer and run: other users of the device (registration,
        #: aoi/inference/devreg.py) must not call CUDA while a graph is being captured.
        self.device_lock = device_lock or threading.Lock()
        self.score_dtype = score_dtype
        self._model = model
        #: The model takes ``affine`` (aoi/inference/warp.py).
        self.warp = any(i.name == AFFINE_NAME for i in model.graph.input)
        if options.fp16:
            span = options.fp32
            if options.fp32_tail:
                span = Fp32Span(span.until, softmax_tail(model).start)
            if self.warp and not span.until:  # the warp samples pixel coordinates: FP32
                span = Fp32Span(WARP_LAST_NODE, span.start)
            self._model = to_fp16(model, span)
            frame_model = None if frame_model is None else to_fp16(frame_model, span)
        #: The frame-taking variant (``warp_model(frame=True)``, aoi/inference/frame_input.py).
        self._frame_model = frame_model
        self._frame_slots: dict[tuple[int, ...], FrameSlot] = {}
        self._own_frames: dict[tuple[int, int], SharedFrame] = {}
        self._session_options = session_options
        self._dynamic: ort.InferenceSession | None = None
        self._slots: dict[tuple[int, ...], _Slot] = {}
        self._frame_graphs = 0
        self.graph_error = ""

    def __enter__(self) -> CudaRunner:
        self._dynamic = self._session(self._model.SerializeToString(), graph=False)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._slots.clear()
        self._frame_slots.clear()
        self._own_frames.clear()
        self._dynamic = None

    @property
    def session(self) -> ort.InferenceSession:
        if self._dynamic is None:
            msg = "CudaRunner used outside its context manager"
            raise InferenceError(msg)
        return self._dynamic

    @property
    def graphs(self) -> int:
        """How many shapes replay a captured CUDA graph."""
        return sum(s.graph for s in self._slots.values()) + self._frame_graphs

    @property
    def takes_frames(self) -> bool:
        """Whether :meth:`predict_frame` can run (the runner has the frame-taking graph)."""
        return self._frame_model is not None

    def _session(
        self, model: bytes, *, graph: bool, stream: int | None = None
    ) -> ort.InferenceSession:
        """A CUDA session (a CUDA-graph one with ``graph``), on ``stream`` where given (the
        registration kernels', which queue its runs: aoi/inference/chain.py)."""
        cuda = {"enable_cuda_graph": "1"} if graph else {}
        if stream is not None:
            cuda |= {"has_user_compute_stream": "1", "user_compute_stream": str(stream)}
        try:
            return ort.InferenceSession(
                model,
                self._session_options,
                providers=[("CUDAExecutionProvider", cuda), "CPUExecutionProvider"],
            )
        except ORT_ERRORS as err:
            msg = f"onnxruntime could not build the CUDA session ({err})"
            raise ModelError(msg) from err

    def _output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        # The reduced maps' size follows from the network's strides: ask the runtime once.
        binding = self.session.io_binding()
        probe = ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, np.uint8), "cuda", 0)
        binding.bind_ortvalue_input(INPUT_NAME, probe)
        if self.warp:
            maps = ort.OrtValue.ortvalue_from_numpy(affine_feed(None, shape), "cuda", 0)
            binding.bind_ortvalue_input(AFFINE_NAME, maps)
        binding.bind_output(CLASS_NAME, "cuda")
        binding.bind_output(SCORE_NAME, "cuda")
        self.session.run_with_iobinding(binding)
        return tuple(binding.get_outputs()[0].shape())

    def _slot(self, shape: tuple[int, ...]) -> _Slot:
        slot = self._slots.get(shape)
        if slot is not None:
            return slot
        plan = plan_buffers(shape, self._output_shape(shape), self.score_dtype)
        session, graph = self.session, False
        wants_graph = self.options.cuda_graph and not self.graph_error
        if wants_graph and self.graphs < self.options.max_graphs:
            fixed = fixed_shape(self._model, shape).SerializeToString()
            try:
                session, graph = self._session(fixed, graph=True), True
                slot = _Slot(session, plan, graph, self.warp)
                slot.run(slot.host)  # the first run captures the graph
            except (ModelError, *ORT_ERRORS) as err:
                self.graph_error = str(err)
                log.warning("no CUDA graph for %s, IO binding without one: %s", shape, err)
                session, graph, slot = self.session, False, None
        if slot is None:
            slot = _Slot(session, plan, graph, self.warp)
        self._slots[shape] = slot
        log.info("CUDA buffers for %s: %s (graph %s)", list(shape), plan, graph)
        return slot

    def predict(self, feeds: dict[str, np.ndarray]) -> ClassMaps:
        """The reduced maps of a uint8 batch already padded to the shape to run (``boards``, and
        ``affine`` for a warping model)."""
        fed = feeds[INPUT_NAME]
        try:
            with self.device_lock:
                return self._slot(tuple(fed.shape)).run(fed, feeds.get(AFFINE_NAME))
        except ORT_ERRORS as err:
            msg = f"onnxruntime CUDA failed on input {list(fed.shape)}: {err}"
            raise InferenceError(msg) from err

    def _frame_slot(self, frame: SharedFrame, input_hw: tuple[int, int]) -> FrameSlot:
        key = (id(frame), *input_hw)
        slot = self._frame_slots.get(key)
        if slot is not None:
            return slot
        assert self._frame_model is not None
        out_shape = self._output_shape((1, 2, *input_hw))
        fixed = fixed_frame_shape(self._frame_model, frame.shape, input_hw).SerializeToString()
        dtype = np.dtype(self.score_dtype)
        graph = self.options.cuda_graph and not self.graph_error
        graph = graph and self.graphs < self.options.max_graphs
        # Registration's kernels queue this slot's runs on their stream (chain.py), each run on
        # its own graph; with ``capture``, captured with theirs as one graph where they can.
        chain = graph and self.options.chain and frame.on_slot is not None
        stream = frame.stream if chain else None
        capture = chain and self.options.capture
        slot = self._captured_slot(frame, input_hw, fixed, out_shape) if capture else None
        if slot is not None:
            self._frame_graphs += 1
            self._frame_slots[key] = slot
            return slot
        if graph:
            try:
                slot = FrameSlot(
                    self._session(fixed, graph=True, stream=stream), frame, input_hw, out_shape,
                    dtype,
                )  # fmt: skip
                slot.run(_blank(frame, input_hw), None)  # the first run captures the graph
            except (ModelError, *ORT_ERRORS) as err:
                self.graph_error = str(err)
                log.warning("no CUDA graph for the frame %s: %s", frame.shape, err)
                graph, slot = False, None
        if slot is None:
            slot = FrameSlot(self._session(fixed, graph=False), frame, input_hw, out_shape, dtype)
        self._frame_graphs += graph
        self._frame_slots[key] = slot
        if graph and chain and frame.on_slot is not None:
            frame.on_slot(slot, False)
        log.info("CUDA frame input %s onto %s (graph %s)", list(frame.shape), list(input_hw), graph)
        return slot

    def _captured_slot(
        self, frame: SharedFrame, input_hw: tuple[int, int], fixed: bytes, out_shape: tuple
    ) -> FrameSlot | None:
        """A slot whose session (no graph of its own, on the kernels' stream) the frame's
        registration kernels capture with theirs as one graph, or None where they cannot."""
        assert frame.on_slot is not None
        try:
            session = self._session(fixed, graph=False, stream=frame.stream)
            slot = FrameSlot(session, frame, input_hw, out_shape, np.dtype(self.score_dtype))
            for _ in range(2):  # ONNX Runtime's buffers are made before the capture
                slot.run(_blank(frame, input_hw), None)
        except (ModelError, *ORT_ERRORS) as err:
            log.warning("no session to capture with registration for %s: %s", frame.shape, err)
            return None
        if not frame.on_slot(slot, True):
            return None
        log.info("CUDA frame input %s onto %s, one graph with registration", frame.shape, input_hw)
        return slot

    def predict_frame(
        self, batch: FrameBatch, affine: np.ndarray | None, shared: SharedFrame | None = None
    ) -> ClassMaps:
        """The reduced maps of one whole frame (``affine`` normalised to the frame's size);
        ``shared`` is registration's device frame where it has one of this size."""
        if self._frame_model is None:
            msg = "this CUDA runner was built without the frame-taking graph"
            raise InferenceError(msg)
        shape = (int(batch.frame.shape[0]), int(batch.frame.shape[1]))
        frame = shared if shared is not None and shared.shape == shape else None
        if frame is None:
            frame = self._own_frames.get(shape) or SharedFrame(shape, "cuda")
            self._own_frames[shape] = frame
        hw = (int(batch.reference.shape[2]), int(batch.reference.shape[3]))
        try:
            with frame.lock, self.device_lock:  # registration's order: frame, then device
                return self._frame_slot(frame, hw).run(batch, affine)
        except ORT_ERRORS as err:
            msg = f"onnxruntime CUDA failed on the frame {list(shape)}: {err}"
            raise InferenceError(msg) from err


def _blank(frame: SharedFrame, input_hw: tuple[int, int]) -> FrameBatch:
    """A black frame and reference, for the runs that build a slot's buffers and graph."""
    return FrameBatch(np.zeros(frame.shape, np.uint8), np.zeros((1, 1, *input_hw), np.uint8), -1)
