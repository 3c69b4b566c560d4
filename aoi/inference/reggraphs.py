"""Patch registration's ONNX graphs, which :mod:`aoi.inference.devreg` runs on the device.

Three kinds of graph measure a frame step by step, each returning a few kilobytes: the
whole-frame phase-correlation surface of the decimated frame (``coarse``), the
phase-correlation surfaces of the patches resampled at the current estimate
(``patch<level>``), and the Gauss-Newton shift of every full-resolution patch with the sums of
the accept/refuse correlation (``gradient``); :mod:`aoi.vision.patchreg` fits between them.
The ``whole`` graph chains the same measurements with the fit itself
(:mod:`aoi.inference.regfit`) and returns the warp: one run per frame.

The graphs follow :mod:`aoi.vision.patchreg`'s CPU steps operation for operation: resampling is
GridSample (bilinear, border padding, ``align_corners=1``) where the CPU uses ``cv2.remap``; the
decimation is strided slicing plus a 2x2 average as ``_decimate`` does; the blur is the same
separable Gaussian as a 5x5 convolution.
"""

from __future__ import annotations

import numpy as np

from aoi import regplan
from aoi.inference import regfit
from aoi.inference.regraph import GraphBuilder
from aoi.regplan import LevelPlan, PatchPlan

FRAME = "frame"
WARP = "warp"


def _even(n: int) -> int:
    return n - n % 2


def _source(g: GraphBuilder, plan: PatchPlan) -> str:
    """The uint8 frame input as float [1, 1, H, W]."""
    g.input(FRAME, np.uint8, list(plan.frame_shape))
    return g.op("Reshape", g.op("Cast", FRAME, to=1), g.ints(1, 1, *plan.frame_shape))


def _coarse_surface(g: GraphBuilder, plan: PatchPlan, small: str) -> tuple[str, int, int]:
    """The whole-frame cross-power surface [1, ch, cw] of the coarse level ``small`` against
    the template (even-sized for the real FFT)."""
    moving = g.decimate(small, 2) if plan.halve else small
    ch, cw = (_even(n) for n in plan.coarse_windowed.shape)
    window = plan.coarse_window[:ch, :cw]
    cropped = g.op("Slice", moving, g.ints(0, 0), g.ints(ch, cw), g.ints(2, 3))
    m = g.op("Mul", g.op("Reshape", cropped, g.ints(1, ch, cw)), g.const(window[None]))
    return g.phase_correlation(m, plan.coarse_windowed[None, :ch, :cw]), ch, cw


def coarse_graph(plan: PatchPlan, fft: str) -> tuple[bytes, tuple[int, int]]:
    """frame uint8 [H, W] -> ``small`` [1, 1, h, w] (the coarse level) and ``surface``."""
    g = GraphBuilder(fft)
    small = g.decimate(_source(g, plan), plan.coarse)
    g.output(g.op("Identity", small, name="small"), np.float32, [1, 1, *plan.levels[0].shape])
    surface, ch, cw = _coarse_surface(g, plan, small)
    g.output(g.op("Reshape", surface, g.ints(ch, cw), name="surface"), np.float32, [ch, cw])
    return g.model(), (ch, cw)


def _sampled(g: GraphBuilder, source: str, level: LevelPlan, warp: regfit.Warp) -> str:
    """The patches resampled from ``source`` [1, 1, h, w] at ``warp`` (normalised to the
    level): [K, 1, P, P]. The grid is computed elementwise in float32 (a MatMul would run in
    TF32 on the GPU: 0.3 px at 640)."""
    k, p = level.windowed.shape[0], level.windowed.shape[1]
    gx, gy = (g.const(c.reshape(1, k * p, p, 1).astype(np.float32)) for c in level.grid)
    a = warp
    u = g.op("Add", g.op("Add", g.op("Mul", gx, a[0]), g.op("Mul", gy, a[1])), a[2])
    v = g.op("Add", g.op("Add", g.op("Mul", gx, a[3]), g.op("Mul", gy, a[4])), a[5])
    grid = g.op("Concat", u, v, axis=-1)  # [1, K * P, P, 2]
    out = g.op("GridSample", source, grid, mode="bilinear", padding_mode="border", align_corners=1)
    return g.op("Reshape", out, g.ints(k, 1, p, p))


