"""Patch registration's measuring steps as small ONNX graphs on the inference device.

On a GPU station registration on the CPU was the floor of the cycle (3-4 ms of a 5-7 ms cycle at
640 px). Here the frame is uploaded once per board and three kinds of graph measure it on the
device, each returning a few bytes: the translation from the whole-frame phase correlation of
the decimated frame, with the peak shifts of the coarse patches resampled there (``coarse``:
the fit's first measurement comes with it, one run fewer), the peak shifts of the patches
resampled at any other estimate (``patch<level>``), and the Gauss-Newton shift of every
full-resolution patch with the sums of the accept/refuse correlation (``gradient``). The peaks
are found in the graph (``GraphBuilder.peak``, as ``regplan.peak_shifts`` does). The fit itself
(robust rigid fit, convergence) stays in :mod:`aoi.vision.patchreg`, identical for both paths.

The graphs follow :mod:`aoi.vision.patchreg`'s CPU steps operation for operation: resampling is
GridSample (bilinear, border padding, ``align_corners=1``) where the CPU uses ``cv2.remap``; the
decimation is strided slicing plus a 2x2 average as ``_decimate`` does; the blur is the same
separable Gaussian as a 5x5 convolution. The FFTs are ONNX Runtime's CUDA ``Rfft``/``Irfft``
(``com.microsoft``, cuFFT) on the GPU and the standard ``DFT`` operator elsewhere (the CPU
provider has no ``Rfft``), so the CPU variant is what the tests here run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from aoi.errors import InferenceError, ModelError
from aoi.inference.frame_input import SharedFrame
from aoi.inference.ort_cuda import ORT_ERRORS
from aoi.inference.regraph import GraphBuilder
from aoi.regplan import FrameSteps, PatchPlan, normalised_warp, step_correlation

if TYPE_CHECKING:
    from aoi.regplan import LevelPlan

log = logging.getLogger(__name__)

FRAME = "frame"
WARP = "warp"


def _even(n: int) -> int:
    return n - n % 2


def _frame_source(g: GraphBuilder, plan: PatchPlan) -> str:
    """The uint8 frame input as float [1, 1, H, W]."""
    g.input(FRAME, np.uint8, list(plan.frame_shape))
    return g.op("Reshape", g.op("Cast", FRAME, to=1), g.ints(1, 1, *plan.frame_shape))


def coarse_graph(plan: PatchPlan, fft: str) -> tuple[bytes, tuple[int, int]]:
    """frame uint8 [H, W] -> ``small`` [1, 1, h, w] (the coarse level), ``shift`` [1, 2] (the
    peak of the whole-frame cross-power surface against the template, even-sized for the real
    FFT: the frame's translation, pixels of the coarse level) and ``first`` [K, 2]: the peak
    shifts of the coarse level's patches resampled at that translation, which is where the
    host's fit first measures them. One run instead of two."""
    g = GraphBuilder(fft)
    small = g.decimate(_frame_source(g, plan), plan.coarse)
    level = plan.levels[0]  # the coarse level
    g.output(g.op("Identity", small, name="small"), np.float32, [1, 1, *level.shape])
    moving = g.decimate(small, 2) if plan.halve else small
    ch, cw = (_even(n) for n in plan.coarse_windowed.shape)
    window = plan.coarse_window[:ch, :cw]
    cropped = g.op("Slice", moving, g.ints(0, 0), g.ints(ch, cw), g.ints(2, 3))
    m = g.op("Mul", g.op("Reshape", cropped, g.ints(1, ch, cw)), g.const(window[None]))
    shift = g.peak(g.phase_correlation(m, plan.coarse_windowed[None, :ch, :cw]), 1, ch, cw)
    if plan.halve:  # a pure translation scales without half-pixel terms
        shift = g.op("Mul", shift, g.const(np.float32(2)))
    g.output(g.op("Identity", shift, name="shift"), np.float32, [1, 2])
    # The translation as GridSample's normalised warp of the coarse level: the host's
    # normalised_warp of the identity gives the scale (a, d) and the offset of the origin.
    base = normalised_warp(np.eye(2, 3), level.shape)
    scale, offset = base[[0, 1], [0, 1]][None], base[:, 2][None]
    moved = g.split(g.op("Add", g.op("Mul", shift, g.const(scale)), g.const(offset)), 2)
    a, d = (g.const(np.float32([v])) for v in scale[0])
    zero = g.const(np.zeros(1, np.float32))
    k, p = level.windowed.shape[0], level.windowed.shape[1]
    surfaces = _surfaces(g, plan, level, small, (a, zero, moved[0], zero, d, moved[1]))
    g.output(g.op("Identity", g.peak(surfaces, k, p, p), name="first"), np.float32, [k, 2])
    return g.model(), (ch, cw)


def _sampled(g: GraphBuilder, source: str, level: LevelPlan, warp: Sequence[str]) -> str:
    """The patches resampled from ``source`` [1, 1, h, w] at ``warp`` (six scalars of the
    normalised 2x3): [K, 1, P, P]. The grid is computed elementwise in float32 (a MatMul would
    run in TF32 on the GPU: 0.3 px at 640)."""
    k, p = level.windowed.shape[0], level.windowed.shape[1]
    gx, gy = (g.const(t.reshape(1, k * p, p, 1).astype(np.float32)) for t in level.grid)
    a, b, tx, c, d, ty = warp
    u = g.op("Add", g.op("Add", g.op("Mul", gx, a), g.op("Mul", gy, b)), tx)
    v = g.op("Add", g.op("Add", g.op("Mul", gx, c), g.op("Mul", gy, d)), ty)
    grid = g.op("Concat", u, v, axis=-1)  # [1, K * P, P, 2]
    out = g.op("GridSample", source, grid, mode="bilinear", padding_mode="border", align_corners=1)
    return g.op("Reshape", out, g.ints(k, 1, p, p))


def _warp_input(g: GraphBuilder) -> list[str]:
    g.input(WARP, np.float32, [2, 3])
    return g.split(g.op("Reshape", WARP, g.ints(6)), 6)


def _surfaces(
    g: GraphBuilder, plan: PatchPlan, level: LevelPlan, source: str, warp: Sequence[str]
) -> str:
    """[K, P, P]: each patch of ``level`` resampled at ``warp``, windowed and phase-correlated
    with the template's."""
    k, p = level.windowed.shape[0], level.windowed.shape[1]
    patches = g.op("Reshape", _sampled(g, source, level, warp), g.ints(k, p, p))
    return g.phase_correlation(g.op("Mul", patches, g.const(plan.window)), level.windowed)


def patch_graph(plan: PatchPlan, index: int, fft: str) -> bytes:
    """source, warp -> ``shifts`` [K, 2]: the peak shifts of the patches of ``levels[index]``
    resampled at ``warp``. The coarse level reads ``small``."""
    level = plan.levels[index]
    g = GraphBuilder(fft)
    warp = _warp_input(g)
    if level.factor == 1:
        source = _frame_source(g, plan)
    else:
        source = "small"
        g.input(source, np.float32, [1, 1, *level.shape])
    k, p = level.windowed.shape[0], level.windowed.shape[1]
    shifts = g.peak(_surfaces(g, plan, level, source, warp), k, p, p)
    g.output(g.op("Identity", shifts, name="shifts"), np.float32, [k, 2])
    return g.model()


def gradient_graph(plan: PatchPlan, fft: str) -> bytes:
    """frame, warp -> ``shift`` [K, 2] (the Gauss-Newton step of every full-resolution patch) and
    ``sums`` [2]: the zero-mean cross and frame energy of the accept/refuse correlation."""
    level = plan.fine
    g = GraphBuilder(fft)
    source = _frame_source(g, plan)
    warp = _warp_input(g)
    k, q = level.lk_template.shape[0], level.lk_template.shape[1]
    kernel = np.outer(plan.blur, plan.blur).astype(np.float32)[None, None]
    blurred = g.op("Conv", _sampled(g, source, level, warp), g.const(kernel))  # [K, 1, P-4, P-4]
    trim = g.op("Slice", blurred, g.ints(1, 1), g.ints(-1, -1), g.ints(2, 3))
    seen = g.op("Reshape", trim, g.ints(k, q, q))
    inner = g.op("Sub", seen, g.op("ReduceMean", seen, axes=[1, 2], keepdims=1))
    axes = g.ints(1, 2)
    energy = g.op(
        "Max",
        g.op("ReduceSum", g.op("Mul", inner, inner), axes, keepdims=1),
        g.const(np.float32(1e-6)),
    )
    tmpl = level.lk_template
    tsum = (tmpl * tmpl).sum(axis=(1, 2)).astype(np.float32)[:, None, None]
    gain = g.op("Sqrt", g.op("Div", g.const(tsum), energy))
    diff = g.op("Sub", g.op("Mul", inner, gain), g.const(tmpl))
    diff = g.op("Reshape", diff, g.ints(k, 1, q * q))
    step = g.const(level.lk_step.reshape(k, 2, q * q))
    shift = g.op(
        "Neg",
        g.op("ReduceSum", g.op("Mul", step, diff), g.ints(2), keepdims=0),
    )
    g.output(g.op("Identity", shift, name="shift"), np.float32, [k, 2])
    # Each patch zero-mean on both sides, as aoi.vision.patchreg's CPU steps compare them.
    a0 = (tmpl - tmpl.mean()).astype(np.float32)
    s_ab = g.op("ReduceSum", g.op("Mul", g.const(a0), inner), keepdims=0)
    s_bb = g.op("ReduceSum", g.op("Mul", inner, inner), keepdims=0)
    sums = g.op(
        "Concat", g.op("Unsqueeze", s_ab, g.ints(0)), g.op("Unsqueeze", s_bb, g.ints(0)), axis=0
    )
    g.output(g.op("Identity", sums, name="sums"), np.float32, [2])
    return g.model()


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
    ) -> None:
        self.plan = plan
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
            "registration runs on %s (%d levels, CUDA graphs %s)",
            device,
            len(plan.levels),
            self._gradient.graph,
        )

    def _build(self, fft: str, graph: bool) -> None:
        plan, device = self.plan, self.device
        model, _shape = coarse_graph(plan, fft)
        self._coarse = _Bound(model, device, graph, {FRAME: self.shared.value}, self.device_lock)
        small = self._coarse.outputs["small"]
        self._patches = []
        for index, level in enumerate(plan.levels):
            feeds = {WARP: self._warp}
            feeds.update({FRAME: self.shared.value} if level.factor == 1 else {"small": small})
            model = patch_graph(plan, index, fft)
            self._patches.append(_Bound(model, device, graph, feeds, self.device_lock))
        inputs = {FRAME: self.shared.value, WARP: self._warp}
        self._gradient = _Bound(gradient_graph(plan, fft), device, graph, inputs, self.device_lock)
        # Two runs each: ONNX Runtime runs once plainly, then captures its CUDA graph.
        self._warp.update_inplace(normalised_warp(np.eye(2, 3), plan.frame_shape))
        for _ in range(2):
            self._coarse.run()
            for bound in self._patches:
                bound.run()
            self._gradient.run()

    @contextmanager
    def frame(self, image: np.ndarray) -> Iterator[FrameSteps]:
        with self.shared.lock:
            # The shared buffer refuses a frame of another size or type (InferenceError).
            with self.device_lock:
                self.shared.upload(image)
            yield _DeviceFrame(self)


