"""Golden copper layouts of synthetic bare PCBs: pours, pin rows, buses and free nets.

A layout is a boolean copper mask (True = copper) at a fixed pixel scale close to DeepPCB's
(traces 4-14 px wide, >= 7 px clearance), so a bigger image is a bigger board, not a zoomed one.
Nets are drawn as a router would (0/45/90-degree segments) and committed only when they keep the
clearance to everything already placed. Deterministic by seed; pure numpy/OpenCV.
"""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np

from aoi.sources.synthetic._raster import DIRS, check_size

CLEARANCE_PX = 7
_TRACE_WIDTHS_PX = (4, 5, 6, 6, 8, 8, 10, 10, 12, 14)
_TILE_AREA_PX = 640 * 640

# A primitive is (kind, geometry, width): "line" polyline of width w, "poly" filled polygon,
# "circle" filled disc (geometry cx, cy, r), "hole" a disc of substrate cut into the net.
Prim = tuple[str, np.ndarray, int]


def _disc(canvas: np.ndarray, cx: float, cy: float, r: float, value: int) -> None:
    """Set a filled disc exactly (cv2.circle leaves ticks at the four cardinal points)."""
    y0, y1 = max(math.floor(cy - r), 0), min(math.ceil(cy + r) + 1, canvas.shape[0])
    x0, x1 = max(math.floor(cx - r), 0), min(math.ceil(cx + r) + 1, canvas.shape[1])
    if y1 <= y0 or x1 <= x0:
        return
    yy, xx = np.arange(y0, y1)[:, None], np.arange(x0, x1)[None, :]
    canvas[y0:y1, x0:x1][(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = value


class _Layout:
    """A board being drawn net by net; a net is committed only if it keeps the clearance."""

    def __init__(self, height_px: int, width_px: int) -> None:
        self.h, self.w = height_px, width_px
        self.copper = np.zeros((height_px, width_px), np.uint8)
        self.keepout = np.zeros((height_px, width_px), np.uint8)
        self.copper_px = 0
        size = 2 * CLEARANCE_PX + 1
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))

    def place(self, prims: list[Prim]) -> bool:
        """Draw one conductor; refuse it if any of its pixels is within the clearance of another."""
        # Most attempts on a filling board collide: test points along the skeleton first, which
        # costs far less than drawing the net.
        skeleton, ext = [], 0.0
        for kind, geom, width in prims:
            if kind in ("circle", "hole"):
                skeleton.append(geom[None, :2])
                ext = max(ext, geom[2])
                continue
            skeleton.append(geom)
            ext = max(ext, width / 2)
            for a, b in itertools.pairwise(geom):
                n = int(math.hypot(*(b - a)) // 5) + 2
                skeleton.append(a + np.outer(np.arange(1, n) / n, b - a))
        pts = np.concatenate(skeleton)
        ipts = pts.round().astype(np.int64)
        ok = (ipts[:, 0] >= 0) & (ipts[:, 0] < self.w) & (ipts[:, 1] >= 0) & (ipts[:, 1] < self.h)
        if self.keepout[ipts[ok, 1], ipts[ok, 0]].any():
            return False
        lo, hi = pts.min(axis=0) - ext, pts.max(axis=0) + ext
        x0 = max(int(lo[0]) - CLEARANCE_PX - 2, 0)
        y0 = max(int(lo[1]) - CLEARANCE_PX - 2, 0)
        x1 = min(math.ceil(hi[0]) + CLEARANCE_PX + 3, self.w)
        y1 = min(math.ceil(hi[1]) + CLEARANCE_PX + 3, self.h)
        if x1 <= x0 or y1 <= y0:
            return False
        scratch = np.zeros((y1 - y0, x1 - x0), np.uint8)
        off = np.array([x0, y0], np.float64)
        for kind, geom, width in prims:
            if kind == "line":
                pts = np.round(geom - off).astype(np.int32)
                cv2.polylines(scratch, [pts], isClosed=False, color=1, thickness=max(width, 1))
            elif kind == "poly":
                cv2.fillPoly(scratch, [np.round(geom - off).astype(np.int32)], 1)
            else:
                _disc(scratch, *(geom[:2] - off), geom[2], 1 if kind == "circle" else 0)
        if not scratch.any() or (scratch & self.keepout[y0:y1, x0:x1]).any():
            return False
        self.copper[y0:y1, x0:x1] |= scratch
        self.keepout[y0:y1, x0:x1] |= cv2.dilate(scratch, self._kernel)
        self.copper_px += int(np.count_nonzero(scratch))
        return True


def _route(
    rng: np.random.Generator, start: np.ndarray, k: int, segments: int, length: tuple[int, int]
) -> np.ndarray:
    """A polyline of 0/45/90-degree segments, as a router draws them."""
    pts = [start.astype(np.float64)]
    for i in range(segments):
        if i:
            k = (k + int(rng.choice((-1, 1, -1, 1, -2, 2)))) % 8
        pts.append(pts[-1] + DIRS[k] * rng.integers(*length))
    return np.array(pts)


def _pad(rng: np.random.Generator, at: np.ndarray, size: float, kind: str) -> list[Prim]:
    """A land at ``at``: rectangular pad, round pad, via (ring with hole) or big ring pad."""
    cx, cy = at
    if kind == "rect":
        hw, hh = size / 2, size / 2 * rng.uniform(0.5, 1.0)
        if rng.random() < 0.5:
            hw, hh = hh, hw
        return [
            (
                "poly",
                np.array(
                    [[cx - hw, cy - hh], [cx + hw, cy - hh], [cx + hw, cy + hh], [cx - hw, cy + hh]]
                ),
                0,
            )
        ]
    if kind == "round":
        return [("circle", np.array([cx, cy, size / 2]), 0)]
    hole = size / 2 * rng.uniform(0.3, 0.55 if kind == "via" else 0.7)
    return [("circle", np.array([cx, cy, size / 2]), 0), ("hole", np.array([cx, cy, hole]), 0)]


def _end(rng: np.random.Generator, at: np.ndarray, width: int) -> list[Prim]:
    """Whatever a trace ends on: a land most of the time, sometimes just the trace's round end."""
    kind = str(rng.choice(("rect", "round", "via", "via", "ring", "none")))
    if kind == "none":
        return []
    big = rng.random() < 0.2  # connector lands and mounting rings are several times a trace
    size = width + (rng.uniform(20, 60) if big or kind == "ring" else rng.uniform(6, 20))
    return _pad(rng, at, max(size, 12), kind)


def _free_net(rng: np.random.Generator, h: int, w: int) -> list[Prim]:
    width = int(rng.choice(_TRACE_WIDTHS_PX))
    start = rng.uniform((-40, -40), (w + 40, h + 40))
    pts = _route(rng, start, int(rng.integers(8)), int(rng.integers(1, 5)), (20, 180))
    return [("line", pts, width), *_end(rng, pts[0], width), *_end(rng, pts[-1], width)]


def _pour(rng: np.random.Generator, h: int, w: int) -> tuple[list[Prim], list[np.ndarray]]:
    """A large copper area (chamfered polygon) with round cut-outs; returns it and the cut-outs."""
    cx, cy = rng.uniform((0, 0), (w, h))
    hw, hh = rng.uniform(30, 160, size=2)
    c = min(hw, hh) * rng.uniform(0.0, 0.6, size=4)
    poly = np.array(
        [
            [cx - hw + c[0], cy - hh],
            [cx + hw - c[1], cy - hh],
            [cx + hw, cy - hh + c[1]],
            [cx + hw, cy + hh - c[2]],
            [cx + hw - c[2], cy + hh],
            [cx - hw + c[3], cy + hh],
            [cx - hw, cy + hh - c[3]],
            [cx - hw, cy - hh + c[0]],
        ]
    )
    prims: list[Prim] = [("poly", poly, 0)]
    cutouts = []
    for _ in range(int(rng.integers(0, 4))):
        r = rng.uniform(12, min(hw, hh, 45))
        at = rng.uniform((cx - hw + r, cy - hh + r), (cx + hw - r, cy + hh - r))
        prims.append(("hole", np.array([*at, r]), 0))
        cutouts.append(np.array([*at, r]))
    if rng.random() < 0.7:  # a pour is usually fed by a thick trace
        k = int(rng.integers(8))
        prims.append(
            (
                "line",
                _route(rng, np.array([cx, cy]), k, 2, (hw + 30, hw + 150)),
                int(rng.choice(_TRACE_WIDTHS_PX[4:])),
            )
        )
    return prims, cutouts


def _pin_row(rng: np.random.Generator, h: int, w: int) -> list[list[Prim]]:
    """A component's row of pads, each with a fan-out trace; one net per pin."""
    pitch = float(rng.integers(18, 42))
    pad_w = float(rng.uniform(8, pitch - CLEARANCE_PX - 1))
    pad_h = float(rng.uniform(pad_w, 3 * pad_w + 8))
    n = int(rng.integers(2, 12))
    x0, y0 = rng.uniform((-pitch, -pitch), (w, h))
    round_pads = rng.random() < 0.35
    trace_w = int(min(rng.choice(_TRACE_WIDTHS_PX[:6]), pitch / math.sqrt(2) - CLEARANCE_PX - 1))
    up = 1 if rng.random() < 0.5 else -1
    side = 1 if rng.random() < 0.5 else -1
    l1, diag, l2 = rng.uniform(10, 60), rng.uniform(0, 120), rng.uniform(10, 200)
    transpose = rng.random() < 0.5
    nets = []
    for i in range(n):
        at = np.array([x0 + i * pitch, y0])
        if round_pads:
            net = _pad(rng, at, pad_w + 4, "via" if rng.random() < 0.5 else "round")
        else:
            hw, hh = pad_w / 2, pad_h / 2
            net = [("poly", at + np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]]), 0)]
        if trace_w >= 3 and rng.random() < 0.85:
            p1 = at + np.array([0, up * (pad_h / 2 + l1)])
            p2 = p1 + np.array([side * diag, up * diag])
            p3 = p2 + np.array([0, up * l2])
            net.append(("line", np.array([at, p1, p2, p3]), trace_w))
        if transpose:
            net = [
                (k, g[..., [1, 0, 2]] if k in ("circle", "hole") else g[:, ::-1], wd)
                for k, g, wd in net
            ]
        nets.append(net)
    return nets


