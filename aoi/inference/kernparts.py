"""Building blocks of registration's CUDA kernels (:mod:`aoi.inference.kernreg`): device memory
owned by one exit stack, the four DFT passes of a phase correlation, and a measuring step's work
on the stream (captured once as a CUDA graph where CUDA allows)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import numpy as np

from aoi.errors import InferenceError
from aoi.inference.cuda_kernels import Launch, Ptr, driver_stream
from aoi.inference.tensorrt.cuda_mem import (
    CapturedGraph,
    DeviceBuffer,
    PinnedBuffer,
    Stream,
    call,
    copy_to_device_sync,
    cudart,
)

#: Threads in a block at most: the DFT kernels give each row or column one block.
MAX_SIDE = 1024


def twiddles(n: int) -> np.ndarray:
    """exp(-2 pi i k / n), k < n, as interleaved float32 (re, im)."""
    k = np.arange(n, dtype=np.float64)
    tw = np.exp(-2j * np.pi * k / n)
    return np.stack([tw.real, tw.imag], -1).astype(np.float32)


def spectrum(images: np.ndarray) -> np.ndarray:
    """The 2-D DFT of each image [B, h, w] as interleaved float32 (re, im)."""
    f = np.fft.fft2(images.astype(np.float64))
    return np.stack([f.real, f.imag], -1).astype(np.float32)


class DeviceMemory:
    """Device buffers, page-locked host buffers and the stream of one set of kernels, all
    released by :meth:`close`."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack
        self.stream = stack.enter_context(Stream())
        #: The stream as the driver API's launches take it.
        self.driver_stream = driver_stream(self.stream.handle)
        self._twiddles: dict[int, int] = {}

    def alloc(self, nbytes: int) -> int:
        return self._stack.enter_context(DeviceBuffer(max(nbytes, 4))).ptr

    def upload(self, array: np.ndarray) -> int:
        data = np.ascontiguousarray(array)
        buffer = self._stack.enter_context(DeviceBuffer(max(data.nbytes, 4)))
        copy_to_device_sync(buffer, data)
        return buffer.ptr

    def pinned(self, dtype: type, count: int) -> tuple[int, np.ndarray]:
        """A page-locked host array of ``count`` items: its address and a numpy view."""
        buffer = self._stack.enter_context(PinnedBuffer(count * np.dtype(dtype).itemsize))
        return buffer.ptr, buffer.view(np.dtype(dtype), (count,))

    def twiddles(self, n: int) -> int:
        if n not in self._twiddles:
            self._twiddles[n] = self.upload(twiddles(n))
        return self._twiddles[n]

    def graph(self) -> CapturedGraph:
        return self._stack.enter_context(CapturedGraph(self.stream))


def phase_correlation(
    memory: DeviceMemory, functions: dict[str, Any], src: int, b: int, h: int, w: int,
    tmpl: np.ndarray,
) -> tuple[list[Launch], int]:  # fmt: skip
    """The four DFT passes of B images [B, h, w] at ``src`` against the template images
    ``tmpl``: the launches and the surfaces' buffer, whose peaks lie at the images' shifts."""
    if max(h, w) > MAX_SIDE:  # a row or column is one block of threads
        msg = f"phase correlation kernels take surfaces up to {MAX_SIDE} wide, got {h}x{w}"
        raise InferenceError(msg)
    tw_w, tw_h = Ptr(memory.twiddles(w)), Ptr(memory.twiddles(h))
    spec = Ptr(memory.upload(spectrum(tmpl)))
    c1, c2 = Ptr(memory.alloc(b * h * w * 8)), Ptr(memory.alloc(b * h * w * 8))
    surface = memory.alloc(b * h * w * 4)
    f = functions
    launches = [
        Launch(f["dft_rows"], (h, b), w, (Ptr(src), c1, h, w, tw_w), 4 * w),
        Launch(f["dft_cols_cross"], (w, b), h, (c1, spec, c2, h, w, tw_h), 8 * h),
        Launch(f["idft_cols"], (w, b), h, (c2, c1, h, w, tw_h), 8 * h),
        Launch(f["idft_rows_real"], (h, b), w, (c1, Ptr(surface), h, w, tw_w), 8 * w),
    ]
    return launches, surface


class Step:
    """One measuring step's work on the stream: the warp in (``warp_in``: host, device, bytes),
    its kernels, its results out (``copies_out``); replayed as one CUDA graph where the capture
    succeeded (:meth:`capture`). ``first`` and ``count`` say which float results it gives."""

    def __init__(
        self,
        memory: DeviceMemory,
        launches: list[Launch],
        warp_in: tuple[int, int, int] | None,
        copies_out: list[tuple[int, int, int]],
        results: tuple[int, int],
    ) -> None:
        self._memory = memory
        self.launches = launches
        self.warp_in = warp_in
        self.copies_out = copies_out
        self.first, self.count = results
        self.graph: CapturedGraph | None = None

    def enqueue(self) -> bool:
        rt, handle = cudart(), self._memory.stream.handle
        stream = self._memory.driver_stream
        if self.warp_in is not None:
            host, dev, nbytes = self.warp_in
            call("cudaMemcpyAsync", dev, host, nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                 handle)  # fmt: skip
        for launch in self.launches:
            launch(stream)
        for host, dev, nbytes in self.copies_out:
            call("cudaMemcpyAsync", host, dev, nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                 handle)  # fmt: skip
        return True

    def capture(self) -> None:
        graph = self._memory.graph()
        if graph.capture(self.enqueue):
            self.graph = graph

    def queue(self) -> None:
        """Queue the step: its graph, or launch by launch."""
        if self.graph is not None:
            self.graph.launch()
        else:
            self.enqueue()

    def run(self) -> None:
        """Queue the step and wait for it."""
        self.queue()
        self._memory.stream.synchronize()
