"""Patch registration's measuring steps as the station's own CUDA kernels (``kernreg.cu``).

:mod:`aoi.inference.devreg` measures a frame with small ONNX graphs on ONNX Runtime's CUDA
provider: a coarse run and two gradient runs of a 640 px board cost 0.9 ms on an H200, almost
all of it a few hundred one-operator kernels of a few microseconds each. Here the same steps
are a handful of fused kernels queued on one stream: the coarse run is thirteen (decimation,
the whole-frame phase correlation and its peak, the coarse patches resampled at that
translation, their phase correlation and peaks), a gradient step one. Each step copies its few
numbers back and waits for them, as devreg's runs do; the fit between steps stays on the host
(:mod:`aoi.vision.patchreg`), identical for every path.

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
from aoi.inference.cuda_kernels import (
    Launch,
    Ptr,
    available,
    driver_stream,
    kernel,
    load_module,
    nvrtc_version,
    unload,
)
from aoi.inference.cuda_options import ENV_VAR, CudaOptions
from aoi.inference.frame_input import SharedFrame
from aoi.inference.tensorrt.cuda_mem import (
    CapturedGraph,
    CudaError,
    DeviceBuffer,
    PinnedBuffer,
    Stream,
    call,
    copy_to_device_sync,
    cudart,
)
from aoi.regplan import LK_TRIM, PATCH_PX, FrameSteps, PatchPlan

log = logging.getLogger(__name__)

_THREADS = 256
_P2 = PATCH_PX * PATCH_PX
#: Threads in a block at most: the DFT kernels give each row or column one block.
_MAX_SIDE = 1024


def _even(n: int) -> int:
    return n - n % 2


def _twiddles(n: int) -> np.ndarray:
    k = np.arange(n, dtype=np.float64)
    tw = np.exp(-2j * np.pi * k / n)
    return np.stack([tw.real, tw.imag], -1).astype(np.float32)


def _spectrum(images: np.ndarray) -> np.ndarray:
    """The 2-D DFT of each image [B, h, w] as interleaved float32 (re, im)."""
    f = np.fft.fft2(images.astype(np.float64))
    return np.stack([f.real, f.imag], -1).astype(np.float32)


class _PhaseCorrelation:
    """The four DFT passes of B images [B, h, w] against fixed template spectra: the surfaces'
    peaks lie at the images' shifts."""

    def __init__(self, steps: KernelSteps, src: int, b: int, h: int, w: int, tmpl: np.ndarray):
        if max(h, w) > _MAX_SIDE:  # a row or column is one block of threads
            msg = f"phase correlation kernels take surfaces up to {_MAX_SIDE} wide, got {h}x{w}"
            raise InferenceError(msg)
        tw_w, tw_h = steps.twiddles(w), steps.twiddles(h)
        spec = steps.upload(_spectrum(tmpl))
        c1, c2 = steps.alloc(b * h * w * 8), steps.alloc(b * h * w * 8)
        self.surface = steps.alloc(b * h * w * 4)
        f = steps.functions
        p = Ptr
        self.launches = [
            Launch(f["dft_rows"], (h, b), w, (p(src), p(c1), h, w, p(tw_w)), 4 * w),
            Launch(f["dft_cols_cross"], (w, b), h, (p(c1), p(spec), p(c2), h, w, p(tw_h)), 8 * h),
            Launch(f["idft_cols"], (w, b), h, (p(c2), p(c1), h, w, p(tw_h)), 8 * h),
            Launch(f["idft_rows_real"], (h, b), w, (p(c1), p(self.surface), h, w, p(tw_w)), 8 * w),
        ]


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
    ) -> None:
        """``network``: the frame goes to a buffer ONNX Runtime's CUDA network reads
        (:class:`SharedFrame`); False: to the kernels' own (tools, a TensorRT station).
        ``graphs``: each step replays as one captured CUDA graph (False: launch by launch)."""
        self.plan = plan
        self._graphs = graphs
        #: Held around every transfer and run on the device (shared with the network's runner).
        self.device_lock = device_lock or threading.Lock()
        self._stack = ExitStack()
        try:
            self._module = load_module("kernreg.cu")
            self._stack.callback(unload, self._module)
            self.functions = {
                n: kernel(self._module, n)
                for n in (
                    "decimate_u8", "coarse_input", "dft_rows", "dft_cols_cross", "idft_cols",
                    "idft_rows_real", "peak", "sample_u8", "sample_f32", "gradient",
                )
            }  # fmt: skip
            self._stream = self._stack.enter_context(Stream())
            self.stream = driver_stream(self._stream.handle)
            self._twiddles: dict[int, int] = {}
            self._window: int | None = None
            h, w = plan.frame_shape
            # Without the network, the host-side record keeps only its lock and bookkeeping.
            self.shared = SharedFrame(plan.frame_shape, "cuda" if network else "cpu")
            frame = self.shared.value.data_ptr() if network else self.alloc(h * w)
            self._build(Ptr(frame))
        except (CudaError, InferenceError) as err:
            self._stack.close()
            msg = f"registration kernels could not be built on the CUDA device ({err})"
            raise ModelError(msg) from err
        log.info("registration runs as CUDA kernels (%d levels)", len(plan.levels))

    # -- buffers ------------------------------------------------------------------------------
    def alloc(self, nbytes: int) -> int:
        return self._stack.enter_context(DeviceBuffer(max(nbytes, 4))).ptr

    def upload(self, array: np.ndarray) -> int:
        data = np.ascontiguousarray(array)
        buffer = self._stack.enter_context(DeviceBuffer(max(data.nbytes, 4)))
        copy_to_device_sync(buffer, data)
        return buffer.ptr

    def twiddles(self, n: int) -> int:
        if n not in self._twiddles:
            self._twiddles[n] = self.upload(_twiddles(n))
        return self._twiddles[n]

    def _build(self, frame: Ptr) -> None:
        plan = self.plan
        self._frame = frame
        k = max(level.windowed.shape[0] for level in plan.levels)
        self._k0 = plan.levels[0].windowed.shape[0]
        self._kf = plan.fine.lk_template.shape[0]
        # The results: the whole-frame shift, a level's patch shifts, a gradient step's [K, 4];
        # on the host after the warp in.
        size = 2 + 2 * k + 4 * self._kf
        self._out = self.alloc(4 * size)
        self._pinned = self._stack.enter_context(PinnedBuffer(4 * (6 + size)))
        self._warp_host = self._pinned.view(np.float32, (6 + size,))
        self._warp = self.alloc(4 * 6)
        self._grad_at = 2 + 2 * k
        sh, sw = plan.levels[0].shape
        self._small = self.alloc(4 * sh * sw)
        first_warp = self.alloc(4 * 6)
        # The coarse run measures its first patch fit too, at the translation it found.
        coarse = self._whole_frame(first_warp) + self._patches(0, first_warp)
        self._coarse_run = self._step(coarse, False, 0, 2 + 2 * self._k0)
        self._patch_runs = [
            self._step(self._patches(i, self._warp), True, 2, 2 * level.windowed.shape[0])
            for i, level in enumerate(plan.levels)
        ]
        self._gradient_run = self._step([self._gradient()], True, self._grad_at, 4 * self._kf)

    def _whole_frame(self, warp_out: int) -> list[Launch]:
        """The coarse level from the frame, and the whole-frame phase correlation's peak: the
        translation into results[0:2], and as a pixel 2x3 into ``warp_out``."""
        plan, f, p = self.plan, self.functions, Ptr
        stride = max(1, plan.coarse // 2)
        sh, sw = plan.levels[0].shape
        args = (self._frame, plan.frame_shape[1], stride, plan.coarse // stride)
        runs = [Launch(f["decimate_u8"], (-(-sw // 128), sh), 128, (*args, p(self._small), sh, sw))]
        ch, cw = (_even(n) for n in plan.coarse_windowed.shape)
        whole = self.alloc(4 * ch * cw)
        window = self.upload(plan.coarse_window[:ch, :cw])
        args = (p(self._small), sw, int(plan.halve), p(window), p(whole), ch, cw)
        runs.append(Launch(f["coarse_input"], (-(-cw // 128), ch), 128, args))
        pc = _PhaseCorrelation(self, whole, 1, ch, cw, plan.coarse_windowed[None, :ch, :cw])
        scale = 2.0 if plan.halve else 1.0
        args = (p(pc.surface), ch, cw, scale, p(self._out), p(warp_out))
        return [*runs, *pc.launches, Launch(f["peak"], (1,), _THREADS, args)]

    def _patches(self, index: int, warp: int) -> list[Launch]:
        """The patches of ``levels[index]`` resampled at the pixel 2x3 in ``warp``, phase
        correlated; their peak shifts into results[2:2 + 2K]."""
        plan, f, p = self.plan, self.functions, Ptr
        level = plan.levels[index]
        k = level.windowed.shape[0]
        n = k * _P2
        if level.factor == 1:
            name, source, (sh, sw) = "sample_u8", self._frame, plan.frame_shape
        else:
            name, source, (sh, sw) = "sample_f32", p(self._small), level.shape
        if self._window is None:
            self._window = self.upload(plan.window)
        patches = self.alloc(4 * n)
        grid = self.upload(level.grid)
        args = (source, sh, sw, p(grid), n, p(warp), p(self._window), _P2, p(patches))
        sample = Launch(f[name], (-(-n // _THREADS),), _THREADS, args)
        pc = _PhaseCorrelation(self, patches, k, PATCH_PX, PATCH_PX, level.windowed)
        args = (p(pc.surface), PATCH_PX, PATCH_PX, 1.0, p(self._out + 8), p(0))
        return [sample, *pc.launches, Launch(f["peak"], (k,), _THREADS, args)]

    def _gradient(self) -> Launch:
        """The Gauss-Newton step of every full-resolution patch at the warp in; [K, 4] into
        the results after the patch shifts."""
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
        grid, blur, *rest = (p(self.upload(c)) for c in consts)
        args = (
            self._frame,
            h,
            w,
            grid,
            p(self._warp),
            blur,
            *rest,
            p(self._out + 4 * self._grad_at),
        )
        return Launch(self.functions["gradient"], (self._kf,), _THREADS, args)

    # -- running ------------------------------------------------------------------------------
    def _step(self, launches: list[Launch], warp: bool, first: int, count: int) -> _Step:
        step = _Step(self, launches, warp, first, count)
        if self._graphs:
            graph = self._stack.enter_context(CapturedGraph(self._stream))
            with self.device_lock:
                if graph.capture(step.enqueue):
                    step.graph = graph
        return step

    def run(self, step: _Step, warp: np.ndarray | None = None) -> np.ndarray:
        """One step: ``warp`` copied in, its kernels, its results copied back and waited for."""
        with self.device_lock:
            try:
                if warp is not None:
                    self._warp_host[:6] = np.asarray(warp, np.float32).ravel()
                if step.graph is not None:
                    step.graph.launch()
                else:
                    step.enqueue()
                self._stream.synchronize()
            except CudaError as err:
                msg = f"registration on the device failed: {err}"
                raise InferenceError(msg) from err
            return self._warp_host[6 + step.first : 6 + step.first + step.count].astype(np.float64)

    def _copy_in(self, image: np.ndarray) -> None:
        rt = cudart()
        with self.device_lock:
            call("cudaMemcpyAsync", int(self._frame), image.ctypes.data, image.nbytes,
                 rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self._stream.handle)  # fmt: skip

    @contextmanager
    def frame(self, image: np.ndarray) -> Iterator[FrameSteps]:
        with self.shared.lock:
            if image.shape != self.plan.frame_shape or image.dtype != np.uint8:
                want = f"a uint8 {self.plan.frame_shape} frame"
                msg = f"registration on the device needs {want}, got {image.dtype} {image.shape}"
                raise InferenceError(msg)
            self.shared.upload(image, copy=self._copy_in)
            yield _KernelFrame(self)

    def close(self) -> None:
        self._stack.close()


class _Step:
    """One measuring step's work on the stream: the warp in (from the pinned buffer), its
    kernels, its ``count`` results from ``first`` out; replayed as one CUDA graph where the
    capture succeeded."""

    def __init__(
        self, steps: KernelSteps, launches: list[Launch], warp: bool, first: int, count: int
    ) -> None:
        self._s = steps
        self.launches = launches
        self.warp = warp
        self.first = first
        self.count = count
        self.graph: CapturedGraph | None = None

    def enqueue(self) -> bool:
        s, rt = self._s, cudart()
        stream = s._stream.handle
        if self.warp:
            to_device = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
            call("cudaMemcpyAsync", s._warp, s._pinned.ptr, 24, to_device, stream)
        for launch in self.launches:
            launch(s.stream)
        host, dev = s._pinned.ptr + 4 * (6 + self.first), s._out + 4 * self.first
        to_host = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        call("cudaMemcpyAsync", host, dev, 4 * self.count, to_host, stream)
        return True


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
        den = (self._s._a * max(s_bb, 0.0)) ** 0.5
        return s_ab / den if den > 1e-6 else 0.0


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
        "the station starts)"
    )
