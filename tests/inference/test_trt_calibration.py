"""INT8 calibration data as the engine builder takes it, and engine targets, without TensorRT.

The builder gets a :class:`CalibrationData` from the app layer (aoi/app/calibration.py, tested in
tests/app/test_calibration.py): its digest goes into the engine key and names the calibration
cache; its batches are made only for a build, checked against the calibration shape and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from aoi.app.calibration import calibration_digest, calibration_images, recipe_calibration
from aoi.errors import FrameError, ModelError, RecipeError
from aoi.inference import engine_settings
from aoi.inference.parity import compare
from aoi.inference.tensorrt.cache import calibration_cache_path
from aoi.inference.tensorrt.calibration import (
    MIN_CALIBRATION_BATCHES,
    CalibrationData,
    FedCount,
    check_enough,
    checked_batches,
)
from aoi.inference.tensorrt.cuda_mem import GpuInfo
from aoi.inference.tensorrt.engine import engine_target
from aoi.recipe import LoadedRecipe, load_recipe
from aoi.sources.synthetic.boardgen import golden_board

RecipeFactory = Callable[..., Path]
GPU = GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0", 80 << 30)
TRT = "10.16.1.11"


def _int8(path: Path) -> LoadedRecipe:
    text = path.read_text().replace(
        "[model]\n", '[model]\nprecision = "int8"\ncalibration_dir = "calib"\n'
    )
    path.write_text(text)
    return load_recipe(path)


def _images(folder: Path, count: int) -> list[Path]:
    folder.mkdir(exist_ok=True)
    out = []
    for i in range(count):
        path = folder / f"board-{i:02d}.png"
        cv2.imwrite(str(path), golden_board(256, 256, 20 + i, "binary"))
        out.append(path)
    return out


class _Provider:
    """A calibration provider that records what is asked of it."""

    def __init__(self, digest: str = "d" * 64, batches: int = 0) -> None:
        self.digest = digest
        self.count = batches
        self.asked: list[str] = []
        self.made = 0

    def __call__(self, loaded: LoadedRecipe) -> CalibrationData:
        self.asked.append(loaded.name)
        return CalibrationData(self.digest, self.batches, f"{loaded.path}: test data")

    def batches(self) -> Iterator[np.ndarray]:
        self.made += 1
        for i in range(self.count):
            yield np.full((4, 2, 8, 8), i, np.uint8)


def test_engine_targets_for_fp32_and_int8(make_recipe: RecipeFactory, tmp_path: Path) -> None:
    settings = engine_settings(None)
    provider = _Provider()
    fp32 = load_recipe(make_recipe())
    target = engine_target(fp32, TRT, GPU, settings, calibration=provider)
    assert (target.key.precision, target.key.calibration, target.calibration) == ("fp32", "", None)
    assert target.key.gpu_name == GPU.name and target.key.compute_capability == "9.0"
    assert target.paths.engine.parent == settings.engine_dir
    assert provider.asked == []  # only INT8 recipes need calibration data
    int8 = _int8(make_recipe(name="board-int8"))
    target8 = engine_target(int8, TRT, GPU, settings, calibration=provider)
    assert target8.precision.calibrate and target8.key.calibration == provider.digest
    assert target8.calibration is not None and target8.calibration.digest == provider.digest
    assert (provider.asked, provider.made) == (["board-int8"], 0)  # no batches for a target
    with pytest.raises(ModelError, match=r"model\.precision int8 needs TensorRT 10"):
        engine_target(int8, "11.4.0.106", GPU, settings, calibration=provider)


def test_int8_target_needs_calibration_data_with_a_digest(make_recipe: RecipeFactory) -> None:
    int8 = _int8(make_recipe())
    settings = engine_settings(None)
    with pytest.raises(
        ModelError,
        match=r"test-board\.toml: model\.precision int8 needs calibration data .*"
        r"recipe_calibration",
    ):
        engine_target(int8, TRT, GPU, settings)
    with pytest.raises(ModelError, match=r"test data: calibration data must come with a digest"):
        engine_target(int8, TRT, GPU, settings, calibration=_Provider(digest=""))


def test_engine_and_calibration_cache_follow_the_calibration_images(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    """The cache key: same images, same engine and scales; an edited image, new ones."""
    settings = engine_settings(None)
    int8 = _int8(make_recipe())
    images = _images(tmp_path / "calib", 2)

    def target() -> tuple[str, Path, Path]:
        t = engine_target(int8, TRT, GPU, settings, calibration=recipe_calibration)
        cache = calibration_cache_path(settings.engine_dir, t.key)
        return t.key.calibration, t.paths.engine, cache

    first = target()
    assert first[0] == calibration_digest(int8, calibration_images(int8))
    assert first[2].name.endswith(f"-{first[0][:16]}.cache")
    assert target() == first
    images[1].write_bytes(images[1].read_bytes() + b"\0")
    second = target()
    assert all(a != b for a, b in zip(first, second, strict=True))
    (tmp_path / "calib" / "board-02.png").write_bytes(images[0].read_bytes())
    assert target()[0] not in (first[0], second[0])


def test_batches_are_made_on_demand_checked_and_counted() -> None:
    provider = _Provider(batches=3)
    data = CalibrationData("d" * 64, provider.batches, "board.toml: test data", lambda: "from x")
    fed = FedCount()
    batches = checked_batches(data, (4, 2, 8, 8), fed)
    assert provider.made == 0  # nothing until the calibrator asks
    assert [int(b[0, 0, 0, 0]) for b in batches] == [0, 1, 2]
    assert (provider.made, fed.batches) == (1, 3)
    with pytest.raises(
        RecipeError,
        match=rf"board\.toml: test data must give at least {MIN_CALIBRATION_BATCHES} "
        r"calibration batches, found 3 from x",
    ):
        check_enough(data, fed)
    fed.batches = MIN_CALIBRATION_BATCHES
    check_enough(data, fed)
    for wrong in ((4, 2, 8, 16), (3, 2, 8, 8)):
        with pytest.raises(
            FrameError, match=r"test data: calibration batch uint8 .* must be uint8"
        ):
            list(checked_batches(data, wrong, FedCount()))
    floats = CalibrationData("d", lambda: [np.zeros((4, 2, 8, 8), np.float32)], "f")
    with pytest.raises(FrameError, match=r"calibration batch float32"):
        list(checked_batches(floats, (4, 2, 8, 8), FedCount()))


@pytest.mark.parametrize(
    ("precision", "offset", "flip", "passed", "problem"),
    [
        ("fp32", 5e-4, 0, True, ""),
        ("fp32", 5e-3, 0, False, "max |diff| 5.00e-03 must be <= 1e-03"),
        ("fp16", 5e-3, 0, True, ""),
        ("fp16", 2e-2, 0, False, "max |diff|"),
        ("int8", 5e-3, 0, True, ""),
        ("int8", 5e-3, 40, False, "class agreement"),
    ],
)
def test_parity_tolerances_per_precision(
    precision: str, offset: float, flip: int, passed: bool, problem: str
) -> None:
    rng = np.random.default_rng(0)
    reference = rng.dirichlet(np.ones(7), size=(1, 32, 32)).transpose(0, 3, 1, 2)
    reference = reference.astype(np.float32)
    candidate = reference + np.float32(offset)
    if flip:
        # Swap the top class in some cells: what INT8 must not do often.
        cells = candidate.reshape(7, -1)
        top = cells.argmax(axis=0)[:flip]
        cells[top, np.arange(flip)] = -1.0
    report = compare([(reference, candidate)], precision)
    assert report.passed is passed, report.text()
    assert problem in report.text()
