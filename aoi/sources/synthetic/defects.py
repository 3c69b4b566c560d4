"""DeepPCB-style defects injected into a copper mask, with their ground-truth boxes.

Each defect class has a maker that finds a site from the mask alone (so any template works), edits
a small ROI and checks that the edit tells exactly its story (an open splits a conductor, a short
joins two, ...). :func:`inject_defects` places non-overlapping defects and returns their truth.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import cv2
import numpy as np

from aoi.sources.synthetic._raster import DIRS, check_mask
from aoi.types import DEFECT_CLASSES, GroundTruth

log = logging.getLogger(__name__)

_BOX_MARGIN_PX = 2
_TRIES_PER_CLASS = 40
_Patch = tuple[tuple[int, int, int, int], np.ndarray]  # (y0, y1, x0, x1) of the ROI, new ROI


class _Sites:
    """Facts about the defect-free mask that the site searches share (computed once per board)."""

    def __init__(self, copper: np.ndarray) -> None:
        u8 = copper.view(np.uint8)
        self.h, self.w = copper.shape
        self.dist_in = cv2.distanceTransform(u8, cv2.DIST_L2, 3)  # copper px: distance to substrate
        self.dist_out = cv2.distanceTransform(1 - u8, cv2.DIST_L2, 3)  # substrate px: to copper
        self.labels = cv2.connectedComponents(u8, connectivity=8)[1]
        self._pools: dict[str, np.ndarray] = {}

    def pick(self, pool: str, rng: np.random.Generator) -> tuple[int, int] | None:
        if pool not in self._pools:
            d_in, d_out = self.dist_in, self.dist_out
            where = {
                "edge": (d_in > 0) & (d_in < 1.5),
                "trace": (d_in >= 1.5) & (d_in <= 8),
                "inside": d_in >= 4,
                "open": d_out >= 9,
            }[pool]
            self._pools[pool] = np.flatnonzero(where)
        idx = self._pools[pool]
        if idx.size == 0:
            return None
        y, x = divmod(int(idx[rng.integers(idx.size)]), self.w)
        return y, x

    def roi(self, y: int, x: int, radius: int) -> tuple[int, int, int, int]:
        return (
            max(y - radius, 0),
            min(y + radius + 1, self.h),
            max(x - radius, 0),
            min(x + radius + 1, self.w),
        )


def _ray(mask: np.ndarray, y: float, x: float, d: np.ndarray, max_px: int) -> int:
    """Steps from (y, x) along unit vector d before leaving the copper (or the image)."""
    t = np.arange(1, max_px + 1)
    ys, xs = np.round(y + d[1] * t).astype(int), np.round(x + d[0] * t).astype(int)
    inside = (ys >= 0) & (ys < mask.shape[0]) & (xs >= 0) & (xs < mask.shape[1])
    hit = np.zeros(max_px, bool)
    hit[inside] = mask[ys[inside], xs[inside]]
    return max_px if hit.all() else int(np.argmin(hit))


def _parts(mask: np.ndarray) -> int:
    """Number of 8-connected components of a bool mask."""
    return cv2.connectedComponents(mask.view(np.uint8), connectivity=8)[0] - 1


def _inward(mask: np.ndarray, y: int, x: int) -> np.ndarray | None:
    """Unit normal pointing into the copper at edge pixel (y, x): towards the nearby copper mass."""
    win = mask[max(y - 3, 0) : y + 4, max(x - 3, 0) : x + 4]
    ys, xs = np.nonzero(win)
    v = np.array([xs.mean() + max(x - 3, 0) - x, ys.mean() + max(y - 3, 0) - y])
    norm = float(np.hypot(*v))
    return v / norm if norm > 0.3 else None


def _draw_line(patch: np.ndarray, pts: np.ndarray, value: int, width: int) -> None:
    fixed = np.round(pts * 8).astype(np.int32)  # 3 fractional bits: sub-pixel placement
    cv2.polylines(patch, [fixed], isClosed=False, color=value, thickness=width, shift=3)


def _open(new: np.ndarray, s: _Sites, rng: np.random.Generator) -> _Patch | None:
    """Cut a trace across its full width (3-8 px gap)."""
    site = s.pick("trace", rng)
    if site is None:
        return None
    y, x = site
    gap = float(rng.integers(3, 9))
    best = None
    for k in range(4):  # the trace runs along d where the crossing (along n) is narrowest
        d, n = DIRS[k], DIRS[k + 2]
        a1, a2 = _ray(new, y, x, n, 24), _ray(new, y, x, -n, 24)
        along = min(_ray(new, y, x, d, 40), _ray(new, y, x, -d, 40))
        if along >= gap / 2 + 6 and max(a1, a2) < 24 and (best is None or a1 + a2 < best[0]):
            best = (a1 + a2, d, n, a1, a2)
    if best is None or not 3 <= best[0] + 1 <= 16:
        return None
    width, d, n, a1, a2 = best
    roi = s.roi(y, x, 40)
    centre = np.array([x - roi[2], y - roi[0]]) + n * (a1 - a2) / 2
    half = (width + 1) / 2 + 2
    patch = new[roi[0] : roi[1], roi[2] : roi[3]].copy()
    cut = np.array(
        [
            centre + sd * d * gap / 2 + sn * n * half
            for sd, sn in ((-1, -1), (1, -1), (1, 1), (-1, 1))
        ]
    )
    cv2.fillPoly(patch.view(np.uint8), [np.round(cut * 8).astype(np.int32)], 0, shift=3)
    return (roi, patch) if _parts(patch) > _parts(new[roi[0] : roi[1], roi[2] : roi[3]]) else None


def _short(new: np.ndarray, s: _Sites, rng: np.random.Generator) -> _Patch | None:
    """Bridge two separate conductors 5-40 px apart with a thin (2-4 px) copper line."""
    site = s.pick("edge", rng)
    if site is None:
        return None
    y, x = site
    own = s.labels[y, x]
    for k in rng.permutation(8):
        d = DIRS[k]
        free = _ray(~new, y, x, d, 41)
        if not 5 <= free <= 40:
            continue
        qx, qy = round(x + d[0] * (free + 1)), round(y + d[1] * (free + 1))
        if not (0 <= qx < s.w and 0 <= qy < s.h) or s.labels[qy, qx] in (0, own):
            continue
        roi = s.roi(y, x, 48)
        p, q = np.array([x - roi[2], y - roi[0]]), np.array([qx - roi[2], qy - roi[0]])
        bend = (p + q) / 2 + np.array([-d[1], d[0]]) * rng.uniform(-free / 5, free / 5)
        old = new[roi[0] : roi[1], roi[2] : roi[3]]
        patch = old.copy()
        _draw_line(patch.view(np.uint8), np.array([p, bend, q]), 1, int(rng.integers(2, 5)))
        grown = cv2.dilate((patch & ~old).view(np.uint8), np.ones((3, 3), np.uint8)) > 0
        touched = set(np.unique(s.labels[roi[0] : roi[1], roi[2] : roi[3]][grown & old])) - {0}
        if touched == {own, s.labels[qy, qx]} and _parts(patch) < _parts(old):
            return roi, patch
    return None


def _edge_site(
    new: np.ndarray, s: _Sites, rng: np.random.Generator
) -> tuple[int, int, np.ndarray] | None:
    site = s.pick("edge", rng)
    if site is None or not new[site]:
        return None
    inward = _inward(new, *site)
    return None if inward is None else (*site, inward)


def _mousebite(new: np.ndarray, s: _Sites, rng: np.random.Generator) -> _Patch | None:
    """Nibble 2-4 small bites (radius 2-4 px) out of a conductor's edge."""
    site = _edge_site(new, s, rng)
    if site is None:
        return None
    y, x, inward = site
    r = rng.uniform(2, 4)
    if _ray(new, y, x, inward, 40) < 2 * r + 5:  # the conductor must survive the bites
        return None
    roi = s.roi(y, x, 30)
    old = new[roi[0] : roi[1], roi[2] : roi[3]]
    patch = old.copy()
    tangent = np.array([-inward[1], inward[0]])
    bites = int(rng.integers(2, 5))
    spacing = rng.uniform(1.3, 2.2) * r
    for i in range(bites):
        c = (
            np.array([x - roi[2], y - roi[0]])
            + tangent * (i - (bites - 1) / 2) * spacing
            + inward * rng.uniform(-0.5, 1.0)
        )
        before = int(np.count_nonzero(patch))
        cv2.circle(
            patch.view(np.uint8),
            tuple(np.round(c * 8).astype(int)),
            round(r * rng.uniform(0.8, 1.0) * 8),
            0,
            -1,
            shift=3,
        )
        if before - int(np.count_nonzero(patch)) < 3:
            return None
    if _parts(patch) != _parts(old) or _parts(~patch) != _parts(~old):
        return None
    return roi, patch


