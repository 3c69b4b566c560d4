"""Postprocessing: per-class probability maps to defects in frame pixels.

The network outputs ``[N, 1 + classes, H/S, W/S]`` softmax probabilities (class 0 background),
or, reduced on the device, :class:`ClassMaps` (each cell's argmax class and its probability,
:mod:`aoi.inference.reduce`): with float32 scores both give identical defects.
Per class, pixels whose class wins and whose probability reaches the recipe's lowest threshold
for it form connected components (cells where the background has half the probability or more
cannot be won by a defect class and are skipped, so the cost follows the defect area); each
component becomes a box (scaled by the stride S and
shifted by its tile's origin), an area in frame pixels, and a score (the component's peak).

The result is every candidate at or above its class's review floor, as one :class:`Defects`;
which of them are defects and which only go to review is the recipe's call, made next to the
verdict rules (:func:`aoi.vision.verdict.split`).

With ``[model] alternates`` each candidate also gives its next most likely reading, as detectors
report a box under more than one class: the other defect class reaching the highest probability
on its cells, and the lower-scoring class of one defect called twice (``one_defect_overlap``),
its score times :data:`SECOND_READING`. Both score under 0.5 (a class that loses a cell holds
at most half its mass), so they pass no floor of 0.5 or more: the station never reports them,
while ``aoi eval``'s precision-recall curves (floor 0.05) rank them after the first readings.
They need the full maps; reduced maps give none.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import cv2
import numpy as np

from aoi.errors import InferenceError
from aoi.recipe import MaskRegion, Recipe
from aoi.types import DEFECT_CLASSES, ClassMaps, Defects, GroundTruth
from aoi.vision.boxsplit import split_cells
from aoi.vision.contested import windows
from aoi.vision.overlap import called_again, one_class_per_defect
from aoi.vision.preprocess import Tile

log = logging.getLogger(__name__)

#: An alternate's score is below this: under any floor of 0.5 or more (float32).
ALTERNATE_BELOW = np.float32(0.5)
#: The score factor of the lower-scoring class of one defect called twice, kept as an alternate.
SECOND_READING = 0.45


#: A rectangle x0, y0, x1, y1 in frame pixels (x1, y1 exclusive).
Region = tuple[int, int, int, int]


class Postprocessor:
    """Turns probability maps into defects with one recipe's thresholds and don't-care masks."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        n = len(DEFECT_CLASSES)
        self._low = np.ones(n + 1, np.float32)
        self._min_area = np.zeros(n + 1, np.int64)
        self._active = []
        for cid, name in enumerate(DEFECT_CLASSES, start=1):
            rule = recipe.rule_for(name)
            self._low[cid] = rule.review_score if rule.review_score is not None else rule.score
            self._min_area[cid] = rule.min_area_px
            if rule.action != "ignore":
                self._active.append(cid)
        #: Per class id, the lowest score a cell it wins must reach; never for the background
        #: and ignored classes.
        self._floor = np.full(n + 1, np.inf, np.float32)
        self._floor[self._active] = self._low[self._active]
        self._floor_lut = np.full(256, np.inf, np.float32)  # cv2.LUT for uint8 class maps
        self._floor_lut[: n + 1] = self._floor
        self._masks: tuple[MaskRegion, ...] = tuple(recipe.masks)
        self._one_defect = recipe.model.one_defect_overlap
        self._split = recipe.model.split_merged
        self._alternates = recipe.model.alternates
        #: Whether an alternate could pass a floor here (every kept class's floor is under 0.5).
        self._alternates_matter = self._alternates and bool(
            (self._floor[self._active] < ALTERNATE_BELOW).any()
        )
        self._told_reduced = False
        #: The smallest area any class keeps, px (a window with fewer cells holds no candidate).
        self._least_area = int(self._min_area[1:].min())

    def _masked(self, boxes: np.ndarray, seen: Region | None = None) -> np.ndarray:
        """Per box: whether its centre is outside ``seen`` or inside a don't-care region."""
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        out = np.zeros(len(boxes), bool)
        if seen is not None:
            out |= ~((seen[0] <= cx) & (cx < seen[2]) & (seen[1] <= cy) & (cy < seen[3]))
        for m in self._masks:
            out |= (m.x0 <= cx) & (cx < m.x1) & (m.y0 <= cy) & (cy < m.y1)
        return out

    def visible_truth(self, truth: GroundTruth, seen: Region | None = None) -> GroundTruth:
        """The known defects the recipe inspects: not in don't-care regions, and seen by the
        camera (inside ``seen``, the registered frame's valid region)."""
        if (not self._masks and seen is None) or not truth.is_defective:
            return truth
        keep = ~self._masked(truth.bbox_xyxy_px, seen)
        return truth if keep.all() else truth[keep]

    def run(
        self,
        probs: np.ndarray | ClassMaps,
        tiles: list[Tile],
        input_hw: tuple[int, int],
        seen: Region | None = None,
    ) -> Defects:
        """Candidates from one batch of probability (or class) maps, in frame pixels, highest
        score first.

        ``seen`` is the part of the template's field of view the camera really saw (see
        :func:`aoi.vision.registration.seen_region`); defects outside it are not reported.
        """
        reduced = isinstance(probs, ClassMaps)
        n_classes = len(DEFECT_CLASSES) + 1
        if reduced:
            if len(probs.shape) != 3 or probs.shape[0] != len(tiles):
                msg = f"model output must be [{len(tiles)}, H/S, W/S], got {list(probs.shape)}"
                raise InferenceError(msg)
        elif probs.ndim != 4 or probs.shape[0] != len(tiles) or probs.shape[1] != n_classes:
            msg = (
                f"model output must be [{len(tiles)}, {n_classes}, H/S, W/S], "
                f"got {list(probs.shape)}"
            )
            raise InferenceError(msg)
        out_h, out_w = probs.shape[-2:]
        stride_y = input_hw[0] / out_h
        stride_x = input_hw[1] / out_w
        if stride_x != stride_y or stride_x < 1 or stride_x != int(stride_x):
            msg = (
                f"model output {out_h}x{out_w} must divide the input "
                f"{input_hw[0]}x{input_hw[1]} by one integer stride"
            )
            raise InferenceError(msg)
        stride = int(stride_x)
        # One row per candidate: box, class id, score, area; columns are built once at the end.
        cands: list[_Row] = []
        alts: list[_Row] | None = [] if self._alternates_matter and not reduced else None
        if reduced and self._alternates_matter and not self._told_reduced:
            self._told_reduced = True
            log.warning("alternates need the network's full maps; these are reduced: none")
        # A component needs this many cells to be kept in any class: fewer in a window, none is.
        fewest = _cells(self._least_area, stride)
        for i, tile in enumerate(tiles):
            for r0, c0, winner, score, own in windows(probs, i, fewest):
                window = None
                if alts is not None:
                    window = probs[i, :, r0 : r0 + winner.shape[0], c0 : c0 + winner.shape[1]]
                scores = _Scores(score, window, alts)
                self._window_candidates(cands, tile, stride, r0, c0, winner, scores, own)
        found = self._visible(cands, seen)
        if alts is None:
            if self._one_defect is None:
                return found
            return one_class_per_defect(found, self._one_defect)
        again = np.zeros(len(found), bool)
        if self._one_defect is not None:
            again = called_again(found, self._one_defect)
        second = found[again]
        found = found[~again]
        if len(second):
            second = Defects(
                second.bbox_xyxy_px,
                second.class_ids,
                np.minimum(second.scores * np.float32(SECOND_READING), _ALTERNATE_MAX),
                second.areas_px,
            )
            second = second[second.scores >= self._floor[second.class_ids]]
        return Defects.merge([found, second, self._visible(alts, seen)]).sorted_by_score()

    def _visible(self, rows: list[_Row], seen: Region | None) -> Defects:
        """Candidate rows as :class:`Defects`, highest score first, without the masked ones.

        A board has a few rows: they are masked and ordered as Python tuples (the same centres,
        comparisons and stable order as the columns would give), and become columns once."""
        if not rows:
            return _NONE
        scores = [r[5] for r in rows]
        if not (min(scores) >= 0.0 and max(scores) <= 1.0):
            # Not a probability (a model without softmax): Defects' own checks say what is wrong.
            found = _defects(rows)
            return found[~self._masked(found.bbox_xyxy_px, seen)].sorted_by_score()
        if seen is not None or self._masks:
            rows = [r for r in rows if not self._hidden(r, seen)]
            if not rows:
                return _NONE
        if len(rows) > 1:
            rows = sorted(rows, key=_score, reverse=True)  # stable: ties keep their order
        _, _, _, _, ids, peaks, areas = zip(*rows, strict=True)
        # Built valid: boxes with x1 >= x0 and y1 >= y0, kept classes, scores in 0..1.
        return Defects._checked_already(
            np.array([r[:4] for r in rows], np.int64),
            np.array(ids, np.int64),
            # The network's float32 peak, kept at its own precision (the thresholds compare so).
            np.array(peaks, np.float32),
            np.array(areas, np.int64),
        )

    def _hidden(self, row: _Row, seen: Region | None) -> bool:
        """Whether a row's box centre is outside ``seen`` or inside a don't-care region (as
        :meth:`_masked` says of a box column)."""
        cx, cy = (row[0] + row[2]) / 2, (row[1] + row[3]) / 2
        if seen is not None and not (seen[0] <= cx < seen[2] and seen[1] <= cy < seen[3]):
            return True
        return any(m.x0 <= cx < m.x1 and m.y0 <= cy < m.y1 for m in self._masks)

    def _window_candidates(
        self,
        cands: list[_Row],
        tile: Tile,
        stride: int,
        r0: int,
        c0: int,
        winner: np.ndarray,
        scores: _Scores,
        own: np.ndarray | None,
    ) -> None:
        """Add the candidates of one window of one tile's map (its own cells ``own`` only; None:
        all)."""
        # One pass finds the blobs of cells any class keeps; a class's components are then
        # found inside their blob's box only (a connected component of one class lies in one
        # blob), so the cost follows the defect area, not the classes times the window.
        floor = (
            cv2.LUT(winner, self._floor_lut) if winner.dtype == np.uint8 else self._floor[winner]
        )
        keep = scores.peak >= floor
        if own is not None:
            keep &= own
        kept = keep.view(np.uint8)
        # Labels alone first (a third of the cost with stats): most windows hold one blob, whose
        # box, cells and classes are the kept cells'. Both calls label alike.
        nb, blobs = cv2.connectedComponents(kept, connectivity=8)
        if nb == 1:
            return
        if nb == 2:
            bx, by, bw, bh = cv2.boundingRect(kept)
            area = cv2.countNonZero(kept)
            inside = keep[by : by + bh, bx : bx + bw]
            cid = _one_class(winner, kept)
            if cid:
                self._component(
                    cands, tile, stride, cid, (bx, by, bw, bh, area), (c0, r0), inside, scores
                )
                return
        nb, blobs, boxes, _ = cv2.connectedComponentsWithStats(kept, connectivity=8)
        # Per blob, its cells of each class (class ids lie below 256; unkept cells are blob 0).
        per = np.bincount((blobs * 256 + winner).ravel(), minlength=nb * 256).reshape(nb, 256)
        many = np.count_nonzero(per, axis=1).tolist()
        for b, (bx, by, bw, bh, area) in enumerate(boxes.tolist()):
            if b == 0:
                continue
            inside = blobs[by : by + bh, bx : bx + bw] == b
            if many[b] == 1:  # one class: the blob is its one component
                cid = int(per[b].argmax())
                self._component(
                    cands, tile, stride, cid, (bx, by, bw, bh, area), (c0, r0), inside, scores
                )
                continue
            cls = winner[by : by + bh, bx : bx + bw]
            for cid in np.flatnonzero(per[b]).tolist():
                if per[b, cid] * stride * stride < self._min_area[cid]:
                    continue  # no component of it can hold the area
                mask = inside & (cls == cid)
                _, labels, stats, _ = cv2.connectedComponentsWithStats(
                    mask.view(np.uint8), connectivity=8
                )
                for k, (sx, sy, w, h, cells) in enumerate(stats.tolist()):
                    if k == 0:
                        continue
                    mine = labels[sy : sy + h, sx : sx + w] == k
                    self._component(
                        cands,
                        tile,
                        stride,
                        cid,
                        (bx + sx, by + sy, w, h, cells),
                        (c0, r0),
                        mine,
                        scores,
                    )

    def _component(
        self,
        cands: list[_Row],
        tile: Tile,
        stride: int,
        cid: int,
        stats: tuple[int, int, int, int, int],
        origin: tuple[int, int],
        mine: np.ndarray,
        scores: _Scores,
    ) -> None:
        """Add one connected component of class ``cid`` (x y w h cells in the window, its cells
        ``mine`` in its box), split in two where the recipe says so."""
        x, y, w, h, cells = stats
        if cells * stride * stride < self._min_area[cid]:
            return
        parts = [(0, 0, h, w, mine)]
        sp = self._split
        if sp and cells < sp.fill * w * h and max(w, h) * stride <= sp.max_px:
            parts = split_cells(mine, sp.fill, _cells(int(self._min_area[cid]), stride))
        for py, px, ph, pw, part in parts:
            box = (x + px, y + py, pw, ph)
            self._candidate(cands, tile, stride, cid, box, origin, part, scores)

    def _candidate(
        self,
        cands: list[_Row],
        tile: Tile,
        stride: int,
        cid: int,
        box: tuple[int, int, int, int],
        origin: tuple[int, int],
        cells: np.ndarray,
        scores: _Scores,
    ) -> None:
        """Add one component (``cells`` in ``box``, x y w h in the window) unless too small, in
        another tile's part, or in the tile's padding only."""
        bx, by, w, h = box
        area = int(cells.sum()) * stride * stride
        if area < self._min_area[cid]:
            return
        x, y = origin[0] + bx, origin[1] + by  # in the tile's output grid
        x0, y0 = tile.x0 + x * stride, tile.y0 + y * stride
        x1 = min(tile.x0 + (x + w) * stride, tile.x0 + tile.width_px) - 1
        y1 = min(tile.y0 + (y + h) * stride, tile.y0 + tile.height_px) - 1
        if x1 < x0 or y1 < y0:
            return  # the component lies in the tile's padding only
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        ox0, oy0, ox1, oy1 = tile.own_xyxy
        if not (ox0 <= cx < ox1 and oy0 <= cy < oy1):
            return  # another tile owns it
        peak = scores.peak[by : by + h, bx : bx + w][cells].max()
        cands.append((x0, y0, x1, y1, cid, float(peak), area))
        if scores.window is not None and scores.alternates is not None:
            # Per class, the highest probability it reaches on the candidate's cells.
            best = scores.window[:, by : by + h, bx : bx + w][:, cells].max(axis=1)
            best[cid] = -1.0
            ok = (best >= self._floor) & (area >= self._min_area)
            if ok.any():
                other = int(np.where(ok, best, -1.0).argmax())
                score = min(float(best[other]), float(_ALTERNATE_MAX))
                scores.alternates.append((x0, y0, x1, y1, other, score, area))


