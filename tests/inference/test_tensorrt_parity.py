"""TensorRT against ONNX Runtime on the same inputs: runs only where TensorRT and a GPU exist.

In this project's environment TensorRT cannot be installed (shared/DEVICE.md), so every test here
is skipped with that reason; on a station with the ``gpu`` extra they build real engines in a
temporary cache and compare real outputs (docs/tensorrt.md, "Verifying parity").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("tensorrt", reason="TensorRT is not installed here (see docs/tensorrt.md)")
pytest.importorskip("cuda.bindings", reason="cuda-python is not installed (see docs/tensorrt.md)")

from aoi.app.calibration import (
    CycleInputs,
    recipe_calibration,
    synthetic_batches,
)
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.inference.parity import run_parity
from aoi.inference.probe import probe_gpu
from aoi.inference.tensorrt.backend import TensorRTBackend
from aoi.inference.tensorrt.engine import EngineSettings
from aoi.recipe import LoadedRecipe, load_recipe
from aoi.sources.synthetic import SyntheticSource

RecipeFactory = Callable[..., Path]

_gpu = probe_gpu()
pytestmark = pytest.mark.skipif(not _gpu.ok, reason=f"no GPU for TensorRT: {_gpu.detail}")


def _precision(path: Path, precision: str) -> LoadedRecipe:
    path.write_text(path.read_text().replace("[model]\n", f'[model]\nprecision = "{precision}"\n'))
    return load_recipe(path)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("graphs", [False, True])
def test_tensorrt_matches_onnxruntime(
    make_recipe: RecipeFactory, tmp_path: Path, precision: str, graphs: bool
) -> None:
    # Tiles make batches of 4, 4 and 1: shape changes between calls, as on the panel.
    loaded = _precision(make_recipe(mode="tiles", tile=128), precision)
    settings = EngineSettings(tmp_path / "engines", workspace_mib=256, cuda_graph=graphs)
    with (
        OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile) as ort,
        TensorRTBackend(loaded, settings) as trt,
    ):
        assert trt.model_hash == ort.model_hash
        report = run_parity(ort, trt, synthetic_batches(loaded, boards=3), precision)
    assert report.passed, report.text()
    assert report.batches == 9


def test_int8_engine_calibrates_on_the_recipes_images_then_reuses_the_scales(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    """INT8 with the app's calibration data: calibrated once, scales kept in the cache."""
    loaded = _precision(make_recipe(mode="tiles", tile=128), "int8")
    loaded.path.write_text(
        loaded.path.read_text().replace("[model]\n", '[model]\ncalibration_dir = "calib"\n')
    )
    loaded = load_recipe(loaded.path)
    (tmp_path / "calib").mkdir()
    maker = CycleInputs(loaded)
    with SyntheticSource(maker.template, loaded.recipe.synthetic, seed=3) as source:
        # 9 tiles a board in batches of 4: 10 boards make 22 batches (at least 8 are needed).
        for i in range(10):
            cv2.imwrite(str(tmp_path / "calib" / f"board-{i:02d}.png"), source.grab().image)
    settings = EngineSettings(tmp_path / "engines", workspace_mib=256)
    with (
        OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile) as ort,
        TensorRTBackend(loaded, settings, calibration=recipe_calibration) as trt,
    ):
        assert trt.outcome is not None and trt.outcome.built
        assert any(n.startswith("INT8 calibrated on 22 batch(es)") for n in trt.outcome.notes)
        report = run_parity(ort, trt, synthetic_batches(loaded, boards=3), "int8")
    assert report.passed, report.text()
    with TensorRTBackend(loaded, settings, calibration=recipe_calibration) as trt:
        assert trt.outcome is not None and not trt.outcome.built


def test_cached_engine_is_reused_and_a_corrupt_one_rebuilt(
    make_recipe: RecipeFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = load_recipe(make_recipe())
    settings = EngineSettings(tmp_path / "engines", workspace_mib=256)
    batch = np.zeros((1, 2, 256, 256), np.uint8)
    with TensorRTBackend(loaded, settings) as trt:
        assert trt.outcome is not None and trt.outcome.built
        engine = trt.outcome.target.paths.engine
        first = trt.predict(batch)
    with TensorRTBackend(loaded, settings) as trt:
        assert trt.outcome is not None and not trt.outcome.built
        again = trt.predict(batch)
        np.testing.assert_array_equal(again.classes, first.classes)
        np.testing.assert_array_equal(again.scores, first.scores)
    engine.write_bytes(engine.read_bytes()[:100])
    with caplog.at_level(logging.WARNING), TensorRTBackend(loaded, settings) as trt:
        assert trt.outcome is not None and trt.outcome.built
    assert "corrupt engine file" in caplog.text
