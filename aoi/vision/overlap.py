"""One defect called twice: candidates that overlap a higher-scoring one of another class.

With ``[model] one_defect_overlap`` the postprocessor (:mod:`aoi.vision.postprocess`) reports
one defect the network paints in two classes once, in its higher-scoring class.
"""

from __future__ import annotations

import numpy as np

from aoi.types import Defects

#: Up to this many candidates the pairs are compared one by one in Python floats (a board's
#: usual handful: a fifth of the array operations' cost); more (a flood) go through arrays.
_FEW = 16


def one_class_per_defect(found: Defects, overlap: float) -> Defects:
    """``found`` (highest score first) without the candidates that overlap a higher-scoring one
    of another class by at least ``overlap`` of the smaller box: one defect, called twice."""
    if len(found) < 2:
        return found  # nothing to overlap
    again = called_again(found, overlap)
    return found[~again] if again.any() else found


def called_again(found: Defects, overlap: float) -> np.ndarray:
    """Per candidate of ``found`` (highest score first): whether it overlaps a higher-scoring
    kept one of another class by at least ``overlap`` of the smaller box.

    The overlaps of all pairs are one array operation; only the walk in score order (a
    candidate dropped keeps nothing out) is a loop, over Python booleans. A few candidates are
    compared pair by pair instead, with the same float64 operations, so the answer is the same.
    """
    n = len(found)
    if n < 2:
        return np.zeros(n, bool)
    if n <= _FEW:
        return np.array(_called_again_few(found, overlap), bool)
    return _called_again_arrays(found, overlap)


def _called_again_arrays(found: Defects, overlap: float) -> np.ndarray:
    again = np.zeros(len(found), bool)
    b = found.bbox_xyxy_px.astype(np.float64)
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    iw = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]) + 1
    ih = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]) + 1
    shared = np.clip(iw, 0, None) * np.clip(ih, 0, None) / np.minimum(area[:, None], area[None, :])
    ids = found.class_ids
    rows = ((shared >= overlap) & (ids[:, None] != ids[None, :])).tolist()
    kept: list[int] = []
    for i, row in enumerate(rows):
        if any(row[k] for k in kept):
            again[i] = True
        else:
            kept.append(i)
    return again


def _called_again_few(found: Defects, overlap: float) -> list[bool]:
    """:func:`_called_again_arrays` pair by pair: each step the arrays' float64 operation."""
    boxes = [[float(v) for v in box] for box in found.bbox_xyxy_px.tolist()]
    ids = found.class_ids.tolist()
    areas = [(x1 - x0 + 1) * (y1 - y0 + 1) for x0, y0, x1, y1 in boxes]
    again: list[bool] = []
    kept: list[int] = []
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        for k in kept:
            if ids[k] == ids[i]:
                continue
            kx0, ky0, kx1, ky1 = boxes[k]
            iw = min(x1, kx1) - max(x0, kx0) + 1
            ih = min(y1, ky1) - max(y0, ky0) + 1
            if max(iw, 0.0) * max(ih, 0.0) / min(areas[i], areas[k]) >= overlap:
                again.append(True)
                break
        else:
            again.append(False)
            kept.append(i)
    return again
