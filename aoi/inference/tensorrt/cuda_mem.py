"""CUDA through cuda-python's runtime bindings: checked calls, and resources as context managers.

Every cuda-python call returns a tuple whose first item is a ``cudaError_t``; :func:`call`
checks it and raises :class:`CudaError` naming the call and the error. Pinned host memory,
device memory, the stream and captured CUDA graphs are context managers, released on exit with
the release checked too (a failed free is an error the operator sees, never swallowed).

cuda-python is imported when first needed: ``cuda.bindings.runtime`` (cuda-python >= 12.6),
else the older ``cuda.cudart``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

from aoi.errors import InferenceError

_cudart: ModuleType | None = None

INSTALL_HINT = "install the station's gpu extra: pip install 'aoi-station[gpu]'"


class CudaError(InferenceError):
    """A CUDA runtime call failed; the message names the call and CUDA's error."""


class CudaUnavailable(InferenceError):
    """cuda-python is not installed (the message says how to install it)."""


def cudart() -> ModuleType:
    """cuda-python's runtime module, imported on first use."""
    global _cudart  # noqa: PLW0603 (one import per process, on first use)
    if _cudart is None:
        try:
            from cuda.bindings import runtime as module
        except ImportError:
            try:
                from cuda import cudart as module  # type: ignore[no-redef]  # cuda-python < 12.6
            except ImportError as err:
                msg = f"cuda-python is not installed ({err}); {INSTALL_HINT}"
                raise CudaUnavailable(msg) from err
        _cudart = module
    return _cudart


def error_text(err: Any) -> str:
    """``cudaErrorNoDevice (no CUDA-capable device is detected)`` for a ``cudaError_t``."""
    rt = cudart()
    name_err, name = rt.cudaGetErrorName(err)
    text_err, text = rt.cudaGetErrorString(err)
    name_s = name.decode() if name_err == rt.cudaError_t.cudaSuccess else f"error {int(err)}"
    if text_err == rt.cudaError_t.cudaSuccess:
        return f"{name_s} ({text.decode()})"
    return name_s


def check(name: str, result: tuple[Any, ...]) -> Any:
    """The value(s) of a cuda-python call's result; :class:`CudaError` if its error is set."""
    err, values = result[0], result[1:]
    if err != cudart().cudaError_t.cudaSuccess:
        msg = f"CUDA call {name} failed: {error_text(err)}"
        raise CudaError(msg)
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def call(name: str, *args: Any) -> Any:
    """Call ``cudart.<name>(*args)`` and check its error."""
    return check(name, getattr(cudart(), name)(*args))


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: str
    memory_bytes: int


def device_count() -> int:
    return int(call("cudaGetDeviceCount"))


def gpu_info(index: int = 0) -> GpuInfo:
    """Name, compute capability and memory of one GPU, as CUDA reports them."""
    prop = call("cudaGetDeviceProperties", index)
    raw = prop.name
    name = (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)).rstrip("\x00")
    return GpuInfo(index, name.strip(), f"{prop.major}.{prop.minor}", int(prop.totalGlobalMem))


def version_text(encoded: int) -> str:
    """CUDA's 12040 as ``12.4``."""
    return f"{encoded // 1000}.{(encoded % 1000) // 10}"


def driver_version() -> str:
    """The CUDA version the installed driver supports (``0`` when there is no driver)."""
    return version_text(int(call("cudaDriverGetVersion")))


def runtime_version() -> str:
    return version_text(int(call("cudaRuntimeGetVersion")))


def set_device(index: int) -> None:
    call("cudaSetDevice", index)


class PinnedBuffer:
    """Page-locked host memory (``cudaMallocHost``): the only host memory async copies overlap."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.ptr = 0
        self._array: np.ndarray | None = None

    def __enter__(self) -> PinnedBuffer:
        self.ptr = int(call("cudaMallocHost", self.nbytes))
        raw = (ctypes.c_uint8 * self.nbytes).from_address(self.ptr)
        self._array = np.frombuffer(raw, dtype=np.uint8)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._array = None
        ptr, self.ptr = self.ptr, 0
        if ptr:
            call("cudaFreeHost", ptr)

    def view(self, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        """A numpy view of the first bytes as ``dtype[shape]`` (valid until the buffer closes)."""
        if self._array is None:
            msg = "pinned buffer used outside its context manager"
            raise InferenceError(msg)
        count = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self._array[:count].view(dtype).reshape(shape)


class DeviceBuffer:
    """GPU memory (``cudaMalloc``)."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.ptr = 0

    def __enter__(self) -> DeviceBuffer:
        self.ptr = int(call("cudaMalloc", self.nbytes))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ptr, self.ptr = self.ptr, 0
        if ptr:
            call("cudaFree", ptr)


