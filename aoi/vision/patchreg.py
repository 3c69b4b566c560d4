"""Patch registration: a rigid transform from a decimated frame and a few small patches.

Whole-frame ECC costs in proportion to the frame; this costs a fixed amount at any frame size.
Phase correlation on the decimated pair gives the translation, then the same patch fit runs
twice: on the decimated pair (translation and rotation to about a pixel of the frame), then
on full-resolution patches resampled from the frame at the current estimate. Each patch's
sub-pixel phase correlation gives one template->frame point pair; a least-squares rigid fit
over the pairs, with pairs far from the fit's median residual rejected, gives the transform.
Resampling at the current estimate and repeating drives each patch's residual shift towards
zero, where phase correlation is most accurate, and takes the rotation out of the patches.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np

from aoi.errors import RegistrationError
from aoi.recipe import RegistrationSettings
from aoi.regplan import (
    LK_TRIM,
    PATCH_PX,
    EstimatesWhole,
    FrameSteps,
    LevelPlan,
    PatchPlan,
    PatchSteps,
    peak_shifts,
    step_correlation,
)
from aoi.vision.rigidfit import MIN_PAIRS, fit_pairs

log = logging.getLogger(__name__)

#: The decimated frame's long side is at least this (enough texture for the coarse fit).
_COARSE_LONG_PX = 256
#: Patch edge in pixels of its level: big enough for a good peak, small enough to be cheap.
_PATCH_PX = PATCH_PX
#: Patches per row and column of the grid spread over the board.
_GRID = 3
#: A grid cell whose best patch has less than this share of the board's best texture gives
#: its place to a more textured patch elsewhere (its edges run one way, or there are none).
_TEXTURE_SHARE = 0.02
#: Phase-correlation fits per level (coarse, full resolution); each resamples the patches at
#: the new estimate. The coarse fit lands within the gradient steps' reach at full resolution.
_ITERATIONS = (1, 0)
#: Gauss-Newton iterations after the last phase correlation: near the answer a gradient step
#: is several times more precise than phase correlation's peak interpolation (and cheaper).
_LK_ITERATIONS = 3
#: The gradient steps stop once a step moves no patch centre more than this (px): converged.
_LK_CONVERGED_PX = 0.05
#: Floor of a patch's cross-power before it is normalised: a frequency neither image has.
_TINY_POWER = 1e-24
#: Gaussian pre-filter of the gradient steps; binary boards need it to have usable gradients.
_LK_BLUR = (5, 5)
#: Pixels of each patch's border the gradient steps leave out (the blur's reach).
_LK_TRIM = LK_TRIM


@dataclass(frozen=True)
class _PatchLevel:
    """One level: its decimation factor, the template there and the patches cut from it."""

    factor: int
    template: np.ndarray  # float32
    centres: np.ndarray  # (K, 2) patch centres, template pixels of the level
    grid: np.ndarray  # (2, K * P, P) float32 template x and y of every patch pixel
    spectra: tuple[np.ndarray, ...]  # per patch: the DFT of the windowed template, packed (CCS)
    #: Per patch: the blurred, zero-mean, trimmed template and the 2x2 inverse Hessian times
    #: its gradients (K, 2, p, p), for the inverse-compositional gradient step.
    lk_template: np.ndarray
    lk_step: np.ndarray
    lk_ok: np.ndarray  # (K,) bool: the patch has texture both ways


def _lk_prepare(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the gradient step needs from each template patch, computed once."""
    t = _LK_TRIM
    temps, steps, ok = [], [], []
    for patch in patches:
        blurred = cv2.GaussianBlur(patch, _LK_BLUR, 0)
        gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)[t:-t, t:-t]
        gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)[t:-t, t:-t]
        hess = np.array([[(gx * gx).sum(), (gx * gy).sum()], [(gx * gy).sum(), (gy * gy).sum()]])
        good = float(np.trace(hess)) > 1e-3 and bool(np.linalg.cond(hess) < 1e4)
        inv = np.linalg.inv(hess) if good else np.zeros((2, 2))
        inner = blurred[t:-t, t:-t]
        temps.append(inner - inner.mean())
        steps.append(np.tensordot(inv, np.stack([gx, gy]), axes=1))
        ok.append(good)
    return np.stack(temps), np.stack(steps).astype(np.float32), np.array(ok)


