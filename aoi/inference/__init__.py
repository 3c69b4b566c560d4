"""Inference backends behind one protocol, and the small factory that picks one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from aoi.errors import ModelError
from aoi.inference.base import InferenceBackend
from aoi.inference.probe import choose_backend
from aoi.recipe import LoadedRecipe, Profile
from aoi.types import BackendName

if TYPE_CHECKING:
    from aoi.config import InferenceConfig
    from aoi.inference.tensorrt.calibration import CalibrationProvider
    from aoi.inference.tensorrt.engine import EngineSettings

log = logging.getLogger(__name__)


def engine_settings(config: InferenceConfig | None) -> EngineSettings:
    """The TensorRT engine settings of a station's ``[inference]`` section (defaults if None)."""
    from aoi.inference.tensorrt.cache import default_engine_dir
    from aoi.inference.tensorrt.engine import DEFAULT_WORKSPACE_MIB, EngineSettings

    if config is None:
        return EngineSettings(default_engine_dir(), DEFAULT_WORKSPACE_MIB, cuda_graph=False)
    return EngineSettings(
        engine_dir=config.engine_dir or default_engine_dir(),
        workspace_mib=config.workspace_mib,
        cuda_graph=config.cuda_graph,
    )


def create_backend(
    name: BackendName | str,
    model_path: Path,
    profile: Profile,
    *,
    threads: int = 0,
    recipe: LoadedRecipe | None = None,
    inference: InferenceConfig | None = None,
    calibration: CalibrationProvider | None = None,
) -> InferenceBackend:
    """The backend called ``name`` for one model and recipe profile (not yet entered).

    ``auto`` takes TensorRT where ``import tensorrt`` works, a GPU is present and ``recipe`` is
    given (TensorRT builds for the recipe's precision and calibration); else ONNX Runtime's CUDA
    provider where onnxruntime-gpu offers it; else the CPU. ``inference`` is the station's
    ``[inference]`` section (engine cache folder, builder workspace, CUDA graphs).
    ``calibration`` gives an INT8 recipe's calibration data
    (:func:`aoi.app.calibration.recipe_calibration`); TensorRT asks for it when the backend is
    entered, and makes its batches only when it builds the engine.
    """
    chosen, why = choose_backend(name, has_recipe=recipe is not None)
    if name == BackendName.AUTO:
        log.info("backend auto -> %s: %s", chosen, why)
    if chosen is BackendName.TENSORRT:
        if recipe is None:
            msg = (
                "backend tensorrt needs the recipe (its precision and INT8 calibration images); "
                "pass recipe= to create_backend"
            )
            raise ModelError(msg)
        if recipe.recipe.geometry.profile != profile:
            msg = f"{recipe.path}: the profile given must be the recipe's geometry.profile"
            raise ModelError(msg)
        from aoi.inference.tensorrt.backend import TensorRTBackend

        return TensorRTBackend(
            recipe, engine_settings(inference), model_path=model_path, calibration=calibration
        )
    from aoi.inference.onnxruntime import OnnxRuntimeBackend

    device = "cuda" if chosen is BackendName.ONNXRUNTIME_CUDA else "cpu"
    pad = inference.pad_batch if inference is not None else None
    return OnnxRuntimeBackend(model_path, profile, device=device, threads=threads, pad_batch=pad)
