"""Score several ``aoi eval --export`` runs of one split fused as the station fuses its scales.

    PYTHONPATH=. python tools/figures/fuse_exports.py --split models/splits/cv4-fold1.txt \
        --threshold 0.6 runs/exp-a runs/exp-b [...]

Each folder is what ``aoi eval --export`` wrote for the split (its ``curves/``: every detection
down to the curve floor). Per image the folders' detections are fused by
:func:`aoi.vision.multiscale.fuse` (per class, boxes overlapping at IoU above 0.5 are one
defect, its score the mean over the folders, 0 where one found nothing) and scored with
:func:`aoi.metrics.evaluate`: mAP@0.33 from the curves, P/R/F at ``--threshold`` for every class.
This asks what a recipe that fused two models' readings (an ensemble) would score, without
building one; the P/R/F is read off the curve set, not the deployed one. Figures:
docs/benchmarks.md, "Issue 16, session 14".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from aoi.app.eval_export import read_result_file
from aoi.app.evaluation import read_split
from aoi.metrics import ImageDetections, evaluate
from aoi.sources.replay import read_annotation
from aoi.types import DEFECT_CLASSES
from aoi.vision.multiscale import fuse

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("exports", type=Path, nargs="+", help="aoi eval --export folders")
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--threshold", type=float, default=0.6, help="NG score of every class")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/deeppcb/PCBData")
    args = p.parse_args()
    images = []
    for entry in read_split(args.data, args.split):
        parts = [read_result_file(d / "curves" / f"{entry.name}.txt") for d in args.exports]
        found = parts[0] if len(parts) == 1 else fuse(parts)
        images.append(ImageDetections(entry.name, read_annotation(entry.annotation), found))
    names = dict(enumerate(DEFECT_CLASSES, start=1))
    report = evaluate(images, names, dict.fromkeys(names, args.threshold))
    point = report.point
    out = {
        "map33": round(float(np.mean(list(report.ap33.values()))), 4),
        "f_score": round(point.f_score, 4),
        "precision": round(point.precision, 4),
        "recall": round(point.recall, 4),
        "per_class": {k: round(v, 4) for k, v in report.ap33.items()},
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
