"""Session 9's two station changes on DeepPCB pairs, as the operator's overlay shows them.

Row 1, a merged defect: the pair inspected with ``[model] split_merged`` taken out of the recipe
(one box) and with the recipe as shipped (two boxes); the annotation's boxes in green.
Row 2, a misaligned pair: |test - template| as stored (with the annotation), and after the
template was moved onto the test (``aoi.vision.registration.template_onto``), with the defects
the station finds.

    PYTHONPATH=. python tools/figures/split_and_pairs.py MODEL OUT.jpg \
        [--merged 20085023] [--misaligned 20085078] [--recipe deeppcb-640]

MODEL: a fold model that never trained on the pairs' design (cv4-fold1 for group 20085).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from aoi.app.evaluation import read_grey
from aoi.inference import create_backend
from aoi.pipeline import Pipeline
from aoi.recipe import LoadedRecipe, find_recipe, load_recipe
from aoi.sources.replay import read_annotation
from aoi.types import Frame
from aoi.vision.registration import template_onto

GREEN, RED, BLUE = (0, 170, 0), (0, 0, 255), (255, 80, 0)


def _pair(data: Path, name: str) -> tuple[np.ndarray, np.ndarray, Path]:
    group = data / f"group{name[:5]}"
    folder = group / name[:5]
    return (
        read_grey(folder / f"{name}_test.jpg"),
        read_grey(folder / f"{name}_temp.jpg"),
        group / f"{name[:5]}_not" / f"{name}.txt",
    )


def _inspect(loaded: LoadedRecipe, backend: object, test: np.ndarray, template: np.ndarray):
    frame = Frame(test, 0, 0, "figure", name="pair", template=template)
    return Pipeline(loaded, backend, template=template).inspect(frame)  # type: ignore[arg-type]


def _panel(image: np.ndarray, result, truth_file: Path | None, title: str) -> np.ndarray:
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if truth_file is not None:
        truth = read_annotation(truth_file)
        for box in truth.bbox_xyxy_px:
            x0, y0, x1, y1 = (int(v) for v in box)
            cv2.rectangle(out, (x0, y0), (x1, y1), GREEN, 2)
    found = result.defects if result is not None else []
    for box, cls in zip(found.bbox_xyxy_px, found.class_names, strict=True) if len(found) else ():
        x0, y0, x1, y1 = (int(v) for v in box)
        cv2.rectangle(out, (x0 - 3, y0 - 3), (x1 + 3, y1 + 3), RED, 2)
        cv2.putText(out, cls, (x0, max(12, y0 - 6)), 0, 0.45, RED, 1)
    cv2.rectangle(out, (0, 0), (out.shape[1], 30), (255, 255, 255), -1)
    cv2.putText(out, title, (6, 21), 0, 0.6, BLUE, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--merged", default="20085023")
    parser.add_argument("--misaligned", default="20085078")
    parser.add_argument("--recipe", default="deeppcb-640")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/deeppcb/PCBData"))
    args = parser.parse_args()
    shipped = load_recipe(find_recipe(args.recipe))
    r = shipped.recipe
    plain_recipe = r.model_copy(update={"model": r.model.model_copy(update={"split_merged": None})})
    plain = LoadedRecipe(plain_recipe, shipped.path, shipped.content_hash)
    profile = r.geometry.profile
    with create_backend("onnxruntime", args.model, profile, threads=2, recipe=shipped) as backend:
        test, template, truth = _pair(args.data, args.merged)
        one = _inspect(plain, backend, test, template)
        two = _inspect(shipped, backend, test, template)
        row1 = [
            _panel(test, one, truth, f"{args.merged}: one component, one box"),
            _panel(test, two, truth, f"{args.merged}: split_merged (shipped)"),
        ]
        test, template, truth = _pair(args.data, args.misaligned)
        onto, reg = template_onto(template, test, r.registration)
        given = cv2.absdiff(test, template)
        moved = cv2.absdiff(test, onto)
        after = _inspect(shipped, backend, test, template)  # the pipeline aligns it itself
        shift = f"({reg.shift_x_px:.1f}, {reg.shift_y_px:.1f}) px"
        row2 = [
            _panel(255 - given, None, truth, f"{args.misaligned}: |test - template| as stored"),
            _panel(255 - moved, after, truth, f"template moved {shift}"),
        ]
    grid = np.vstack([np.hstack(row1), np.hstack(row2)])
    cv2.imwrite(str(args.out), grid, [cv2.IMWRITE_JPEG_QUALITY, 88])
    print("written", args.out)


if __name__ == "__main__":
    main()
