"""What this PC can run, and which backend ``auto`` picks from that.

The probes import TensorRT and cuda-python and ask CUDA for a GPU; each answers with a
:class:`Finding` (found, and the version or the reason it is not usable) instead of raising, so
``aoi doctor`` (:mod:`aoi.app.doctor`) and the backend factory can report every reason in plain
words.
:func:`choose_backend` is pure: tests feed it findings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aoi.errors import InferenceError, ModelError
from aoi.types import BackendName


@dataclass(frozen=True)
class Finding:
    """Whether something is usable here, and its version or why not."""

    ok: bool
    detail: str


def probe_tensorrt() -> Finding:
    """``import tensorrt``: its version, or the import error."""
    from aoi.inference.tensorrt.engine import import_tensorrt

    try:
        trt = import_tensorrt()
    except ModelError as err:
        return Finding(False, str(err))
    return Finding(True, str(trt.__version__))


def probe_gpu(index: int = 0) -> Finding:
    """GPU ``index`` through cuda-python: ``NVIDIA H100 80GB HBM3, compute capability 9.0``."""
    from aoi.inference.tensorrt import cuda_mem

    try:
        count = cuda_mem.device_count()
        if count <= index:
            return Finding(False, f"CUDA sees {count} GPU(s); GPU {index} is not there")
        gpu = cuda_mem.gpu_info(index)
    except InferenceError as err:  # CudaError, CudaUnavailable
        return Finding(False, str(err))
    return Finding(True, f"{gpu.name}, compute capability {gpu.compute_capability}")


def probe_cuda() -> dict[str, Any]:
    """cuda-python's version and the CUDA driver and runtime versions, as plain data.

    Each value is the version or the reason it is unknown; nothing raises.
    """
    from aoi.inference.tensorrt import cuda_mem

    out: dict[str, Any] = {}
    try:
        cuda_mem.cudart()
    except cuda_mem.CudaUnavailable as err:
        return {"cuda_python": str(err)}
    try:
        from cuda import bindings

        out["cuda_python"] = str(bindings.__version__)
    except ImportError:
        out["cuda_python"] = "installed (a version before cuda.bindings)"
    for field, query in (
        ("driver", cuda_mem.driver_version),
        ("runtime", cuda_mem.runtime_version),
    ):
        try:
            out[field] = query()
        except cuda_mem.CudaError as err:
            out[field] = f"unknown: {err}"
    if out.get("driver") == "0.0":
        out["driver"] = "none: no NVIDIA driver is loaded"
    return out


def probe_ort_cuda() -> Finding:
    """Whether onnxruntime offers its CUDA execution provider (onnxruntime-gpu)."""
    import onnxruntime as ort

    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" in providers:
        return Finding(True, f"onnxruntime {ort.__version__} with CUDAExecutionProvider")
    return Finding(False, f"onnxruntime {ort.__version__} offers {providers} (no CUDA)")


def backend_name(requested: str) -> BackendName:
    """``requested`` as a :class:`BackendName`; :class:`ModelError` listing the names if none."""
    try:
        return BackendName(requested)
    except ValueError:
        msg = f"backend must be one of {', '.join(BackendName.choices())}; got {requested!r}"
        raise ModelError(msg) from None


def choose_backend(
    requested: str,
    *,
    tensorrt: Finding | None = None,
    gpu: Finding | None = None,
    ort_cuda: Finding | None = None,
    has_recipe: bool = True,
) -> tuple[BackendName, str]:
    """The backend to create for ``requested`` (never ``auto``), and a sentence saying why.

    ``auto`` is TensorRT where ``import tensorrt`` works, a GPU answers through cuda-python and
    the caller passed the recipe (precision and calibration come from it); else ONNX Runtime's
    CUDA provider where installed; else ONNX Runtime on the CPU. Findings not given are probed.
    """
    name = backend_name(requested)
    if name is not BackendName.AUTO:
        return name, "requested"
    reasons = []
    if not has_recipe:
        reasons.append("TensorRT not considered: the caller gave no recipe")
    else:
        tensorrt = tensorrt or probe_tensorrt()
        if tensorrt.ok:
            gpu = gpu or probe_gpu()
            if gpu.ok:
                return BackendName.TENSORRT, f"TensorRT {tensorrt.detail} on {gpu.detail}"
            reasons.append(f"TensorRT {tensorrt.detail} is installed but no GPU: {gpu.detail}")
        else:
            reasons.append(f"no TensorRT: {tensorrt.detail}")
    ort_cuda = ort_cuda or probe_ort_cuda()
    if ort_cuda.ok:
        return BackendName.ONNXRUNTIME_CUDA, "; ".join([*reasons, ort_cuda.detail])
    return BackendName.ONNXRUNTIME, "; ".join([*reasons, ort_cuda.detail])
