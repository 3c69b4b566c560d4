"""Inference backends behind one protocol, and the small factory that picks one."""

from __future__ import annotations

from pathlib import Path

from aoi.errors import ModelError
from aoi.inference.base import InferenceBackend
from aoi.recipe import Profile


def create_backend(
    name: str, model_path: Path, profile: Profile, *, threads: int = 0
) -> InferenceBackend:
    """The backend called ``name`` for one model and recipe profile (not yet entered).

    ``auto`` takes ONNX Runtime's CUDA provider where onnxruntime-gpu offers it, else the CPU.
    (The TensorRT backend joins ``auto`` when it exists.)
    """
    if name == "auto":
        import onnxruntime as ort

        cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        name = "onnxruntime-cuda" if cuda else "onnxruntime"
    if name in ("onnxruntime", "onnxruntime-cpu", "onnxruntime-cuda"):
        from aoi.inference.onnxruntime import OnnxRuntimeBackend

        device = "cuda" if name == "onnxruntime-cuda" else "cpu"
        return OnnxRuntimeBackend(model_path, profile, device=device, threads=threads)
    msg = f"backend must be one of auto, onnxruntime, onnxruntime-cuda; got {name!r}"
    raise ModelError(msg)
