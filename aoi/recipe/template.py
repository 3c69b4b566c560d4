"""The recipe's golden template: read from disk and checked against the recipe's frame size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from aoi.errors import RecipeError
from aoi.pixels import to_mono8


def load_template(path: Path, width_px: int, height_px: int, source: str) -> np.ndarray:
    """The golden template as uint8 HxW; errors name the recipe, the file and the sizes."""
    try:
        exists = path.is_file()
    except OSError as err:  # EIO, EACCES, a path too long for the OS
        msg = f"{source}: template must name an existing image, looking up {path} failed: {err}"
        raise RecipeError(msg) from err
    if not exists:
        msg = f"{source}: template must name an existing image, found no file at {path}"
        raise RecipeError(msg)
    try:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        msg = f"{source}: template {path} must be a readable image, decoding failed: {err}"
        raise RecipeError(msg) from err
    if image is None:
        msg = f"{source}: template {path} must be a readable image, found no image in it"
        raise RecipeError(msg)
    image = to_mono8(image[:, :, :3] if image.ndim == 3 else image)
    if image.shape != (height_px, width_px):
        msg = (
            f"{source}: template {path.name} must be {width_px}x{height_px} px like "
            f"geometry.frame_*_px, got {image.shape[1]}x{image.shape[0]} px"
        )
        raise RecipeError(msg)
    return image