class Stream:
    """One non-blocking CUDA stream: copies and inference are queued on it in order."""

    def __init__(self) -> None:
        self._stream: Any = None

    def __enter__(self) -> Stream:
        rt = cudart()
        self._stream = call("cudaStreamCreateWithFlags", rt.cudaStreamNonBlocking)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                call("cudaStreamSynchronize", stream)
            finally:
                call("cudaStreamDestroy", stream)

    @property
    def handle(self) -> Any:
        if self._stream is None:
            msg = "CUDA stream used outside its context manager"
            raise InferenceError(msg)
        return self._stream

    @property
    def handle_int(self) -> int:
        """The raw ``cudaStream_t`` for TensorRT's ``execute_async_v3(stream_handle)``."""
        return int(self.handle)

    def synchronize(self) -> None:
        call("cudaStreamSynchronize", self.handle)

    def copy_to_device(self, dst: DeviceBuffer, src: PinnedBuffer, nbytes: int) -> None:
        kind = cudart().cudaMemcpyKind.cudaMemcpyHostToDevice
        call("cudaMemcpyAsync", dst.ptr, src.ptr, nbytes, kind, self.handle)

    def copy_to_host(self, dst: PinnedBuffer, src: DeviceBuffer, nbytes: int) -> None:
        kind = cudart().cudaMemcpyKind.cudaMemcpyDeviceToHost
        call("cudaMemcpyAsync", dst.ptr, src.ptr, nbytes, kind, self.handle)


def copy_to_device_sync(dst: DeviceBuffer, src: np.ndarray) -> None:
    """A blocking host-to-device copy from any contiguous array (calibration, not the cycle)."""
    kind = cudart().cudaMemcpyKind.cudaMemcpyHostToDevice
    data = np.ascontiguousarray(src)
    if data.nbytes > dst.nbytes:
        msg = f"{data.nbytes} bytes do not fit a device buffer of {dst.nbytes} bytes"
        raise InferenceError(msg)
    call("cudaMemcpy", dst.ptr, data.ctypes.data, data.nbytes, kind)


class CapturedGraph:
    """A CUDA graph captured from work queued on a stream, replayed with one launch.

    Capture follows trtexec: the work is run once uncaptured first (so TensorRT's lazy
    set-up for the current shapes happens outside the graph), then captured in thread-local
    mode. If the work refuses capture (``enqueue`` returns False, or CUDA invalidates the
    capture), :meth:`capture` cleans up and returns False; the caller goes on without a graph.
    """

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self._exec: Any = None

    def capture(self, enqueue: Callable[[], bool]) -> bool:
        rt = cudart()
        if not enqueue():
            msg = "TensorRT's execute_async_v3 failed before CUDA graph capture"
            raise InferenceError(msg)
        self.stream.synchronize()
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        call("cudaStreamBeginCapture", self.stream.handle, mode)
        queued = False
        try:
            queued = enqueue()
        finally:
            # The capture is always ended, also when enqueue raised, or the stream stays unusable.
            err, graph = rt.cudaStreamEndCapture(self.stream.handle)
            if not queued and err == rt.cudaError_t.cudaSuccess and graph is not None:
                call("cudaGraphDestroy", graph)
        if not queued or err != rt.cudaError_t.cudaSuccess:
            if err not in (
                rt.cudaError_t.cudaSuccess,
                rt.cudaError_t.cudaErrorStreamCaptureInvalidated,
            ):
                check("cudaStreamEndCapture", (err,))
            # A refused capture leaves its error as CUDA's last error: reset it, as trtexec does.
            rt.cudaGetLastError()
            return False
        try:
            self._exec = call("cudaGraphInstantiate", graph, 0)
        finally:
            call("cudaGraphDestroy", graph)
        return True

    def launch(self) -> None:
        if self._exec is None:
            msg = "CUDA graph launched before a successful capture"
            raise InferenceError(msg)
        call("cudaGraphLaunch", self._exec, self.stream.handle)

    def __enter__(self) -> CapturedGraph:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        graph_exec, self._exec = self._exec, None
        if graph_exec is not None:
            call("cudaGraphExecDestroy", graph_exec)
