"""Where `aoi eval`'s misses and false detections come from, in bins, from its ``--export``.

    PYTHONPATH=. python tools/eval_errors.py --data ../shared/data/deeppcb/PCBData \
        --fold models/splits/cv4-fold1.txt runs/exp-f1 [--fold LIST DIR ...] [--json]

Each ``--fold`` pairs a split list with the folder ``aoi eval --export`` wrote for it (its
``deployed/`` detections: the recipe as the station reports). Matching is greedy by IoU at 0.33,
class by class, as the metric counts. A miss is binned as: *wrong class* (a detection of another
class covers it at IoU >= 0.33, or overlaps it at all), *box* (a same-class detection overlaps
it but misses IoU 0.33, or was taken by another true defect: merged or misplaced), or *nothing*.
A false detection: *on a real defect* (another class's truth at IoU >= 0.33), *partial* (overlaps
some truth less), or *on nothing*.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from aoi.app.eval_export import DEEPPCB_TYPES
from aoi.app.evaluation import read_split
from aoi.sources.replay import read_annotation
from aoi.types import DEFECT_CLASSES

Box = tuple[float, float, float, float]
MATCH = 0.33


def _iou(a: Box, b: Box) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _detections(path: Path) -> list[tuple[Box, str]]:
    """``x1,y1,x2,y2,confidence,type`` lines of one exported image, as (box, class name)."""
    names = {v: k for k, v in DEEPPCB_TYPES.items()}
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            f = line.split(",")
            if len(f) >= 6:
                out.append(((float(f[0]), float(f[1]), float(f[2]), float(f[3])), names[f[5]]))
    return out


def _one_image(
    truth: list[tuple[Box, str]], found: list[tuple[Box, str]], misses: Counter, false: Counter
) -> None:
    used: set[int] = set()
    for box, cls in truth:
        same = [(_iou(box, d[0]), i) for i, d in enumerate(found) if d[1] == cls]
        free = [s for s in same if s[1] not in used]
        best = max(free, default=(0.0, -1))
        if best[0] >= MATCH:
            used.add(best[1])
            continue
        other = max((_iou(box, d[0]) for d in found if d[1] != cls), default=0.0)
        if other > 0 and other >= max((s[0] for s in same), default=0.0):
            misses["wrong class"] += 1
        elif any(s[0] > 0 for s in same):
            misses["box"] += 1
        else:
            misses["nothing"] += 1
    for i, (box, _cls) in enumerate(found):
        if i in used:
            continue
        best = max(((_iou(box, t[0]), t[1]) for t in truth), default=(0.0, ""))
        if best[0] >= MATCH:
            false["on a real defect"] += 1
        elif best[0] > 0:
            false["partial"] += 1
        else:
            false["on nothing"] += 1


def bins(data: Path, folds: list[tuple[Path, Path]]) -> dict[str, object]:
    """Truth, detections, and the misses and false detections per bin, over every fold."""
    misses: Counter = Counter()
    false: Counter = Counter()
    n_truth = n_found = 0
    for split, export in folds:
        for entry in read_split(data, split):
            gt = read_annotation(entry.annotation)
            truth = [
                (tuple(float(v) for v in b), DEFECT_CLASSES[c - 1])
                for b, c in zip(gt.bbox_xyxy_px.tolist(), gt.class_ids.tolist(), strict=True)
            ]
            found = _detections(export / "deployed" / f"{entry.name}.txt")
            n_truth, n_found = n_truth + len(truth), n_found + len(found)
            _one_image(truth, found, misses, false)  # type: ignore[arg-type]
    return {
        "truth": n_truth,
        "detections": n_found,
        "misses": sum(misses.values()),
        "miss_bins": dict(misses.most_common()),
        "false_detections": sum(false.values()),
        "false_bins": dict(false.most_common()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the PCBData folder")
    parser.add_argument(
        "--fold", nargs=2, action="append", required=True, metavar=("LIST", "EXPORT")
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = bins(args.data, [(Path(a), Path(b)) for a, b in args.fold])
    if args.json:
        print(json.dumps(out))
        return
    print(f"{out['truth']} true defects, {out['detections']} detections")
    print(f"misses {out['misses']}: {out['miss_bins']}")
    print(f"false detections {out['false_detections']}: {out['false_bins']}")


if __name__ == "__main__":
    main()
