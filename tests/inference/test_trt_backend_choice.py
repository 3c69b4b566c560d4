"""Backend names and selection, station settings and the errors of a PC without TensorRT.

TensorRT cannot be installed in this project's environment (shared/DEVICE.md). Where a test needs
"TensorRT and a GPU are present", it monkeypatches the import and GPU probes: that mocks only what
cannot exist here, and only to check which backend the factory then picks; nothing is run on it.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from aoi.cli import build_parser
from aoi.config import InferenceConfig, load_station_config
from aoi.errors import InferenceError, ModelError, StationConfigError
from aoi.inference import create_backend, engine_settings, probe
from aoi.inference.base import InferenceBackend
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.inference.probe import Finding, choose_backend, probe_gpu
from aoi.inference.tensorrt.backend import TensorRTBackend
from aoi.inference.tensorrt.calibration import CalibrationData
from aoi.recipe import LoadedRecipe, load_recipe
from aoi.types import BackendName
from ui.cli import add_gui_parser

TRT_OK = Finding(True, "10.16.1.11")
TRT_NO = Finding(False, "No module named 'tensorrt'")
GPU_OK = Finding(True, "NVIDIA H100 80GB HBM3, compute capability 9.0")
GPU_NO = Finding(False, "cudaErrorNoDevice")
ORT_CUDA = Finding(True, "onnxruntime with CUDAExecutionProvider")
ORT_CPU = Finding(False, "onnxruntime offers ['CPUExecutionProvider'] (no CUDA)")
RecipeFactory = Callable[..., Path]
HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.parametrize(
    ("trt", "gpu", "ort", "has_recipe", "expected", "why"),
    [
        (TRT_OK, GPU_OK, ORT_CUDA, True, "tensorrt", "TensorRT 10.16.1.11 on NVIDIA H100"),
        (TRT_OK, GPU_NO, ORT_CUDA, True, "onnxruntime-cuda", "is installed but no GPU"),
        (TRT_NO, GPU_OK, ORT_CUDA, True, "onnxruntime-cuda", "no TensorRT: No module"),
        (TRT_NO, GPU_NO, ORT_CPU, True, "onnxruntime", "no TensorRT"),
        (TRT_OK, GPU_NO, ORT_CPU, True, "onnxruntime", "no GPU: cudaErrorNoDevice"),
        (TRT_OK, GPU_OK, ORT_CPU, False, "onnxruntime", "the caller gave no recipe"),
    ],
)
def test_auto_picks_tensorrt_then_ort_cuda_then_cpu(
    trt: Finding, gpu: Finding, ort: Finding, has_recipe: bool, expected: str, why: str
) -> None:
    chosen, reason = choose_backend(
        "auto", tensorrt=trt, gpu=gpu, ort_cuda=ort, has_recipe=has_recipe
    )
    assert chosen == expected
    assert why in reason


def test_named_backends_pass_and_unknown_ones_are_refused() -> None:
    for name in ("tensorrt", "onnxruntime", "onnxruntime-cuda"):
        assert choose_backend(name) == (BackendName(name), "requested")
    # A name a backend reports about itself is not one a station may ask for.
    for name in ("openvino", "onnxruntime-cpu", "tensorrt-fp16"):
        with pytest.raises(
            ModelError, match=rf"backend must be one of auto, onnxruntime, .*; got '{name}'"
        ):
            choose_backend(name)


def _gui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_gui_parser(parser.add_subparsers())
    return parser


def test_every_site_takes_exactly_the_backend_names(tmp_path: Path) -> None:
    """The CLI, the GUI, the station config and the factory accept the same names."""
    assert BackendName.choices() == ["auto", "onnxruntime", "onnxruntime-cuda", "tensorrt"]
    station = tmp_path / "station.toml"
    for name in BackendName.choices():
        assert build_parser().parse_args(["run", "--backend", name]).backend == name
        assert _gui_parser().parse_args(["gui", "--backend", name]).backend == name
        station.write_text(f"[inference]\nbackend = '{name}'\n")
        assert load_station_config(station).inference.backend is BackendName(name)
        assert choose_backend(name)[0] is not BackendName.AUTO
    assert InferenceConfig().backend is BackendName.AUTO
    for parser, command in ((build_parser(), "run"), (_gui_parser(), "gui")):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--backend", "onnxruntime-cpu"])
    station.write_text("[inference]\nbackend = 'onnxruntime-cpu'\n")
    with pytest.raises(StationConfigError, match=r"inference\.backend"):
        load_station_config(station)


def test_factory_auto_builds_tensorrt_backend_where_probes_say_so(
    make_recipe: RecipeFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Probes mocked (TensorRT and a GPU cannot exist here); the backend is not entered."""
    monkeypatch.setattr(probe, "probe_tensorrt", lambda: TRT_OK)
    monkeypatch.setattr(probe, "probe_gpu", lambda: GPU_OK)
    loaded = load_recipe(make_recipe())
    profile = loaded.recipe.geometry.profile
    station = tmp_path / "station.toml"
    station.write_text("[inference]\nengine_dir = 'engines'\ncuda_graph = true\n")
    config = load_station_config(station).inference
    backend = create_backend("auto", loaded.model_path, profile, recipe=loaded, inference=config)
    assert isinstance(backend, TensorRTBackend)
    assert isinstance(backend, InferenceBackend)  # the protocol the cycle sees
    assert backend.name == "tensorrt-fp32"
    assert backend.settings.engine_dir == tmp_path / "engines"
    assert backend.settings.cuda_graph
    # Without the recipe, auto stays with ONNX Runtime (precision and calibration live there).
    assert isinstance(create_backend("auto", loaded.model_path, profile), OnnxRuntimeBackend)


