"""Patch registration is as accurate as whole-frame ECC against known synthetic motions, and
costs about the same at any frame size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aoi.recipe import RegistrationSettings
from aoi.regplan import peak_shifts
from aoi.sources.synthetic.boardgen import golden_board
from aoi.vision.patchreg import PatchAligner, _cross_power
from aoi.vision.registration import Registrar

#: Shifts (px) and rotations (deg) inside the default recipe bounds (8 px, 2 deg).
MOTIONS = [
    (3.0, -2.0, 0.0),
    (-2.5, 1.5, 0.8),
    (1.2, 2.9, -1.0),
    (-3.0, -3.0, 0.5),
    (5.3, -4.7, 1.7),
    (0.4, 0.2, -1.9),
    (-5.0, 4.0, 1.95),
    (0.25, -0.75, 0.0),
]

#: The issue's accuracy bound: the new method's corner error within 0.05 px of the old one's.
TOLERANCE_PX = 0.05


def _truth(shape: tuple[int, int], dx: float, dy: float, angle: float) -> np.ndarray:
    h, w = shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    m[:, 2] += (dx, dy)
    return m


def corner_errors(registrar: Registrar, board: np.ndarray, noise: float) -> np.ndarray:
    """Per motion: the largest distance (px) between where the found and the true transform
    put the frame's four corners."""
    h, w = board.shape
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], float).T
    rng = np.random.default_rng(7)
    out = []
    for dx, dy, angle in MOTIONS:
        truth = _truth(board.shape, dx, dy, angle)
        moved = cv2.warpAffine(board, truth, (w, h), borderMode=cv2.BORDER_REPLICATE)
        if noise:
            moved = np.clip(moved + rng.normal(0, noise, moved.shape), 0, 255).astype(np.uint8)
        found = registrar.register(moved).transform.astype(np.float64)
        out.append(float(np.hypot(*((found - truth) @ corners)).max()))
    return np.array(out)


@pytest.mark.parametrize(
    ("height", "width", "look", "noise"),
    [(512, 640, "binary", 4.0), (640, 640, "grey", 0.0), (1024, 1024, "binary", 4.0)],
)
def test_patches_are_as_accurate_as_ecc(height: int, width: int, look: str, noise: float) -> None:
    board = golden_board(height, width, 5, look)
    errors = {
        method: corner_errors(Registrar(board, RegistrationSettings(method=method)), board, noise)
        for method in ("ecc", "patches")
    }
    assert errors["patches"].max() <= errors["ecc"].max() + TOLERANCE_PX
    assert errors["patches"].mean() <= errors["ecc"].mean() + TOLERANCE_PX
    assert errors["patches"].max() < 0.1  # sub-pixel in absolute terms too


def test_large_panel_patches_are_sub_pixel() -> None:
    board = golden_board(3000, 4096, 9, "binary")
    errors = corner_errors(Registrar(board, RegistrationSettings()), board, 0.0)
    assert errors.max() < 0.05


def test_patch_work_does_not_grow_with_the_frame() -> None:
    """The full-resolution work is a fixed set of small patches whatever the frame size."""
    small = PatchAligner(golden_board(512, 640, 5, "binary"), RegistrationSettings())
    large = PatchAligner(golden_board(3000, 4096, 9, "binary"), RegistrationSettings())
    for aligner in (small, large):
        fine = aligner._levels[-1]
        assert fine.factor == 1
        assert fine.grid.size == small._levels[-1].grid.size
        # the coarse level is a few hundred pixels across at most
        assert max(aligner._levels[0].template.shape) <= 512


def test_patches_leave_the_template_untouched() -> None:
    board = golden_board(512, 640, 5, "binary")
    aligner = PatchAligner(board, RegistrationSettings())
    before = [(lv.template.copy(), lv.lk_template.copy()) for lv in aligner._levels]
    moved = cv2.warpAffine(board, _truth(board.shape, 2.0, -1.0, 0.8), (640, 512))
    first, _ = aligner.estimate(moved)
    for _ in range(20):
        last, _ = aligner.estimate(moved)
    for lv, (tpl, lk) in zip(aligner._levels, before, strict=True):
        assert np.array_equal(lv.template, tpl) and np.array_equal(lv.lk_template, lk)
    assert np.array_equal(first, last)


def test_default_method_is_patches() -> None:
    assert RegistrationSettings().method == "patches"


def test_packed_cross_power_is_the_complex_one() -> None:
    """The patches' cross-power from OpenCV's packed spectra is the textbook surface (numpy's
    complex FFT in float64), and its peak is the patch's shift."""
    rng = np.random.default_rng(5)
    template = rng.random((64, 64)).astype(np.float32)
    noise = rng.normal(0, 0.05, (64, 64))
    patch = (np.roll(template, (3, -2), axis=(0, 1)) + noise).astype(np.float32)
    got = np.empty_like(patch)
    _cross_power(patch, cv2.dft(template), got)
    cross = np.fft.fft2(patch.astype(np.float64)) * np.conj(np.fft.fft2(template))
    want = np.fft.ifft2(cross / np.maximum(np.abs(cross), 1e-12)).real
    np.testing.assert_allclose(got, want, atol=1e-5)
    dx, dy = peak_shifts(got[None])[0]
    assert abs(dx + 2) < 0.05 and abs(dy - 3) < 0.05
