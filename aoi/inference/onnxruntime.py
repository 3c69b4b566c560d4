"""ONNX Runtime backend: the embedded default (CPU), CUDA where onnxruntime-gpu is installed.

It is also the numerical reference the TensorRT backend is checked against.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path
from types import TracebackType

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from aoi.errors import InferenceError, ModelError
from aoi.inference.base import CLASS_NAME, CPU_BACKEND, INPUT_NAME, OUTPUT_NAME, SCORE_NAME
from aoi.inference.cuda_options import CudaOptions
from aoi.inference.devreg import DeviceSteps
from aoi.inference.kernreg import KernelSteps, kernels_for
from aoi.inference.ort_cuda import CudaRunner
from aoi.inference.warp import AFFINE_NAME, FRAME_NAME, REFERENCE_NAME, affine_feed, device_affine
from aoi.recipe import Profile, file_hash
from aoi.regplan import PatchPlan, PatchSteps
from aoi.types import ClassMaps, FrameBatch

log = logging.getLogger(__name__)

#: What onnxruntime raises for a bad model or a failed run (its own exception classes).
_ORT_ERRORS = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.InvalidGraph,
    ort_state.InvalidProtobuf,
    ort_state.NoSuchFile,
    ort_state.NotImplemented,
    ort_state.RuntimeException,
    ort_state.EPFail,
)


def _dims_text(shape: tuple[int, ...] | list[int]) -> str:
    return "[" + ", ".join(str(v) for v in shape) + "]"


class OnnxRuntimeBackend:
    """One ONNX Runtime session for one model and one recipe profile.

    On CUDA, a batch smaller than the profile's ``opt`` batch is padded with empty boards up to
    it and the padding's output dropped (``pad_batch``): each change of input shape cost the CUDA
    provider 150-370 ms on an H200 (docs/benchmarks.md, "GPU"), and a tiled recipe whose last
    batch is shorter (a panel of 15 tiles in batches of 8 and 7) changes shape twice per frame.
    On the CPU there is no such cost and padding would only add work, so it is off by default.

    With ``reduce`` the graph is edited at load (:mod:`aoi.inference.reduce`) to end in the
    per-cell class and score, and ``predict`` returns :class:`ClassMaps` (5 or 3 bytes a cell
    instead of 28 to copy back). Default: on for CUDA where the ``onnx`` package is installed,
    off on the CPU, where there is no copy to save and the full maps' postprocessing reads only
    the few contested cells.
    """

    def __init__(
        self,
        model_path: Path,
        profile: Profile,
        *,
        device: str = "cpu",
        threads: int = 0,
        pad_batch: bool | None = None,
        reduce: bool | None = None,
        score_dtype: str | None = None,
        cuda: CudaOptions | None = None,
        warp: bool | None = None,
        registration: bool | None = None,
        frames: bool | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.profile = profile
        self.device = device
        self.threads = threads
        self.pad_batch = device == "cuda" if pad_batch is None else pad_batch
        if reduce is None:
            reduce = device == "cuda" and importlib.util.find_spec("onnx") is not None
            if device == "cuda" and not reduce:
                log.warning("onnx is not installed: the full probability maps come back")
        self.reduce = reduce
        #: The reduced score's type: float16 on CUDA (3 bytes a cell to copy back instead of 5;
        #: the same defects, scores within 2.4e-4, docs/benchmarks.md), float32 on the CPU.
        self.score_dtype = score_dtype or ("float16" if device == "cuda" else "float32")
        self.model_hash = ""
        self.name = CPU_BACKEND if device == "cpu" else "onnxruntime-cuda"
        self._session: ort.InferenceSession | None = None
        self._cuda: CudaRunner | None = None
        if device == "cuda" and cuda is None and self.reduce:
            cuda = CudaOptions.from_env()
        #: How the CUDA path runs (IO binding, CUDA graphs, FP16); None on the CPU or unreduced.
        self.cuda = cuda if device == "cuda" and self.reduce else None
        #: The graph warps channel 0 itself (aoi/inference/warp.py); default: on the CUDA path.
        self.warps_on_device = (self.cuda is not None and self.cuda.warp) if warp is None else warp
        #: Registration's steps run on this device (aoi/inference/devreg.py); default: with the
        #: device warp on the CUDA path, where the frame is then uploaded for both.
        if registration is None:
            registration = self.cuda is not None and self.cuda.registration
        self.registers_on_device = registration and self.warps_on_device
        #: ``predict`` takes a whole frame as a :class:`FrameBatch` (aoi/inference/frame_input.py);
        #: default: on the CUDA path with the device warp.
        if frames is None:
            frames = self.cuda is not None and self.cuda.frames
        self.takes_frames = frames and self.warps_on_device
        self._frame_session: ort.InferenceSession | None = None
        self._steps: list[DeviceSteps | KernelSteps] = []
        #: One lock for everything this backend runs on the device (network and registration).
        self._device_lock = threading.Lock()

    def __enter__(self) -> OnnxRuntimeBackend:
        path = self.model_path
        if not path.is_file():
            msg = f"{path}: model file not found"
            raise ModelError(msg)
        self.model_hash = file_hash(path)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        # ONNX Runtime's pool threads spin after each run, waiting for the next; on a station PC
        # with few cores that takes a core from registration and postprocessing (the rest of
        # the cycle) and from the GUI. They sleep instead (docs/benchmarks.md, "GUI").
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Without the CPU arena, closing a session is ~1 ms instead of 70-140 ms (panel-c),
        # which ONNX Runtime spends holding the GIL: a recipe change stalled the PLC link's
        # thread and Modbus server that long. Each run then mallocs its tensors afresh, as fast
        # only where glibc keeps freed blocks: a station whose cycle runs here tunes malloc for
        # that (aoi/heap.py, from aoi/app/rig.py); with glibc's defaults the network at 640 ran
        # 1.6-2.1x slower on 2 cores (docs/benchmarks.md, "Issue 15, eleventh round").
        opts.enable_cpu_mem_arena = False
        providers = ["CPUExecutionProvider"]
        if self.device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                msg = (
                    f"{path}: device 'cuda' needs onnxruntime-gpu; this onnxruntime offers "
                    f"{ort.get_available_providers()}"
                )
                raise ModelError(msg)
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if self.cuda is not None and self.cuda.io_binding:
            self._enter_cuda(opts)
            return self
        source: str | bytes = str(path)
        if self.reduce or self.warps_on_device:
            source = self._edited(path)
        try:
            self._session = ort.InferenceSession(source, opts, providers=providers)
            if self.takes_frames:
                framed = self._edited(path, frame=True)
                self._frame_session = ort.InferenceSession(framed, opts, providers=providers)
        except _ORT_ERRORS as err:
            msg = f"{path}: not a loadable ONNX model ({err})"
            raise ModelError(msg) from err
        self._check_contract()
        log.info("onnxruntime session for %s on %s", path.name, self._session.get_providers())
        return self

    @property
    def cuda_graphs(self) -> int:
        """How many input shapes replay a captured CUDA graph (0 off the CUDA path)."""
        return self._cuda.graphs if self._cuda is not None else 0

    def _enter_cuda(self, opts: ort.SessionOptions) -> None:
        from aoi.inference.reduce import reduced_model
        from aoi.inference.warp import warp_model

        assert self.cuda is not None
        model = reduced_model(self.model_path, self.score_dtype)  # type: ignore[arg-type]
        framed = warp_model(model, frame=True) if self.takes_frames else None
        if self.warps_on_device:
            model = warp_model(model)
        runner = CudaRunner(model, self.cuda, opts, self.score_dtype, self._device_lock, framed)
        self._cuda = runner.__enter__()
        self._session = self._cuda.session
        self._check_contract()
        log.info("onnxruntime CUDA (%s) for %s", self.cuda.label, self.model_path.name)

    def _edited(self, path: Path, *, frame: bool = False) -> bytes:
        if importlib.util.find_spec("onnx") is None:
            msg = f"{path}: editing the graph on load needs the onnx package (pip install onnx)"
            raise ModelError(msg)
        import onnx

        from aoi.inference.reduce import reduced_model
        from aoi.inference.warp import warp_model

        model = (
            reduced_model(path, self.score_dtype)  # type: ignore[arg-type]
            if self.reduce
            else onnx.load(str(path))
        )
        if self.warps_on_device:
            model = warp_model(model, frame=frame)
        return model.SerializeToString()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for steps in self._steps:  # runs queued on the kernels' stream end before their sessions
            if isinstance(steps, KernelSteps):
                steps.chain.drain()
        if self._cuda is not None:
            self._cuda.__exit__(exc_type, exc, tb)
            self._cuda = None
        self._session = None
        self._frame_session = None
        for steps in self._steps:
            if isinstance(steps, KernelSteps):
                steps.close()
        self._steps.clear()

    def registration_steps(self, plan: PatchPlan) -> PatchSteps | None:
        """Patch registration's measuring steps for ``plan`` on this backend's device, or None
        where registration stays on the CPU; they live as long as this backend's context."""
        if not self.registers_on_device:
            return None
        steps: DeviceSteps | KernelSteps | None = None
        if self.device == "cuda" and self.cuda is not None and self.cuda.kernels:
            steps = kernels_for(plan, self._device_lock)
        if steps is None:
            graph = self.cuda is not None and self.cuda.cuda_graph
            steps = DeviceSteps(plan, self.device, graph=graph, device_lock=self._device_lock)
        self._steps.append(steps)
        return steps

    def _check_contract(self) -> None:
        assert self._session is not None
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        where = str(self.model_path)
        if self.warps_on_device:
            inputs = [i for i in inputs if i.name != AFFINE_NAME]
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            found = [i.name for i in inputs]
            msg = f"{where}: model must have one input {INPUT_NAME!r}, found {found}"
            raise ModelError(msg)
        if inputs[0].type != "tensor(uint8)":
            msg = f"{where}: input {INPUT_NAME!r} must be tensor(uint8), found {inputs[0].type}"
            raise ModelError(msg)
        if len(inputs[0].shape) != 4 or inputs[0].shape[1] != 2:
            msg = f"{where}: input {INPUT_NAME!r} must be [N, 2, H, W], found {inputs[0].shape}"
            raise ModelError(msg)
        wanted = [CLASS_NAME, SCORE_NAME] if self.reduce else [OUTPUT_NAME]
        if not set(wanted) <= {o.name for o in outputs}:
            found = [o.name for o in outputs]
            msg = f"{where}: model must have the outputs {wanted}, found {found}"
            raise ModelError(msg)

    def predict(
        self, batch: np.ndarray | FrameBatch, affine: np.ndarray | None = None
    ) -> np.ndarray | ClassMaps:
        """Probability maps (or, reduced, class maps) for a uint8 [N, 2, H, W] batch inside the
        recipe's profile; ``affine`` (with ``warps_on_device``) registers channel 0 on the device.
        With ``takes_frames``, ``batch`` may be one whole :class:`FrameBatch` instead, its
        ``affine`` normalised to the frame's size.
        """
        if self._session is None:
            msg = "OnnxRuntimeBackend.predict called outside its context manager"
            raise InferenceError(msg)
        if isinstance(batch, FrameBatch):
            return self._predict_frame(batch, affine)
        if batch.dtype != np.uint8:
            msg = f"network input must be uint8, got {batch.dtype}"
            raise InferenceError(msg)
        if not self.profile.contains(batch.shape):
            msg = (
                f"network input {_dims_text(batch.shape)} lies outside the recipe profile "
                f"min {_dims_text(self.profile.min.as_tuple())} .. max "
                f"{_dims_text(self.profile.max.as_tuple())}"
            )
            raise InferenceError(msg)
        n = batch.shape[0]
        fed = batch
        if self.pad_batch and n < self.profile.opt.batch:
            fed = np.zeros((self.profile.opt.batch, *batch.shape[1:]), np.uint8)
            fed[:n] = batch
        feeds = {INPUT_NAME: fed}
        if self.warps_on_device:
            feeds[AFFINE_NAME] = affine_feed(affine, fed.shape)
        elif affine is not None:
            msg = "this backend does not warp on the device: pass registered boards"
            raise InferenceError(msg)
        if self._cuda is not None:
            maps = self._cuda.predict(feeds)
            return ClassMaps(maps.classes[:n], maps.scores[:n])
        outputs = self._run(self._session, feeds, f"input {_dims_text(fed.shape)}")
        if self.reduce:
            return ClassMaps(outputs[0][:n], outputs[1][:n])
        return outputs[0][:n]

    def _predict_frame(
        self, batch: FrameBatch, affine: np.ndarray | None
    ) -> np.ndarray | ClassMaps:
        if not self.takes_frames:
            msg = "this backend takes [N, 2, H, W] batches, not frames"
            raise InferenceError(msg)
        n, c, h, w = (1, 2, *batch.reference.shape[2:])
        if not self.profile.contains((n, c, h, w)):
            msg = f"network input {_dims_text((n, c, h, w))} lies outside the recipe profile"
            raise InferenceError(msg)
        if self._cuda is not None:  # registration's device frame, where it has one this size
            shared = [s.shared for s in self._steps if s.shared.shape == batch.frame.shape]
            return self._cuda.predict_frame(batch, affine, shared[-1] if shared else None)
        assert self._frame_session is not None
        fh, fw = batch.frame.shape
        maps = device_affine(None, fh, fw)[None] if affine is None else affine
        feeds = {FRAME_NAME: batch.frame, REFERENCE_NAME: batch.reference, AFFINE_NAME: maps}
        what = f"the frame {_dims_text(batch.frame.shape)}"
        outputs = self._run(self._frame_session, feeds, what)
        return ClassMaps(outputs[0], outputs[1]) if self.reduce else outputs[0]

    def _run(
        self, session: ort.InferenceSession, feeds: dict[str, np.ndarray], what: str
    ) -> list[np.ndarray]:
        """One plain run of ``session`` (the CPU path): its maps, or an InferenceError."""
        names = [CLASS_NAME, SCORE_NAME] if self.reduce else [OUTPUT_NAME]
        try:
            return session.run(names, feeds)
        except _ORT_ERRORS as err:
            msg = f"onnxruntime failed on {what}: {err}"
            raise InferenceError(msg) from err