def _bus(rng: np.random.Generator, h: int, w: int) -> list[list[Prim]]:
    """Parallel traces following one route, offset by a constant pitch (mitred at the bends)."""
    width = int(rng.choice(_TRACE_WIDTHS_PX[:7]))
    pitch = width + CLEARANCE_PX + 1 + float(rng.integers(0, 6))
    route = _route(
        rng,
        rng.uniform((-40, -40), (w + 40, h + 40)),
        int(rng.integers(8)),
        int(rng.integers(1, 4)),
        (60, 300),
    )
    seg = np.diff(route, axis=0)
    normals = np.stack([-seg[:, 1], seg[:, 0]], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    miter = np.concatenate([normals[:1], normals[:-1] + normals[1:], normals[-1:]])
    miter /= np.einsum("ij,ij->i", miter, np.concatenate([normals[:1], normals]))[:, None]
    return [[("line", route + miter * i * pitch, width)] for i in range(int(rng.integers(2, 7)))]


def make_copper_layout(height_px: int, width_px: int, seed: int) -> np.ndarray:
    """Generate the bool copper mask of a plausible golden bare PCB, deterministically by seed."""
    check_size(height_px, width_px)
    rng = np.random.default_rng(seed)
    h, w = height_px, width_px
    board = _Layout(h, w)
    tiles = h * w / _TILE_AREA_PX
    target = rng.uniform(0.14, 0.34) * h * w

    def count(per_tile: float) -> int:
        return int(rng.poisson(per_tile * tiles))

    for _ in range(count(1.0)):
        prims, cutouts = _pour(rng, h, w)
        if board.place(prims):
            for cx, cy, r in cutouts:  # an isolated land inside each cut-out, as around a drill
                land = r - CLEARANCE_PX - 1 - rng.uniform(0, 6)
                if land >= 5:
                    board.place(_pad(rng, np.array([cx, cy]), 2 * land, "via"))
    for _ in range(count(2.0)):
        for net in _pin_row(rng, h, w):
            if not board.place(net):
                board.place(net[:1])  # keep the pad even when its fan-out does not fit
    for _ in range(count(0.8)):
        for net in _bus(rng, h, w):
            board.place(net)
    attempts = int(100 * tiles) + 40
    for _ in range(attempts):
        if board.copper_px >= target:
            break
        board.place(_free_net(rng, h, w))
    return board.copper.astype(bool)
