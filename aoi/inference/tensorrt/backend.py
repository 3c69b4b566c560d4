"""TensorRT backend: the recipe's engine (built and cached on first use), run through cuda-python.

Same protocol as :class:`aoi.inference.onnxruntime.OnnxRuntimeBackend` on CUDA: uint8
``[N, 2, H, W]`` in, the reduced graph's :class:`ClassMaps` out (uint8 class and float32 score
``[N, H/S, W/S]``, the engine built from :mod:`aoi.inference.reduce`'s edit), the same profile
check and messages, and ``model_hash`` is the ONNX file's SHA-256, so the cycle and its records
cannot tell the two apart.

The runtime follows TensorRT 10's tensor-name API: buffers are planned for the profile's maximum
(pinned host memory for the input and the class maps, device memory for every I/O tensor),
one non-blocking stream carries host-to-device copy, ``execute_async_v3`` and device-to-host
copy, and only the final synchronise waits. With ``cuda_graph`` on, the inference of each input
shape is captured once into a CUDA graph and replayed; each captured shape keeps its own
execution context (a graph fixes the shapes and addresses it was captured with), so a panel's
alternating full and last tile batches do not recapture every cycle.

``tensorrt`` and cuda-python are imported on ``__enter__``: importing this module needs neither.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

from aoi.errors import InferenceError, ModelError
from aoi.inference.base import CLASS_NAME, INPUT_NAME, SCORE_NAME
from aoi.inference.tensorrt.build import make_logger
from aoi.inference.tensorrt.calibration import CalibrationProvider
from aoi.inference.tensorrt.cuda_mem import (
    CapturedGraph,
    DeviceBuffer,
    PinnedBuffer,
    Stream,
    gpu_info,
    set_device,
)
from aoi.inference.tensorrt.engine import (
    EngineOutcome,
    EngineSettings,
    engine_target,
    ensure_engine,
    import_tensorrt,
)
from aoi.inference.tensorrt.plan import (
    BufferPlan,
    ProfileShapes,
    dims_text,
    plan_buffers,
    reduced_output_shape,
    stride_of,
)
from aoi.recipe import LoadedRecipe
from aoi.types import ClassMaps

log = logging.getLogger(__name__)

#: Input shapes that keep a captured CUDA graph (and an execution context) at one time.
MAX_GRAPH_SHAPES = 4


@dataclass
class _Slot:
    """One execution context, its current input shape and, in graph mode, its captured graph."""

    context: Any
    shape: tuple[int, ...] | None = None
    graph: CapturedGraph | None = None


class TensorRTBackend:
    """One TensorRT engine for one recipe, with its buffers, stream and execution contexts."""

    #: The engine is built from the plain model: the cycle warps on the CPU.
    warps_on_device = False

    def __init__(
        self,
        loaded: LoadedRecipe,
        settings: EngineSettings,
        *,
        model_path: Path | None = None,
        calibration: CalibrationProvider | None = None,
    ) -> None:
        """``calibration`` gives an INT8 recipe's calibration data (:mod:`aoi.app.calibration`);
        it is asked on ``__enter__`` and its batches are made only if the engine is built."""
        self.loaded = loaded
        self.calibration = calibration
        self.settings = settings
        self.model_path = model_path or loaded.model_path
        self.profile = loaded.recipe.geometry.profile
        self.name = f"tensorrt-{loaded.recipe.model.precision}"
        self.model_hash = ""
        self.outcome: EngineOutcome | None = None
        self._stack: ExitStack | None = None
        self._trt: ModuleType | None = None
        self._engine: Any = None
        self._runtime: Any = None
        self._logger: Any = None
        self._stream: Stream | None = None
        self._buffers: dict[str, DeviceBuffer] = {}
        self._plans: dict[str, BufferPlan] = {}
        self._host_in: PinnedBuffer | None = None
        self._host_out: dict[str, PinnedBuffer] = {}
        self._stride = 0
        self._slots: OrderedDict[tuple[int, ...], _Slot] = OrderedDict()
        self._plain: _Slot | None = None
        self._graphs = settings.cuda_graph
        self._threads: set[int] = set()

    # --- opening ------------------------------------------------------------------------

    def __enter__(self) -> TensorRTBackend:
        with ExitStack() as stack:
            trt = import_tensorrt()
            self._trt = trt
            set_device(self.settings.device)
            gpu = gpu_info(self.settings.device)
            target = engine_target(
                self.loaded,
                trt.__version__,
                gpu,
                self.settings,
                self.model_path,
                calibration=self.calibration,
            )
            for warning in target.warnings:
                log.warning("%s", warning)
            self.model_hash = target.key.model_sha256
            self.outcome = ensure_engine(self.loaded, target, self.settings)
            logger = make_logger(trt)
            runtime = trt.Runtime(logger)
            engine = runtime.deserialize_cuda_engine(target.paths.engine.read_bytes())
            if engine is None:
                log.warning("engine %s does not deserialize; rebuilding it", target.paths.engine)
                self.outcome = ensure_engine(self.loaded, target, self.settings, force=True)
                engine = runtime.deserialize_cuda_engine(target.paths.engine.read_bytes())
            if engine is None:
                msg = f"{target.paths.engine}: a freshly built engine does not deserialize"
                raise ModelError(msg)
            # TensorRT objects are freed with their last reference. The bindings keep an engine
            # alive while a context of it lives, and the runtime while its engine does; the
            # logger is held here until the end, as TensorRT requires.
            self._runtime, self._logger, self._engine = runtime, logger, engine
            stack.callback(self._drop_trt_objects)
            self._stream = stack.enter_context(Stream())
            self._allocate(stack, trt, engine, str(target.paths.engine))
            stack.callback(self._stream.synchronize)
            stack.callback(self._release_slots)
            self._stack = stack.pop_all()
        log.info(
            "TensorRT %s engine %s on %s (cuda graphs %s)",
            target.precision.precision,
            target.paths.engine.name,
            gpu.name,
            "on" if self._graphs else "off",
        )
        return self

    def _allocate(self, stack: ExitStack, trt: ModuleType, engine: Any, where: str) -> None:
        """Check the engine's tensors and profile; plan and allocate buffers for the max."""
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [INPUT_NAME] or not {CLASS_NAME, SCORE_NAME} <= set(names):
            msg = (
                f"{where}: engine must have input {INPUT_NAME!r} and outputs {CLASS_NAME!r} and "
                f"{SCORE_NAME!r} (built from the reduced graph), found {names}"
            )
            raise ModelError(msg)
        p = self.profile
        want = (p.min.as_tuple(), p.opt.as_tuple(), p.max.as_tuple())
        found = tuple(tuple(d) for d in engine.get_tensor_profile_shape(INPUT_NAME, 0))
        if engine.num_optimization_profiles != 1 or found != want:
            msg = f"{where}: engine profile must be {want}, found {found}"
            raise ModelError(msg)
        context = self._new_context(engine)
        if not context.set_input_shape(INPUT_NAME, want[2]):
            msg = f"{where}: engine refused its own max input shape {dims_text(want[2])}"
            raise ModelError(msg)
        outputs = {
            n: (
                tuple(context.get_tensor_shape(n)),
                np.dtype(trt.nptype(engine.get_tensor_dtype(n))),
            )
            for n in names
            if n != INPUT_NAME
        }
        self._stride = stride_of(want[2], outputs[CLASS_NAME][0], where)
        plans = plan_buffers(ProfileShapes.from_profile(p), outputs, INPUT_NAME)
        self._plans = {plan.name: plan for plan in plans}
        for plan in plans:
            self._buffers[plan.name] = stack.enter_context(DeviceBuffer(plan.nbytes))
        self._host_in = stack.enter_context(PinnedBuffer(self._plans[INPUT_NAME].nbytes))
        for name in (CLASS_NAME, SCORE_NAME):
            self._host_out[name] = stack.enter_context(PinnedBuffer(self._plans[name].nbytes))
        self._bind(context)
        self._plain = _Slot(context, want[2])

    def _new_context(self, engine: Any) -> Any:
        # The default (static) strategy gives the context device memory for the profile's max.
        context = engine.create_execution_context()
        if context is None:
            msg = "TensorRT could not create an execution context (GPU memory exhausted?)"
            raise InferenceError(msg)
        return context

    def _bind(self, context: Any) -> None:
        for name, buffer in self._buffers.items():
            if not context.set_tensor_address(name, buffer.ptr):
                msg = f"TensorRT refused the device address of tensor {name!r}"
                raise InferenceError(msg)

    # --- closing ------------------------------------------------------------------------

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def _release_slots(self) -> None:
        slots, self._slots = list(self._slots.values()), OrderedDict()
        self._plain = None
        with ExitStack() as stack:
            for slot in slots:
                if slot.graph is not None:
                    stack.push(slot.graph)
            slots.clear()

    def _drop_trt_objects(self) -> None:
        self._engine = self._runtime = self._logger = None

    # --- inference ----------------------------------------------------------------------

    def predict(self, batch: np.ndarray, affine: np.ndarray | None = None) -> ClassMaps:
        """Class maps for a uint8 [N, 2, H, W] batch inside the recipe's profile."""
        if affine is not None:
            msg = "this TensorRT engine does not warp on the device: pass registered boards"
            raise InferenceError(msg)
        if self._engine is None or self._stream is None:
            msg = "TensorRTBackend.predict called outside its context manager"
            raise InferenceError(msg)
        if batch.dtype != np.uint8:
            msg = f"network input must be uint8, got {batch.dtype}"
            raise InferenceError(msg)
        shape = tuple(batch.shape)
        if not self.profile.contains(shape):
            msg = (
                f"network input {dims_text(shape)} lies outside the recipe profile "
                f"min {dims_text(self.profile.min.as_tuple())} .. max "
                f"{dims_text(self.profile.max.as_tuple())}"
            )
            raise InferenceError(msg)
        if threading.get_ident() not in self._threads:
            # The current CUDA device is per thread: the cycle may predict from a worker thread.
            set_device(self.settings.device)
            self._threads.add(threading.get_ident())
        out_shape = reduced_output_shape(shape, stride=self._stride)
        in_bytes = self._plans[INPUT_NAME].check_fits(shape)
        out_bytes = {n: self._plans[n].check_fits(out_shape) for n in (CLASS_NAME, SCORE_NAME)}
        slot = self._slot_for(shape, out_shape)
        assert self._host_in is not None
        np.copyto(self._host_in.view(np.dtype(np.uint8), shape), batch)
        stream = self._stream
        stream.copy_to_device(self._buffers[INPUT_NAME], self._host_in, in_bytes)
        if slot.graph is not None:
            slot.graph.launch()
        elif not slot.context.execute_async_v3(stream.handle_int):
            msg = f"TensorRT execute_async_v3 failed on input {dims_text(shape)} (see the log)"
            raise InferenceError(msg)
        for name, nbytes in out_bytes.items():
            stream.copy_to_host(self._host_out[name], self._buffers[name], nbytes)
        stream.synchronize()
        # The pinned buffers are reused by the next call; the cycle may hold several outputs.
        cls = self._host_out[CLASS_NAME].view(self._plans[CLASS_NAME].dtype, out_shape)
        score = self._host_out[SCORE_NAME].view(self._plans[SCORE_NAME].dtype, out_shape)
        return ClassMaps(cls.copy(), score.copy())

    def _set_shape(self, context: Any, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
        if not context.set_input_shape(INPUT_NAME, shape):
            msg = f"TensorRT refused input shape {dims_text(shape)}"
            raise InferenceError(msg)
        found = tuple(context.get_tensor_shape(CLASS_NAME))
        if found != out_shape:
            msg = (
                f"engine output for input {dims_text(shape)} must be {dims_text(out_shape)} "
                f"(stride {self._stride}), found {dims_text(found)}"
            )
            raise InferenceError(msg)

    def _slot_for(self, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> _Slot:
        """The execution context for this input shape, with a graph captured where enabled."""
        if not self._graphs:
            assert self._plain is not None
            if self._plain.shape != shape:
                self._set_shape(self._plain.context, shape, out_shape)
                self._plain.shape = shape
            return self._plain
        slot = self._slots.get(shape)
        if slot is not None:
            self._slots.move_to_end(shape)
            return slot
        if len(self._slots) >= MAX_GRAPH_SHAPES:
            _old, evicted = self._slots.popitem(last=False)
            if evicted.graph is not None:
                evicted.graph.__exit__(None, None, None)
        assert self._stream is not None
        if self._plain is not None:
            # The first captured shape takes the context made at opening.
            context, self._plain = self._plain.context, None
        else:
            context = self._new_context(self._engine)
            self._bind(context)
        self._set_shape(context, shape, out_shape)
        graph = CapturedGraph(self._stream)
        handle = self._stream.handle_int
        if graph.capture(lambda: bool(context.execute_async_v3(handle))):
            slot = _Slot(context, shape, graph)
            self._slots[shape] = slot
            log.info("CUDA graph captured for input %s", dims_text(shape))
            return slot
        log.warning("this engine cannot be captured into a CUDA graph; running without graphs")
        self._graphs = False
        self._release_slots()
        self._plain = _Slot(context, shape)
        return self._plain