def _spur(new: np.ndarray, s: _Sites, rng: np.random.Generator) -> _Patch | None:
    """Grow a thin protrusion (2-3 px wide, 5-15 px long) out of an edge, touching nothing."""
    site = _edge_site(new, s, rng)
    if site is None:
        return None
    y, x, inward = site
    a = math.radians(rng.uniform(-35, 35))
    out = -np.array(
        [
            inward[0] * math.cos(a) - inward[1] * math.sin(a),
            inward[0] * math.sin(a) + inward[1] * math.cos(a),
        ]
    )
    roi = s.roi(y, x, 30)
    old = new[roi[0] : roi[1], roi[2] : roi[3]]
    patch = old.copy()
    p = np.array([x - roi[2], y - roi[0]], np.float64)
    _draw_line(
        patch.view(np.uint8),
        np.array([p - out * 2, p + out * rng.uniform(5, 15)]),
        1,
        int(rng.integers(2, 4)),
    )
    grown = cv2.dilate((patch & ~old).view(np.uint8), np.ones((9, 9), np.uint8)) > 0
    touched = set(np.unique(s.labels[roi[0] : roi[1], roi[2] : roi[3]][grown & old])) - {0}
    if touched != {s.labels[y, x]} or np.count_nonzero(patch & ~old) < 5:
        return None
    if _parts(patch) != _parts(old) or _parts(~patch) != _parts(~old):
        return None
    return roi, patch


