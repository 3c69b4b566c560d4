"""`aoi eval` over a small DeepPCB-layout split built in the test, with known answers."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from aoi.app.evaluation import add_eval_parser, read_split
from aoi.errors import AoiError, SourceError
from aoi.sources.synthetic.boardgen import golden_board

RecipeFactory = Callable[..., Path]


def _free_squares(template: np.ndarray, count: int, size: int) -> list[tuple[int, int]]:
    """Grid-aligned spots of bare substrate (bright) with a margin, for known defects."""
    spots: list[tuple[int, int]] = []
    for y in range(16, template.shape[0] - 32, 8):
        for x in range(16, template.shape[1] - 32, 8):
            if len(spots) == count:
                return spots
            if template[y - 8 : y + size + 8, x - 8 : x + size + 8].min() > 128 and all(
                abs(x - sx) > 40 or abs(y - sy) > 40 for sx, sy in spots
            ):
                spots.append((x, y))
    return spots


def _write_split(
    root: Path, n: int, *, shift_px: int = 0, template_off: tuple[int, int] = (0, 0)
) -> Path:
    """n pairs with three 12x12 px copper squares each on a 4 px grid: spurious copper whose
    box the difference model (stride 4) reproduces exactly, so the answers are known.
    ``template_off``: the stored template sees the board moved by (x, y) px against its test
    image, as 31 of DeepPCB's trainval pairs do by 3.5-9 px."""
    group = root / "group10000" / "10000"
    notes = root / "group10000" / "10000_not"
    group.mkdir(parents=True)
    notes.mkdir(parents=True)
    lines = []
    ox, oy = template_off
    for i in range(n):
        # Both images are views of one larger board, the template's moved by (ox, oy).
        board = golden_board(672, 672, 50 + i, "binary")
        template = board[16 - oy : 656 - oy, 16 - ox : 656 - ox]
        test = board[16:656, 16:656].copy()
        rows = []
        for x, y in _free_squares(test, 3, 12):
            test[y : y + 12, x : x + 12] = 0
            rows.append(f"{x + shift_px} {y} {x + 11 + shift_px} {y + 11} 5")
        ident = f"10000{i:03d}"
        best = [cv2.IMWRITE_JPEG_QUALITY, 100]
        cv2.imwrite(str(group / f"{ident}_test.jpg"), test, best)
        cv2.imwrite(str(group / f"{ident}_temp.jpg"), template, best)
        (notes / f"{ident}.txt").write_text("\n".join(rows) + "\n")
        lines.append(f"group10000/10000/{ident}.jpg group10000/10000_not/{ident}.txt")
    split = root / "split.txt"
    split.write_text("\n".join(lines) + "\n")
    return split


