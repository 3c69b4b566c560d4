"""Synthetic bare PCBs: the golden board of a product, and produced boards under test.

The pieces live beside this module: copper layouts in :mod:`~aoi.sources.synthetic.layout`, the
looks (rendering and reading copper back) in :mod:`~aoi.sources.synthetic.rendering`, the
DeepPCB-style defects in :mod:`~aoi.sources.synthetic.defects`. This module combines them and
re-exports the names callers use as ``boardgen.X``.
"""

from __future__ import annotations

import cv2
import numpy as np

from aoi.sources.synthetic._raster import MIN_SIZE_PX
from aoi.sources.synthetic.defects import inject_defects
from aoi.sources.synthetic.layout import CLEARANCE_PX, make_copper_layout
from aoi.sources.synthetic.rendering import LOOKS, Look, copper_from_image, render
from aoi.types import GroundTruth

__all__ = [
    "CLEARANCE_PX",
    "LOOKS",
    "MIN_SIZE_PX",
    "Look",
    "board_under_test",
    "copper_from_image",
    "golden_board",
    "inject_defects",
    "make_copper_layout",
    "misalign",
    "render",
]


def misalign(
    image: np.ndarray, rng: np.random.Generator, max_shift_px: float, max_rotation_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Move a board rigidly as on a conveyor; return the frame and the template-to-frame matrix."""
    if max_shift_px < 0 or max_rotation_deg < 0:
        msg = (
            f"max_shift_px and max_rotation_deg must be >= 0, "
            f"got {max_shift_px} and {max_rotation_deg}"
        )
        raise ValueError(msg)
    h, w = image.shape[:2]
    shift = rng.uniform(-max_shift_px, max_shift_px, size=2)
    angle = rng.uniform(-max_rotation_deg, max_rotation_deg)
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    matrix[:, 2] += shift
    matrix = matrix.astype(np.float32)
    warped = cv2.warpAffine(
        image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return warped, matrix


def golden_board(height_px: int, width_px: int, seed: int, look: Look) -> np.ndarray:
    """The golden template image of the synthetic product ``seed`` (deterministic)."""
    return render(make_copper_layout(height_px, width_px, seed), look, np.random.default_rng(seed))


def board_under_test(
    template: np.ndarray,
    rng: np.random.Generator,
    *,
    look: Look,
    defect_count: int,
    max_shift_px: float,
    max_rotation_deg: float,
    noise_sigma: float,
) -> tuple[np.ndarray, GroundTruth, np.ndarray]:
    """A produced board of the template's product: defects, fresh rendering, conveyor misalignment.

    Truth boxes are in template coordinates, since the station registers the frame onto the
    template before inspecting; the returned matrix maps template to frame coordinates.
    """
    copper = copper_from_image(template)
    truth = GroundTruth.empty()
    if defect_count > 0:
        copper, truth = inject_defects(copper, rng, defect_count)
    elif defect_count < 0:
        msg = f"defect_count must be >= 0, got {defect_count}"
        raise ValueError(msg)
    image = render(copper, look, rng, noise_sigma)
    image, matrix = misalign(image, rng, max_shift_px, max_rotation_deg)
    return image, truth, matrix
