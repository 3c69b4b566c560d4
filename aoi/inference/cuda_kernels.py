"""CUDA C kernels compiled at start-up (NVRTC) and launched on a stream, through cuda-python.

The station's own kernels (``aoi/inference/kernreg.cu``) are compiled for the device it runs on
when a backend first needs them; memory and streams are the runtime API's
(:mod:`aoi.inference.tensorrt.cuda_mem`), module loading and launches the driver API's, both in
the primary context the runtime and ONNX Runtime use. A launch's arguments are packed once
(:class:`Launch`): the cycle then pays one driver call per kernel.
"""

from __future__ import annotations

import threading
from importlib import resources
from types import ModuleType
from typing import Any

import numpy as np

from aoi.inference.tensorrt.cuda_mem import (
    INSTALL_HINT,
    CudaError,
    CudaUnavailable,
    cudart,
    gpu_info,
    set_device,
)

_local = threading.local()


def _modules() -> tuple[ModuleType, ModuleType]:
    try:
        from cuda.bindings import driver, nvrtc
    except ImportError as err:
        msg = f"cuda-python's driver and NVRTC bindings are missing ({err}); {INSTALL_HINT}"
        raise CudaUnavailable(msg) from err
    return driver, nvrtc


def nvrtc_version() -> str:
    """NVRTC's version (``13.0``); :class:`CudaUnavailable` where its library cannot be loaded."""
    _, nvrtc = _modules()
    try:
        _, major, minor = nvrtc.nvrtcVersion()
    except RuntimeError as err:  # cuda.pathfinder's DynamicLibNotFoundError
        msg = (
            f"NVRTC's library is not found ({' '.join(str(err).split())}); install NVIDIA's "
            "nvidia-cuda-nvrtc wheel of the driver's CUDA major"
        )
        raise CudaUnavailable(msg) from err
    return f"{major}.{minor}"


def dcall(name: str, *args: Any) -> Any:
    """Call ``cuda.bindings.driver.<name>(*args)`` and check its ``CUresult``."""
    driver, _ = _modules()
    result = getattr(driver, name)(*args)
    err, values = result[0], result[1:]
    if err != driver.CUresult.CUDA_SUCCESS:
        _, text = driver.cuGetErrorString(err)
        msg = f"CUDA call {name} failed: {err.name} ({text.decode() if text else 'no text'})"
        raise CudaError(msg)
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def on_device(index: int = 0) -> None:
    """Make the device's primary context current in the calling thread (once per thread)."""
    if getattr(_local, "device", None) != index:
        set_device(index)
        _local.device = index


def compile_cubin(file: str, arch: str) -> bytes:
    """``aoi/inference/<file>`` compiled by NVRTC for ``arch`` (``sm_90``); needs no device. A
    compile error raises :class:`CudaError` with NVRTC's log."""
    _, nvrtc = _modules()
    nvrtc_version()
    source = resources.files("aoi.inference").joinpath(file).read_text(encoding="utf-8")
    err, prog = nvrtc.nvrtcCreateProgram(source.encode(), file.encode(), 0, [], [])
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        msg = f"NVRTC could not take {file}: {err.name}"
        raise CudaError(msg)
    try:
        options = [f"--gpu-architecture={arch}".encode(), b"--std=c++17"]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(options), options)
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            _, size = nvrtc.nvrtcGetProgramLogSize(prog)
            log = b" " * size
            nvrtc.nvrtcGetProgramLog(prog, log)
            msg = f"NVRTC could not compile {file} for {arch}: {log.decode().strip()}"
            raise CudaError(msg)
        _, size = nvrtc.nvrtcGetCUBINSize(prog)
        cubin = b" " * size
        nvrtc.nvrtcGetCUBIN(prog, cubin)
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
    return cubin


def load_module(file: str, index: int = 0) -> Any:
    """The ``CUmodule`` of ``aoi/inference/<file>`` compiled for device ``index``."""
    on_device(index)
    major, minor = gpu_info(index).compute_capability.split(".")
    image = np.frombuffer(compile_cubin(file, f"sm_{major}{minor}"), np.uint8)
    return dcall("cuModuleLoadData", image.ctypes.data)


def unload(module: Any) -> None:
    dcall("cuModuleUnload", module)


def kernel(module: Any, name: str) -> Any:
    return dcall("cuModuleGetFunction", module, name.encode())


class Ptr(int):
    """A device pointer argument (``T*`` in the kernel)."""


class F64(float):
    """A ``double`` argument (a plain float goes as ``float``)."""


class Launch:
    """One kernel launch with its arguments packed once: ints go as ``int``, floats as
    ``float``, :class:`Ptr` as pointers (the buffers must outlive the launch)."""

    def __init__(
        self,
        function: Any,
        grid: tuple[int, ...],
        block: int,
        args: tuple[object, ...],
        shared_bytes: int = 0,
    ) -> None:
        driver, _ = _modules()
        self._f = function
        self._grid = (*grid, 1, 1)[:3]
        self._block = block
        self._shared = shared_bytes
        self._values = [_packed(a) for a in args]
        self._params = np.array([v.ctypes.data for v in self._values], np.uint64)
        self._launch = driver.cuLaunchKernel
        self._ok = driver.CUresult.CUDA_SUCCESS

    def __call__(self, stream: Any) -> None:
        gx, gy, gz = self._grid
        (err,) = self._launch(
            self._f,
            gx,
            gy,
            gz,
            self._block,
            1,
            1,
            self._shared,
            stream,
            self._params.ctypes.data,
            0,
        )
        if err != self._ok:
            msg = f"CUDA kernel launch failed: {err.name}"
            raise CudaError(msg)


def _packed(arg: object) -> np.ndarray:
    if isinstance(arg, Ptr):
        return np.array([int(arg)], np.uint64)
    if isinstance(arg, F64):
        return np.array([float(arg)], np.float64)
    if isinstance(arg, bool | int | np.integer):
        return np.array([int(arg)], np.int32)
    if isinstance(arg, float | np.floating):
        return np.array([float(arg)], np.float32)
    msg = f"a kernel argument must be a Ptr, an int or a float, not {type(arg).__name__}"
    raise TypeError(msg)


def driver_stream(handle: Any) -> Any:
    """The driver API's ``CUstream`` for a runtime ``cudaStream_t``."""
    driver, _ = _modules()
    return driver.CUstream(int(handle))


def available() -> str | None:
    """Why the station's CUDA kernels cannot run here, or None."""
    try:
        nvrtc_version()
        cudart()
    except CudaUnavailable as err:
        return str(err)
    return None
