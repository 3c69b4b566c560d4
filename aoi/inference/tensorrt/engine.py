"""Engines for recipes: what to build (:func:`engine_target`) and build-if-needed (below).

One engine per distinct (model, TensorRT version, GPU, precision, profile, calibration data):
recipes that agree on all of these share one file; a recipe that differs in any gets its own
engine with one optimisation profile (docs/tensorrt.md explains why not one engine with a
profile per recipe).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

from aoi.errors import ModelError, RecipeError
from aoi.inference.tensorrt.build import BuildRequest, build_serialized, make_calibrator
from aoi.inference.tensorrt.cache import (
    CacheDecision,
    EngineKey,
    EnginePaths,
    calibration_cache_path,
    decide,
    engine_paths,
    timing_cache_path,
    write_engine,
)
from aoi.inference.tensorrt.calibration import (
    CalibrationData,
    CalibrationProvider,
    FedCount,
    check_enough,
    checked_batches,
)
from aoi.inference.tensorrt.cuda_mem import DeviceBuffer, GpuInfo, set_device
from aoi.inference.tensorrt.plan import (
    PrecisionPlan,
    ProfileShapes,
    calibration_shape,
    precision_plan,
    profile_for,
)
from aoi.recipe import LoadedRecipe, file_hash

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

#: Builder workspace when the station config names none (TensorRT's default is the whole GPU).
DEFAULT_WORKSPACE_MIB = 2048

TRT_MISSING_HINT = (
    "install TensorRT 10 and cuda-python on the station (pip install 'aoi-station[gpu]'), "
    "see docs/tensorrt.md"
)


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module; :class:`ModelError` saying why it is not importable."""
    try:
        import tensorrt
    except (ImportError, OSError) as err:
        msg = f"TensorRT is not importable here ({err}); {TRT_MISSING_HINT}"
        raise ModelError(msg) from err
    return tensorrt


@dataclass(frozen=True)
class EngineSettings:
    """The station's engine settings (``[inference]`` in the station config)."""

    engine_dir: Path
    workspace_mib: int = DEFAULT_WORKSPACE_MIB
    cuda_graph: bool = False
    device: int = 0


@dataclass(frozen=True)
class EngineTarget:
    """The engine one recipe needs on this station, and where it lives in the cache."""

    recipe_name: str
    recipe_path: Path
    model_path: Path
    key: EngineKey
    paths: EnginePaths
    precision: PrecisionPlan
    profile: ProfileShapes
    warnings: tuple[str, ...]
    #: For INT8: the calibration data whose digest is in ``key``; None otherwise.
    calibration: CalibrationData | None = None


def engine_target(
    loaded: LoadedRecipe,
    tensorrt_version: str,
    gpu: GpuInfo,
    settings: EngineSettings,
    model_path: Path | None = None,
    *,
    calibration: CalibrationProvider | None = None,
) -> EngineTarget:
    """Work out the engine for a recipe on this TensorRT and GPU (reads files, builds nothing).

    For an INT8 recipe ``calibration`` is asked for the recipe's calibration data (its digest
    goes into the key; its batches are not made here); other precisions never call it.
    """
    source = str(loaded.path)
    model = model_path or loaded.model_path
    if not model.is_file():
        msg = f"{source}: model.path must name an existing ONNX file, found none at {model}"
        raise ModelError(msg)
    profile, warnings = profile_for(loaded.recipe, source)
    plan = precision_plan(loaded.recipe.model.precision, tensorrt_version, source)
    data: CalibrationData | None = None
    if plan.calibrate:
        if calibration is None:
            msg = (
                f"{source}: model.precision int8 needs calibration data and the caller gave "
                f"none (aoi.app.calibration.recipe_calibration makes it from the recipe)"
            )
            raise ModelError(msg)
        data = calibration(loaded)
        if not data.digest:
            # An empty digest would let other calibration data reuse this engine and its scales.
            msg = f"{data.origin}: calibration data must come with a digest of what it is made of"
            raise ModelError(msg)
    key = EngineKey(
        model_sha256=file_hash(model),
        tensorrt_version=tensorrt_version,
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
        precision=plan.precision,
        profile=profile,
        calibration=data.digest if data is not None else "",
    )
    return EngineTarget(
        recipe_name=loaded.name,
        recipe_path=loaded.path,
        model_path=model,
        key=key,
        paths=engine_paths(settings.engine_dir, model, key),
        precision=plan,
        profile=profile,
        warnings=tuple(warnings),
        calibration=data,
    )


