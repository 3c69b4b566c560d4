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
"""

from __future__ import annotations

import cv2
import numpy as np

from aoi.errors import InferenceError
from aoi.recipe import MaskRegion, Recipe
from aoi.types import DEFECT_CLASSES, ClassMaps, Defects, GroundTruth
from aoi.vision.boxsplit import split_cells
from aoi.vision.preprocess import Tile

#: A background probability at or above which no defect class can win a cell's argmax: half the
#: softmax mass, plus float32 rounding of the sum.
_BACKGROUND_WINS = 0.5 + 1e-4

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
        cands: list[tuple[int, int, int, int, int, float, int]] = []
        # A component needs this many cells to be kept in any class: fewer in a window, none is.
        fewest = _cells(int(self._min_area[1:].min()), stride)
        for i, tile in enumerate(tiles):
            for r0, c0, winner, score, own in _windows(probs, i, fewest):
                self._window_candidates(cands, tile, stride, r0, c0, winner, score, own)
        table = np.array(cands, np.float64).reshape(-1, 7)
        found = Defects(
            table[:, :4].astype(np.int64),
            table[:, 4].astype(np.int64),
            # The network's float32 peak, kept at its own precision (the thresholds compare so).
            table[:, 5].astype(np.float32),
            table[:, 6].astype(np.int64),
        )
        found = found[~self._masked(found.bbox_xyxy_px, seen)].sorted_by_score()
        return found if self._one_defect is None else one_class_per_defect(found, self._one_defect)

    def _window_candidates(
        self,
        cands: list[tuple[int, int, int, int, int, float, int]],
        tile: Tile,
        stride: int,
        r0: int,
        c0: int,
        winner: np.ndarray,
        score: np.ndarray,
        own: np.ndarray,
    ) -> None:
        """Add the candidates of one window of one tile's map (its own cells ``own`` only)."""
        # One pass finds the blobs of cells any class keeps; a class's components are then
        # found inside their blob's box only (a connected component of one class lies in one
        # blob), so the cost follows the defect area, not the classes times the window.
        floor = (
            cv2.LUT(winner, self._floor_lut) if winner.dtype == np.uint8 else self._floor[winner]
        )
        keep = (score >= floor) & own
        nb, blobs, boxes, _ = cv2.connectedComponentsWithStats(keep.view(np.uint8), connectivity=8)
        if nb == 1:
            return
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
                    cands, tile, stride, cid, (bx, by, bw, bh, area), (c0, r0), inside, score
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
                        score,
                    )

    def _component(
        self,
        cands: list[tuple[int, int, int, int, int, float, int]],
        tile: Tile,
        stride: int,
        cid: int,
        stats: tuple[int, int, int, int, int],
        origin: tuple[int, int],
        mine: np.ndarray,
        score: np.ndarray,
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
            self._candidate(cands, tile, stride, cid, (x + px, y + py, pw, ph), origin, part, score)

    def _candidate(
        self,
        cands: list[tuple[int, int, int, int, int, float, int]],
        tile: Tile,
        stride: int,
        cid: int,
        box: tuple[int, int, int, int],
        origin: tuple[int, int],
        cells: np.ndarray,
        score: np.ndarray,
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
        peak = score[by : by + h, bx : bx + w][cells].max()
        cands.append((x0, y0, x1, y1, cid, float(peak), area))


def _cells(area_px: int, stride: int) -> int:
    """The fewest map cells (each ``stride`` x ``stride`` px) that hold ``area_px``, at least 1."""
    return max(1, -(-area_px // (stride * stride)))


#: One window of a tile's map: its row and column offsets, the winning class per cell, the
#: winning class's probability per cell (float32), and which of its cells are its own.
_Window = tuple[int, int, np.ndarray, np.ndarray, np.ndarray]

#: The side of the blocks in which contested cells are looked for (cells of the map).
BLOCK = 16


def _windows(maps: np.ndarray | ClassMaps, i: int, fewest: int = 1) -> list[_Window]:
    """The windows of tile ``i``'s map around the cells a defect class can win (none: none can).

    Full maps: where the background holds half the mass or more no defect class can win the
    argmax (ties go to class 0 too); class maps: cells whose class is not background. Blocks of
    ``BLOCK`` x ``BLOCK`` cells holding such a cell are found with one dilation (a block's
    maximum); each 8-connected group of blocks is one window, its own cells those of its
    blocks. Cells 8-connected in the map lie in the same or 8-connected blocks, so a connected
    component lies in one window whole, and the cost follows the defect area, not the frame.
    Only the windows are read (full maps: argmax'd; float16 scores: widened). A window whose
    box holds fewer than ``fewest`` contested cells (the smallest component any class keeps) is
    not read: a stray cell costs a count, not a window.
    """
    if isinstance(maps, ClassMaps):
        contested = maps.classes[i]
    else:
        contested = (maps[i, 0] < _BACKGROUND_WINS).view(np.uint8)
    h, w = contested.shape
    blocks = _blocks(contested)
    if not blocks.any():
        return []  # the usual board: nothing contested anywhere
    n, groups, boxes, _ = cv2.connectedComponentsWithStats(blocks.view(np.uint8), connectivity=8)
    out = []
    for g in range(1, n):
        bx, by, bw, bh = (int(v) for v in boxes[g, :4])
        r0, c0 = by * BLOCK, bx * BLOCK
        r1, c1 = min((by + bh) * BLOCK, h), min((bx + bw) * BLOCK, w)
        if fewest > 1 and cv2.countNonZero(contested[r0:r1, c0:c1]) < fewest:
            continue  # the box may hold other groups' cells too: an upper bound, so exact
        own = groups[by : by + bh, bx : bx + bw] == g
        own = np.repeat(np.repeat(own, BLOCK, axis=0), BLOCK, axis=1)[: r1 - r0, : c1 - c0]
        if isinstance(maps, ClassMaps):
            # float16 scores compare with the float32 thresholds at float32.
            scores = maps.scores[i, r0:r1, c0:c1].astype(np.float32, copy=False)
            classes = np.ascontiguousarray(maps.classes[i, r0:r1, c0:c1])
            out.append((r0, c0, classes, scores, own))
        else:
            # The winner's probability is the maximum (argmax's ties go to the lower class).
            p = maps[i, :, r0:r1, c0:c1]
            out.append((r0, c0, p.argmax(axis=0), p.max(axis=0), own))
    return out


def _blocks(cells: np.ndarray) -> np.ndarray:
    """Per ``BLOCK`` x ``BLOCK`` block of a uint8 map (the last ones cut by its edges): whether
    it holds a nonzero cell. Rows of 16 cells are ORed as two 8-byte words each."""
    h, w = cells.shape
    nh, nw = -(-h // BLOCK), -(-w // BLOCK)
    if (h, w) != (nh * BLOCK, nw * BLOCK) or not cells.flags.c_contiguous:
        padded = np.zeros((nh * BLOCK, nw * BLOCK), np.uint8)
        padded[:h, :w] = cells
        cells = padded
    words = np.bitwise_or.reduce(cells.view(np.uint64).reshape(nh, BLOCK, 2 * nw), axis=1)
    return (words[:, ::2] | words[:, 1::2]) != 0


def one_class_per_defect(found: Defects, overlap: float) -> Defects:
    """``found`` (highest score first) without the candidates that overlap a higher-scoring one
    of another class by at least ``overlap`` of the smaller box: one defect, called twice."""
    if len(found) < 2:
        return found
    boxes = found.bbox_xyxy_px.astype(np.float64)
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    keep: list[int] = []
    for i in range(len(found)):
        if keep:
            k = np.array(keep)
            iw = np.minimum(boxes[k, 2], boxes[i, 2]) - np.maximum(boxes[k, 0], boxes[i, 0]) + 1
            ih = np.minimum(boxes[k, 3], boxes[i, 3]) - np.maximum(boxes[k, 1], boxes[i, 1]) + 1
            shared = np.clip(iw, 0, None) * np.clip(ih, 0, None) / np.minimum(area[k], area[i])
            other = found.class_ids[k] != found.class_ids[i]
            if (other & (shared >= overlap)).any():
                continue
        keep.append(i)
    return found if len(keep) == len(found) else found[np.array(keep, np.int64)]


def merge(parts: list[Defects]) -> Defects:
    """Candidates of several batches of one frame, highest score first."""
    return parts[0] if len(parts) == 1 else Defects.merge(parts).sorted_by_score()