def _eval(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    ns = parser.parse_args(["eval", *args])
    assert ns.func(ns) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
def test_eval_finds_known_defects_and_writes_its_plots(
    tmp_path: Path,
    make_recipe: RecipeFactory,
    difference_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    split = _write_split(tmp_path / "PCBData", 3)
    recipe = make_recipe(width=640, height=640)
    out = tmp_path / "out"
    args = [
        "--data",
        str(tmp_path / "PCBData"),
        "--split",
        str(split),
        "--recipe",
        str(recipe),
        "--model",
        str(difference_model),
        "--out",
        str(out),
        "--json",
    ]
    result = _eval(args, capsys)
    assert result["images"] == 3
    sc = result["per_class"]["spurious_copper"]  # type: ignore[index]
    assert sc["truth"] == 9
    assert sc["ap33"] == 1.0
    assert result["recall"] == 1.0
    assert result["precision"] == 1.0
    assert {"map33", "ap50", "map50_95", "precision", "f_score"} <= set(result)
    assert cv2.imread(str(out / "pr_curve.png")) is not None
    assert cv2.imread(str(out / "worst_cases.png")) is not None

    # The same detections against truth shifted by 12 px score lower.
    shifted = _write_split(tmp_path / "Shifted", 3, shift_px=12)
    args[1], args[3] = str(tmp_path / "Shifted"), str(shifted)
    worse = _eval(args, capsys)
    assert worse["map33"] < result["map33"]
    assert worse["ap50"] < result["ap50"]


@pytest.mark.slow
def test_a_pair_whose_template_is_off_is_aligned_before_inspection(
    tmp_path: Path,
    make_recipe: RecipeFactory,
    difference_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The pair's template moves onto the test image (aoi.vision.registration.template_onto):
    the defects are found where the annotations put them, and no track edge the offset left
    is called. Inspected as given, the same pairs give false detections along every edge."""
    split = _write_split(tmp_path / "PCBData", 2, template_off=(4, -3))
    recipe = make_recipe(width=640, height=640)
    args = ["--data", str(tmp_path / "PCBData"), "--split", str(split), "--recipe", str(recipe)]
    args += ["--model", str(difference_model), "--out", str(tmp_path / "out"), "--json"]
    result = _eval(args, capsys)
    assert result["per_class"]["spurious_copper"]["truth"] == 6  # type: ignore[index]
    assert result["recall"] == 1.0
    assert result["precision"] == 1.0


def test_split_errors_name_the_line(tmp_path: Path) -> None:
    split = tmp_path / "split.txt"
    split.write_text("only-one-field\n")
    with pytest.raises(SourceError, match=r"split\.txt:1: expected 'group/G/ID\.jpg"):
        read_split(tmp_path, split)
    split.write_text("g/1/1.jpg g/1_not/1.txt\n")
    with pytest.raises(SourceError, match=r"split\.txt:1: .*1_test\.jpg does not exist"):
        read_split(tmp_path, split)


def test_defect_free_boards_through_registration_give_no_false_calls(
    tmp_path: Path,
    make_recipe: RecipeFactory,
    difference_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    split = _write_split(tmp_path / "PCBData", 2)
    recipe = make_recipe(width=640, height=640)
    args = ["--data", str(tmp_path / "PCBData"), "--split", str(split), "--recipe", str(recipe)]
    args += ["--model", str(difference_model), "--out", str(tmp_path / "out"), "--json"]
    result = _eval([*args, "--defect-free", "12"], capsys)
    free = result["defect_free"]
    assert free["boards"] == 12  # type: ignore[index]
    assert free["errors"] == 0  # type: ignore[index]
    assert free["false_calls"] == 0  # type: ignore[index]
    assert free["ok"] == 12  # type: ignore[index]
    assert result["images"] == 2  # the split's own evaluation still runs


def test_defect_free_counts_a_board_with_a_defect_as_a_false_call(
    tmp_path: Path,
    make_recipe: RecipeFactory,
    difference_model: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aoi.app import defect_free

    real = defect_free.disturbed_copy

    def with_copper_on_odd_boards(
        template: np.ndarray, index: int, how: defect_free.Disturbance
    ) -> tuple[np.ndarray, dict[str, float]]:
        image, motion = real(template, index, how)
        if index % 2:
            x, y = _free_squares(template, 1, 12)[0]
            image[y : y + 12, x : x + 12] = 0
        return image, motion

    monkeypatch.setattr(defect_free, "disturbed_copy", with_copper_on_odd_boards)
    split = _write_split(tmp_path / "PCBData", 2)
    recipe = make_recipe(width=640, height=640)
    args = ["--data", str(tmp_path / "PCBData"), "--split", str(split), "--recipe", str(recipe)]
    args += ["--model", str(difference_model), "--out", str(tmp_path / "out"), "--json"]
    free = _eval([*args, "--defect-free", "6"], capsys)["defect_free"]
    assert free["false_calls"] == 3  # type: ignore[index]
    assert free["false_call_rate"] == 0.5  # type: ignore[index]
    assert free["false_defects_by_class"] == {"spurious_copper": 3}  # type: ignore[index]


def test_defect_free_needs_registration(
    tmp_path: Path,
    make_recipe: RecipeFactory,
    difference_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    split = _write_split(tmp_path / "PCBData", 1)
    recipe = make_recipe(width=640, height=640, registration="none")
    args = ["--data", str(tmp_path / "PCBData"), "--split", str(split), "--recipe", str(recipe)]
    args += ["--model", str(difference_model), "--out", str(tmp_path / "out"), "--defect-free", "2"]
    expected = r"registration\.method must be 'patches' or 'ecc', got 'none'"
    with pytest.raises(AoiError, match=expected):
        _eval(args, capsys)


@pytest.mark.parametrize("index", [0, 10, 20])
def test_every_tenth_defect_free_board_is_the_template_itself(index: int) -> None:
    from aoi.app.defect_free import Disturbance, disturbed_copy

    template = golden_board(128, 128, 3, "binary")
    image, motion = disturbed_copy(template, index, Disturbance())
    np.testing.assert_array_equal(image, template)
    assert motion == {"dx": 0.0, "dy": 0.0, "deg": 0.0, "sigma": 0.0}


def test_defect_free_copies_stay_within_their_bounds() -> None:
    from aoi.app.defect_free import Disturbance, disturbed_copy

    template = golden_board(128, 128, 3, "binary")
    how = Disturbance()
    for index in range(1, 40):
        if index % 10 == 0:
            continue
        image, motion = disturbed_copy(template, index, how)
        assert image.shape == template.shape and image.dtype == np.uint8
        assert np.hypot(motion["dx"], motion["dy"]) <= how.max_shift_px
        assert abs(motion["deg"]) <= how.max_rotation_deg
        assert how.noise_sigma[0] <= motion["sigma"] <= how.noise_sigma[1]
    again, _ = disturbed_copy(template, 7, how)
    np.testing.assert_array_equal(again, disturbed_copy(template, 7, how)[0])  # seeded
