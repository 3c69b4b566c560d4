"""Backend selection, station settings, the CLI's reports and the errors of a PC without TensorRT.

TensorRT cannot be installed in this project's environment (shared/DEVICE.md). Where a test needs
"TensorRT and a GPU are present", it monkeypatches the import and GPU probes: that mocks only what
cannot exist here, and only to check which backend the factory then picks; nothing is run on it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from aoi.config import load_station_config
from aoi.errors import InferenceError, ModelError, StationConfigError
from aoi.inference import create_backend, engine_settings, probe
from aoi.inference.base import InferenceBackend
from aoi.inference.cli import (
    add_build_engine_parser,
    add_doctor_parser,
    cmd_build_engine,
    doctor_report,
    parse_nvidia_smi,
)
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.inference.probe import Finding, choose_backend, probe_gpu
from aoi.inference.tensorrt.backend import TensorRTBackend
from aoi.recipe import load_recipe

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
        assert choose_backend(name) == (name, "requested")
    with pytest.raises(
        ModelError, match=r"backend must be one of auto, onnxruntime.*got 'openvino'"
    ):
        choose_backend("openvino")


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


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed: the missing-TensorRT path is moot")
def test_build_engine_without_tensorrt_names_the_fix(make_recipe: RecipeFactory) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_build_engine_parser(sub)
    add_doctor_parser(sub)
    args = parser.parse_args(["build-engine", "--recipe", str(make_recipe())])
    with pytest.raises(ModelError, match=r"pip install 'aoi-station\[gpu\]'"):
        cmd_build_engine(args)
    with pytest.raises(ModelError, match="needs --recipe NAME"):
        cmd_build_engine(parser.parse_args(["build-engine"]))


def test_parse_nvidia_smi() -> None:
    text = "0, NVIDIA H100 80GB HBM3, 9.0, 580.65.06, 81559\n\nnot, a, row\n"
    assert parse_nvidia_smi(text) == [
        {
            "index": "0",
            "name": "NVIDIA H100 80GB HBM3",
            "compute_cap": "9.0",
            "driver_version": "580.65.06",
            "memory.total": "81559",
        }
    ]


def test_doctor_reports_every_part_in_plain_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AOI_ENGINE_DIR", str(tmp_path / "engines"))
    report = doctor_report(None, None)
    assert set(report) == {
        "tensorrt",
        "cuda",
        "gpu",
        "nvidia_smi",
        "onnxruntime",
        "genicam",
        "engine_cache",
        "backend_auto",
    }
    assert report["engine_cache"] == {
        "folder": str(tmp_path / "engines"),
        "exists": False,
        "engines": [],
    }
    assert report["tensorrt"]["ok"] == HAS_TRT
    json.dumps(report)


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