@dataclass
class EngineOutcome:
    """What :func:`ensure_engine` did: loaded the cached engine, or built one and why."""

    target: EngineTarget
    built: bool
    decision: CacheDecision
    build_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def ensure_engine(
    loaded: LoadedRecipe,
    target: EngineTarget,
    settings: EngineSettings,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> EngineOutcome:
    """The recipe's engine in the cache: kept if its sidecar proves it current, else built.

    A stale or foreign engine is never loaded; a corrupt one is rebuilt with a warning.
    """
    decision = (
        CacheDecision(False, "rebuild requested") if force else decide(target.paths, target.key)
    )
    if decision.load:
        return EngineOutcome(target, built=False, decision=decision)
    if decision.warn:
        log.warning("rebuilding engine for %s: %s", target.recipe_name, decision.reason)
    else:
        log.info("building engine for %s: %s", target.recipe_name, decision.reason)
    trt = import_tensorrt()
    set_device(settings.device)
    started = time.monotonic()
    request = BuildRequest(
        model_path=target.model_path,
        profile=target.profile,
        precision=target.precision,
        workspace_bytes=settings.workspace_mib << 20,
        timing_cache=timing_cache_path(
            settings.engine_dir,
            target.key.tensorrt_version,
            target.key.gpu_name,
            target.key.compute_capability,
        ),
    )
    notes: list[str] = []
    if target.precision.calibrate:
        data = _build_int8(trt, loaded, target, request, settings, progress, notes)
    else:
        data = build_serialized(trt, request, progress)
    seconds = time.monotonic() - started
    info = {
        "built_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 1),
        "workspace_mib": settings.workspace_mib,
        "built_for_recipe": target.recipe_name,
        "model_file": target.model_path.name,
    }
    write_engine(target.paths, target.key, data, info)
    log.info("engine for %s built in %.0f s: %s", target.recipe_name, seconds, target.paths.engine)
    return EngineOutcome(target, built=True, decision=decision, build_seconds=seconds, notes=notes)


def _build_int8(
    trt: ModuleType,
    loaded: LoadedRecipe,
    target: EngineTarget,
    request: BuildRequest,
    settings: EngineSettings,
    progress: Progress | None,
    notes: list[str],
) -> bytes:
    """An INT8 build: the target's calibration batches, through one device buffer."""
    data = target.calibration
    if data is None:
        msg = f"{target.recipe_path}: an INT8 engine target without calibration data"
        raise ModelError(msg)
    shape = calibration_shape(loaded.recipe.geometry)
    cache = calibration_cache_path(settings.engine_dir, target.key)
    had_cache = cache.is_file()
    fed = FedCount()
    batches = checked_batches(data, shape, fed)
    nbytes = shape[0] * shape[1] * shape[2] * shape[3]
    with DeviceBuffer(nbytes) as device:
        calibrator = make_calibrator(trt, batches, shape, device, cache, progress)
        request = replace(request, calibrator=calibrator, calibration_shape=shape)
        try:
            serialized = build_serialized(trt, request, progress)
        finally:
            batches.close()
    if had_cache:
        notes.append(f"INT8 scales taken from the calibration cache {cache}")
        return serialized
    try:
        check_enough(data, fed)
    except RecipeError:
        # Scales from too little data are not kept for the next build either.
        cache.unlink(missing_ok=True)
        raise
    notes.append(f"INT8 calibrated on {fed.batches} batch(es) {data.summary()}".rstrip())
    return serialized
