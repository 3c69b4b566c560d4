"""Detection metrics with the DeepPCB protocol: per-class AP, mAP, precision/recall/F-score.

A detection is a true positive when its box overlaps a not-yet-matched ground-truth box of the
same class with IoU above the threshold (DeepPCB: IoU > 0.33); detections are matched greedily in
descending score order, per image. AP is the area under the precision envelope over all recall
points (the VOC 2010+ "all points" rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from aoi.types import Defects, GroundTruth

#: IoU thresholds of COCO-style mAP@[.5:.95].
COCO_IOUS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


@dataclass(frozen=True)
class ImageDetections:
    """Ground truth and detections of one image (both checked when they were built)."""

    name: str
    truth: GroundTruth
    detections: Defects


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` against every box in ``b``: ``(len(a), len(b))``.

    Boxes are ``x0, y0, x1, y1`` with inclusive pixel corners (a box ``0, 0, 9, 9`` is 10 px
    wide), as :class:`aoi.types.Defects` and :class:`aoi.types.GroundTruth` hold them. The one box
    overlap of the project: metrics, ``aoi eval`` and ``models.evaluate`` all use it.
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0 + 1, 0, None) * np.clip(iy1 - iy0 + 1, 0, None)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _match(img: ImageDetections, cls: int, iou_thr: float) -> tuple[np.ndarray, np.ndarray, int]:
    """One class in one image: detection scores (descending), their TP flags, the truth count."""
    found = img.detections
    det = found.class_ids == cls
    gt = img.truth.class_ids == cls
    scores = found.scores[det].astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    scores = scores[order]
    ious = iou_matrix(found.bbox_xyxy_px[det][order], img.truth.bbox_xyxy_px[gt])
    taken = np.zeros(int(gt.sum()), dtype=bool)
    tp = np.zeros(len(scores), dtype=bool)
    for i in range(len(scores)):
        if ious.shape[1] == 0:
            break
        candidates = np.where((ious[i] > iou_thr) & ~taken)[0]
        if candidates.size:
            j = candidates[np.argmax(ious[i, candidates])]
            taken[j] = True
            tp[i] = True
    return scores, tp, int(gt.sum())


@dataclass(frozen=True)
class ClassCurve:
    """Precision-recall curve and AP of one class at one IoU threshold."""

    ap: float
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    n_truth: int


def class_curve(images: Sequence[ImageDetections], cls: int, iou_thr: float) -> ClassCurve:
    all_scores, all_tp, n_truth = [], [], 0
    for img in images:
        s, tp, n = _match(img, cls, iou_thr)
        all_scores.append(s)
        all_tp.append(tp)
        n_truth += n
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    tp = np.concatenate(all_tp) if all_tp else np.zeros(0, bool)
    order = np.argsort(-scores, kind="stable")
    scores, tp = scores[order], tp[order]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    recall = ctp / max(n_truth, 1)
    precision = ctp / np.maximum(ctp + cfp, 1)
    if n_truth == 0:
        return ClassCurve(float("nan"), precision, recall, scores, 0)
    # Precision envelope, integrated over the recall steps.
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    ap = float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))
    return ClassCurve(ap, precision, recall, scores, n_truth)


@dataclass(frozen=True)
class OperatingPoint:
    """Counts and rates at the deployed thresholds."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f_score(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def operating_point(
    images: Sequence[ImageDetections], thresholds: dict[int, float], iou_thr: float
) -> OperatingPoint:
    """TP/FP/FN over all classes, keeping detections scoring at least their class's threshold."""
    tp = fp = fn = 0
    for cls, thr in thresholds.items():
        for img in images:
            s, hit, n = _match(img, cls, iou_thr)
            keep = s >= thr
            # Matching ran on all detections in score order; above-threshold ones come first,
            # so their flags are exactly what matching the kept ones alone would give.
            tp_c = int(hit[keep].sum())
            tp += tp_c
            fp += int(keep.sum()) - tp_c
            fn += n - tp_c
    return OperatingPoint(tp, fp, fn)


@dataclass
class Report:
    """Everything ``aoi eval`` prints."""

    class_names: dict[int, str]
    images: int
    ap33: dict[str, float] = field(default_factory=dict)
    ap50: dict[str, float] = field(default_factory=dict)
    ap50_95: dict[str, float] = field(default_factory=dict)
    point: OperatingPoint = field(default_factory=lambda: OperatingPoint(0, 0, 0))
    curves33: dict[str, ClassCurve] = field(default_factory=dict)

    @staticmethod
    def _mean(d: dict[str, float]) -> float:
        vals = [v for v in d.values() if not np.isnan(v)]
        return float(np.mean(vals)) if vals else float("nan")

    def as_json(self) -> dict[str, object]:
        return {
            "map33": round(self._mean(self.ap33), 4),
            "ap50": round(self._mean(self.ap50), 4),
            "map50_95": round(self._mean(self.ap50_95), 4),
            "precision": round(self.point.precision, 4),
            "recall": round(self.point.recall, 4),
            "f_score": round(self.point.f_score, 4),
            "per_class": {
                name: {
                    "ap33": round(self.ap33[name], 4),
                    "ap50": round(self.ap50[name], 4),
                    "ap50_95": round(self.ap50_95[name], 4),
                    "truth": self.curves33[name].n_truth,
                }
                for name in self.ap33
            },
            "images": self.images,
        }


def evaluate(
    images: Sequence[ImageDetections],
    class_names: dict[int, str],
    thresholds: dict[int, float],
    iou_thr: float = 0.33,
    deployed: Sequence[ImageDetections] | None = None,
) -> Report:
    """Per-class AP at ``iou_thr``, at 0.5 and over COCO's 0.5:0.95, and the operating point.

    The curves use ``images``; the operating point uses ``deployed`` where given: the same
    boards as the station reports them at its own thresholds (components formed at the
    deployed review floor rather than at the curve's low floor can split differently).
    """
    report = Report(class_names, len(images))
    for cls, name in class_names.items():
        curve = class_curve(images, cls, iou_thr)
        report.curves33[name] = curve
        report.ap33[name] = curve.ap
        report.ap50[name] = class_curve(images, cls, 0.5).ap
        report.ap50_95[name] = float(np.mean([class_curve(images, cls, t).ap for t in COCO_IOUS]))
    report.point = operating_point(images if deployed is None else deployed, thresholds, iou_thr)
    return report
