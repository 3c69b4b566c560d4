"""Patch registration on the inference device: its graphs (:mod:`aoi.inference.reggraphs`)
bound to the frame's device buffer.

On a GPU station registration on the CPU was the floor of the cycle (3-4 ms of a 5-7 ms cycle at
640 px). Here the frame is uploaded once per board. By default one ``whole`` graph measures it
and fits the warp (one run per frame); ``fused=False`` runs the step graphs one by one and
leaves the fit to :mod:`aoi.vision.patchreg` on the host (four or five runs). The FFTs are ONNX
Runtime's CUDA ``Rfft``/``Irfft`` (``com.microsoft``, cuFFT) on the GPU and the standard ``DFT``
operator elsewhere (the CPU provider has no ``Rfft``), so the CPU variant is what the tests run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import onnxruntime as ort

from aoi.errors import InferenceError, ModelError
from aoi.inference.frame_input import SharedFrame
from aoi.inference.ort_cuda import ORT_ERRORS
from aoi.inference.reggraphs import (
    FRAME,
    WARP,
    coarse_graph,
    gradient_graph,
    patch_graph,
    whole_graph,
)
from aoi.regplan import MIN_PAIRS, FrameSteps, PatchPlan, normalised_warp, peak_shifts

log = logging.getLogger(__name__)


class _Bound:
    """One graph's session with its inputs bound to shared device buffers and its outputs to
    its own; on CUDA it replays a captured CUDA graph where ONNX Runtime can capture one.

    Every run holds ``lock``, the backend's device lock: ONNX Runtime captures CUDA graphs in
    the global capture mode, and another thread's first CUDA call (its cuDNN handle) during a
    capture breaks it (seen on the H200 with two registration threads)."""

    def __init__(
        self,
        model: bytes,
        device: str,
        graph: bool,
        inputs: dict[str, ort.OrtValue],
        lock: threading.Lock,
    ) -> None:
        self.lock = lock
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1
        self.graph = graph and device == "cuda"
        if device == "cuda":
            # FP32 math: TF32 (the default on Ampere and later) rounds the blur and the sums.
            cuda = {"use_tf32": "0", **({"enable_cuda_graph": "1"} if self.graph else {})}
            providers: list = [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(model, options, providers=providers)
        self.binding = self.session.io_binding()
        for name, value in inputs.items():
            self.binding.bind_ortvalue_input(name, value)
        self.outputs: dict[str, ort.OrtValue] = {}
        for out in self.session.get_outputs():
            value = ort.OrtValue.ortvalue_from_shape_and_type(
                list(out.shape), np.float32, device, 0
            )
            self.binding.bind_ortvalue_output(out.name, value)
            self.outputs[out.name] = value

    def run(self, *fetch: str) -> dict[str, np.ndarray]:
        with self.lock:
            try:
                self.session.run_with_iobinding(self.binding)
            except ORT_ERRORS as err:
                msg = f"registration on the device failed: {err}"
                raise InferenceError(msg) from err
            return {name: self.outputs[name].numpy() for name in fetch}


class DeviceSteps:
    """:class:`aoi.regplan.PatchSteps` on an ONNX Runtime device: sessions and buffers are made
    once per template; ``frame`` uploads a frame and serialises callers (the buffers are shared).
    """

    def __init__(
        self,
        plan: PatchPlan,
        device: str = "cuda",
        graph: bool = True,
        device_lock: threading.Lock | None = None,
        fused: bool = True,
    ) -> None:
        self.plan = plan
        #: One graph measures and fits (None: the step graphs, fitted on the host). A fine
        #: level with too few textured patches is the host's to refuse, frame by frame.
        self.fused = fused and int(plan.fine.lk_ok.sum()) >= MIN_PAIRS
        #: Held around every transfer and run on the device (shared with the network's runner).
        self.device_lock = device_lock or threading.Lock()
        self.device = device
        self.name = f"onnxruntime-{device}"
        fft = "cuda" if device == "cuda" else "onnx"
        tmpl = plan.fine.lk_template
        self._a = float(((tmpl - tmpl.mean()) ** 2).sum())  # the template side of the correlation
        new = ort.OrtValue.ortvalue_from_shape_and_type
        h, w = plan.frame_shape
        #: The frame's device buffer, which the network reads too (aoi/inference/frame_input.py);
        #: its lock serialises callers (the buffers are shared).
        self.shared = SharedFrame((h, w), device)
        self._warp = new((2, 3), np.float32, device, 0)
        try:
            try:
                self._build(fft, graph)
            except (InferenceError, *ORT_ERRORS) as err:
                if not graph:
                    raise
                log.warning("registration on %s without CUDA graphs: %s", device, err)
                self._build(fft, graph=False)
        except (InferenceError, *ORT_ERRORS) as err:
            msg = f"registration on {device} could not be built ({err})"
            raise ModelError(msg) from err
        log.info(
            "registration runs on %s (%d levels, %s, CUDA graphs %s)",
            device,
            len(plan.levels),
            "one graph" if self.fused else "step by step",
            graph,
        )

    def _build(self, fft: str, graph: bool) -> None:
        plan, device, lock = self.plan, self.device, self.device_lock
        frame = {FRAME: self.shared.value}
        if self.fused:
            self._whole = _Bound(whole_graph(plan, fft), device, graph, frame, lock)
            # Two runs: ONNX Runtime runs once plainly, then captures its CUDA graph.
            for _ in range(2):
                self._whole.run()
            return
        model, _shape = coarse_graph(plan, fft)
        self._coarse = _Bound(model, device, graph, frame, lock)
        small = self._coarse.outputs["small"]
        self._patches = []
        for index, level in enumerate(plan.levels):
            feeds = {WARP: self._warp}
            feeds.update(frame if level.factor == 1 else {"small": small})
            self._patches.append(_Bound(patch_graph(plan, index, fft), device, graph, feeds, lock))
        inputs = {**frame, WARP: self._warp}
        self._gradient = _Bound(gradient_graph(plan, fft), device, graph, inputs, lock)
        self._warp.update_inplace(normalised_warp(np.eye(2, 3), plan.frame_shape))
        for _ in range(2):
            self._coarse.run()
            for bound in self._patches:
                bound.run()
            self._gradient.run()

    @contextmanager
    def frame(self, image: np.ndarray) -> Iterator[FrameSteps]:
        with self.shared.lock:
            if image.shape != self.plan.frame_shape or image.dtype != np.uint8:
                want = f"a uint8 {self.plan.frame_shape} frame"
                msg = f"registration on the device needs {want}, got {image.dtype} {image.shape}"
                raise InferenceError(msg)
            with self.device_lock:
                self.shared.upload(image)
            yield _DeviceFrame(self)


class _DeviceFrame:
    """One frame's measurements; valid inside :meth:`DeviceSteps.frame` only."""

    def __init__(self, steps: DeviceSteps) -> None:
        self._s = steps
        self._sums = np.zeros(2, np.float32)  # of the last gradient step

    def _set_warp(self, warp: np.ndarray, shape: tuple[int, int]) -> None:
        with self._s.device_lock:
            self._s._warp.update_inplace(normalised_warp(warp, shape))

    def coarse_shift(self) -> tuple[float, float]:
        s = self._s
        surface = s._coarse.run("surface")["surface"]
        dx, dy = peak_shifts(surface[None])[0]
        if s.plan.halve:
            dx, dy = 2 * dx, 2 * dy  # a pure translation scales without half-pixel terms
        return float(dx), float(dy)

    def patch_shifts(self, level: int, warp: np.ndarray) -> np.ndarray:
        s = self._s
        self._set_warp(warp, s.plan.levels[level].shape)
        return peak_shifts(s._patches[level].run("surfaces")["surfaces"])

    def gradient(self, warp: np.ndarray) -> np.ndarray:
        s = self._s
        self._set_warp(warp, s.plan.frame_shape)
        out = s._gradient.run("shift", "sums")
        self._sums = out["sums"]
        return out["shift"].astype(np.float64)

    def correlation(self) -> float:
        s_ab, s_bb = (float(v) for v in self._sums)
        den = (self._s._a * max(s_bb, 0.0)) ** 0.5
        return s_ab / den if den > 1e-6 else 0.0

    def whole(self) -> tuple[np.ndarray, float] | None:
        if not self._s.fused:
            return None
        out = self._s._whole.run("warp", "sums")
        self._sums = out["sums"]
        # A copy: on the CPU provider the array is a view of the graph's output buffer.
        return out["warp"].copy(), self.correlation()