def _spurious_copper(new: np.ndarray, s: _Sites, rng: np.random.Generator) -> _Patch | None:
    """Drop an irregular copper blob (4-14 px) in open substrate, clear of all copper."""
    site = s.pick("open", rng)
    if site is None:
        return None
    y, x = site
    size = rng.uniform(6, 14)  # DeepPCB's spurious copper is rarely at the small end
    if s.dist_out[y, x] < size / 2 + 5:
        return None
    angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 9))))
    radii = size / 2 * rng.uniform(0.65, 1.0, angles.size)
    pts = np.stack([np.cos(angles) * radii * rng.uniform(1, 1.6), np.sin(angles) * radii], 1)
    turn = rng.uniform(0, np.pi)
    pts = pts @ np.array([[math.cos(turn), math.sin(turn)], [-math.sin(turn), math.cos(turn)]])
    roi = s.roi(y, x, 20)
    old = new[roi[0] : roi[1], roi[2] : roi[3]]
    patch = old.copy()
    pts += np.array([x - roi[2], y - roi[0]])
    cv2.fillPoly(patch.view(np.uint8), [np.round(pts * 8).astype(np.int32)], 1, shift=3)
    added = patch & ~old
    clear = s.dist_out[roi[0] : roi[1], roi[2] : roi[3]][added].min(initial=np.inf) >= 4
    if np.count_nonzero(added) < 6 or not clear or _parts(patch) != _parts(old) + 1:
        return None
    return roi, patch


