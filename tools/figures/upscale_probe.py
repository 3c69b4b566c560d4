"""Probe: DeepPCB pairs upscaled by S before the station sees them (issue 16, session 13).

    .venv/bin/python tools/figures/upscale_probe.py --model FOLD.onnx \
        --split models/splits/cv4-fold1.txt --scale 1.5

Thin-track designs (20085) lose mousebites the network paints only in part. This asks whether the
same model finds more of them when the pair is resampled larger first, as a per-product network
scale would do. It runs ``aoi eval`` unchanged on a copy of ``recipes/deeppcb-640.toml`` whose
pixel sizes are scaled with the pair (frame, camera ROI, profile, registration's maximum shift,
edge margin, ``min_area_px`` by S squared, the merged-defect split's ``max_px``) and a template
resized with it; the annotation boxes are scaled too, so IoU-based scores compare across S.
``--scale 1`` reproduces ``aoi eval``'s own figures. A probe, not a station feature: the pairs
are resized inside this process (``aoi.app.evaluation``'s readers are wrapped), nothing else.
Figures: docs/benchmarks.md, "Issue 16, session 13".
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from aoi.app import evaluation
from aoi.cli import main as aoi_main
from aoi.defects import GroundTruth

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "deeppcb-640.toml"
TEMPLATE = ROOT / "recipes" / "templates" / "deeppcb-640.png"


def scaled_recipe(text: str, scale: float, model: Path, template_name: str) -> str:
    """The recipe's text with its pixel sizes multiplied by ``scale``."""
    size = round(640 * scale)

    def px(value: float) -> int:
        return round(value * scale)

    text = text.replace("templates/deeppcb-640.png", f"templates/{template_name}")
    text = re.sub(r'(?m)^path = ".*"$', f'path = "{model.resolve()}"', text)
    keys = "roi_width_px|roi_height_px|frame_width_px|frame_height_px"
    text = re.sub(rf"({keys}) = 640", lambda m: f"{m.group(1)} = {size}", text)
    text = text.replace("max_shift_px = 8.0", f"max_shift_px = {8.0 * scale}")
    text = text.replace("edge_margin_px = 12", f"edge_margin_px = {px(12)}")
    text = text.replace("min_area_px = 256", f"min_area_px = {round(256 * scale * scale)}")
    text = text.replace("max_px = 120", f"max_px = {px(120)}")

    def profile(m: re.Match[str]) -> str:
        n = round(int(m.group(1)) * scale / 16) * 16
        return f"height_px = {n}, width_px = {n}"

    return re.sub(r"height_px = (\d+), width_px = \1", profile, text)


def scaled_truth(truth: GroundTruth, scale: float) -> GroundTruth:
    """Annotation boxes (corners inclusive) covering the same pixels after resizing."""
    b = truth.bbox_xyxy_px.astype(np.float64)
    if not len(b):
        return truth
    boxes = np.stack(
        [
            np.floor(b[:, 0] * scale),
            np.floor(b[:, 1] * scale),
            np.ceil((b[:, 2] + 1) * scale) - 1,
            np.ceil((b[:, 3] + 1) * scale) - 1,
        ],
        axis=1,
    ).astype(np.int64)
    return dataclasses.replace(truth, bbox_xyxy_px=boxes)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument(
        "--scale", type=float, required=True, help="1, 1.25 or 1.5 (640 x S a multiple of 16)"
    )
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/deeppcb/PCBData")
    p.add_argument("--export", type=Path, help="aoi eval --export DIR (boxes in scaled pixels)")
    args = p.parse_args()
    scale, size = args.scale, round(640 * args.scale)
    if size % 16 or abs(size - 640 * scale) > 1e-6:
        p.error(f"640 x {scale} = {640 * scale} is not a whole multiple of 16")
    read_grey, read_annotation = evaluation.read_grey, evaluation.read_annotation
    evaluation.read_grey = lambda path: cv2.resize(  # type: ignore[assignment]
        read_grey(path), (size, size), interpolation=cv2.INTER_LINEAR
    )
    evaluation.read_annotation = lambda path: scaled_truth(read_annotation(path), scale)  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "templates").mkdir()
        name = f"deeppcb-{size}.png"
        template = cv2.imread(str(TEMPLATE), cv2.IMREAD_GRAYSCALE)
        resized = cv2.resize(template, (size, size), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(folder / "templates" / name), resized)
        recipe = folder / f"deeppcb-{size}.toml"
        text = RECIPE.read_text(encoding="utf-8")
        recipe.write_text(scaled_recipe(text, scale, args.model, name), encoding="utf-8")
        export = ["--export", str(args.export)] if args.export else []
        return aoi_main(
            ["eval", "--data", str(args.data), "--split", str(args.split), "--recipe", str(recipe),
             "--backend", "onnxruntime", "--json", *export]
        )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
