"""Real frames from the Viky GenTL producer (shipped in the genicam wheel) through the cycle.

The verdict does not matter here (Viky draws a bouncing ball, not a board); the path does:
harvesters -> GenICamSource -> registration -> ONNX Runtime -> postprocess -> verdict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import genicam
import pytest

from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.pipeline import Pipeline, run_cycles
from aoi.recipe import CameraSettings, load_recipe
from aoi.sources.genicam import GenICamSource
from aoi.types import STAGES, ErrorKind, Verdict

VIKY = Path(genicam.__file__).parent / "viky.cti"
RecipeFactory = Callable[..., Path]

pytestmark = [
    pytest.mark.skipif(
        not VIKY.is_file(), reason=f"the genicam package ships no Viky producer at {VIKY}"
    ),
    pytest.mark.integration,  # harvesters on the Viky GenTL producer
]


def test_viky_frames_run_through_the_cycle(make_recipe: RecipeFactory, tmp_path: Path) -> None:
    settings = CameraSettings(
        pixel_format="Mono8",
        roi_width_px=320,
        roi_height_px=240,
        nodes={"AcquisitionFrameRate": 100.0},
    )
    with GenICamSource(cti_paths=[VIKY], device="0", settings=settings) as camera:
        golden = camera.grab(2.0).image
        assert golden.shape == (240, 320)
        recipe = make_recipe(name="viky", width=320, height=240, template=golden)
        loaded = load_recipe(recipe)
        profile = loaded.recipe.geometry.profile
        with OnnxRuntimeBackend(loaded.model_path, profile, threads=1) as backend:
            pipeline = Pipeline(loaded, backend)
            results = []
            stats = run_cycles(pipeline, camera, cycles=5, on_result=results.append)
    assert stats.cycles == 5
    assert all(r.frame_id >= 0 for r in results), [r.error for r in results]
    assert all(r.error_kind is not ErrorKind.CAMERA_TIMEOUT for r in results)
    assert [r.frame_id for r in results] == sorted(r.frame_id for r in results)
    for r in results:
        assert "acquire" in r.stages_ms, "every frame reached the cycle"
        if r.verdict is Verdict.ERROR:
            # Viky's ball moves: registration refuses it, and says why. Never a silent OK.
            assert "register" not in r.stages_ms
            assert r.error_kind is ErrorKind.REGISTRATION, r.error
            assert any(w in r.error for w in ("registration", "board shift", "rotation"))
        else:
            assert set(r.stages_ms) == set(STAGES)
    assert stats.summary()["cycle_ms"]["p50"] > 0


@pytest.mark.slow  # a subprocess importing the station and opening the camera
def test_aoi_run_on_a_genicam_camera_from_the_environment(tmp_path: Path) -> None:
    """`aoi run --source genicam:0` with GENICAM_GENTL64_PATH, the shipped 640x640 recipe."""
    env = dict(os.environ, GENICAM_GENTL64_PATH=str(VIKY.parent))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aoi.cli",
            "run",
            "--source",
            "genicam:0",
            "--cycles",
            "3",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["cycles"] == 3
    assert summary["source"] == "genicam:0"
    # The recipe's ROI (640x640) was applied to Viky, so no frame fails the size check.
    assert "bad_frame" not in summary.get("errors", {})