def _pin_hole(new: np.ndarray, s: _Sites, rng: np.random.Generator) -> _Patch | None:
    """Punch a small hole (radius 1.5-4 px) inside copper, fully enclosed."""
    site = s.pick("inside", rng)
    r = rng.uniform(1.5, 4)
    if site is None or s.dist_in[site] < r + 2.5 or not new[site]:
        return None
    y, x = site
    roi = s.roi(y, x, 16)
    old = new[roi[0] : roi[1], roi[2] : roi[3]]
    patch = old.copy()
    centre = tuple(np.round(np.array([x - roi[2], y - roi[0]], float) * 8).astype(int))
    axes = (round(r * 8), round(r * rng.uniform(0.6, 1.0) * 8))
    cv2.ellipse(
        patch.view(np.uint8), centre, axes, rng.uniform(0, 180), 0, 360, 0, -1, cv2.LINE_8, 3
    )
    if np.count_nonzero(old & ~patch) < 4 or _parts(~patch) != _parts(~old) + 1:
        return None
    return roi, patch


def _try_defect(
    make: object,
    new: np.ndarray,
    s: _Sites,
    rng: np.random.Generator,
    taken: list[tuple[int, int, int, int]],
) -> tuple[int, int, int, int] | None:
    """Find a site for one defect class, apply it to ``new`` and return its box, or None."""
    for _ in range(_TRIES_PER_CLASS):
        made = make(new, s, rng)  # type: ignore[operator]
        if made is None:
            continue
        (y0, y1, x0, x1), patch = made
        ys, xs = np.nonzero(patch != new[y0:y1, x0:x1])
        if ys.size < 3:
            continue
        m = _BOX_MARGIN_PX
        box = (
            max(x0 + int(xs.min()) - m, 0),
            max(y0 + int(ys.min()) - m, 0),
            min(x0 + int(xs.max()) + m, s.w - 1),
            min(y0 + int(ys.max()) + m, s.h - 1),
        )
        if any(
            box[0] <= t[2] + 3 and t[0] <= box[2] + 3 and box[1] <= t[3] + 3 and t[1] <= box[3] + 3
            for t in taken
        ):
            continue  # defects never overlap: each box must tell one story
        new[y0:y1, x0:x1] = patch
        taken.append(box)
        return box
    return None


def inject_defects(
    copper: np.ndarray, rng: np.random.Generator, count: int, classes: Sequence[int] | None = None
) -> tuple[np.ndarray, GroundTruth]:
    """Return a new copper mask with ``count`` DeepPCB-style defects and their ground truth.

    Sites are found from the mask alone, so any template works. A class with no valid site is
    replaced by another allowed class; if no class fits anywhere (a blank or tiny board), fewer
    than ``count`` defects come back and a warning is logged.
    """
    check_mask(copper)
    if count < 0:
        msg = f"count must be >= 0, got {count}"
        raise ValueError(msg)
    allowed = list(range(1, len(DEFECT_CLASSES) + 1)) if classes is None else list(classes)
    if not allowed or any(not 1 <= c <= len(DEFECT_CLASSES) for c in allowed):
        msg = f"classes must be a non-empty subset of 1..{len(DEFECT_CLASSES)}, got {allowed}"
        raise ValueError(msg)
    sites = _Sites(copper)
    new = copper.copy()
    taken: list[tuple[int, int, int, int]] = []
    boxes: list[tuple[int, int, int, int]] = []
    ids: list[int] = []
    makers = {1: _open, 2: _short, 3: _mousebite, 4: _spur, 5: _spurious_copper, 6: _pin_hole}
    for _ in range(count):
        order = [int(rng.choice(allowed)), *(int(c) for c in rng.permutation(allowed))]
        for cls in order:
            box = _try_defect(makers[cls], new, sites, rng, taken)
            if box is not None:
                boxes.append(box)
                ids.append(cls)
                break
        else:
            break
    if len(ids) < count:
        log.warning(
            "only %d of %d defects fit on a %dx%d board",
            len(ids),
            count,
            copper.shape[1],
            copper.shape[0],
        )
    truth = GroundTruth(np.array(boxes, np.int32).reshape(-1, 4), np.array(ids, np.int32))
    return new, truth
