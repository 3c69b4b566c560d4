"""Training targets for the defect network: box-filled class maps with coded cells.

A target is an ``int64`` map at the network's output stride. Each cell holds a class id
(0 background, 1-6 defects) plus flags the loss decodes per model (:func:`decode_target` in numpy,
``models.masked_loss.masked_loss`` in torch):

- :data:`IGNORE`: the loss skips the cell (a defect mostly cut away by the crop).
- :data:`EDGE_BAND`: the cell lies within k cells of a box edge, where annotators' margins vary;
  a model may skip these cells or learn their plain class.
- :data:`SEAM`: the cell lies between two boxes of the same class that nearly touch. A model
  trained to *separate neighbours* learns background there, so that the station's connected
  components (``aoi.vision.postprocess``) report two defects, not one box around both.

Nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from models.dataset import PairSample, box_target

#: Target value of cells the loss ignores (a defect mostly cut away by the crop).
IGNORE = 255
#: Flag added to the class of cells near a box edge.
EDGE_BAND = 32
#: Flag added to the class of cells on the seam between two same-class neighbours.
SEAM = 64


def cells(box_xyxy_px: np.ndarray, stride: int) -> tuple[int, int, int, int]:
    """Output cells ``(r0, r1, c0, c1)`` (ends exclusive) that an inclusive-corner box touches."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy_px)
    return (
        math.floor(y0 / stride),
        math.floor(y1 / stride) + 1,
        math.floor(x0 / stride),
        math.floor(x1 / stride) + 1,
    )


def gap_px(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Pixels strictly between two inclusive-corner boxes along x and along y (negative where
    their extents overlap on that axis)."""
    gx = max(b[0] - a[2], a[0] - b[2]) - 1
    gy = max(b[1] - a[3], a[1] - b[3]) - 1
    return float(gx), float(gy)


def close_pairs(
    boxes_xyxy_px: np.ndarray, class_ids: np.ndarray, max_gap_px: float
) -> Iterator[tuple[int, int]]:
    """Index pairs of same-class boxes that do not overlap and are at most ``max_gap_px`` apart."""
    boxes = np.asarray(boxes_xyxy_px, np.float64).reshape(-1, 4)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            if class_ids[i] != class_ids[j]:
                continue
            gap = max(gap_px(boxes[i], boxes[j]))
            if 0 <= gap <= max_gap_px:
                yield i, j


def seam_cells(
    boxes_xyxy_px: np.ndarray,
    class_ids: np.ndarray,
    shape: tuple[int, int],
    stride: int,
    max_gap_px: float,
) -> np.ndarray:
    """Boolean map of the seams between same-class boxes at most ``max_gap_px`` apart.

    A seam runs along the axis on which the two boxes are further apart: it covers the facing
    edge cell of each box and every cell between them, over the range where the boxes face each
    other plus one cell on either side (for boxes that only meet at a corner, the cells around
    that corner). Overlapping boxes get no seam: nothing separates them.
    """
    out_h, out_w = shape
    mask = np.zeros(shape, bool)
    boxes = np.asarray(boxes_xyxy_px, np.float64).reshape(-1, 4)
    for i, j in close_pairs(boxes, class_ids, max_gap_px):
        a, b = boxes[i], boxes[j]
        gx, gy = gap_px(a, b)
        # axis 0 = x, 1 = y: the seam crosses the separating axis and spans the other one
        sep, span = (0, 1) if gx >= gy else (1, 0)
        first, second = (a, b) if a[sep + 2] < b[sep] else (b, a)
        lo_sep, hi_sep = first[sep + 2], second[sep]
        facing = (max(a[span], b[span]), min(a[span + 2], b[span + 2]))
        lo_span, hi_span = min(facing) - stride, max(facing) + stride
        s0, s1 = math.floor(lo_sep / stride), math.floor(hi_sep / stride) + 1
        t0, t1 = math.floor(lo_span / stride), math.floor(hi_span / stride) + 1
        if sep == 0:
            mask[max(t0, 0) : min(t1, out_h), max(s0, 0) : min(s1, out_w)] = True
        else:
            mask[max(s0, 0) : min(s1, out_h), max(t0, 0) : min(t1, out_w)] = True
    return mask


def target_with_ignore(
    sample: PairSample,
    ignore_boxes: np.ndarray,
    stride: int,
    edge_band_cells: int = 0,
    seam_gap_px: float = 0.0,
) -> np.ndarray:
    """Box-filled class map (``models.dataset.box_target``) with IGNORE, edge-band and seam cells.

    Truth boxes have inclusive corners, so every cell a box touches is filled. Cells of boxes
    cut away by the crop are IGNORE. If ``edge_band_cells`` = k > 0, the k cells on either side
    of each box edge keep their class plus :data:`EDGE_BAND`; boxes under 2k + 3 cells keep their
    edges. If ``seam_gap_px`` > 0, the seams between same-class boxes at most that far apart
    (:func:`seam_cells`) keep their class plus :data:`SEAM`.
    """
    h, w = sample.test.shape
    exclusive = sample.boxes_xyxy_px.astype(np.float32) + np.array([0, 0, 1, 1], np.float32)
    target = box_target(exclusive, sample.class_ids, h, w, stride)
    k = edge_band_cells
    band = np.zeros(target.shape, bool)
    for box in sample.boxes_xyxy_px if k > 0 else ():
        r0, r1, c0, c1 = cells(box, stride)
        if min(r1 - r0, c1 - c0) < 2 * k + 3:
            continue
        band[max(r0 - k, 0) : r1 + k, max(c0 - k, 0) : c1 + k] = True
        band[r0 + k : r1 - k, c0 + k : c1 - k] = False
    target[band] += EDGE_BAND
    if seam_gap_px > 0 and len(sample.class_ids) > 1:
        seam = seam_cells(sample.boxes_xyxy_px, sample.class_ids, target.shape, stride, seam_gap_px)
        target[seam] += SEAM
    for box in ignore_boxes:
        r0, r1, c0, c1 = cells(box, stride)
        target[max(r0, 0) : r1, max(c0, 0) : c1] = IGNORE
    return target


def decode_target(target: np.ndarray, ignore_edges: bool, separate: bool = False) -> np.ndarray:
    """Class ids for the loss: seam cells become background when ``separate``, else lose their
    flag; then edge-band cells become IGNORE, or their plain class."""
    coded = target != IGNORE
    seam = coded & (target & SEAM != 0)
    out = target.copy()
    out[seam] = 0 if separate else target[seam] - SEAM
    band = coded & (out & EDGE_BAND != 0)
    out[band] = IGNORE if ignore_edges else out[band] - EDGE_BAND
    return out