#: One candidate: x0, y0, x1, y1 (frame pixels, inclusive), class id, score, area in pixels.
_Row = tuple[int, int, int, int, int, float, int]
#: The highest float32 score an alternate may have.
_ALTERNATE_MAX = np.nextafter(ALTERNATE_BELOW, np.float32(0))


class _Scores(NamedTuple):
    """What a window's candidates are scored from: the winning class's probability per cell;
    with alternates, the window's full maps and the list alternates go to (else None)."""

    peak: np.ndarray
    window: np.ndarray | None
    alternates: list[_Row] | None


def _one_class(winner: np.ndarray, kept: np.ndarray) -> int:
    """The class of every kept cell of a window where that is one class (a uint8 map); else 0."""
    if winner.dtype != np.uint8:
        return 0
    lo, hi, _, _ = cv2.minMaxLoc(winner, mask=kept)
    return int(lo) if lo == hi else 0


def _score(row: _Row) -> float:
    return row[5]


def _defects(rows: list[_Row]) -> Defects:
    """Candidate rows as :class:`Defects` (checked), in their order."""
    table = np.array(rows, np.float64).reshape(-1, 7)
    return Defects(
        table[:, :4].astype(np.int64),
        table[:, 4].astype(np.int64),
        table[:, 5].astype(np.float32),
        table[:, 6].astype(np.int64),
    )


#: No candidates (the usual board): the columns' types as rows would give them.
_NONE = _defects([])


def _cells(area_px: int, stride: int) -> int:
    """The fewest map cells (each ``stride`` x ``stride`` px) that hold ``area_px``, at least 1."""
    return max(1, -(-area_px // (stride * stride)))


def merge(parts: list[Defects]) -> Defects:
    """Candidates of several batches of one frame, highest score first."""
    return parts[0] if len(parts) == 1 else Defects.merge(parts).sorted_by_score()
