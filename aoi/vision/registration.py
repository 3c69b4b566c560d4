"""Registration: align the board under test to the product's golden template.

Two methods, chosen by the recipe (``registration.method``). ``patches`` (the default,
:mod:`aoi.vision.patchreg`) fits a rigid motion to a few small patches and costs about the same
at any frame size. ``ecc``: phase correlation on a downscaled pair gives the translation, then
ECC (enhanced correlation coefficient, rigid motion) refines shift and rotation over a small
pyramid. Either way a result whose shift, rotation or correlation is out of the recipe's bounds
raises :class:`RegistrationError`: the cycle turns it into an ERROR verdict, never an OK.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from aoi.errors import RegistrationError
from aoi.recipe import RegistrationSettings
from aoi.regplan import PatchPlan, PatchSteps
from aoi.types import Registration
from aoi.vision.patchreg import PatchAligner

log = logging.getLogger(__name__)

#: ECC stops when the correlation improves by less than this between iterations.
_ECC_EPS = 1e-4
#: Gaussian pre-filter of ECC; binary boards need it to have usable gradients.
_ECC_BLUR = 5
#: Below this edge length the pyramid stops shrinking (ECC needs some texture to work with).
_MIN_LEVEL_PX = 64
#: The finest pyramid level keeps at least this many pixels (enough for ~0.01 px precision).
_MIN_FINE_PIXELS = 90_000


@dataclass(frozen=True)
class _Level:
    factor: int
    template: np.ndarray  # float32, blurred copy for ECC


def _scale_warp(warp: np.ndarray, ratio: float) -> np.ndarray:
    """Carry a rigid warp from one pyramid level to another ``ratio`` times larger.

    Pixel centres move by half a pixel under resizing (x_big = ratio * (x_small + 0.5) - 0.5),
    so the translation picks up a small term besides the plain scaling.
    """
    rot = warp[:, :2]
    t = warp[:, 2]
    half = np.array([0.5, 0.5], dtype=np.float64)
    t_big = ratio * t + (1.0 - ratio) * (rot @ half) + (ratio - 1.0) * half
    out = np.empty((2, 3), dtype=np.float32)
    out[:, :2] = rot
    out[:, 2] = t_big
    return out


def _downscale(image: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class Registrar:
    """Aligns frames to one golden template; the template's pyramid is prepared once."""

    def __init__(self, template: np.ndarray, settings: RegistrationSettings) -> None:
        if template.dtype != np.uint8 or template.ndim != 2:
            msg = f"template must be a uint8 HxW image, got {template.dtype} {template.shape}"
            raise ValueError(msg)
        self.settings = settings
        self.template = template
        self._levels: list[_Level] = []
        self._hann_cache: dict[tuple[int, int], np.ndarray] = {}
        self._patches = PatchAligner(template, settings) if settings.method == "patches" else None
        if settings.method != "ecc":
            return
        h, w = template.shape
        # ECC is sub-pixel accurate well before full resolution: the finest level is the smallest
        # one that still has enough pixels, which keeps a 4096x3000 panel near 100 ms on a CPU.
        finest = 1
        while finest < 64 and (h * w) / (2 * finest) ** 2 >= _MIN_FINE_PIXELS:
            finest *= 2
        coarse = max(settings.downscale, 2 * finest)
        self._finest = finest
        base = _downscale(template, finest)
        factor = coarse
        while factor >= finest:
            small = _downscale(base, factor // finest).astype(np.float32)
            if min(small.shape) >= _MIN_LEVEL_PX or factor == finest:
                self._levels.append(_Level(factor, small))
            factor //= 2

    def seen(
        self, reg: Registration | None, width_px: int, height_px: int
    ) -> tuple[int, int, int, int] | None:
        """:func:`seen_region` with the recipe's ``edge_margin_px`` (None for no registration)."""
        if reg is None:
            return None
        margin = self.settings.edge_margin_px
        return seen_region(reg, width_px, height_px, _UNSET_MARGIN_PX if margin is None else margin)

    @property
    def steps(self) -> str:
        """Where registration's measuring steps run (``cpu`` or a device backend's name)."""
        return self._patches.steps.name if self._patches is not None else "cpu"

    def use_device(self, steps_for: Callable[[PatchPlan], PatchSteps | None]) -> None:
        """Measure on a device where ``steps_for`` (an inference backend's) offers one; only
        the patch method has steps to hand over."""
        if self._patches is not None:
            steps = steps_for(self._patches.plan)
            if steps is not None:
                self._patches.use_steps(steps)

    def _hann(self, shape: tuple[int, int]) -> np.ndarray:
        win = self._hann_cache.get(shape)
        if win is None:
            win = cv2.createHanningWindow((shape[1], shape[0]), cv2.CV_32F)
            self._hann_cache[shape] = win
        return win

    def register(self, image: np.ndarray) -> Registration:
        """Find the rigid motion that maps template coordinates onto ``image``."""
        s = self.settings
        if image.shape != self.template.shape:
            msg = (
                f"frame must be {self.template.shape[1]}x{self.template.shape[0]} like the "
                f"template, got {image.shape[1]}x{image.shape[0]}"
            )
            raise RegistrationError(msg)
        if s.method == "none":
            return Registration.identity(residual=_residual(image, self.template))
        if self._patches is not None:
            warp, correlation = self._patches.estimate(image)
        else:
            warp, correlation = self._ecc(image)
        return self._checked(warp, correlation, image.shape)

    def _ecc(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The template->frame warp and correlation by phase correlation then pyramid ECC."""
        s = self.settings
        coarse = self._levels[0]
        # Every level is cut from the finest one (as the template's were): one pass over the
        # full frame, and OpenCV's area resize is several times slower by 16 than by 8 and 2.
        base = _downscale(image, self._finest)
        moving = _downscale(base, coarse.factor // self._finest).astype(np.float32)
        # Window both images ourselves and hand phaseCorrelate copies: OpenCV 5.0 applies its
        # window argument to the input arrays in place, which slowly destroyed our cached
        # template (every later board then failed to register).
        window = self._hann(coarse.template.shape)
        (dx, dy), _response = cv2.phaseCorrelate(coarse.template * window, moving * window)
        warp = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, s.iterations, _ECC_EPS)
        correlation = 0.0
        prev_factor = coarse.factor
        for level in self._levels:
            if level.factor != prev_factor:
                warp = _scale_warp(warp, prev_factor / level.factor)
                moving = _downscale(base, level.factor // self._finest).astype(np.float32)
                prev_factor = level.factor
            # Finer levels start close to the answer: fewer iterations keep the cycle short.
            iters = s.iterations if level is coarse else max(5, s.iterations // 4)
            try:
                correlation, warp = cv2.findTransformECC(
                    level.template,
                    moving,
                    warp,
                    cv2.MOTION_EUCLIDEAN,
                    (criteria[0], iters, criteria[2]),
                    None,
                    _ECC_BLUR,
                )
            except cv2.error as err:
                msg = (
                    f"registration did not converge at 1/{level.factor} scale "
                    f"(ECC: {str(err).strip().splitlines()[-1]})"
                )
                raise RegistrationError(msg) from err
        if prev_factor != 1:
            warp = _scale_warp(warp, float(prev_factor))
        return warp, float(correlation)

    def _checked(
        self, warp: np.ndarray, correlation: float, shape: tuple[int, ...]
    ) -> Registration:
        """The registration of ``warp``, or :class:`RegistrationError` if the recipe refuses it."""
        s = self.settings
        rotation_deg = math.degrees(math.atan2(float(warp[0, 1]), float(warp[0, 0])))
        # Report the shift of the image centre, which is what a person sees moving.
        h, w = shape
        centre = np.array([(w - 1) / 2, (h - 1) / 2])
        moved = warp[:, :2] @ centre + warp[:, 2]
        shift_x, shift_y = float(moved[0] - centre[0]), float(moved[1] - centre[1])
        if correlation < s.min_correlation:
            msg = (
                f"registration correlation must be >= {s.min_correlation:.2f}, got "
                f"{correlation:.3f} (wrong board, missing board or heavy damage?)"
            )
            raise RegistrationError(msg)
        if math.hypot(shift_x, shift_y) > s.max_shift_px:
            msg = (
                f"board shift must be <= {s.max_shift_px:.1f} px, got "
                f"({shift_x:.1f}, {shift_y:.1f}) px"
            )
            raise RegistrationError(msg)
        if abs(rotation_deg) > s.max_rotation_deg:
            msg = (
                f"board rotation must be <= {s.max_rotation_deg:.2f} deg, "
                f"got {rotation_deg:.2f} deg"
            )
            raise RegistrationError(msg)
        return Registration(
            transform=warp,
            shift_x_px=shift_x,
            shift_y_px=shift_y,
            rotation_deg=rotation_deg,
            correlation=float(correlation),
            residual=-1.0,
        )

    def warp_to_template(self, image: np.ndarray, reg: Registration) -> np.ndarray:
        """Resample ``image`` into template coordinates."""
        if reg.shift_x_px == 0 and reg.shift_y_px == 0 and reg.rotation_deg == 0:
            return image
        h, w = self.template.shape
        return cv2.warpAffine(
            image,
            reg.transform,
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )


#: ``edge_margin_px`` of a recipe that does not set it: the margin before the field existed.
_UNSET_MARGIN_PX = 4


def seen_region(
    reg: Registration, width_px: int, height_px: int, margin_px: int
) -> tuple[int, int, int, int]:
    """The template-coordinate rectangle (x0, y0, x1, y1) the camera really saw in this frame,
    less ``margin_px`` on every side.

    A shifted or rotated board leaves a strip of the template's field of view outside the
    frame; after registration that strip holds replicated border pixels, not board. Defects
    there would be false calls, and truth there cannot be seen. The network's answer to a
    replicated strip reaches further in than the strip (DeepPCB boards moved by up to 3 px
    and 1 degree: false calls centred up to 10.5 px from the frame's edge), hence the margin.
    """
    if reg.shift_x_px == 0 and reg.shift_y_px == 0 and reg.rotation_deg == 0:
        return (0, 0, width_px, height_px)
    inverse = cv2.invertAffineTransform(reg.transform.astype(np.float64))
    w, h = width_px - 1, height_px - 1
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], dtype=np.float64)
    tl, tr, br, bl = (inverse @ corners.T).T
    m = margin_px
    x0 = max(0.0, tl[0], bl[0]) + m
    x1 = min(float(w), tr[0], br[0]) - m
    y0 = max(0.0, tl[1], tr[1]) + m
    y1 = min(float(h), bl[1], br[1]) - m
    return (math.ceil(x0), math.ceil(y0), math.floor(x1) + 1, math.floor(y1) + 1)


def _residual(aligned: np.ndarray, template: np.ndarray) -> float:
    """Mean absolute grey-level difference, ignoring a border the warp may have replicated."""
    h, w = template.shape
    m = max(2, min(h, w) // 64)
    a = aligned[m : h - m, m : w - m]
    t = template[m : h - m, m : w - m]
    return float(cv2.norm(a, t, cv2.NORM_L1)) / max(1, a.size)


def align(registrar: Registrar, image: np.ndarray) -> tuple[np.ndarray, Registration]:
    """Register ``image`` and resample it onto the template; the residual is filled in."""
    reg = registrar.register(image)
    aligned = registrar.warp_to_template(image, reg)
    residual = _residual(aligned, registrar.template)
    return aligned, Registration(
        reg.transform, reg.shift_x_px, reg.shift_y_px, reg.rotation_deg, reg.correlation, residual
    )


#: A pair's template is moved onto its test image only when phase correlation finds the two this
#: far apart or more: its estimate (at half scale) is good to ~0.3 px, and resampling a binary
#: template for less would only blur its edges.
PAIR_MIN_MOVE_PX = 1.0
#: ... and only when the moved template then differs from the test by at most this share of
#: what the given one does: the pair's own pixels overrule a wrong estimate.
PAIR_MIN_GAIN = 0.9
#: A pair's template may be off by this many times the recipe's ``max_shift_px`` (DeepPCB
#: 13000015 and 13000017 are off by 9.8 and 9.7 px; deeppcb-640 allows boards 8 px).
PAIR_SHIFT_FACTOR = 2.0


def _pair_offset(template: np.ndarray, image: np.ndarray) -> tuple[float, float, float]:
    """The translation (x, y, in px) that moves a pair's template onto its test image, and the
    peak's response: phase correlation at half scale, ~3.4 ms at 640x640 on one core (a
    patch registration builds a plan per template, ~25 ms, for no better result here)."""
    a = _downscale(template, 2).astype(np.float32)
    b = _downscale(image, 2).astype(np.float32)
    window = cv2.createHanningWindow((a.shape[1], a.shape[0]), cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(a * window, b * window)
    return 2.0 * dx, 2.0 * dy, float(response)


def template_onto(
    template: np.ndarray, image: np.ndarray, settings: RegistrationSettings
) -> tuple[np.ndarray, Registration]:
    """A pair's own template (DeepPCB's layout: each test image comes with its template) moved
    onto the test image, which stays as the camera saw it, with the move as its registration
    (``correlation``: the phase correlation's peak response).

    DeepPCB's pairs are not all aligned: in trainval, 31 pairs of groups 13000 and 20085 are off
    by 3.5-10 px. A pair's offset is how its two images were scanned, a translation, not where a
    board lay on the line, so it is measured by phase correlation and may reach twice the
    recipe's ``max_shift_px``. A pair within a pixel, one further off than that, or one whose
    moved template would not agree clearly better with the test than the stored one, is
    inspected as stored, as every pair was before, and the log says why. Where the moved
    template has no pixels (a strip as wide as the move along one or two edges), the test's own
    pixels stand in: nothing is called there, and nothing there is left out of the truth.
    """
    dx, dy, response = _pair_offset(template, image)
    far = math.hypot(dx, dy)
    if far < PAIR_MIN_MOVE_PX:
        return template, Registration.identity()
    limit = PAIR_SHIFT_FACTOR * settings.max_shift_px
    if far > limit:
        log.info("pair taken as stored: its images are %.1f px apart, over %.1f", far, limit)
        return template, Registration.identity()
    h, w = template.shape
    move = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    onto = cv2.warpAffine(
        template, move, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    # Where the moved template has no pixels of its own (a strip as wide as the move), the test
    # is its own reference: a replicated strip would differ from it along the whole edge.
    inside = cv2.warpAffine(
        np.full_like(template, 255),
        move,
        (w, h),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    onto = np.where(inside == 255, onto, image)
    before, after = _residual(image, template), _residual(image, onto)
    if after > PAIR_MIN_GAIN * before:
        log.info(
            "pair taken as stored: its template moved by (%.1f, %.1f) px agrees no better with "
            "the test (mean difference %.1f against %.1f as stored)", dx, dy, after, before,
        )  # fmt: skip
        return template, Registration.identity()
    return onto, Registration(move.astype(np.float32), dx, dy, 0.0, response, after)
