"""What patch registration needs from a template, and the steps that measure a frame against it.

:mod:`aoi.vision.patchreg` prepares a :class:`PatchPlan` once per template (which patches, their
windowed pixels, the gradient-step constants, the fit's schedule) and runs the fit; the
measuring steps behind :class:`PatchSteps` run on the CPU (OpenCV) or on the device, so the frame
is uploaded once and never copied back: as the station's CUDA kernels, which can run the whole
fit too (:mod:`aoi.inference.kernreg`, :class:`EstimatesWhole`), or as ONNX graphs on the CUDA
provider (:mod:`aoi.inference.devreg`). The plan, the fit's constants and the peak finder live
here, below both, because vision and inference must not import each other.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

#: Patch edge in pixels of its level.
PATCH_PX = 64
#: Pixels of each patch's border the gradient steps leave out (the 5x5 blur's reach).
LK_TRIM = 3
#: The robust rigid fit (aoi/vision/rigidfit.py; the device's in aoi/inference/kernreg.cu): a
#: pair whose residual exceeds this many times the median (and the floor) is an outlier, and
#: fewer pairs than MIN_PAIRS cannot give a trustworthy rotation.
OUTLIER_FACTOR = 3.0
OUTLIER_FLOOR_PX = 0.25
MIN_PAIRS = 4


@dataclass(frozen=True)
class LevelPlan:
    """One level of the patch fit: its decimation factor and the patches cut from the template."""

    factor: int
    #: (h, w) of the frame decimated to this level (the template's there: the same decimation).
    shape: tuple[int, int]
    #: (2, K * P, P) float32: template x and y (pixels of this level) of every patch pixel.
    grid: np.ndarray
    #: (K, P, P) float32: the template's patches times the Hann window.
    windowed: np.ndarray
    #: (K, p, p) float32, p = P - 2 * LK_TRIM: blurred, zero-mean, trimmed template patches.
    lk_template: np.ndarray
    #: (K, 2, p, p) float32: the inverse Hessian times the gradients of each patch.
    lk_step: np.ndarray
    #: (K, 2) float64: patch centres, template pixels of this level.
    centres: np.ndarray
    #: (K,) bool: the patch has texture both ways (the gradient steps' fit uses only these).
    lk_ok: np.ndarray


@dataclass(frozen=True)
class PatchPlan:
    """A template's patch registration, as the measuring steps see it."""

    frame_shape: tuple[int, int]  # (h, w) of the full-resolution frame
    #: Decimation of the coarse level (1: the frame is small enough to work on as it is).
    coarse: int
    #: The whole-frame phase correlation runs on the coarse level halved once more.
    halve: bool
    window: np.ndarray  # (P, P) float32 Hann window of the patches
    #: (h', w') float32: the decimated template times its Hann window, for the whole-frame step.
    coarse_windowed: np.ndarray
    coarse_window: np.ndarray
    levels: tuple[LevelPlan, ...]
    #: (5,) float32: the separable Gaussian of the gradient steps' blur.
    blur: np.ndarray
    #: The fit's schedule: phase-correlation fits per level (the coarse run's measurement is
    #: the first), gradient steps at most, and the move under which they stop (px).
    iterations: tuple[int, ...] = (1, 0)
    lk_iterations: int = 3
    lk_converged_px: float = 0.05

    @property
    def fine(self) -> LevelPlan:
        return self.levels[-1]


class FrameSteps(Protocol):
    """The measurements of one frame (see :class:`PatchSteps`)."""

    def coarse_shift(self) -> tuple[float, float]:
        """The frame's translation against the template, pixels of the coarse level."""
        ...

    def patch_shifts(self, level: int, warp: np.ndarray) -> np.ndarray:
        """(K, 2) residual shift of every patch of ``levels[level]`` resampled at ``warp``
        (2x3, template -> frame pixels of that level), by phase correlation."""
        ...

    def gradient(self, warp: np.ndarray) -> np.ndarray:
        """(K, 2) Gauss-Newton shift of every full-resolution patch resampled at ``warp``."""
        ...

    def correlation(self) -> float:
        """The normalised correlation of the patches the last :meth:`gradient` resampled with
        the template's (blurred, trimmed, all patches at once)."""
        ...


@runtime_checkable
class EstimatesWhole(Protocol):
    """Frame steps that can also run the whole fit themselves (on a device, in one launch):
    the schedule of :class:`PatchPlan`, the robust rigid fit of :mod:`aoi.vision.rigidfit`."""

    def estimate(self) -> tuple[np.ndarray, float]:
        """The 2x3 template->frame warp and the last gradient step's correlation."""
        ...


class PatchSteps(Protocol):
    """Measures frames against one :class:`PatchPlan`; ``frame`` holds the frame for the steps
    (on a device: uploaded once) and may serialise callers that share the device buffers."""

    name: str

    def frame(self, image: np.ndarray) -> AbstractContextManager[FrameSteps]: ...


def step_correlation(cross: float, template_energy: float, frame_energy: float) -> float:
    """The gradient step's accept/refuse correlation from its sums: the patches' zero-mean
    cross term over the root of both energies (0 where either side is flat)."""
    den = math.sqrt(template_energy * max(frame_energy, 0.0))
    return cross / den if den > 1e-6 else 0.0


def peak_shifts(cross: np.ndarray) -> np.ndarray:
    """Sub-pixel peak (x, y) of each circular correlation surface (K, h, w), as signed shifts:
    the 3x3 centroid around the integer peak."""
    k, h, w = cross.shape
    flat = cross.reshape(k, -1).argmax(axis=1)
    py, px = np.divmod(flat, w)
    dy, dx = np.mgrid[-1:2, -1:2]
    ys = (py[:, None, None] + dy) % h
    xs = (px[:, None, None] + dx) % w
    vals = np.maximum(cross[np.arange(k)[:, None, None], ys, xs], 0)
    total = np.maximum(vals.sum(axis=(1, 2)), 1e-12)
    sx = px + (vals * dx).sum(axis=(1, 2)) / total
    sy = py + (vals * dy).sum(axis=(1, 2)) / total
    sx = np.where(sx > w / 2, sx - w, sx)
    sy = np.where(sy > h / 2, sy - h, sy)
    return np.stack([sx, sy], axis=1)


def normalised_warp(warp: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``warp`` (template pixel -> image pixel of an image ``shape`` = (h, w)) followed by the
    map to GridSample's ``align_corners=1`` coordinates ([-1, 1] over the pixel centres)."""
    h, w = shape
    to_norm = np.array([[2.0 / max(w - 1, 1), 0.0, -1.0], [0.0, 2.0 / max(h - 1, 1), -1.0]])
    full = np.vstack([np.asarray(warp, np.float64), [0.0, 0.0, 1.0]])
    return (to_norm @ full).astype(np.float32)
