"""Patch registration as the station's own CUDA kernels (``kernreg.cu``), the fit included.

:mod:`aoi.inference.devreg` measures a frame with small ONNX graphs on ONNX Runtime's CUDA
provider: a coarse run and two gradient runs of a 640 px board cost 0.8-1.1 ms on an H200, almost
all of it a few hundred one-operator kernels of a few microseconds each. Here the same steps are
a handful of fused kernels queued on one stream: decimation, the whole-frame phase correlation
and its peak, the coarse patches resampled at that translation with their phase correlation and
peaks, and the Gauss-Newton step of every full-resolution patch in one kernel.

The fit runs on the device too (``fit``, the robust rigid fit of :mod:`aoi.vision.rigidfit` in
float64), with the schedule of :mod:`aoi.vision.patchreg`: the coarse fit, then gradient steps
until one moves no patch centre by more than the plan's threshold (a converged step turns the
later ones into no-ops). A frame is then one launch of one captured CUDA graph and one wait
(:meth:`_KernelFrame.estimate`). The measuring steps one by one stay available for the host's
loop (``whole=False``, and the tests that hold both to the same answer).

The frame goes to the device buffer the network reads (:class:`SharedFrame`), copied on this
stream, so the network's run after registration reads the registered board without a second
upload.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import numpy as np

from aoi.errors import InferenceError, ModelError
from aoi.inference.chain import Chain, chain_status
from aoi.inference.cuda_kernels import (
    F64,
    Launch,
    Ptr,
    available,
    kernel,
    load_module,
    nvrtc_version,
    unload,
)
from aoi.inference.cuda_options import ENV_VAR, CudaOptions
from aoi.inference.frame_input import SharedFrame
from aoi.inference.kernparts import DeviceMemory, Step, phase_correlation
from aoi.inference.ort_cuda import ORT_ERRORS
from aoi.inference.tensorrt.cuda_mem import CudaError, call, cudart
from aoi.regplan import (
    LK_TRIM,
    MIN_PAIRS,
    OUTLIER_FACTOR,
    OUTLIER_FLOOR_PX,
    PATCH_PX,
    FrameSteps,
    PatchPlan,
    step_correlation,
)

log = logging.getLogger(__name__)

_THREADS = 256
#: The whole-frame peak is one block over the whole surface: the most threads a block has.
_PEAK_THREADS = 1024
_P2 = PATCH_PX * PATCH_PX
#: Pairs the device's fit takes at most (kernreg.cu's MAX_PAIRS).
_MAX_PAIRS = 64
_KERNELS = (
    "decimate_u8", "coarse_input", "dft_rows", "dft_cols_cross", "idft_cols", "idft_rows_real",
    "peak", "sample_u8", "sample_f32", "gradient", "fit", "affine_out",
)  # fmt: skip


def _even(n: int) -> int:
    return n - n % 2


class KernelSteps:
    """:class:`aoi.regplan.PatchSteps` as CUDA kernels on the primary context's device.

    Buffers and launches are made once per template; ``frame`` copies a frame in and
    serialises callers (the buffers are shared). :meth:`close` frees the device memory."""

    name = "cuda-kernels"

    def __init__(
        self,
        plan: PatchPlan,
        device_lock: threading.Lock | None = None,
        network: bool = True,
        graphs: bool = True,
        whole: bool = True,
    ) -> None:
        """``network``: the frame goes to a buffer ONNX Runtime's CUDA network reads
        (:class:`SharedFrame`); False: to the kernels' own (tools, a TensorRT station).
        ``graphs``: each step replays as one captured CUDA graph (False: launch by launch).
        ``whole``: the fit runs on the device too, where the plan's schedule allows."""
        self.plan = plan
        self._graphs = graphs
        #: Held around every transfer and run on the device (shared with the network's runner).
        self.device_lock = device_lock or threading.Lock()
        self._stack = ExitStack()
        try:
            self._module = load_module("kernreg.cu")
            self._stack.callback(unload, self._module)
            self.functions = {n: kernel(self._module, n) for n in _KERNELS}
            self.memory = DeviceMemory(self._stack)
            self._window: int | None = None
            h, w = plan.frame_shape
            # Without the network, the host-side record keeps only its lock and bookkeeping.
            self.shared = SharedFrame(plan.frame_shape, "cuda" if network else "cpu")
            frame = self.shared.value.data_ptr() if network else self.memory.alloc(h * w)
            self._build(Ptr(frame), whole)
            #: The network's runs queued behind the whole fit (aoi/inference/chain.py).
            self.chain = Chain(
                self.memory, self._stack, self.functions["affine_out"], self._est,
                self._estimate_run,
            )  # fmt: skip
            if network and self._estimate_run is not None:
                self.chain.offer(self.shared)
        except (CudaError, InferenceError, *ORT_ERRORS) as err:
            self._stack.close()
            msg = f"registration kernels could not be built on the CUDA device ({err})"
            raise ModelError(msg) from err
        log.info(
            "registration runs as CUDA kernels (%d levels, fit on the %s)",
            len(plan.levels),
            "device" if self._estimate_run is not None else "host",
        )

    def _build(self, frame: Ptr, whole: bool) -> None:
        plan, mem = self.plan, self.memory
        self._frame = frame
        k = max(level.windowed.shape[0] for level in plan.levels)
        self._k0 = plan.levels[0].windowed.shape[0]
        self._kf = plan.fine.lk_template.shape[0]
        # The results (float32): the whole-frame shift, a level's patch shifts, a gradient
        # step's [K, 4]; on the host after the warp in. The device fit's estimate (float64).
        size = 2 + 2 * k + 4 * self._kf
        self._out = mem.alloc(4 * size)
        self._host_ptr, self._host = mem.pinned(np.float32, 6 + size)
        self._est = mem.alloc(8 * 8)
        self._est_ptr, self._est_host = mem.pinned(np.float64, 8)
        self._warp = mem.alloc(4 * 6)
        self._grad_at = 2 + 2 * k
        sh, sw = plan.levels[0].shape
        self._small = mem.alloc(4 * sh * sw)
        first_warp = mem.alloc(4 * 6)
        # Each level's patches at the warp in; the coarse level's also at the translation the
        # coarse run finds, where that run measures its first patch fit too.
        levels = [self._patches(0, self._warp, first_warp)]
        levels += [self._patches(i, self._warp) for i in range(1, len(plan.levels))]
        coarse = self._whole_frame(first_warp) + levels[0][1]
        self._coarse_run = self._step(coarse, False, 0, 2 + 2 * self._k0)
        self._patch_runs = [
            self._step(runs[0], True, 2, 2 * level.windowed.shape[0])
            for runs, level in zip(levels, plan.levels, strict=True)
        ]
        grad_out = (self._grad_at, 4 * self._kf)
        stepwise, in_fit = self._gradients()
        self._gradient_run = self._step([stepwise], True, *grad_out)
        self._estimate_run: Step | None = None
        if whole and self._fits_on_device():
            launches = coarse + self._fits(first_warp, in_fit)
            self._estimate_run = self._step(launches, False, *grad_out, estimate=True)

    def _fits_on_device(self) -> bool:
        plan = self.plan
        schedule = (1,) + (0,) * (len(plan.levels) - 1)
        pairs = (self._k0, int(plan.fine.lk_ok.sum()))
        return (
            tuple(plan.iterations[: len(plan.levels)]) == schedule
            and max(pairs) <= _MAX_PAIRS
            and min(pairs) >= MIN_PAIRS
        )

    def _fits(self, first_warp: int, gradient: Launch) -> list[Launch]:
        """The coarse fit, then the gradient steps (``gradient``) with their fits, as patchreg
        schedules them."""
        plan, mem, p = self.plan, self.memory, Ptr
        fine, robust = plan.fine, (F64(OUTLIER_FACTOR), F64(OUTLIER_FLOOR_PX), MIN_PAIRS)
        centres = p(mem.upload(plan.levels[0].centres.astype(np.float64)))
        rescale = F64(plan.levels[0].factor / fine.factor if len(plan.levels) > 1 else 0.0)
        out, est, warp = p(self._out), p(self._est), p(self._warp)
        args = (p(out + 8), 2, centres, p(0), self._k0, p(first_warp), est, warp, rescale)
        launches = [Launch(self.functions["fit"], (1,), 32, (*args, F64(-1.0), 1, *robust))]
        centres = p(mem.upload(fine.centres.astype(np.float64)))
        use = p(mem.upload(fine.lk_ok.astype(np.uint8)))
        shifts = p(out + 4 * self._grad_at)
        args = (shifts, 4, centres, use, self._kf, p(0), est, warp, F64(0.0))
        fit = Launch(self.functions["fit"], (1,), 32,
                     (*args, F64(plan.lk_converged_px), 0, *robust))  # fmt: skip
        for _ in range(plan.lk_iterations):
            launches += [gradient, fit]
        return launches

    def _step(
        self, launches: list[Launch], warp: bool, first: int, count: int, estimate: bool = False
    ) -> Step:
        copies = [(self._host_ptr + 4 * (6 + first), self._out + 4 * first, 4 * count)]
        if estimate:
            copies.append((self._est_ptr, self._est, 8 * 8))
        warp_in = (self._host_ptr, self._warp, 24) if warp else None
        step = Step(self.memory, launches, warp_in, copies, (first, count))
        if self._graphs:
            with self.device_lock:
                step.capture()
        return step

    def _whole_frame(self, warp_out: int) -> list[Launch]:
        """The coarse level from the frame, and the whole-frame phase correlation's peak: the
        translation into results[0:2], and as a pixel 2x3 into ``warp_out``."""
        plan, f, p, mem = self.plan, self.functions, Ptr, self.memory
        stride = max(1, plan.coarse // 2)
        sh, sw = plan.levels[0].shape
        args = (self._frame, plan.frame_shape[1], stride, plan.coarse // stride)
        runs = [Launch(f["decimate_u8"], (-(-sw // 128), sh), 128, (*args, p(self._small), sh, sw))]
        ch, cw = (_even(n) for n in plan.coarse_windowed.shape)
        whole = mem.alloc(4 * ch * cw)
        window = mem.upload(plan.coarse_window[:ch, :cw])
        args = (p(self._small), sw, int(plan.halve), p(window), p(whole), ch, cw)
        runs.append(Launch(f["coarse_input"], (-(-cw // 128), ch), 128, args))
        tmpl = plan.coarse_windowed[None, :ch, :cw]
        pc, surface = phase_correlation(mem, f, whole, 1, ch, cw, tmpl)
        scale = 2.0 if plan.halve else 1.0
        args = (p(surface), ch, cw, scale, p(self._out), p(warp_out))
        return [*runs, *pc, Launch(f["peak"], (1,), _PEAK_THREADS, args)]

    def _patches(self, index: int, *warps: int) -> list[list[Launch]]:
        """For each of ``warps``: the patches of ``levels[index]`` resampled at the pixel 2x3
        there, phase correlated; their peak shifts into results[2:2 + 2K]. The warps share the
        buffers and everything after the resampling."""
        plan, f, p, mem = self.plan, self.functions, Ptr, self.memory
        level = plan.levels[index]
        k = level.windowed.shape[0]
        n = k * _P2
        if level.factor == 1:
            name, source, (sh, sw) = "sample_u8", self._frame, plan.frame_shape
        else:
            name, source, (sh, sw) = "sample_f32", p(self._small), level.shape
        if self._window is None:
            self._window = mem.upload(plan.window)
        patches = mem.alloc(4 * n)
        grid = mem.upload(level.grid)
        pc, surface = phase_correlation(mem, f, patches, k, PATCH_PX, PATCH_PX, level.windowed)
        args = (p(surface), PATCH_PX, PATCH_PX, 1.0, p(self._out + 8), p(0))
        tail = [*pc, Launch(f["peak"], (k,), _THREADS, args)]
        runs = []
        for warp in warps:
            args = (source, sh, sw, p(grid), n, p(warp), p(self._window), _P2, p(patches))
            runs.append([Launch(f[name], (-(-n // _THREADS),), _THREADS, args), *tail])
        return runs

    def _gradients(self) -> tuple[Launch, Launch]:
        """The Gauss-Newton step of every full-resolution patch at the warp in; [K, 4] into
        the results after the patch shifts. Twice, on one set of constants: for the host's loop,
        and for the device fit's schedule (a no-op once the estimate says converged)."""
        plan, p = self.plan, Ptr
        fine = plan.fine
        tmpl = fine.lk_template
        q = PATCH_PX - 2 * LK_TRIM
        if tmpl.shape[1:] != (q, q):
            msg = f"the gradient kernel needs {q}x{q} templates, the plan has {tmpl.shape[1:]}"
            raise InferenceError(msg)
        a0 = (tmpl - tmpl.mean()).astype(np.float32)
        self._a = float((a0.astype(np.float64) ** 2).sum())
        h, w = plan.frame_shape
        consts = (
            fine.grid, plan.blur.astype(np.float32), tmpl, fine.lk_step, a0,
            (tmpl * tmpl).sum(axis=(1, 2)).astype(np.float32),
        )  # fmt: skip
        grid, blur, *rest = (p(self.memory.upload(c)) for c in consts)
        out = p(self._out + 4 * self._grad_at)
        args = (self._frame, h, w, grid, p(self._warp), blur, *rest, out)
        kernel, grid_dim = self.functions["gradient"], (self._kf,)
        return (
            Launch(kernel, grid_dim, _THREADS, (*args, p(0))),
            Launch(kernel, grid_dim, _THREADS, (*args, p(self._est))),
        )

    # -- running ------------------------------------------------------------------------------
    def run(
        self, step: Step, warp: np.ndarray | None = None, then: np.ndarray | None = None
    ) -> np.ndarray:
        """One step: ``warp`` copied in, its kernels, its results copied back and waited for;
        the network's run for the frame ``then`` is queued behind them, not waited for."""
        with self.device_lock:
            try:
                if warp is not None:
                    self._host[:6] = np.asarray(warp, np.float32).ravel()
                if then is None or not self.chain.queues:
                    step.run()
                else:
                    self.chain.run(step, then)
            except CudaError as err:
                msg = f"registration on the device failed: {err}"
                raise InferenceError(msg) from err
            return self._host[6 + step.first : 6 + step.first + step.count].astype(np.float64)

    def _copy_in(self, image: np.ndarray) -> None:
        rt = cudart()
        with self.device_lock:
            call("cudaMemcpyAsync", int(self._frame), image.ctypes.data, image.nbytes,
                 rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.memory.stream.handle)  # fmt: skip

    @contextmanager
    def frame(self, image: np.ndarray) -> Iterator[FrameSteps]:
        with self.shared.lock:
            # The shared buffer refuses a frame of another size or type (InferenceError).
            self.shared.upload(image, copy=self._copy_in)
            if self._estimate_run is None:
                yield _KernelFrame(self)
            else:
                yield _WholeFrame(self, image)

    def close(self) -> None:
        self._stack.close()


class _KernelFrame:
    """One frame's measurements; valid inside :meth:`KernelSteps.frame` only."""

    def __init__(self, steps: KernelSteps) -> None:
        self._s = steps
        self._sums = (0.0, 0.0)
        self._first: tuple[np.ndarray, np.ndarray] | None = None

    def coarse_shift(self) -> tuple[float, float]:
        s = self._s
        out = s.run(s._coarse_run)
        dx, dy = float(out[0]), float(out[1])
        self._first = (np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]), out[2:].reshape(-1, 2))
        return dx, dy

    def patch_shifts(self, level: int, warp: np.ndarray) -> np.ndarray:
        s = self._s
        if level == 0 and self._first is not None and np.array_equal(warp, self._first[0]):
            return self._first[1]  # measured by the coarse run already
        return s.run(s._patch_runs[level], warp).reshape(-1, 2)

    def gradient(self, warp: np.ndarray) -> np.ndarray:
        s = self._s
        out = s.run(s._gradient_run, warp).reshape(-1, 4)
        self._sums = (float(out[:, 2].sum()), float(out[:, 3].sum()))
        return out[:, :2].copy()

    def correlation(self) -> float:
        s_ab, s_bb = self._sums
        return step_correlation(s_ab, self._s._a, s_bb)


class _WholeFrame(_KernelFrame):
    """A frame whose whole fit runs on the device (:class:`aoi.regplan.EstimatesWhole`); the
    network's run for it is queued behind the fit where the kernels chain a slot."""

    def __init__(self, steps: KernelSteps, image: np.ndarray) -> None:
        super().__init__(steps)
        self._image = image

    def estimate(self) -> tuple[np.ndarray, float]:
        s = self._s
        out = s.run(s._estimate_run, then=self._image).reshape(-1, 4)  # the last gradient's
        self._sums = (float(out[:, 2].sum()), float(out[:, 3].sum()))
        #: Gradient steps fitted, for the tests and tools.
        self.gradient_steps = int(s._est_host[7])
        return s._est_host[:6].reshape(2, 3).astype(np.float32), self.correlation()


def kernels_for(plan: PatchPlan, device_lock: threading.Lock) -> KernelSteps | None:
    """:class:`KernelSteps` for ``plan``, or None (logged) where they cannot be built here."""
    try:
        return KernelSteps(plan, device_lock)
    except ModelError as err:
        log.warning("%s; registration uses ONNX Runtime's graphs", err)
        return None


def status(backend_name: str) -> str:
    """Where registration's measuring steps run for a backend named ``backend_name``, in one
    line (``aoi doctor``)."""
    if backend_name != "onnxruntime-cuda":
        return "on the CPU (OpenCV): the network does not run on ONNX Runtime's CUDA provider"
    try:
        options = CudaOptions.from_env()
    except ModelError as err:
        return f"unknown: {err}"
    if not (options.registration and options.warp):
        return f"on the CPU (OpenCV): {ENV_VAR}={options.label}"
    if not options.kernels:
        return f"ONNX Runtime's graphs on the device ({ENV_VAR}={options.label})"
    why = available()
    if why is not None:
        return f"ONNX Runtime's graphs on the device: {why}"
    return (
        f"the station's CUDA kernels on the device (compiled by NVRTC {nvrtc_version()} when "
        f"the station starts; {chain_status(options)})"
    )
