"""INT8 calibration data made from a recipe's images (aoi/app/calibration.py), without TensorRT.

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

from aoi.app.calibration import (
    BatchStats,
    CycleInputs,
    batches_of,
    calibration_digest,
    calibration_images,
    recipe_calibration,
)
from aoi.errors import RecipeError
from aoi.inference.tensorrt.calibration import FedCount, check_enough, checked_batches
from aoi.inference.tensorrt.plan import calibration_shape
from aoi.recipe import LoadedRecipe, load_recipe
from aoi.sources.synthetic import SyntheticSource

RecipeFactory = Callable[..., Path]


def int8_recipe(path: Path, calibration: str | None = "calib") -> LoadedRecipe:
    """The recipe at ``path`` switched to INT8 with ``model.calibration_dir`` set."""
    text = path.read_text()
    line = f'calibration_dir = "{calibration}"\n' if calibration else ""
    text = text.replace("[model]\n", f'[model]\nprecision = "int8"\n{line}')
    path.write_text(text)
    return load_recipe(path)


def write_boards(loaded: LoadedRecipe, folder: Path, count: int) -> list[Path]:
    """``count`` synthetic boards of the recipe's product as PNG files in ``folder``."""
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
    loaded = int8_recipe(make_recipe(), setting)
    if make:
        (tmp_path / "calib").mkdir()
        (tmp_path / "calib" / "notes.txt").write_text("not an image")
    with pytest.raises(RecipeError, match=rf"test-board\.toml: {message}"):
        calibration_images(loaded)
    with pytest.raises(RecipeError, match=rf"test-board\.toml: {message}"):
        recipe_calibration(loaded)


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
    loaded = int8_recipe(make_recipe(mode="tiles", tile=128))
    boards = write_boards(loaded, tmp_path / "calib", 3)
    (tmp_path / "calib" / "z-broken.png").write_bytes(b"not a png")
    cv2.imwrite(str(tmp_path / "calib" / "z-small.png"), np.zeros((64, 64), np.uint8))
    data = recipe_calibration(loaded)
    assert data.digest == calibration_digest(loaded, calibration_images(loaded))
    assert data.origin.startswith(f"{loaded.path}: model.calibration_dir ")
    # What the builder does with them: check every batch against the calibration shape.
    fed = FedCount()
    batches = list(checked_batches(data, calibration_shape(loaded.recipe.geometry), fed))
    # 256x256 in 128 px tiles with 16 px overlap: 3x3 = 9 tiles a board; batches of 4.
    assert [b.shape for b in batches] == [(4, 2, 128, 128)] * 6
    assert fed.batches == 6
    summary = data.summary()
    assert summary.startswith("from 3 usable image(s), 2 skipped (z-broken.png: ")
    assert "z-small.png: " in summary and summary.endswith("3 tile(s) left over")
    cycle = CycleInputs(loaded).batches(cv2.imread(str(boards[0]), cv2.IMREAD_UNCHANGED))
    np.testing.assert_array_equal(batches[0], cycle[0])
    with pytest.raises(
        RecipeError,
        match=r"model\.calibration_dir .*calib must give at least 8 calibration batches, "
        r"found 6 from 3 usable image\(s\)",
    ):
        check_enough(data, fed)
    # A second pass (a rebuild) counts afresh rather than adding to the first.
    assert len(list(data.batches())) == 6
    assert data.summary() == summary


def test_calibration_digest_follows_images_and_template(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    loaded = int8_recipe(make_recipe())
    boards = write_boards(loaded, tmp_path / "calib", 2)
    first = calibration_digest(loaded, boards)
    assert calibration_digest(loaded, boards) == first
    boards[1].write_bytes(boards[1].read_bytes() + b"\0")
    assert calibration_digest(loaded, boards) != first
    second = calibration_digest(loaded, boards)
    loaded.template_path.write_bytes(loaded.template_path.read_bytes() + b"\0")
    assert calibration_digest(loaded, boards) != second
    third = calibration_digest(loaded, boards)
    boards[0].rename(boards[0].with_name("renamed.png"))
    assert calibration_digest(loaded, [boards[0].with_name("renamed.png"), boards[1]]) != third