def _decimate(image: np.ndarray, factor: int) -> np.ndarray:
    """The frame reduced ``factor`` times for the coarse estimate.

    Large factors first keep every (factor/4)-th pixel and area-average the rest of the way:
    a full-frame area resize by 16 costs ~30 ms on a 4096x3000 panel, this ~1 ms, and the
    coarse estimate only has to land within the fine level's reach (a few pixels).
    """
    stride = max(1, factor // 2)
    out = np.ascontiguousarray(image[::stride, ::stride]) if stride > 1 else image
    step = factor // stride
    if step > 1:
        h, w = out.shape[:2]
        out = cv2.resize(out, (max(1, w // step), max(1, h // step)), interpolation=cv2.INTER_AREA)
    return out


def _pick_patches(template: np.ndarray, size: int, margin: int) -> np.ndarray:
    """Top-left corners of the most textured patch (in x and y both) of each grid cell.

    A cell without such texture (copper pour, bare laminate, tracks all one way) gives its
    place to the most textured patch left anywhere on the board that overlaps no chosen one:
    sparse boards keep their count of usable patches instead of failing to register.
    """
    h, w = template.shape
    gx = cv2.Sobel(template, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(template, cv2.CV_32F, 0, 1, ksize=3)
    ksize = (size, size)
    sxx = cv2.boxFilter(gx * gx, -1, ksize)
    syy = cv2.boxFilter(gy * gy, -1, ksize)
    sxy = cv2.boxFilter(gx * gy, -1, ksize)
    # The structure tensor's smaller eigenvalue: large only where edges run both ways.
    texture = (sxx + syy) / 2 - np.sqrt(((sxx - syy) / 2) ** 2 + sxy * sxy)
    lo = margin + size // 2
    xs = np.linspace(lo, w - lo, _GRID + 1)
    ys = np.linspace(lo, h - lo, _GRID + 1)
    found = []
    for r in range(_GRID):
        for c in range(_GRID):
            y0, y1 = int(ys[r]), max(int(ys[r]) + 1, int(ys[r + 1]))
            x0, x1 = int(xs[c]), max(int(xs[c]) + 1, int(xs[c + 1]))
            cell = texture[y0:y1, x0:x1]
            if cell.size == 0:
                continue
            iy, ix = np.unravel_index(int(np.argmax(cell)), cell.shape)
            found.append((float(cell[iy, ix]), x0 + ix, y0 + iy))
    inside = np.full_like(texture, -np.inf)  # where a patch centre may lie, with its texture
    top, bottom, left, right = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    inside[top:bottom, left:right] = texture[top:bottom, left:right]
    floor = _TEXTURE_SHARE * max(float(inside.max()), 0.0)
    centres = [(x, y) for t, x, y in found if t > floor]
    for x, y in centres:
        inside[max(0, y - size + 1) : y + size, max(0, x - size + 1) : x + size] = -np.inf
    while len(centres) < len(found):
        iy, ix = np.unravel_index(int(np.argmax(inside)), inside.shape)
        if not inside[iy, ix] > floor:
            break
        centres.append((int(ix), int(iy)))
        inside[max(0, iy - size + 1) : iy + size, max(0, ix - size + 1) : ix + size] = -np.inf
    centres += [(x, y) for t, x, y in found if t <= floor][: len(found) - len(centres)]
    return np.array([(x - size // 2, y - size // 2) for x, y in centres], np.float64).reshape(-1, 2)


def _rescale(warp: np.ndarray, ratio: float) -> np.ndarray:
    """Carry a template->frame warp to a level ``ratio`` times larger (pixel centres move by
    half a pixel under resizing: x_big = ratio * (x_small + 0.5) - 0.5)."""
    rot = warp[:, :2]
    half = np.array([0.5, 0.5])
    out = warp.astype(np.float64).copy()
    out[:, 2] = ratio * warp[:, 2] + (1.0 - ratio) * (rot @ half) + (ratio - 1.0) * half
    return out


class PatchAligner:
    """Estimates the template->frame rigid motion of one template's frames; patches are
    chosen, windowed and transformed once. The measuring steps run on the CPU unless
    :meth:`use_steps` hands them to a device (:mod:`aoi.inference.kernreg`,
    :mod:`aoi.inference.devreg`); steps that run the whole fit themselves get the frame whole."""

    def __init__(self, template: np.ndarray, settings: RegistrationSettings) -> None:
        h, w = template.shape
        coarse = 1
        while max(h, w) / (2 * coarse) >= _COARSE_LONG_PX:
            coarse *= 2
        self._coarse = coarse
        self._window = cv2.createHanningWindow((_PATCH_PX, _PATCH_PX), cv2.CV_32F)
        # Keep patches where the board can still be seen at the largest allowed motion.
        reach = (
            settings.max_shift_px + math.radians(settings.max_rotation_deg) * math.hypot(h, w) / 2
        )
        yy, xx = np.mgrid[0:_PATCH_PX, 0:_PATCH_PX].astype(np.float64)
        self._levels: list[_PatchLevel] = []
        windowed: list[np.ndarray] = []
        for factor in sorted({coarse, 1}, reverse=True):
            small = _decimate(template, factor).astype(np.float32)
            margin = max(0, min(int(reach / factor) + 2, (min(small.shape) - _PATCH_PX) // 4))
            origins = _pick_patches(small, _PATCH_PX, margin)
            patches = np.stack([self._cut(small, o) for o in origins])
            grid = np.stack(
                [xx[None] + origins[:, 0, None, None], yy[None] + origins[:, 1, None, None]], -1
            )
            windowed.append(patches * self._window)
            # OpenCV's packed real DFT per patch; the template side is done once here.
            spectra = tuple(cv2.dft(p) for p in windowed[-1])
            centres = origins + (_PATCH_PX - 1) / 2
            self._levels.append(
                _PatchLevel(
                    factor,
                    small,
                    centres,
                    grid.reshape(-1, _PATCH_PX, 2).transpose(2, 0, 1).astype(np.float32).copy(),
                    spectra,
                    *_lk_prepare(patches),
                )
            )
            if len(origins) < MIN_PAIRS:
                msg = f"registration needs {MIN_PAIRS} patches, the template gives {len(origins)}"
                raise RegistrationError(msg)
        # The whole-frame phase correlation only has to land within the coarse patches' reach:
        # a frame still over _COARSE_LONG_PX across is halved again for it (4x fewer pixels).
        whole = self._levels[0].template
        self._halve = max(whole.shape) >= _COARSE_LONG_PX
        if self._halve:
            whole = _decimate(whole, 2)
        self._coarse_window = cv2.createHanningWindow((whole.shape[1], whole.shape[0]), cv2.CV_32F)
        self._coarse_windowed = whole * self._coarse_window
        gauss = cv2.getGaussianKernel(_LK_BLUR[0], 0).astype(np.float32).ravel()
        self.plan = PatchPlan(
            (h, w), coarse, self._halve, self._window, self._coarse_windowed,
            self._coarse_window,
            tuple(
                LevelPlan(
                    lv.factor, lv.template.shape, lv.grid, win.astype(np.float32),
                    lv.lk_template, lv.lk_step, lv.centres, lv.lk_ok,
                )
                for lv, win in zip(self._levels, windowed, strict=True)
            ),
            gauss, _ITERATIONS, _LK_ITERATIONS, _LK_CONVERGED_PX,
        )  # fmt: skip
        # The gradient steps' template side, computed once: each patch's energy (for the gain),
        # and the accept/refuse correlation's template and energy (as aoi.inference.devreg's).
        tmpl = self._levels[-1].lk_template
        self._lk_energy = np.einsum("kij,kij->k", tmpl, tmpl)
        self._ncc_template = tmpl - tmpl.mean()
        self._ncc_energy = float(np.vdot(self._ncc_template, self._ncc_template))
        self.steps: PatchSteps = _CpuSteps(self)

    def use_steps(self, steps: PatchSteps) -> None:
        """Measure with ``steps`` (built from :attr:`plan`) instead of OpenCV on the CPU."""
        self.steps = steps

    @staticmethod
    def _cut(image: np.ndarray, origin: np.ndarray) -> np.ndarray:
        x, y = int(origin[0]), int(origin[1])
        return image[y : y + _PATCH_PX, x : x + _PATCH_PX].astype(np.float32)

    def estimate(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The 2x3 template->frame warp and the patches' normalised correlation after it."""
        with self.steps.frame(image) as steps:
            return self._estimate(steps)

    def _estimate(self, steps: FrameSteps) -> tuple[np.ndarray, float]:
        if isinstance(steps, EstimatesWhole):  # the same schedule and fit, in one device launch
            return steps.estimate()
        dx, dy = steps.coarse_shift()
        warp = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
        prev = self._coarse
        for index, (level, iterations) in enumerate(zip(self._levels, _ITERATIONS, strict=False)):
            if level.factor != prev:
                warp = _rescale(warp, prev / level.factor)
                prev = level.factor
            for _ in range(iterations):
                # sampled(x) = patch(x - d): the template point p lies at warp(p + d).
                warp = fit_pairs(level.centres, steps.patch_shifts(index, warp), warp)
        if prev != 1:
            warp = _rescale(warp, float(prev))
        fine = self._levels[-1]
        for _ in range(_LK_ITERATIONS):
            shift = steps.gradient(warp)
            new = fit_pairs(fine.centres[fine.lk_ok], shift[fine.lk_ok], warp)
            moved = float(np.abs((new - warp)[:, :2] @ fine.centres.T + (new - warp)[:, 2:]).max())
            warp = new
            if moved < _LK_CONVERGED_PX:
                break
        # The last step's frame patches were sampled at most _LK_CONVERGED_PX (or one step)
        # from the final warp: close enough for the accept/refuse correlation, and no resample.
        return warp.astype(np.float32), steps.correlation()


class _CpuSteps:
    """The measuring steps with OpenCV on the CPU."""

    name = "cpu"

    def __init__(self, aligner: PatchAligner) -> None:
        self._aligner = aligner

    @contextmanager
    def frame(self, image: np.ndarray) -> Iterator[FrameSteps]:
        yield _CpuFrame(self._aligner, image)


class _CpuFrame:
    """One frame's measurements on the CPU."""

    def __init__(self, aligner: PatchAligner, image: np.ndarray) -> None:
        self._a = aligner
        self._image = image
        self._small = _decimate(image, aligner._coarse).astype(np.float32)
        self._sums = (0.0, 0.0)

    def coarse_shift(self) -> tuple[float, float]:
        a = self._a
        # phaseCorrelate gets windowed copies (OpenCV 5.0 windows its inputs in place).
        moving = _decimate(self._small, 2) if a._halve else self._small
        (dx, dy), _ = cv2.phaseCorrelate(a._coarse_windowed, moving * a._coarse_window)
        if a._halve:
            dx, dy = 2 * dx, 2 * dy  # a pure translation scales without half-pixel terms
        return float(dx), float(dy)

    def patch_shifts(self, level: int, warp: np.ndarray) -> np.ndarray:
        lv = self._a._levels[level]
        source = self._small if lv.factor == self._a._coarse else self._image
        windowed = _sample(lv, source, warp) * self._a._window
        surfaces = np.empty_like(windowed)
        for patch, spectrum, surface in zip(windowed, lv.spectra, surfaces, strict=True):
            _cross_power(patch, spectrum, surface)
        return peak_shifts(surfaces)

    def gradient(self, warp: np.ndarray) -> np.ndarray:
        level = self._a._levels[-1]
        sampled = _sample(level, self._image, warp)
        t = _LK_TRIM
        k = len(level.centres)
        # The stack blurs as one image: the blur's reach is inside the trimmed border.
        blurred = cv2.GaussianBlur(sampled.reshape(k * _PATCH_PX, _PATCH_PX), _LK_BLUR, 0)
        seen = blurred.reshape(k, _PATCH_PX, _PATCH_PX)[:, t:-t, t:-t]
        inner = seen - seen.mean(axis=(1, 2), keepdims=True)
        # Gain: the frame's contrast brought to the template's (lighting changes).
        energy = np.einsum("kij,kij->k", inner, inner)
        gain = np.sqrt(self._a._lk_energy / np.maximum(energy, 1e-6))
        # The accept/refuse correlation compares each patch's own pattern (its mean taken out,
        # as the template side's is): patches on copper and on laminate differ in mean, and a
        # mean taken over all of them would count that difference against a perfect fit.
        self._sums = (float(np.vdot(self._a._ncc_template, inner)), float(energy.sum()))
        # sampled ~ patch - grad . d, so d = -H^-1 J^T (sampled - patch).
        return -np.einsum(
            "kcij,kij->kc", level.lk_step, inner * gain[:, None, None] - level.lk_template
        )

    def correlation(self) -> float:
        """Zero-mean normalised cross-correlation of the template's (blurred, trimmed) patches
        and the frame's, from the last gradient step's sums (0 where either is flat)."""
        cross, energy = self._sums
        return step_correlation(cross, self._a._ncc_energy, energy)


def _sample(level: _PatchLevel, source: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """Every patch resampled from ``source`` at ``warp``: (K, P, P) float32, in one remap."""
    gx, gy = level.grid
    a, b, tx = (float(v) for v in warp[0])
    c, d, ty = (float(v) for v in warp[1])
    mx = cv2.addWeighted(gx, a, gy, b, tx)
    my = cv2.addWeighted(gx, c, gy, d, ty)
    k = len(level.centres)
    out = cv2.remap(source, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.astype(np.float32).reshape(k, _PATCH_PX, _PATCH_PX)


def _cross_power(patch: np.ndarray, template_spectrum: np.ndarray, out: np.ndarray) -> None:
    """The normalised cross-power surface of one windowed patch against a template's packed
    (CCS) spectrum, into ``out``: its peak is the patch's shift.

    Packed spectra are half the complex ones, and OpenCV divides them itself: the magnitude
    comes as the spectrum times its own conjugate (real, packed the same way), square-rooted.
    The surfaces equal the complex-spectrum ones to 1e-7 and the cycle pays 2x less
    (docs/benchmarks.md, "Issue 15, twelfth round")."""
    cross = cv2.mulSpectrums(cv2.dft(patch), template_spectrum, 0, conjB=True)
    magnitude = cv2.mulSpectrums(cross, cross, 0, conjB=True)
    cv2.sqrt(cv2.max(magnitude, _TINY_POWER), magnitude)
    cv2.idft(cv2.divSpectrums(cross, magnitude, 0), out, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)
