"""Patch registration in one device graph: the measurements and the fit (issue 15).

:mod:`aoi.inference.devreg`'s step graphs measure on the device and leave the fit to
:mod:`aoi.vision.patchreg` on the host: four or five runs per frame, each a launch, a wait and
a copy back, 1.2-1.9 ms of a 640 px cycle whose network takes 0.6 ms. Here the host's fit runs
inside the graph too, operation for operation, so a frame costs one run that returns the 2x3
warp and the two sums of the accept/refuse correlation:

- the sub-pixel peak of a correlation surface: ``argmax``, then the 3x3 centroid around it
  with circular neighbours (``regplan.peak_shifts``);
- the least-squares rigid fit: the closed-form Procrustes rotation, whose cosine and sine are
  the two sums divided by their norm (the host takes ``atan2`` and then ``cos``/``sin``);
- the robust fit: residuals, their median over the pairs still kept (a sort with the dropped
  pairs last), pairs over ``OUTLIER_FACTOR`` times it dropped, refit; where the host breaks
  out of a loop the graph freezes its values with ``Where``, so it computes the same thing;
- the Gauss-Newton steps, unrolled ``LK_ITERATIONS`` times; once a step has moved no patch
  centre more than ``LK_CONVERGED_PX`` the warp and the sums stay as they are, as the host's
  ``break`` leaves them.

A warp is six ``[1, 1]`` tensors (a, b, tx, c, d, ty); point sets are ``[N, 1]`` columns. The
fit runs in float32 where the host uses float64: at 4096 px that is 2.5e-4 px.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aoi import regplan

if TYPE_CHECKING:
    from aoi.inference.regraph import GraphBuilder

Warp = tuple[str, str, str, str, str, str]
Points = tuple[str, str]


def _f(g: GraphBuilder, value: float) -> str:
    return g.const(np.full((1, 1), value, np.float32))


def _col(g: GraphBuilder, values: np.ndarray) -> str:
    return g.const(np.asarray(values, np.float32).reshape(-1, 1))


def _sum(g: GraphBuilder, x: str) -> str:
    return g.op("ReduceSum", x, g.ints(0), keepdims=1)


def peak(g: GraphBuilder, surfaces: str, k: int, h: int, w: int) -> Points:
    """``regplan.peak_shifts`` of ``surfaces`` [K, h, w]: the signed sub-pixel shifts (x, y)."""
    flat = g.op("Reshape", surfaces, g.ints(k, h * w))
    idx = g.op("ArgMax", flat, axis=1, keepdims=1)  # [K, 1]
    py = g.op("Div", idx, g.ints(w))
    px = g.op("Sub", idx, g.op("Mul", py, g.ints(w)))
    dy, dx = (v.ravel() for v in np.mgrid[-1:2, -1:2])
    ys = g.op("Mod", g.op("Add", py, g.ints(*(dy + h))), g.ints(h))  # [K, 9], wrapped
    xs = g.op("Mod", g.op("Add", px, g.ints(*(dx + w))), g.ints(w))
    lin = g.op("Add", g.op("Mul", ys, g.ints(w)), xs)
    vals = g.op("Max", g.op("GatherElements", flat, lin, axis=1), g.const(np.float32(0)))
    total = g.op("Max", g.op("ReduceSum", vals, g.ints(1), keepdims=1), g.const(np.float32(1e-12)))
    out = []
    for at, offsets, size in ((px, dx, w), (py, dy, h)):
        moment = g.op("Mul", vals, g.const(offsets.astype(np.float32)[None]))
        s = g.op(
            "Add",
            g.op("Cast", at, to=1),
            g.op("Div", g.op("ReduceSum", moment, g.ints(1), keepdims=1), total),
        )
        wrapped = g.op("Sub", s, g.const(np.float32(size)))
        out.append(g.op("Where", g.op("Greater", s, g.const(np.float32(size / 2))), wrapped, s))
    return out[0], out[1]


def apply(g: GraphBuilder, warp: Warp, pts: Points) -> Points:
    """The points moved by ``warp``."""
    a, b, tx, c, d, ty = warp
    x, y = pts

    def row(p: str, q: str, t: str) -> str:
        return g.op("Add", g.op("Add", g.op("Mul", p, x), g.op("Mul", q, y)), t)

    return row(a, b, tx), row(c, d, ty)


def fit_rigid(g: GraphBuilder, src: Points, dst: Points, mask: str) -> Warp:
    """``patchreg._fit_rigid`` over the pairs where ``mask`` [N, 1] is 1."""
    n = g.op("Max", _sum(g, mask), _f(g, 1e-12))

    def centred(v: str) -> tuple[str, str]:
        mean = g.op("Div", _sum(g, g.op("Mul", v, mask)), n)
        return mean, g.op("Sub", v, mean)

    (csx, ax), (csy, ay) = centred(src[0]), centred(src[1])
    (cdx, bx), (cdy, by) = centred(dst[0]), centred(dst[1])
    cross = g.op("Sub", g.op("Mul", ax, by), g.op("Mul", ay, bx))
    dot = g.op("Add", g.op("Mul", ax, bx), g.op("Mul", ay, by))
    cross, dot = (_sum(g, g.op("Mul", v, mask)) for v in (cross, dot))
    norm = g.op("Sqrt", g.op("Add", g.op("Mul", cross, cross), g.op("Mul", dot, dot)))
    turned = g.op("Greater", norm, _f(g, 0.0))
    safe = g.op("Max", norm, _f(g, 1e-30))
    cos = g.op("Where", turned, g.op("Div", dot, safe), _f(g, 1.0))  # atan2(0, 0) = 0
    sin = g.op("Where", turned, g.op("Div", cross, safe), _f(g, 0.0))
    tx = g.op("Sub", cdx, g.op("Sub", g.op("Mul", cos, csx), g.op("Mul", sin, csy)))
    ty = g.op("Sub", cdy, g.op("Add", g.op("Mul", sin, csx), g.op("Mul", cos, csy)))
    return cos, g.op("Neg", sin), tx, sin, cos, ty


def hold(g: GraphBuilder, frozen: str, old: Warp, new: Warp) -> Warp:
    w = tuple(g.op("Where", frozen, o, n) for o, n in zip(old, new, strict=True))
    return w[0], w[1], w[2], w[3], w[4], w[5]


def fit_robust(g: GraphBuilder, src: Points, dst: Points, count: int) -> Warp:
    """``patchreg._fit_robust`` of ``count`` pairs: a rigid fit, then up to two rounds that
    drop pairs far off the median residual of those kept and refit."""
    mask = _col(g, np.ones(count))
    warp = fit_rigid(g, src, dst, mask)
    stop = g.const(np.zeros((1, 1), bool))
    for _ in range(2):
        mx, my = apply(g, warp, src)
        ex, ey = g.op("Sub", mx, dst[0]), g.op("Sub", my, dst[1])
        res = g.op("Sqrt", g.op("Add", g.op("Mul", ex, ex), g.op("Mul", ey, ey)))
        kept = g.op("Greater", mask, _f(g, 0.5))
        last = g.op("Reshape", g.op("Where", kept, res, _f(g, 3.0e38)), g.ints(count))
        ordered = g.multi("TopK", [last, g.ints(count)], 2, largest=0, sorted=1)[0]
        n = _sum(g, mask)
        ni = g.op("Reshape", g.op("Cast", n, to=7), g.ints(1))
        lo = g.op("Gather", ordered, g.op("Div", g.op("Sub", ni, g.ints(1)), g.ints(2)))
        hi = g.op("Gather", ordered, g.op("Div", ni, g.ints(2)))
        median = g.op("Mul", g.op("Add", lo, hi), g.const(np.float32(0.5)))
        limit = g.op(
            "Max",
            g.op("Mul", median, g.const(np.float32(regplan.OUTLIER_FACTOR))),
            g.const(np.float32(regplan.OUTLIER_FLOOR_PX)),
        )
        keep = g.op("Mul", mask, g.op("Cast", g.op("LessOrEqual", res, limit), to=1))
        nk = _sum(g, keep)
        few = g.op("Less", nk, _f(g, regplan.MIN_PAIRS - 0.5))
        stop = g.op("Or", stop, g.op("Or", g.op("Equal", nk, n), few))
        warp = hold(g, stop, warp, fit_rigid(g, src, dst, keep))
        mask = g.op("Where", stop, mask, keep)
    return warp


def fit_pairs(g: GraphBuilder, centres: np.ndarray, shift: Points, warp: Warp) -> Warp:
    """``patchreg._fit_pairs``: template points ``centres`` (K, 2) against where ``warp``
    puts them moved by their measured ``shift``."""
    src = (_col(g, centres[:, 0]), _col(g, centres[:, 1]))
    moved = (g.op("Add", src[0], shift[0]), g.op("Add", src[1], shift[1]))
    return fit_robust(g, src, apply(g, warp, moved), len(centres))


def rescale(g: GraphBuilder, warp: Warp, ratio: float) -> Warp:
    """``patchreg._rescale``: the warp carried to a level ``ratio`` times larger."""
    a, b, tx, c, d, ty = warp
    out = []
    for p, q, t in ((a, b, tx), (c, d, ty)):
        half = g.op("Mul", g.op("Add", p, q), _f(g, 0.5 * (1.0 - ratio)))
        out.append(
            g.op("Add", g.op("Add", g.op("Mul", t, _f(g, ratio)), half), _f(g, 0.5 * (ratio - 1.0)))
        )
    return a, b, out[0], c, d, out[1]


def normalised(g: GraphBuilder, warp: Warp, shape: tuple[int, int]) -> Warp:
    """``regplan.normalised_warp``: to GridSample's ``align_corners=1`` coordinates."""
    h, w = shape
    sx, sy = _f(g, 2.0 / max(w - 1, 1)), _f(g, 2.0 / max(h - 1, 1))
    a, b, tx, c, d, ty = (
        g.op("Mul", v, s) for v, s in zip(warp, (sx,) * 3 + (sy,) * 3, strict=True)
    )
    one = _f(g, 1.0)
    return a, b, g.op("Sub", tx, one), c, d, g.op("Sub", ty, one)


def largest_move(g: GraphBuilder, old: Warp, new: Warp, centres: np.ndarray) -> str:
    """How far the change from ``old`` to ``new`` moves any of ``centres`` along x or y."""
    pts = (_col(g, centres[:, 0]), _col(g, centres[:, 1]))
    delta = tuple(g.op("Sub", n, o) for n, o in zip(new, old, strict=True))
    mx, my = apply(g, (delta[0], delta[1], delta[2], delta[3], delta[4], delta[5]), pts)
    both = g.op("Abs", g.op("Concat", mx, my, axis=0))
    return g.op("ReduceMax", both, keepdims=1)