class _DeviceFrame:
    """One frame's measurements; valid inside :meth:`DeviceSteps.frame` only."""

    def __init__(self, steps: DeviceSteps) -> None:
        self._s = steps
        self._sums = np.zeros(2, np.float32)  # of the last gradient step
        #: The coarse run's translation warp and its patches' shifts there (coarse level).
        self._first: tuple[np.ndarray, np.ndarray] | None = None

    def _set_warp(self, warp: np.ndarray, shape: tuple[int, int]) -> None:
        with self._s.device_lock:
            self._s._warp.update_inplace(normalised_warp(warp, shape))

    def coarse_shift(self) -> tuple[float, float]:
        out = self._s._coarse.run("shift", "first")
        dx, dy = (float(v) for v in out["shift"][0])
        # Copied: on the CPU provider the array is a view of the graph's output buffer.
        first = out["first"].astype(np.float64)
        self._first = (np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]), first)
        return dx, dy

    def patch_shifts(self, level: int, warp: np.ndarray) -> np.ndarray:
        s = self._s
        if level == 0 and self._first is not None and np.array_equal(warp, self._first[0]):
            return self._first[1]  # measured by the coarse run already
        self._set_warp(warp, s.plan.levels[level].shape)
        return s._patches[level].run("shifts")["shifts"].astype(np.float64)

    def gradient(self, warp: np.ndarray) -> np.ndarray:
        s = self._s
        self._set_warp(warp, s.plan.frame_shape)
        out = s._gradient.run("shift", "sums")
        self._sums = out["sums"]
        return out["shift"].astype(np.float64)

    def correlation(self) -> float:
        s_ab, s_bb = (float(v) for v in self._sums)
        return step_correlation(s_ab, self._s._a, s_bb)