def test_factory_hands_calibration_to_tensorrt_without_asking_for_it(
    make_recipe: RecipeFactory,
) -> None:
    """The calibration provider reaches the backend; nothing is asked before it is entered."""
    loaded = load_recipe(make_recipe())
    asked: list[LoadedRecipe] = []

    def provider(recipe: LoadedRecipe) -> CalibrationData:
        asked.append(recipe)
        return CalibrationData("d" * 64, lambda: [], "test")

    backend = create_backend(
        "tensorrt",
        loaded.model_path,
        loaded.recipe.geometry.profile,
        recipe=loaded,
        calibration=provider,
    )
    assert isinstance(backend, TensorRTBackend)
    assert backend.calibration is provider
    assert asked == []


def test_factory_tensorrt_needs_the_recipe(make_recipe: RecipeFactory) -> None:
    loaded = load_recipe(make_recipe())
    with pytest.raises(ModelError, match="backend tensorrt needs the recipe"):
        create_backend("tensorrt", loaded.model_path, loaded.recipe.geometry.profile)


def test_station_inference_section(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text("[inference]\nbackend = 'tensorrt'\nworkspace_mib = 4096\n")
    config = load_station_config(path).inference
    assert (config.backend, config.workspace_mib, config.cuda_graph) == ("tensorrt", 4096, False)
    settings = engine_settings(config)
    assert settings.engine_dir.name == "engines" and settings.workspace_mib == 4096
    path.write_text("[inference]\nworkspace_mib = 8\n")
    with pytest.raises(StationConfigError, match=r"inference\.workspace_mib"):
        load_station_config(path)


def test_station_pad_batch_reaches_the_onnxruntime_backend(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    loaded = load_recipe(make_recipe())
    profile = loaded.recipe.geometry.profile
    path = tmp_path / "station.toml"
    for text, cpu_pads in (
        ("", False),
        ("pad_batch = true\n", True),
        ("pad_batch = false\n", False),
    ):
        path.write_text("[inference]\n" + text)
        config = load_station_config(path).inference
        backend = create_backend("onnxruntime", loaded.model_path, profile, inference=config)
        assert isinstance(backend, OnnxRuntimeBackend)
        assert backend.pad_batch is cpu_pads, text


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed: the missing-TensorRT path is moot")
def test_tensorrt_backend_says_why_it_cannot_open(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    loaded = load_recipe(make_recipe())
    backend = TensorRTBackend(loaded, engine_settings(None))
    with pytest.raises(ModelError, match=r"TensorRT is not importable here .*docs/tensorrt\.md"):
        backend.__enter__()
    with pytest.raises(InferenceError, match="outside its context manager"):
        backend.predict(np.zeros((1, 2, 256, 256), np.uint8))


def test_cuda_calls_are_checked_against_real_cuda_python() -> None:
    """Real cuda-python on a PC without a GPU: errors name the call and CUDA's error."""
    pytest.importorskip("cuda.bindings", reason="cuda-python is not installed (the gpu extra)")
    from aoi.inference.tensorrt import cuda_mem

    if probe_gpu().ok:
        assert cuda_mem.device_count() >= 1
        return
    with pytest.raises(cuda_mem.CudaError, match=r"CUDA call cudaGetDeviceCount failed: cudaError"):
        cuda_mem.device_count()
    with pytest.raises(cuda_mem.CudaError, match=r"CUDA call cudaMallocHost failed: cudaError"):
        cuda_mem.PinnedBuffer(1024).__enter__()