def _warp_input(g: GraphBuilder) -> regfit.Warp:
    g.input(WARP, np.float32, [2, 3])
    a = g.split(g.op("Reshape", WARP, g.ints(6)), 6)
    return a[0], a[1], a[2], a[3], a[4], a[5]


def _patch_surfaces(
    g: GraphBuilder, plan: PatchPlan, level: LevelPlan, source: str, warp: regfit.Warp
) -> str:
    """[K, P, P]: each patch resampled at ``warp``, windowed and phase-correlated."""
    k, p = level.windowed.shape[0], level.windowed.shape[1]
    patches = g.op("Reshape", _sampled(g, source, level, warp), g.ints(k, p, p))
    return g.phase_correlation(g.op("Mul", patches, g.const(plan.window)), level.windowed)


def patch_graph(plan: PatchPlan, index: int, fft: str) -> bytes:
    """source, warp -> ``surfaces`` [K, P, P] of ``levels[index]``. The coarse level reads
    ``small``."""
    level = plan.levels[index]
    g = GraphBuilder(fft)
    warp = _warp_input(g)
    if level.factor == 1:
        source = _source(g, plan)
    else:
        source = "small"
        g.input(source, np.float32, [1, 1, *level.shape])
    surfaces = _patch_surfaces(g, plan, level, source, warp)
    k, p = level.windowed.shape[0], level.windowed.shape[1]
    g.output(g.op("Identity", surfaces, name="surfaces"), np.float32, [k, p, p])
    return g.model()


def _gradient(g: GraphBuilder, plan: PatchPlan, source: str, warp: regfit.Warp) -> tuple[str, str]:
    """``shift`` [K, 2], the Gauss-Newton step of every full-resolution patch resampled at
    ``warp``, and ``sums`` [2]: the zero-mean cross and frame energy of the accept/refuse
    correlation."""
    level = plan.fine
    k, q = level.lk_template.shape[0], level.lk_template.shape[1]
    kernel = np.outer(plan.blur, plan.blur).astype(np.float32)[None, None]
    blurred = g.op("Conv", _sampled(g, source, level, warp), g.const(kernel))  # [K, 1, P-4, P-4]
    trim = g.op("Slice", blurred, g.ints(1, 1), g.ints(-1, -1), g.ints(2, 3))
    seen = g.op("Reshape", trim, g.ints(k, q, q))
    inner = g.op("Sub", seen, g.op("ReduceMean", seen, axes=[1, 2], keepdims=1))
    axes = g.ints(1, 2)
    energy = g.op(
        "Max",
        g.op("ReduceSum", g.op("Mul", inner, inner), axes, keepdims=1),
        g.const(np.float32(1e-6)),
    )
    tmpl = level.lk_template
    tsum = (tmpl * tmpl).sum(axis=(1, 2)).astype(np.float32)[:, None, None]
    gain = g.op("Sqrt", g.op("Div", g.const(tsum), energy))
    diff = g.op("Sub", g.op("Mul", inner, gain), g.const(tmpl))
    diff = g.op("Reshape", diff, g.ints(k, 1, q * q))
    step = g.const(level.lk_step.reshape(k, 2, q * q))
    shift = g.op("Neg", g.op("ReduceSum", g.op("Mul", step, diff), g.ints(2), keepdims=0))
    # Each patch zero-mean on both sides, as aoi.vision.patchreg's CPU steps compare them.
    a0 = (tmpl - tmpl.mean()).astype(np.float32)
    s_ab = g.op("ReduceSum", g.op("Mul", g.const(a0), inner), keepdims=0)
    s_bb = g.op("ReduceSum", g.op("Mul", inner, inner), keepdims=0)
    sums = g.op(
        "Concat", g.op("Unsqueeze", s_ab, g.ints(0)), g.op("Unsqueeze", s_bb, g.ints(0)), axis=0
    )
    return shift, sums


