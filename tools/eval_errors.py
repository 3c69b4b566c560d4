"""Where `aoi eval`'s misses and false detections come from, in bins, from its ``--export``.

    PYTHONPATH=. python tools/eval_errors.py --data ../shared/data/deeppcb/PCBData \
        --fold models/splits/cv4-fold1.txt runs/exp-f1 [--fold LIST DIR ...] [--json]

Each ``--fold`` pairs a split list with the folder ``aoi eval --export`` wrote for it (its
``deployed/`` detections: the recipe as the station reports). Overlap is the metric's own
(``aoi.metrics.iou_matrix``), and a match is IoU above 0.33, class by class, as it counts. A
miss is binned as: *wrong class* (a detection of another class overlaps it at least as much as
any of its own class), *box* (a same-class detection overlaps it but not above 0.33, or was
taken by another true defect: merged or misplaced), or *nothing*. A false detection: *on a real
defect* (a truth of another class above 0.33), *partial* (overlaps some truth less), or *on
nothing*.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from aoi.app.eval_export import read_result_file
from aoi.app.evaluation import read_split
from aoi.metrics import iou_matrix
from aoi.sources.replay import read_annotation

MATCH = 0.33


def _one_image(
    truth: tuple[np.ndarray, list[str]],
    found: tuple[np.ndarray, list[str]],
    misses: Counter,
    false: Counter,
) -> None:
    """Bin one image's misses and false detections; overlaps are :func:`aoi.metrics.iou_matrix`
    (the metric's own, inclusive corners) and a match is IoU above ``MATCH``, as it counts."""
    (t_boxes, t_cls), (f_boxes, f_cls) = truth, found
    iou = iou_matrix(t_boxes, f_boxes)  # [truth, found]
    used: set[int] = set()
    for i, cls in enumerate(t_cls):
        same = [j for j, c in enumerate(f_cls) if c == cls]
        free = [j for j in same if j not in used and iou[i, j] > MATCH]
        if free:
            used.add(max(free, key=lambda j: iou[i, j]))
            continue
        other = max((iou[i, j] for j, c in enumerate(f_cls) if c != cls), default=0.0)
        best_same = max((iou[i, j] for j in same), default=0.0)
        if other > 0 and other >= best_same:
            misses["wrong class"] += 1
        elif best_same > 0:
            misses["box"] += 1
        else:
            misses["nothing"] += 1
    for j in range(len(f_cls)):
        if j in used:
            continue
        best = float(iou[:, j].max()) if len(t_cls) else 0.0
        if best > MATCH:
            false["on a real defect"] += 1
        elif best > 0:
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
            truth = (gt.bbox_xyxy_px.astype(np.float64), list(gt.class_names))
            d = read_result_file(export / "deployed" / f"{entry.name}.txt")
            found = (d.bbox_xyxy_px.astype(np.float64), list(d.class_names))
            n_truth, n_found = n_truth + len(truth[1]), n_found + len(found[1])
            _one_image(truth, found, misses, false)
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
