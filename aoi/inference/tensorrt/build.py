"""Build a TensorRT engine from the station's ONNX model for one recipe's profile and precision.

The flow is TensorRT 10's: a network (always explicit batch in TensorRT 10, so no creation
flag), the ONNX parser with every parse error reported per node, one optimisation profile from
the recipe's min/opt/max, precision flags from :func:`aoi.inference.tensorrt.plan.precision_plan`,
an INT8 entropy calibrator fed with cycle-made batches, the workspace limit, a persistent
timing cache, and ``build_serialized_network``. ``tensorrt`` is passed in (imported by the
caller on first use), so this module imports without TensorRT.

TensorRT calls Python callbacks (logger, progress monitor, calibrator) from C++ and cannot carry a
Python exception back: each callback keeps the first exception it meets, and the build re-raises
it once TensorRT returns.
"""

from __future__ import annotations

import importlib.util
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from aoi.errors import ModelError
from aoi.inference.base import CLASS_NAME, INPUT_NAME, SCORE_NAME
from aoi.inference.tensorrt.cache import atomic_write
from aoi.inference.tensorrt.cuda_mem import DeviceBuffer, copy_to_device_sync
from aoi.inference.tensorrt.plan import PrecisionPlan, ProfileShapes, Shape4, dims_text

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def make_logger(trt: ModuleType) -> Any:
    """A ``trt.ILogger`` that forwards TensorRT's messages to :mod:`logging` and keeps errors."""
    severity = trt.ILogger.Severity
    levels = {
        severity.INTERNAL_ERROR: logging.CRITICAL,
        severity.ERROR: logging.ERROR,
        severity.WARNING: logging.WARNING,
        severity.INFO: logging.DEBUG,
        severity.VERBOSE: logging.DEBUG,
    }

    class _Logger(trt.ILogger):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, sev: Any, msg: str) -> None:
            level = levels.get(sev, logging.INFO)
            if level >= logging.ERROR:
                self.errors.append(msg)
            log.log(level, "TensorRT: %s", msg)

    return _Logger()


def parser_error_text(
    index: int, code: object, desc: str, node: int, node_name: str, node_operator: str
) -> str:
    """One ONNX parse error as a line naming the node: ``node 12 'conv_3' (Conv): ...``."""
    where = "the graph" if node < 0 else f"node {node}"
    if node_name:
        where += f" {node_name!r}"
    if node_operator:
        where += f" ({node_operator})"
    return f"  [{index}] {where}: {desc} [{code}]"


def parse_onnx(trt: ModuleType, model_path: Path, logger: Any) -> tuple[Any, Any, Any]:
    """Builder, network and parser holding the parsed model; errors named per node.

    The parser reads the reduced graph (:mod:`aoi.inference.reduce`: ``cls`` and ``score``
    instead of ``probs``), the same edit ONNX Runtime runs, so the engine copies back 5 bytes a
    cell instead of 28.
    """
    if importlib.util.find_spec("onnx") is None:
        msg = f"{model_path}: building an engine needs the onnx package (pip install onnx)"
        raise ModelError(msg)
    from aoi.inference.reduce import reduced_bytes

    model = reduced_bytes(model_path)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model, str(model_path)):
        lines = []
        for i in range(parser.num_errors):
            e = parser.get_error(i)
            lines.append(
                parser_error_text(i, e.code(), e.desc(), e.node(), e.node_name(), e.node_operator())
            )
        msg = (
            f"{model_path}: TensorRT's ONNX parser rejected the model with {parser.num_errors} "
            "error(s):\n" + "\n".join(lines)
        )
        raise ModelError(msg)
    check_network(trt, network, model_path)
    return builder, network, parser


def check_network(trt: ModuleType, network: Any, model_path: Path) -> None:
    """The parsed network honours the station's contract (the same one ONNX Runtime checks)."""
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = [network.get_output(i).name for i in range(network.num_outputs)]
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        found = [t.name for t in inputs]
        msg = f"{model_path}: model must have one input {INPUT_NAME!r}, found {found}"
        raise ModelError(msg)
    tensor = inputs[0]
    if tensor.dtype != trt.DataType.UINT8:
        msg = f"{model_path}: input {INPUT_NAME!r} must be UINT8, found {tensor.dtype}"
        raise ModelError(msg)
    shape = tuple(tensor.shape)
    if len(shape) != 4 or shape[1] not in (2, -1):
        msg = f"{model_path}: input {INPUT_NAME!r} must be [N, 2, H, W], found {dims_text(shape)}"
        raise ModelError(msg)
    if not {CLASS_NAME, SCORE_NAME} <= set(outputs):
        want = [CLASS_NAME, SCORE_NAME]
        msg = f"{model_path}: the reduced model must have the outputs {want}, found {outputs}"
        raise ModelError(msg)


