"""The robust rigid fit over Python floats (aoi/vision/rigidfit.py) against the array formulation
it replaced, on random point sets with and without outliers; and its refusals."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from aoi.errors import RegistrationError
from aoi.vision.rigidfit import MIN_PAIRS, fit_pairs


def _rigid(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    cs, cd = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - cs, dst - cd
    angle = math.atan2(float((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum()), float((a * b).sum()))
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return np.hstack([rot, (cd - rot @ cs)[:, None]])


def _reference(src: np.ndarray, shift: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """The array formulation (numpy on every step), as aoi/vision/patchreg.py had it."""
    dst = (src + shift) @ warp[:, :2].T + warp[:, 2]
    fitted = _rigid(src, dst)
    for _ in range(2):
        res = np.hypot(*(src @ fitted[:, :2].T + fitted[:, 2] - dst).T)
        keep = res <= max(3.0 * float(np.median(res)), 0.25)
        if keep.all() or keep.sum() < MIN_PAIRS:
            break
        src, dst = src[keep], dst[keep]
        fitted = _rigid(src, dst)
    return fitted


@pytest.mark.parametrize("outliers", [0, 1, 2, 3])
def test_the_fit_gives_the_array_formulations_numbers(outliers: int) -> None:
    rng = np.random.default_rng(outliers)
    for _ in range(50):
        src = rng.uniform(40, 4000, (9, 2))
        warp = cv2.getRotationMatrix2D((2000, 1500), rng.uniform(-2, 2), 1.0)
        warp[:, 2] += rng.normal(0, 4, 2)
        shift = rng.normal(0, 0.05, (9, 2))
        shift[:outliers] += rng.uniform(-8, 8, (outliers, 2))
        np.testing.assert_allclose(
            fit_pairs(src, shift, warp), _reference(src, shift, warp), rtol=0, atol=1e-9
        )


def test_outliers_are_dropped() -> None:
    rng = np.random.default_rng(7)
    src = rng.uniform(40, 600, (9, 2))
    truth = cv2.getRotationMatrix2D((320, 320), 0.8, 1.0)
    shift = np.zeros((9, 2))
    shift[0] = (6.0, -5.0)  # one patch found the wrong peak
    fitted = fit_pairs(src, shift, truth)
    corners = np.array([[0, 0], [639, 0], [0, 639], [639, 639]], np.float64)
    assert np.abs(corners @ (fitted - truth)[:, :2].T + (fitted - truth)[:, 2]).max() < 1e-6
    # Without the outlier rounds it would pull the fit off by a pixel.
    plain = _rigid(src, (src + shift) @ truth[:, :2].T + truth[:, 2])
    assert np.abs(corners @ (plain - truth)[:, :2].T + (plain - truth)[:, 2]).max() > 0.5


def test_too_few_pairs_are_refused() -> None:
    with pytest.raises(RegistrationError, match="needs 4 textured patches"):
        fit_pairs(np.zeros((3, 2)), np.zeros((3, 2)), np.eye(2, 3))
