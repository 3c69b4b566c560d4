"""The robust rigid fit of patch registration (:mod:`aoi.vision.patchreg`): template points and
where the frame shows them -> the 2x3 rotation and translation.

The fit runs three or four times per frame on a handful of points (nine patches), so it is
written over Python floats: numpy's per-call cost on arrays this small made it 0.1-0.2 ms a fit,
a tenth of the device cycle at 640 px; this is 8x cheaper and gives the same numbers (float64
throughout; tests/vision/test_rigidfit.py holds it against the array formulation).
"""

from __future__ import annotations

import math
import statistics

import numpy as np

from aoi.errors import RegistrationError
from aoi.regplan import MIN_PAIRS, OUTLIER_FACTOR, OUTLIER_FLOOR_PX

__all__ = ["MIN_PAIRS", "OUTLIER_FACTOR", "OUTLIER_FLOOR_PX", "fit_pairs", "fit_robust"]

#: One pair: template x, y and frame x, y.
Pair = tuple[float, float, float, float]
#: A 2x3 warp's rows, flattened: a, b, tx, c, d, ty.
Warp = tuple[float, float, float, float, float, float]


def fit_rigid(pairs: list[Pair]) -> Warp:
    """Least-squares rotation and translation mapping the template points onto the frame's:
    the closed form of the 2-D Procrustes rotation angle."""
    n = len(pairs)
    csx, csy, cdx, cdy = (sum(p[i] for p in pairs) / n for i in range(4))
    cross = dot = 0.0
    for sx, sy, dx, dy in pairs:
        ax, ay, bx, by = sx - csx, sy - csy, dx - cdx, dy - cdy
        cross += ax * by - ay * bx
        dot += ax * bx + ay * by
    angle = math.atan2(cross, dot)
    c, s = math.cos(angle), math.sin(angle)
    return (c, -s, cdx - (c * csx - s * csy), s, c, cdy - (s * csx + c * csy))


def fit_robust(pairs: list[Pair]) -> Warp:
    """A rigid fit that drops pairs far off the median residual, then refits on the rest
    (twice at most)."""
    warp = fit_rigid(pairs)
    for _ in range(2):
        a, b, tx, c, d, ty = warp
        res = [math.hypot(a * x + b * y + tx - u, c * x + d * y + ty - v) for x, y, u, v in pairs]
        limit = max(OUTLIER_FACTOR * statistics.median(res), OUTLIER_FLOOR_PX)
        keep = [p for p, r in zip(pairs, res, strict=True) if r <= limit]
        if len(keep) == len(pairs) or len(keep) < MIN_PAIRS:
            break
        pairs = keep
        warp = fit_rigid(pairs)
    return warp


def fit_pairs(src: np.ndarray, shift: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """The robust rigid fit (2x3) of template points ``src`` (K, 2) to where ``warp`` puts them
    moved by their measured ``shift`` (K, 2)."""
    if len(src) < MIN_PAIRS:
        msg = f"registration needs {MIN_PAIRS} textured patches, the template has {len(src)}"
        raise RegistrationError(msg)
    (a, b, tx), (c, d, ty) = np.asarray(warp, np.float64).tolist()
    pairs = []
    for (x, y), (u, v) in zip(src.tolist(), shift.tolist(), strict=True):
        px, py = x + u, y + v
        pairs.append((x, y, a * px + b * py + tx, c * px + d * py + ty))
    return np.array(fit_robust(pairs)).reshape(2, 3)