def make_progress_monitor(trt: ModuleType, progress: Progress) -> Any:
    """A ``trt.IProgressMonitor`` reporting each top-level build phase and its steps."""

    class _Monitor(trt.IProgressMonitor):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.failure: BaseException | None = None
            self._steps: dict[str, int] = {}
            self._last = 0.0

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._steps[phase_name] = num_steps
            if parent_phase is None:
                self._say(f"{phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            now = time.monotonic()
            if now - self._last >= 2.0:
                self._last = now
                self._say(f"{phase_name}: {step + 1}/{self._steps.get(phase_name, '?')}")
            return self.failure is None

        def phase_finish(self, phase_name: str) -> None:
            self._steps.pop(phase_name, None)

        def _say(self, text: str) -> None:
            try:
                progress(text)
            except Exception as err:  # noqa: BLE001 (cannot cross TensorRT's C++; re-raised after)
                self.failure = self.failure or err

    return _Monitor()


def make_calibrator(
    trt: ModuleType,
    batches: Iterator[np.ndarray],
    shape: Shape4,
    device: DeviceBuffer,
    cache_path: Path,
    progress: Progress | None,
) -> Any:
    """An ``IInt8EntropyCalibrator2`` feeding ``batches`` (uint8, ``shape``) through ``device``.

    It reads and writes the calibration cache at ``cache_path``: with a cache present,
    TensorRT takes the scales from it and asks for no batch.
    """

    class _Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.failure: BaseException | None = None
            self.fed = 0

        def get_batch_size(self) -> int:
            # Deprecated with implicit batch in TensorRT 10; explicit-batch networks take the
            # batch from the calibration profile, which this matches.
            return shape[0]

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.failure is not None:
                return None
            try:
                # calibration_batches checks each batch's shape; the buffer checks its size.
                batch = next(batches, None)
                if batch is None:
                    return None
                copy_to_device_sync(device, batch)
                self.fed += 1
                if progress is not None and self.fed % 10 == 1:
                    progress(f"INT8 calibration: batch {self.fed}")
            except Exception as err:  # noqa: BLE001 (cannot cross TensorRT's C++; re-raised after)
                self.failure = err
                return None
            return [device.ptr] * len(names)

        def read_calibration_cache(self) -> bytes | None:
            if cache_path.is_file():
                log.info("INT8 scales from calibration cache %s", cache_path)
                return cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache: memoryview) -> None:
            try:
                atomic_write(cache_path, bytes(cache))
            except OSError as err:
                self.failure = self.failure or err

    return _Calibrator()


@dataclass(frozen=True)
class BuildRequest:
    model_path: Path
    profile: ProfileShapes
    precision: PrecisionPlan
    workspace_bytes: int
    timing_cache: Path
    #: For INT8: a calibrator from :func:`make_calibrator` and its batch shape.
    calibrator: Any = None
    calibration_shape: Shape4 | None = None


def _attach_timing_cache(config: Any, path: Path) -> None:
    """The persistent timing cache, loaded from ``path`` (a fresh one if absent or refused)."""
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is None and data:
        log.warning("timing cache %s is corrupt; starting an empty one", path)
        cache = config.create_timing_cache(b"")
    if not config.set_timing_cache(cache, False):
        log.warning("timing cache %s was made on another device or version; starting fresh", path)
        cache = config.create_timing_cache(b"")
        if not config.set_timing_cache(cache, False):
            msg = "TensorRT refused an empty timing cache"
            raise ModelError(msg)


def build_serialized(trt: ModuleType, request: BuildRequest, progress: Progress | None) -> bytes:
    """Parse, configure and build; the serialized engine (plan) as bytes."""
    say = progress or (lambda _text: None)
    logger = make_logger(trt)
    say(f"parsing {request.model_path.name}")
    builder, network, _parser = parse_onnx(trt, request.model_path, logger)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, request.workspace_bytes)
    p = request.profile
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, p.min, p.opt, p.max)
    if config.add_optimization_profile(profile) < 0:
        msg = f"{request.model_path}: TensorRT refused the optimisation profile {p.text()}"
        raise ModelError(msg)
    for flag in request.precision.set_flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    for flag in request.precision.clear_flags:
        config.clear_flag(getattr(trt.BuilderFlag, flag))
    if request.precision.calibrate:
        if request.calibrator is None or request.calibration_shape is None:
            msg = "precision int8 needs a calibrator and its batch shape"
            raise ModelError(msg)
        shape = request.calibration_shape
        calib = builder.create_optimization_profile()
        calib.set_shape(INPUT_NAME, shape, shape, shape)
        # Implicit quantisation is deprecated since TensorRT 10.1 (removed in 11) and the
        # bindings warn on every use; the choice is made and documented (docs/tensorrt.md).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            config.int8_calibrator = request.calibrator
            accepted = config.set_calibration_profile(calib)
        if not accepted:
            msg = f"TensorRT refused the calibration profile {dims_text(shape)}"
            raise ModelError(msg)
    _attach_timing_cache(config, request.timing_cache)
    monitor = None
    if progress is not None:
        monitor = make_progress_monitor(trt, progress)
        config.progress_monitor = monitor
    say(f"building {request.precision.precision} engine for {p.text()} (this takes minutes)")
    serialized = builder.build_serialized_network(network, config)
    for callback in (request.calibrator, monitor):
        failure = getattr(callback, "failure", None)
        if failure is not None:
            msg = f"{request.model_path}: engine build stopped: {failure}"
            raise ModelError(msg) from failure
    if serialized is None:
        detail = "; ".join(logger.errors[-5:]) or "see the TensorRT messages in the log"
        msg = f"{request.model_path}: TensorRT could not build the engine: {detail}"
        raise ModelError(msg)
    # The attached cache now holds this build's timings too; keep them for the next build.
    atomic_write(request.timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized))
