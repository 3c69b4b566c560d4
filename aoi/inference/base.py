"""The one protocol every inference backend implements."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, runtime_checkable

import numpy as np

from aoi.types import ClassMaps

#: Name of the model input: uint8 [N, 2, H, W], board under test then golden template.
INPUT_NAME = "boards"
#: Name of the model output: float32 [N, 1 + classes, H/S, W/S] softmax probabilities.
OUTPUT_NAME = "probs"
#: Outputs of a model reduced at load (aoi/inference/reduce.py): uint8 [N, H/S, W/S] winning
#: class ids, and their probabilities.
CLASS_NAME = "cls"
SCORE_NAME = "score"


#: The name ONNX Runtime's CPU backend gives itself (``InferenceBackend.name``).
CPU_BACKEND = "onnxruntime-cpu"


@runtime_checkable
class InferenceBackend(Protocol):
    """Runs the defect network; the cycle cannot tell one backend from another.

    A backend is a context manager that owns its session/engine and device memory. ``predict``
    takes a uint8 ``[N, 2, H, W]`` batch inside the recipe's optimisation profile and returns the
    float32 probability maps, or :class:`ClassMaps` where the backend reduces the output on the
    device (aoi/inference/reduce.py); a batch outside the profile raises
    :class:`aoi.errors.InferenceError`.

    ``warps_on_device`` says the backend registers channel 0 itself (aoi/inference/warp.py):
    ``predict`` then takes ``affine``, float32 ``[N, 2, 3]`` normalised inverse maps (None: the
    identity, for a batch already registered), and the cycle skips its CPU warp.
    """

    name: str
    model_hash: str
    warps_on_device: bool

    def __enter__(self) -> InferenceBackend: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def predict(
        self, batch: np.ndarray, affine: np.ndarray | None = None
    ) -> np.ndarray | ClassMaps: ...
