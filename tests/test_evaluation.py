"""`aoi eval` over a small DeepPCB-layout split built in the test, with known answers."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from aoi.errors import SourceError
from aoi.evaluation import add_eval_parser, read_split
from aoi.sources.boardgen import golden_board

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


def _write_split(root: Path, n: int, *, shift_px: int = 0) -> Path:
    """n pairs with three 12x12 px copper squares each on a 4 px grid: spurious copper whose
    box the difference model (stride 4) reproduces exactly, so the answers are known."""
    group = root / "group10000" / "10000"
    notes = root / "group10000" / "10000_not"
    group.mkdir(parents=True)
    notes.mkdir(parents=True)
    lines = []
    for i in range(n):
        template = golden_board(640, 640, 50 + i, "binary")
        test = template.copy()
        rows = []
        for x, y in _free_squares(template, 3, 12):
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


def test_split_errors_name_the_line(tmp_path: Path) -> None:
    split = tmp_path / "split.txt"
    split.write_text("only-one-field\n")
    with pytest.raises(SourceError, match=r"split\.txt:1: expected 'group/G/ID\.jpg"):
        read_split(tmp_path, split)
    split.write_text("g/1/1.jpg g/1_not/1.txt\n")
    with pytest.raises(SourceError, match=r"split\.txt:1: .*1_test\.jpg does not exist"):
        read_split(tmp_path, split)
