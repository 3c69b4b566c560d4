"""A board read at several scales (``[model] scales``), by several models (``[model] ensemble``),
and what each reading finds fused.

The network sees detail in pixels: on a thin-track design it paints a bite on a narrow track
only in part at the camera's scale, and whole on the pair resampled 1.25 or 1.5 times larger;
on wide copper the larger scales lose a little (docs/benchmarks.md, "Issue 16, session 13"). So
a recipe may read each board at several scales and keep what they agree on:

- every network input of the board (the whole frame, or each tile) is resampled by each extra
  factor, rounded to the model's size multiple (bilinear, as ``cv2.resize`` does it);
- the network runs on it, and its maps are resampled back to the first scale's map size
  (bilinear for probability maps, nearest for reduced class maps), so one postprocessor with
  the recipe's own pixel sizes, masks and seen region reads every scale;
- the candidates of all scales are fused class by class: boxes of one class that overlap with
  IoU above :data:`SAME_DEFECT` are one defect, at most one from each scale. It keeps the box
  of its highest score and scores the mean over the scales, a scale that found nothing counting
  0. A defect every scale calls at 0.95 scores 0.95; one only one of three calls, a third.

The recipe's thresholds then read as agreement: ``score = 0.6`` with three scales asks two of
them to call the defect at 0.9.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from aoi.errors import InferenceError, ModelError
from aoi.metrics import iou_matrix
from aoi.recipe import Recipe, scaled_side
from aoi.types import ClassMaps, Defects
from aoi.vision.postprocess import Postprocessor, merge
from aoi.vision.preprocess import Tile

#: Boxes of one class from two readings overlapping more than this are one defect.
SAME_DEFECT = 0.5

Output = np.ndarray | ClassMaps


class Predicts(Protocol):
    """What the scales need of the inference backend (aoi.inference's protocol, in part)."""

    def predict(self, batch: np.ndarray) -> Output: ...


def resize_batch(batch: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """A uint8 ``[N, C, H, W]`` batch resampled to ``hw`` (bilinear)."""
    out = np.empty((*batch.shape[:2], *hw), np.uint8)
    for i, board in enumerate(batch):
        hwc = cv2.resize(board.transpose(1, 2, 0), (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
        out[i] = hwc.reshape(*hw, -1).transpose(2, 0, 1)
    return out


def maps_back(output: Output, hw: tuple[int, int]) -> Output:
    """The network's maps resampled to ``hw``: probabilities bilinear, class maps nearest."""
    size = (hw[1], hw[0])
    if isinstance(output, ClassMaps):
        nearest = cv2.INTER_NEAREST
        classes = np.stack([cv2.resize(c, size, interpolation=nearest) for c in output.classes])
        scores = [
            cv2.resize(s.astype(np.float32), size, interpolation=nearest) for s in output.scores
        ]
        return ClassMaps(classes, np.stack(scores).astype(output.scores.dtype))
    out = np.empty((*output.shape[:2], *hw), np.float32)
    for i, maps in enumerate(output):
        hwc = cv2.resize(maps.transpose(1, 2, 0), size, interpolation=cv2.INTER_LINEAR)
        out[i] = hwc.reshape(*hw, -1).transpose(2, 0, 1)
    return out


def fuse(parts: Sequence[Defects]) -> Defects:
    """One collection from each reading's candidates (a scale, of one model): per class,
    overlapping boxes (IoU above :data:`SAME_DEFECT`, one per reading) are one defect, with the
    box of its best score and the mean score over ``len(parts)`` readings. Highest score first."""
    scale_of = np.concatenate([np.full(len(p), k) for k, p in enumerate(parts)])
    every = Defects.merge(list(parts))
    order = np.argsort(-every.scores, kind="stable")
    every, scale_of = every[order], scale_of[order]
    keep, scores = [], []
    for cls in np.unique(every.class_ids):
        rows = np.flatnonzero(every.class_ids == cls)
        iou = iou_matrix(every.bbox_xyxy_px[rows], every.bbox_xyxy_px[rows])
        taken = np.zeros(len(rows), bool)
        for i in range(len(rows)):
            if taken[i]:
                continue
            taken[i] = True
            total, seen = float(every.scores[rows[i]]), {scale_of[rows[i]]}
            for j in np.flatnonzero(~taken & (iou[i] > SAME_DEFECT)):
                if scale_of[rows[j]] not in seen:
                    taken[j] = True
                    seen.add(scale_of[rows[j]])
                    total += float(every.scores[rows[j]])
            keep.append(rows[i])
            scores.append(total / len(parts))
    if not keep:
        return Defects.empty()
    best = every[np.array(keep)]
    fused = Defects(best.bbox_xyxy_px, best.class_ids, np.array(scores, np.float32), best.areas_px)
    return fused.sorted_by_score()


class ScaleReader:
    """The readings of a board beyond the first model's at the first scale: the recipe's extra
    scales, then every scale of each further model (``[model] ensemble``, run by the backend's
    ``members``); their network runs, then the fused candidates."""

    def __init__(
        self, recipe: Recipe, post: Postprocessor, members: Sequence[Predicts] = ()
    ) -> None:
        want = len(recipe.model.ensemble)
        if len(members) != want:
            msg = (
                f"the recipe names {want} further model(s) in model.ensemble and the backend "
                f"runs {len(members)}: open a backend for every model"
            )
            raise ModelError(msg)
        scales = recipe.model.scales
        #: (further model, or None for the cycle's own backend; scale) per reading.
        self.readings: tuple[tuple[Predicts | None, float], ...] = (
            *((None, s) for s in scales[1:]),
            *((m, s) for m in members for s in scales),
        )
        self.multiple = recipe.geometry.size_multiple_px
        self.post = post

    def predict(
        self, backend: Predicts, batches: Sequence[tuple[np.ndarray, list[Tile]]]
    ) -> list[list[Output]]:
        """Per reading, the network's output for each batch (resampled by its scale)."""
        out = []
        fed: dict[tuple[int, float], np.ndarray] = {}  # each batch resampled once per scale
        for member, s in self.readings:
            runs = []
            for k, (batch, _tiles) in enumerate(batches):
                if not isinstance(batch, np.ndarray):
                    msg = "model.scales and model.ensemble need the boards on the host"
                    raise InferenceError(msg)
                if (k, s) not in fed:
                    h, w = batch.shape[-2:]
                    hw = (scaled_side(h, s, self.multiple), scaled_side(w, s, self.multiple))
                    fed[k, s] = batch if hw == (h, w) else resize_batch(batch, hw)
                runs.append((backend if member is None else member).predict(fed[k, s]))
            out.append(runs)
        return out

    def candidates(
        self,
        outputs: Sequence[tuple[Output, list[Tile]]],
        extra: Sequence[Sequence[Output]],
        input_hw: tuple[int, int],
        seen: tuple[int, int, int, int] | None,
    ) -> Defects:
        """The board's candidates: the first reading's alone, or every reading's fused."""
        parts = [merge([self.post.run(probs, tiles, input_hw, seen) for probs, tiles in outputs])]
        for runs in extra:
            found = []
            for (base, tiles), probs in zip(outputs, runs, strict=True):
                same = probs.shape[-2:] == base.shape[-2:]
                back = probs if same else maps_back(probs, base.shape[-2:])
                found.append(self.post.run(back, tiles, input_hw, seen))
            parts.append(merge(found))
        return parts[0] if len(parts) == 1 else fuse(parts)
