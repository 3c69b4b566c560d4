"""A golden template from a real board: grab it, save it, and check a second grab aligns to it.

The check runs the recipe's own registration on a second board (or the same one put back in the
fixture): if that fails here it would fail on the line, so the engineer hears it now, in words
("shifted 2.1 px, turned 0.3°, match 0.97"), not as OpenCV's internals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from aoi.config import StationConfig
from aoi.errors import RecipeError, RegistrationError
from aoi.pixels import to_mono8
from aoi.recipe import LoadedRecipe, RegistrationSettings
from aoi.sources.factory import create_source
from aoi.vision.registration import Registrar

log = logging.getLogger(__name__)

#: What an operator is told when a board cannot be aligned (the details go to the log).
NOT_ALIGNED = (
    "the board could not be aligned to the golden template: check that the board is in the "
    "fixture, lit, and the right product"
)


@dataclass(frozen=True)
class AlignmentCheck:
    """How a second board lines up with a golden template, in an engineer's words."""

    ok: bool
    shift_x_px: float = 0.0
    shift_y_px: float = 0.0
    rotation_deg: float = 0.0
    correlation: float = 0.0
    #: The sentence to show: what was measured, or what to check.
    text: str = ""


def check_alignment(
    template: np.ndarray, board: np.ndarray, settings: RegistrationSettings
) -> AlignmentCheck:
    """Register ``board`` onto ``template`` with the recipe's settings (``none`` checks with
    the default method: a template must align whatever the recipe does later)."""
    if settings.method == "none":
        settings = RegistrationSettings()
    image = to_mono8(board)
    if image.shape != template.shape:
        text = (
            f"the second grab is {image.shape[1]}x{image.shape[0]} px but the template is "
            f"{template.shape[1]}x{template.shape[0]} px: use the same camera settings"
        )
        return AlignmentCheck(ok=False, text=text)
    try:
        reg = Registrar(template, settings).register(image)
    except (RegistrationError, cv2.error) as err:
        log.info("golden template check: registration failed: %s", err)
        return AlignmentCheck(ok=False, text=NOT_ALIGNED[0].upper() + NOT_ALIGNED[1:] + ".")
    text = (
        f"Aligned: shifted {reg.shift_x_px:+.1f} px across, {reg.shift_y_px:+.1f} px down, "
        f"turned {reg.rotation_deg:+.2f}°, match {reg.correlation:.2f} "
        f"(the recipe needs at least {settings.min_correlation:.2f})."
    )
    return AlignmentCheck(
        True, reg.shift_x_px, reg.shift_y_px, reg.rotation_deg, reg.correlation, text
    )


def grab_boards(
    spec: str, loaded: LoadedRecipe, station: StationConfig, count: int = 1, seed: int = 0
) -> list[np.ndarray]:
    """``count`` frames from the source ``spec`` (``synthetic``, ``replay:DIR``, ``genicam``)
    as mono 8-bit images; the recipe's template feeds a synthetic source."""
    g = loaded.recipe.geometry
    try:
        template = cv2.imread(str(loaded.template_path), cv2.IMREAD_GRAYSCALE)
    except cv2.error:
        template = None
    if template is None or template.shape != (g.frame_height_px, g.frame_width_px):
        template = np.zeros((g.frame_height_px, g.frame_width_px), np.uint8)
    with create_source(spec, loaded, template, station, seed=seed) as source:
        return [to_mono8(source.grab(timeout_s=5.0).image) for _ in range(count)]


def png_bytes(image: np.ndarray) -> bytes:
    """``image`` encoded as PNG (lossless: the template is what every board is compared to)."""
    ok, data = cv2.imencode(".png", image)
    if not ok:
        msg = "the grabbed image could not be encoded as PNG"
        raise RecipeError(msg)
    return data.tobytes()
