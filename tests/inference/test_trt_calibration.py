"""INT8 calibration inputs and engine targets, without TensorRT.

Calibration batches must be what the cycle feeds the network (registered board + template, cut
into tiles, uint8 [N, 2, H, W]); these tests make them from synthetic boards and compare with the
cycle's own input builder. TensorRT's calibrator itself is not run here (no TensorRT).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from aoi.errors import ModelError, RecipeError
from aoi.inference import engine_settings
from aoi.inference.parity import compare
from aoi.inference.tensorrt.calibration import (
    BatchStats,
    CycleInputs,
    batches_of,
    calibration_batches,
    calibration_digest,
    calibration_images,
    check_enough,
)
from aoi.inference.tensorrt.cuda_mem import GpuInfo
from aoi.inference.tensorrt.engine import engine_target
from aoi.recipe import LoadedRecipe, load_recipe
from aoi.sources.synthetic import SyntheticSource

RecipeFactory = Callable[..., Path]
GPU = GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0", 80 << 30)


def _int8(path: Path, calibration: str | None = "calib") -> LoadedRecipe:
    text = path.read_text()
    line = f'calibration_dir = "{calibration}"\n' if calibration else ""
    text = text.replace("[model]\n", f'[model]\nprecision = "int8"\n{line}')
    path.write_text(text)
    return load_recipe(path)


def _boards(loaded: LoadedRecipe, folder: Path, count: int) -> list[Path]:
    folder.mkdir(exist_ok=True)
    template = CycleInputs(loaded).template
    out = []
    with SyntheticSource(template, loaded.recipe.synthetic, seed=5) as source:
        for i in range(count):
            path = folder / f"board-{i:02d}.png"
            cv2.imwrite(str(path), source.grab().image)
            out.append(path)
    return out


@pytest.mark.parametrize(
    ("setting", "make", "message"),
    [
        (None, False, r"model\.calibration_dir is required for precision int8"),
        ("missing", False, r"model\.calibration_dir must name a folder of images, found none at"),
        ("calib", True, r"model\.calibration_dir .*calib holds no images; expected .*\.png"),
    ],
)
def test_calibration_folder_errors_name_the_field(
    make_recipe: RecipeFactory, tmp_path: Path, setting: str | None, make: bool, message: str
) -> None:
    loaded = _int8(make_recipe(), setting)
    if make:
        (tmp_path / "calib").mkdir()
        (tmp_path / "calib" / "notes.txt").write_text("not an image")
    with pytest.raises(RecipeError, match=rf"test-board\.toml: {message}"):
        calibration_images(loaded)


def test_batches_have_exactly_the_calibration_shape() -> None:
    stats = BatchStats()
    tiles = (np.full((2, 4, 4), i, np.uint8) for i in range(5))
    batches = list(batches_of(tiles, 2, stats))
    assert [b.shape for b in batches] == [(2, 2, 4, 4)] * 2
    assert [int(b[0, 0, 0, 0]) for b in batches] == [0, 2]
    assert (stats.batches, stats.tiles_left_over) == (2, 1)


def test_calibration_batches_are_the_cycles_inputs(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    loaded = _int8(make_recipe(mode="tiles", tile=128))
    boards = _boards(loaded, tmp_path / "calib", 3)
    (tmp_path / "calib" / "z-broken.png").write_bytes(b"not a png")
    cv2.imwrite(str(tmp_path / "calib" / "z-small.png"), np.zeros((64, 64), np.uint8))
    images = calibration_images(loaded)
    assert len(images) == 5
    stats = BatchStats()
    batches = list(calibration_batches(loaded, images, stats))
    # 256x256 in 128 px tiles with 16 px overlap: 3x3 = 9 tiles a board; batches of 4.
    assert [b.shape for b in batches] == [(4, 2, 128, 128)] * 6
    assert (stats.images_used, stats.tiles_left_over) == (3, 3)
    assert [s.split(":")[0] for s in stats.skipped] == ["z-broken.png", "z-small.png"]
    cycle = CycleInputs(loaded).batches(cv2.imread(str(boards[0]), cv2.IMREAD_UNCHANGED))
    np.testing.assert_array_equal(batches[0], cycle[0])
    with pytest.raises(RecipeError, match=r"at least 8 calibration batches, found 6 from 3"):
        check_enough(stats, str(loaded.path))


def test_calibration_digest_follows_images_and_template(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    loaded = _int8(make_recipe())
    boards = _boards(loaded, tmp_path / "calib", 2)
    first = calibration_digest(loaded, boards)
    assert calibration_digest(loaded, boards) == first
    boards[1].write_bytes(boards[1].read_bytes() + b"\0")
    assert calibration_digest(loaded, boards) != first
    second = calibration_digest(loaded, boards)
    loaded.template_path.write_bytes(loaded.template_path.read_bytes() + b"\0")
    assert calibration_digest(loaded, boards) != second


def test_engine_targets_for_fp32_and_int8(make_recipe: RecipeFactory, tmp_path: Path) -> None:
    settings = engine_settings(None)
    fp32 = load_recipe(make_recipe())
    target = engine_target(fp32, "10.16.1.11", GPU, settings)
    assert (target.key.precision, target.key.calibration) == ("fp32", "")
    assert target.key.gpu_name == GPU.name and target.key.compute_capability == "9.0"
    assert target.paths.engine.parent == settings.engine_dir
    int8 = _int8(make_recipe(name="board-int8"))
    _boards(int8, tmp_path / "calib", 1)
    target8 = engine_target(int8, "10.16.1.11", GPU, settings)
    assert target8.precision.calibrate and len(target8.key.calibration) == 64
    assert len(target8.calibration_images) == 1
    with pytest.raises(ModelError, match=r"model\.precision int8 needs TensorRT 10"):
        engine_target(int8, "11.4.0.106", GPU, settings)


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