def gradient_graph(plan: PatchPlan, fft: str) -> bytes:
    """frame, warp -> ``shift`` [K, 2] and ``sums`` [2] (see :func:`_gradient`)."""
    g = GraphBuilder(fft)
    source = _source(g, plan)
    shift, sums = _gradient(g, plan, source, _warp_input(g))
    k = plan.fine.lk_template.shape[0]
    g.output(g.op("Identity", shift, name="shift"), np.float32, [k, 2])
    g.output(g.op("Identity", sums, name="sums"), np.float32, [2])
    return g.model()


def whole_graph(plan: PatchPlan, fft: str) -> bytes:
    """frame -> ``warp`` [2, 3] (template -> frame pixels) and ``sums`` [2] of the last
    gradient step run: :meth:`aoi.vision.patchreg.PatchAligner._estimate` in one graph. The
    plan's fine level must have ``MIN_PAIRS`` textured patches (the host raises otherwise)."""
    g = GraphBuilder(fft)
    source = _source(g, plan)
    small = g.decimate(source, plan.coarse)
    surface, ch, cw = _coarse_surface(g, plan, small)
    dx, dy = regfit.peak(g, surface, 1, ch, cw)
    if plan.halve:
        two = g.const(np.full((1, 1), 2.0, np.float32))
        dx, dy = g.op("Mul", dx, two), g.op("Mul", dy, two)
    one, zero = (g.const(np.full((1, 1), v, np.float32)) for v in (1.0, 0.0))
    warp: regfit.Warp = (one, zero, dx, zero, one, dy)
    prev = plan.coarse
    for level, iterations in zip(plan.levels, regplan.ITERATIONS, strict=False):
        if level.factor != prev:
            warp = regfit.rescale(g, warp, prev / level.factor)
            prev = level.factor
        at = source if level.factor == 1 else small
        k, p = level.windowed.shape[0], level.windowed.shape[1]
        for _ in range(iterations):
            surfaces = _patch_surfaces(g, plan, level, at, regfit.normalised(g, warp, level.shape))
            warp = regfit.fit_pairs(g, level.centres, regfit.peak(g, surfaces, k, p, p), warp)
    if prev != 1:
        warp = regfit.rescale(g, warp, float(prev))
    fine = plan.fine
    ok = np.flatnonzero(fine.lk_ok)
    done = g.const(np.zeros((1, 1), bool))
    sums = g.const(np.zeros(2, np.float32))
    for _ in range(regplan.LK_ITERATIONS):
        shift, step_sums = _gradient(g, plan, source, regfit.normalised(g, warp, plan.frame_shape))
        picked = g.op("Gather", shift, g.ints(*ok), axis=0)  # [N, 2]
        sx, sy = g.split(picked, 2, axis=1)
        new = regfit.fit_pairs(g, fine.centres[ok], (sx, sy), warp)
        moved = regfit.largest_move(g, warp, new, fine.centres)
        flat = g.op("Reshape", done, g.ints(1))
        sums = g.op("Where", flat, sums, step_sums)
        warp = regfit.hold(g, done, warp, new)
        converged = g.op("Less", moved, g.const(np.float32(regplan.LK_CONVERGED_PX)))
        done = g.op("Or", done, converged)
    rows = g.op("Concat", *warp, axis=1)  # [1, 6]
    g.output(g.op("Reshape", rows, g.ints(2, 3), name="warp"), np.float32, [2, 3])
    g.output(g.op("Identity", sums, name="sums"), np.float32, [2])
    return g.model()
