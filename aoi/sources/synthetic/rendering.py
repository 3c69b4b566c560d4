"""How a synthetic board looks: a copper mask rendered as an image, and read back from one.

Polarity follows DeepPCB in both looks: copper is darker than the substrate. ``binary`` imitates
DeepPCB's thresholded scans; ``grey`` a camera's frame, with blur, uneven illumination and noise.
"""

from __future__ import annotations

import logging
from typing import Literal

import cv2
import numpy as np

from aoi.sources.synthetic._raster import check_mask, check_size

log = logging.getLogger(__name__)

Look = Literal["binary", "grey"]
LOOKS: tuple[str, ...] = ("binary", "grey")


def render(
    copper: np.ndarray, look: Look, rng: np.random.Generator, noise_sigma: float = 4.0
) -> np.ndarray:
    """Render a copper mask as a uint8 image: DeepPCB's scans (binary) or a camera's (grey)."""
    check_mask(copper)
    if look not in LOOKS:
        msg = f"look must be one of {LOOKS}, got {look!r}"
        raise ValueError(msg)
    if noise_sigma < 0:
        msg = f"noise_sigma must be >= 0, got {noise_sigma}"
        raise ValueError(msg)
    h, w = copper.shape
    if look == "binary":
        substrate, metal, blur, noise = 248, 6, 0.6, noise_sigma / 2
    else:
        substrate = int(rng.uniform(150, 185))
        metal = substrate - int(rng.uniform(60, 90))
        blur, noise = rng.uniform(0.9, 1.4), noise_sigma
    image = copper.view(np.uint8) * np.uint8(metal - substrate + 256) + np.uint8(substrate)
    image = cv2.GaussianBlur(image, (0, 0), blur)
    if look == "grey":
        # Smooth illumination: a tilt plus vignetting about a slightly off-centre point.
        gy, gx = np.mgrid[-1:1:24j, -1:1:32j]
        tilt = rng.uniform(-0.08, 0.08, size=2)
        centre = rng.uniform(-0.2, 0.2, size=2)
        vignette = rng.uniform(0.08, 0.18)
        gain = (
            1
            + tilt[0] * gx
            + tilt[1] * gy
            - vignette * ((gx - centre[0]) ** 2 + (gy - centre[1]) ** 2) / 2
        )
        gain_u8 = cv2.resize(
            np.clip(gain * 128, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR
        )
        image = cv2.multiply(image, gain_u8, scale=1 / 128)
    if noise > 0:
        # OpenCV's RNG is per thread and ~4x faster than numpy's normal; seed it from rng.
        cv2.setRNGSeed(int(rng.integers(2**31 - 1)))
        jitter = np.empty((h, w), np.int16)
        cv2.randn(jitter, 0, noise)
        image = cv2.add(image, jitter, dtype=cv2.CV_8U)
    return image


def copper_from_image(image: np.ndarray) -> np.ndarray:
    """Recover the copper mask (dark = copper) from a rendered board or a DeepPCB image."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        msg = f"image must be an HxW or HxWx3 numpy array, got {getattr(image, 'shape', image)}"
        raise ValueError(msg)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    if grey.dtype != np.uint8:
        grey = cv2.normalize(grey, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
    h, w = grey.shape
    check_size(h, w)
    # Illumination is smooth: fit a quadratic surface to the substrate (bright class) of a
    # downscaled copy, divide it out, and re-fit once with the better split; then Otsu at full size.
    cell = max(1, min(h, w) // 96)
    small = cv2.resize(grey, (w // cell, h // cell), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    xx, yy = xx / sw - 0.5, yy / sh - 0.5
    basis = np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy], -1).reshape(-1, 6)
    level = small.astype(np.float32).reshape(-1)
    surface = np.full(sh * sw, level.mean(), np.float32)
    for _ in range(3):
        flat_small = np.clip(level / np.maximum(surface, 1) * 200, 0, 255).astype(np.uint8)
        cut, _ = cv2.threshold(flat_small, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        bright = flat_small > cut
        if bright.sum() < 12 or (~bright).sum() == 0:
            break
        coef = np.linalg.lstsq(basis[bright], level[bright], rcond=None)[0]
        surface = basis @ coef
    env = cv2.resize(
        np.clip(surface, 1, 255).reshape(sh, sw).astype(np.uint8),
        (w, h),
        interpolation=cv2.INTER_LINEAR,
    )
    flat = cv2.divide(grey, env, scale=200)
    flat = cv2.GaussianBlur(flat, (3, 3), 0)
    thresh, _ = cv2.threshold(flat, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    # Otsu leans towards the larger class; a blurred edge sits midway between the two levels,
    # so move the threshold to the midpoint of the class means (ISODATA).
    hist = np.bincount(flat.reshape(-1), minlength=256).astype(np.float64)
    levels = np.arange(256)
    dark_mean = light_mean = 0.0
    for _ in range(4):
        cut = int(thresh)
        if not hist[: cut + 1].any() or not hist[cut + 1 :].any():
            break
        dark_mean = float(np.average(levels[: cut + 1], weights=hist[: cut + 1]))
        light_mean = float(np.average(levels[cut + 1 :], weights=hist[cut + 1 :]))
        thresh = (dark_mean + light_mean) / 2
    # A blank board is unimodal: Otsu would split the noise, so call it all substrate.
    if light_mean - dark_mean < 40:
        log.debug("no copper contrast found (threshold %.0f)", thresh)
        return np.zeros((h, w), bool)
    return flat <= int(thresh)
