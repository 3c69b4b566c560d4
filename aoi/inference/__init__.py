"""Inference backends behind one protocol, and the small factory that picks one."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from aoi.errors import ModelError
from aoi.inference.base import InferenceBackend
from aoi.recipe import Profile

BackendName = Literal["auto", "onnxruntime", "onnxruntime-cuda"]


def create_backend(
    name: str, model_path: Path, profile: Profile, *, threads: int = 0
) -> InferenceBackend:
    """The backend called ``name`` for one model and recipe profile (not yet entered)."""
    if name in ("auto", "onnxruntime", "onnxruntime-cpu"):
        from aoi.inference.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model_path, profile, device="cpu", threads=threads)
    if name == "onnxruntime-cuda":
        from aoi.inference.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model_path, profile, device="cuda", threads=threads)
    msg = f"backend must be one of auto, onnxruntime, onnxruntime-cuda; got {name!r}"
    raise ModelError(msg)
